# hostile.sh section: a crash (SIGKILL) of both daemons, a restart and a clean stop. The restart
# must converge (data path intact, leftovers of the killed run gone, each daemon holding only the
# capabilities it still uses) and the clean stop must give the namespaces back exactly as they were
# before the first start: MPTCP path manager, every sysctl braid set, MPTCP limits and endpoints,
# routing rules and tables, no nftables table, no state file.
#
#   1. stop the lab's daemons; set values braid would change to ones it would not choose
#      (path manager 'kernel', tcp_fastopen 0 on both, MPTCP limits 3/1 on the concentrator),
#      and take a snapshot of both namespaces
#   2. give wan1 a second address (198.18.1.200), start both daemons (the gateway with Fast Open,
#      so it sets tcp_fastopen too), download through them, SIGKILL both
#      (while both are down, LAN TCP is held, not routed unbonded: checked with forwarding on for a
#      moment; a connection opened then completes through the restarted daemons)
#   3. remove 198.18.1.200 (a DHCP lease that changed while the gateway was down), restart both
#   4. checks while running; SIGTERM both; snapshots compared; the lab's values put back

CRASH_EXTRA=198.18.1.200
CRASH_SIZE=5000000

# What braid may change in a namespace, in a form two snapshots can be compared by: sysctls, MPTCP
# limits and endpoints, rules and routes of every table, and braid's nftables table if present.
crash_snapshot() { # crash_snapshot NS
    local ns=$1
    echo "path_manager $(nsx "$ns" sysctl -n net.mptcp.path_manager)"
    echo "tcp_fastopen $(nsx "$ns" sysctl -n net.ipv4.tcp_fastopen)"
    echo "limits $(nsx "$ns" ip mptcp limits show | tr '\n' ' ')"
    nsx "$ns" ip mptcp endpoint show | sed 's/^/endpoint /'
    nsx "$ns" ip -4 rule show | sed 's/^/rule4 /'
    nsx "$ns" ip -6 rule show | sed 's/^/rule6 /'
    nsx "$ns" ip -4 route show table all | sed 's/^/route4 /'
    nsx "$ns" ip -6 route show table all | sed 's/^/route6 /'
    nsx "$ns" nft list table inet braid 2>/dev/null | sed 's/^/nft /'
}

# The capability sets of every thread of a process as "CapPrm CapEff CapBnd" (hex, as /proc shows
# them), one line per distinct combination: Linux keeps capabilities per thread.
crash_caps() {
    local task
    for task in /proc/"$1"/task/*; do
        awk '/^Cap(Prm|Eff|Bnd):/ { printf "%s ", $2 } END { print "" }' "$task/status"
    done | sort -u
}

# Kills a daemon with SIGKILL: no stop code runs, as after a crash or the OOM killer.
crash_kill() {
    kill -KILL "$1" 2>/dev/null
    # Reaped here, so the shell does not report the kill as a job's death.
    { wait "$1"; } 2>/dev/null
    wait_for 5 bash -c "! kill -0 $1"
}

crash_check_download() { # crash_check_download LABEL
    local out
    out=$(lan_get "$CRASH_SIZE")
    if intact "$out" "$CRASH_SIZE" sent; then
        pass "$1: $CRASH_SIZE bytes down through both daemons, sha256 equal"
    else
        fail "$1: download through both daemons" "client: $out" "$(tail -3 "$LAB_WORK/gateway.log")" \
            "$(tail -3 "$LAB_WORK/concentrator.log")"
    fi
}

section_crash() {
    local lab_gw_fo lab_conc_fo lab_limits subflows accepted before_gw before_conc after_gw after_conc
    hostile_stop_pid "$LAB_GW_PID"
    hostile_stop_pid "$LAB_CONC_PID"
    lab_gw_fo=$(nsx "$NS_GW" sysctl -n net.ipv4.tcp_fastopen)
    lab_conc_fo=$(nsx "$NS_CONC" sysctl -n net.ipv4.tcp_fastopen)
    # `ip mptcp limits show` prints "add_addr_accepted N subflows N".
    lab_limits=$(nsx "$NS_CONC" ip mptcp limits show | awk '{ print $2, $4 }')
    # 1. Values braid changes, set to ones it would not choose, so a restore is visible.
    nsx "$NS_GW" sysctl -qw net.mptcp.path_manager=kernel net.ipv4.tcp_fastopen=0
    nsx "$NS_CONC" sysctl -qw net.ipv4.tcp_fastopen=0
    nsx "$NS_CONC" ip mptcp limits set subflows 3 add_addr_accepted 1
    before_gw=$(crash_snapshot "$NS_GW")
    before_conc=$(crash_snapshot "$NS_CONC")

    # 2. First run, then SIGKILL.
    nsx "$NS_GW" ip addr add "$CRASH_EXTRA/24" dev wan1
    hostile_gw_conf <<<"	option fastopen '1'"
    hostile_start_conc && hostile_start_gw || fail "crash: first start" "$(tail -3 "$LAB_WORK/gateway.log")"
    wait_for 10 bash -c "nsx $NS_GW ip -4 rule show | grep -q 'from $CRASH_EXTRA '"
    crash_check_download "crash: first run"
    crash_kill "$LAB_GW_PID"
    crash_kill "$LAB_CONC_PID"
    if nsx "$NS_GW" ip -4 rule show | grep -q "from $CRASH_EXTRA " &&
        [[ $(nsx "$NS_GW" sysctl -n net.mptcp.path_manager) == userspace ]]; then
        pass "crash: SIGKILL leaves the gateway's rules and path manager behind (what the restart must repair)"
    else
        fail "crash: SIGKILL should have left the gateway's kernel state" "$(nsx "$NS_GW" ip -4 rule show)"
    fi

    # While the gateway is down its nftables table is still there, and its last prerouting rule
    # drops LAN TCP that TPROXY found no listener for: nothing leaves unbonded (around the
    # concentrator's policy), and the client's SYN retries reach the gateway once it is back. The
    # lab's gateway does not forward and inet has no route back to the LAN; both are turned on for
    # the moment, as on a router, so a leak would show, and inet counts TCP from the LAN.
    local fwd held_rc=0 leaked
    fwd=$(nsx "$NS_GW" sysctl -n net.ipv4.ip_forward)
    nsx "$NS_GW" sysctl -qw net.ipv4.ip_forward=1
    nsx "$NS_INET" ip route add 198.18.0.0/24 via 198.18.1.2
    nsx "$NS_INET" nft -f - <<NFT
table inet braid_crash_test {
    counter lan_tcp {}
    chain forward {
        type filter hook forward priority filter; policy accept;
        ip saddr 198.18.0.0/24 meta l4proto tcp counter name lan_tcp
    }
}
NFT
    # The first CRASH_SIZE bytes of nginx's file: this gateway runs with `fastopen 1`, and an
    # MPTCP connection whose SYN carried data is slow for long downloads (README, Known limits).
    : >"$LAB_WORK/crash-held.body"
    nsx "$NS_LAN" curl -sS --max-time 60 -r "0-$((CRASH_SIZE - 1))" -o "$LAB_WORK/crash-held.body" \
        "http://$ORIGIN4/big" 2>"$LAB_WORK/crash-curl.err" &
    local held=$!
    # The held SYN is counted by the leftover table's drop rule.
    wait_for 5 bash -c "nsx $NS_GW nft list chain inet braid prerouting | grep 'l4proto tcp counter' | grep -qv 'packets 0 '"

    # 3. The address goes while the gateway is down; restart both.
    nsx "$NS_GW" ip addr del "$CRASH_EXTRA/24" dev wan1
    if hostile_start_conc && hostile_start_gw; then
        pass "crash: both daemons start again after SIGKILL"
    else
        fail "crash: restart after SIGKILL" "$(tail -3 "$LAB_WORK/gateway.log")" "$(tail -3 "$LAB_WORK/concentrator.log")"
    fi
    wait "$held" || held_rc=$?
    leaked=$(nsx "$NS_INET" nft list counter inet braid_crash_test lan_tcp | awk '/packets/ {print $2}')
    nsx "$NS_INET" nft delete table inet braid_crash_test
    nsx "$NS_INET" ip route del 198.18.0.0/24 via 198.18.1.2
    nsx "$NS_GW" sysctl -qw net.ipv4.ip_forward="$fwd"
    if ((held_rc == 0)) && [[ $(sha256sum <"$LAB_WORK/crash-held.body" | cut -d' ' -f1) == \
        "$(head -c "$CRASH_SIZE" "$LAB_WORK/www/big" | sha256sum | cut -d' ' -f1)" && $leaked == 0 ]]; then
        pass "crash: a LAN connection opened while the gateway was down is held, not sent unbonded (0 LAN TCP packets on the internet side), and completes bonded once it is back (curl, $CRASH_SIZE bytes, sha256 equal)"
    else
        fail "crash: a LAN connection opened while the gateway was down" "curl exit $held_rc: $(cat "$LAB_WORK/crash-curl.err")" \
            "LAN TCP packets on the internet side: $leaked"
    fi
    crash_check_download "crash: after the restart"
    local stale
    stale=$(nsx "$NS_GW" ip -4 rule show | grep "from $CRASH_EXTRA ")
    if [[ -z $stale ]]; then
        pass "crash: the restart removes the killed run's source rule of a vanished address ($CRASH_EXTRA)"
    else
        fail "crash: stale source rule after the restart" "$stale"
    fi
    # net_admin is bit 12, net_raw bit 13: the gateway keeps both (netlink, nft, probes), the
    # concentrator only net_admin (MPTCP limits given back at stop).
    local gw_caps conc_caps
    gw_caps=$(crash_caps "$LAB_GW_PID")
    conc_caps=$(crash_caps "$LAB_CONC_PID")
    if [[ $gw_caps == "0000000000003000 0000000000003000 0000000000003000 " ]]; then
        pass "crash: every thread of the running gateway holds only cap_net_admin and cap_net_raw (permitted, effective, bounding)"
    else
        fail "crash: gateway capabilities (CapPrm CapEff CapBnd), want 3000 each" "$gw_caps"
    fi
    if [[ $conc_caps == "0000000000001000 0000000000001000 0000000000001000 " ]]; then
        pass "crash: every thread of the running concentrator holds only cap_net_admin (permitted, effective, bounding)"
    else
        fail "crash: concentrator capabilities (CapPrm CapEff CapBnd), want 1000 each" "$conc_caps"
    fi

    # 4. Clean stop: everything as before the first start.
    hostile_stop_pid "$LAB_GW_PID"
    hostile_stop_pid "$LAB_CONC_PID"
    after_gw=$(crash_snapshot "$NS_GW")
    after_conc=$(crash_snapshot "$NS_CONC")
    if [[ $after_gw == "$before_gw" ]]; then
        pass "crash: after the clean stop the gateway's namespace is as before the first start (path manager, sysctls, rules, routes, nft)"
    else
        fail "crash: gateway namespace after the clean stop differs from before the first start" \
            "$(diff <(echo "$before_gw") <(echo "$after_gw") | grep '^[<>]')"
    fi
    if [[ $after_conc == "$before_conc" ]]; then
        pass "crash: after the clean stop the concentrator's namespace is as before the first start (tcp_fastopen, MPTCP limits)"
    else
        fail "crash: concentrator namespace after the clean stop differs from before the first start" \
            "$(diff <(echo "$before_conc") <(echo "$after_conc") | grep '^[<>]')"
    fi
    local states
    states=$(find "$LAB_WORK" -maxdepth 1 -name '*.state')
    if [[ -z $states ]]; then
        pass "crash: no state file left after the clean stop"
    else
        fail "crash: state files left after the clean stop" "$states"
    fi

    # The lab's own values back, then the lab's daemons.
    nsx "$NS_GW" sysctl -qw net.ipv4.tcp_fastopen="$lab_gw_fo"
    nsx "$NS_CONC" sysctl -qw net.ipv4.tcp_fastopen="$lab_conc_fo"
    read -r accepted subflows <<<"$lab_limits"
    nsx "$NS_CONC" ip mptcp limits set subflows "$subflows" add_addr_accepted "$accepted"
    hostile_restore
}
