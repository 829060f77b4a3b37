#!/usr/bin/env bash
# braid namespace tests: the traffic braid does not relay — LAN UDP and ICMP, the box's own DNS —
# follows uplink health, and LAN QUIC is refused or passed (topology in lab/lab.sh, plus IPv6 on
# the uplinks as a dual-stack DSL or LTE line has it):
#
#   lan ── [gw: braid gateway] ══ wan1/wan2/wan3 ══ [inet] ── [conc]
#   UDP every 100 ms ─┐  rules 4900/4901 ▲             ▲ silent 10 s outage of wan1 (nft drop,
#   ping every 100 ms ┘  NAT + ct mark   │               carrier up)
#                        dig ────────────┘       └── [origin]: socat UDP answerer (7000,
#                                                              443), dnsmasq (53), ping target
#
# socat on the origin answers each UDP request with the source address it saw, so the client knows
# which uplink carried each one; dnsmasq logs the source of each query. Checked: the longest UDP
# gap stays under 2 s (IPv4 and IPv6) on one socket that keeps getting answers through wan2 and
# back through wan1 after the hold-down; ping loss is reported; an idle flow's NAT entry on wan1
# is deleted when traffic moves; the gateway's own query leaves by wan2 during the outage; UDP to 443 is refused at once (ECONNREFUSED) with `quic tcp` and answered
# after a reload to `pass`; the rules come back once after a SIGKILL and restart, and are gone
# after SIGTERM; a rule deleted by hand comes back. About 80 s.
# Prints "N passed, N failed" last; exits non-zero on any failure or missing prerequisite.
set -u
cd "$(dirname "$0")/../.."
export LAB_SUFFIX="o$$"
source lab/lab.sh
source tests/netns/harness.sh
source tests/netns/uplink-helpers.sh
PINGER="$LAB_DIR/tests/netns/udp-pinger.py"
OUTAGE=${BRAID_OUTAGE_SECONDS:-10}
HOLDDOWN=3
ECHO_PORT=7000
STATUS_SOCK=""

need_braid_lab
need_cmd socat dig dnsmasq ping
check_prerequisites

# Dual-stack uplinks and a forwarding gateway, as the appliance's sysctl file sets it. Main-table
# IPv6 defaults with metrics stand for what DHCPv6 or RAs would leave (braid learns next hops there).
office_up() {
    local i
    nsx "$NS_GW" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    for i in 1 2 3; do
        nsx "$NS_GW" ip -6 addr replace "2001:db8:$i::2/64" dev "wan$i" nodad
        nsx "$NS_INET" ip -6 addr replace "2001:db8:$i::1/64" dev "gw$i" nodad
        nsx "$NS_GW" ip -6 route replace default via "2001:db8:$i::1" dev "wan$i" metric "$i"
    done
    # The origin side: a UDP answerer on both families and ports (7000, and 443 for QUIC), and
    # a DNS server for the gateway's own resolver.
    local port
    for port in "$ECHO_PORT" 443; do
        ip netns exec "$NS_ORG" socat -T 2 "UDP4-RECVFROM:$port,bind=$ORIGIN4,fork" \
            SYSTEM:'read l; echo "$SOCAT_PEERADDR $l"' 2>>"$LAB_WORK/socat.log" &
        LAB_PIDS+=($!)
        ip netns exec "$NS_ORG" socat -T 2 "UDP6-RECVFROM:$port,bind=[$ORIGIN6],fork" \
            SYSTEM:'read l; echo "$SOCAT_PEERADDR $l"' 2>>"$LAB_WORK/socat.log" &
        LAB_PIDS+=($!)
    done
    ip netns exec "$NS_ORG" dnsmasq --keep-in-foreground --no-resolv --no-hosts --conf-file=/dev/null \
        --listen-address="$ORIGIN4" --bind-interfaces --address=/office.test/198.18.20.99 --log-queries \
        --log-facility="$LAB_WORK/dnsmasq.log" --pid-file="$LAB_WORK/dnsmasq.pid" --user=root &
    LAB_PIDS+=($!)
}

# The gateway's rules at braid's egress priorities, one line each (both families).
egress_rules() { { nsx "$NS_GW" ip -4 rule; nsx "$NS_GW" ip -6 rule; } | grep -E '^490[01]:' ; }

# The udp-pinger's segments from FILE, one per line: SOURCE FIRST LAST ANSWERS (wall-clock seconds).
segments() { python3 -c 'import json,sys
for g in json.load(open(sys.argv[1]))["segments"]: print(g["source"], g["first"], g["last"], g["answers"])' "$1"; }

# A field of the udp-pinger JSON in FILE.
pinger_field() { json_field "$2" <"$1"; }

# True when the python expression holds: holds EXPR
holds() { python3 -c "import sys; sys.exit(0 if ($1) else 1)"; }

# Connection-tracking entries of the idle flows (port 40404) marked with wan1's slot (0x10000).
idle_entries() { nsx "$NS_GW" grep 'sport=40404 ' /proc/net/nf_conntrack | grep -c 'mark=65536 '; }

# Packet loss line of a ping summary.
ping_loss() { grep -o '[0-9]* packets transmitted, [0-9]* received.*loss' "$1"; }

start() { # start SED: the lab's gateway config, with the status socket here and SED applied
    lab_up shaped
    office_up
    lab_start || return 1
    STATUS_SOCK="$LAB_WORK/gateway.sock"
    kill -TERM "$LAB_GW_PID"
    wait_for 10 bash -c "! kill -0 $LAB_GW_PID"
    sed -i "s|^config gateway 'main'|config gateway 'main'\n\toption status_socket '$STATUS_SOCK'|" "$LAB_WORK/gateway.conf"
    sed -i "$1" "$LAB_WORK/gateway.conf"
    start_gateway
}

start_gateway() {
    ip netns exec "$NS_GW" "$BRAID_BIN" gateway --config "$LAB_WORK/gateway.conf" --log-level "${BRAID_LOG_LEVEL:-info}" \
        2>>"$LAB_WORK/gateway.log" &
    LAB_PIDS+=($!)
    LAB_GW_PID=$!
    wait_for 10 test -S "$STATUS_SOCK"
}

start "s|^config gateway 'main'|config gateway 'main'\n\toption holddown '$HOLDDOWN'|" || { fail "lab start"; finish; exit 1; }
wait_for 10 bash -c "[[ \$(ip netns exec $NS_ORG ss -Hlun | grep -cE ':($ECHO_PORT|443|53) ') -ge 5 ]]"

# 0. Before any outage: LAN UDP of both families and the gateway's own DNS leave by wan1.
for f in 4 6; do
    target=$ORIGIN4 wan1=198.18.1.2
    [[ $f == 6 ]] && target=$ORIGIN6 wan1=2001:db8:1::2
    nsx "$NS_LAN" python3 "$PINGER" --connect "$target" --port "$ECHO_PORT" --duration 1 >"$LAB_WORK/before$f.json"
    seen=$(segments "$LAB_WORK/before$f.json" | awk '{print $1}' | sort -u | tr '\n' ' ')
    if [[ $seen == "$wan1 " ]]; then
        pass "IPv$f LAN UDP leaves by wan1, NATed to its address ($(pinger_field "$LAB_WORK/before$f.json" answered) answers)"
    else
        fail "IPv$f LAN UDP by wan1" "$(cat "$LAB_WORK/before$f.json")" "rules: $(egress_rules | tr '\n' ';')"
    fi
done
dns=$(nsx "$NS_GW" dig +short +time=1 +tries=2 @"$ORIGIN4" office.test A 2>&1)
if [[ $dns == 198.18.20.99 ]] && grep 'query\[A\] office.test from' "$LAB_WORK/dnsmasq.log" | tail -1 | grep -q '198.18.1.2$'; then
    pass "the gateway's own DNS query leaves by wan1"
else
    fail "the gateway's own DNS query by wan1" "dig: '$dns'" "dnsmasq: $(tail -2 "$LAB_WORK/dnsmasq.log" | tr '\n' ';')"
fi

# 1. QUIC with the default `quic tcp`: refused at once, both families.
for target in "$ORIGIN4" "$ORIGIN6"; do
    out=$(nsx "$NS_LAN" python3 "$PINGER" --connect "$target" --port 443 --refused --timeout 3)
    if [[ $(json_field result <<<"$out") == refused ]]; then
        pass "LAN UDP to [$target]:443 refused with quic tcp (ECONNREFUSED after $(json_field seconds <<<"$out") s)"
    else
        fail "LAN UDP to [$target]:443 refused with quic tcp" "$out"
    fi
done

# 2. A silent outage of wan1 while a LAN UDP flow (one socket per family) and pings run.
DURATION=$((OUTAGE + HOLDDOWN + 12))
for f in 4 6; do
    target=$ORIGIN4; [[ $f == 6 ]] && target=$ORIGIN6
    nsx "$NS_LAN" python3 "$PINGER" --connect "$target" --port "$ECHO_PORT" --duration "$DURATION" \
        --ready "$LAB_WORK/udp$f.ready" >"$LAB_WORK/udp$f.json" &
    eval "UDP$f=\$!"
    nsx "$NS_LAN" ping -n -q -i 0.1 -W 1 -w $((OUTAGE + 4)) "$target" >"$LAB_WORK/ping$f.txt" 2>&1 &
    eval "PING$f=\$!"
done
# Both flows answered through wan1 first, then a second more of it.
wait_for 10 test -e "$LAB_WORK/udp4.ready" -a -e "$LAB_WORK/udp6.ready"
# And an idle flow per family: one datagram from port 40404 just before the cut, none after. Its
# connection-tracking entry (mark of wan1) must go when traffic moves, not when it times out.
echo idle | nsx "$NS_LAN" socat - "UDP4-SENDTO:$ORIGIN4:$ECHO_PORT,bind=:40404" >/dev/null
echo idle | nsx "$NS_LAN" socat - "UDP6-SENDTO:[$ORIGIN6]:$ECHO_PORT,bind=[::]:40404" >/dev/null
idle_before=$(idle_entries)
sleep 1
silent_cut on 1
t_cut=$(now)
detect=$(time_to_state wan1 down 5) || detect=""
if [[ $idle_before == 2 ]] && wait_for 2 bash -c "[[ \$(ip netns exec $NS_GW grep -c 'sport=40404 ' /proc/net/nf_conntrack) == 0 ]]"; then
    pass "the idle flows' NAT entries on wan1 (IPv4, IPv6) deleted when traffic moved"
else
    fail "the idle flows' NAT entries deleted when traffic moved" "before: $idle_before" \
        "$(nsx "$NS_GW" grep 'sport=40404 ' /proc/net/nf_conntrack | tr '\n' ';')"
fi
# The box's own resolver traffic, once the outage is seen: must leave by wan2 now.
dns=""
if [[ -n $detect ]]; then
    sleep 0.5
    dns=$(nsx "$NS_GW" dig +short +time=1 +tries=2 @"$ORIGIN4" office.test A 2>&1)
fi
if [[ $dns == 198.18.20.99 ]] && grep 'query\[A\] office.test from' "$LAB_WORK/dnsmasq.log" | tail -1 | grep -q '198.18.2.2'; then
    pass "the gateway's own DNS query during the outage answered, sent from wan2 ($(grep 'query\[A\]' "$LAB_WORK/dnsmasq.log" | tail -1 | awk '{print $NF}'))"
else
    fail "the gateway's own DNS query during the outage by wan2" "dig: '$dns'" "dnsmasq: $(grep 'query\[' "$LAB_WORK/dnsmasq.log" | tail -2 | tr '\n' ';')"
fi
sleep_until=$(python3 -c "import sys; print(max(0.0, float(sys.argv[1]) + $OUTAGE - float(sys.argv[2])))" "$t_cut" "$(now)")
sleep "$sleep_until"
silent_cut off 1
t_repair=$(now)
back=$(time_to_state wan1 up 10) || back=""
wait "$UDP4" "$UDP6" "$PING4" "$PING6"
# When wan1 came up, by the gateway's clock (wall-clock seconds, as the pinger's).
t_up=$(uplink_field wan1 since)
echo "     cut $t_cut, repaired $t_repair, wan1 up $t_up (the gateway's status)"

[[ -n $detect ]] && pass "silent outage of wan1 detected in $detect s; up again $back s after the repair" ||
    fail "silent outage of wan1 not detected within 5 s"
for f in 4 6; do
    file=$LAB_WORK/udp$f.json
    wan1=198.18.1.2 wan2=198.18.2.2
    [[ $f == 6 ]] && wan1=2001:db8:1::2 wan2=2001:db8:2::2
    gap=$(pinger_field "$file" longest_gap)
    echo "     IPv$f UDP segments (source first last answers): $(segments "$file" | tr '\n' ';')"
    if holds "$gap < 2"; then
        pass "IPv$f LAN UDP request every 100 ms across the outage: longest gap $gap s," \
            "$(pinger_field "$file" answered)/$(pinger_field "$file" sent) answered"
    else
        fail "IPv$f LAN UDP across the outage: longest gap $gap s (limit 2 s)" "$(cat "$file")"
    fi
    # One socket all along: answers through wan1, then wan2 (its flow re-mapped), then wan1 again.
    mapfile -t seg < <(segments "$file")
    read -r s1 _ _ _ <<<"${seg[0]:-}"
    read -r s2 _ last2 n2 <<<"${seg[1]:-}"
    read -r s3 first3 _ _ <<<"${seg[2]:-}"
    if ((${#seg[@]} == 3)) && [[ $s1 == "$wan1" && $s2 == "$wan2" && $s3 == "$wan1" ]] && ((n2 > OUTAGE * 10 / 2)); then
        pass "IPv$f UDP flow started before the outage re-mapped on its socket: $n2 answers through wan2, then wan1 again"
    else
        fail "IPv$f UDP flow re-mapped to wan2 and back on one socket" "$(segments "$file" | tr '\n' ';')"
    fi
    # Back to wan1 after the hold-down, counted from when the gateway reported wan1 up.
    if [[ -n ${last2:-} && -n ${first3:-} ]] && holds "$first3 >= $t_up + $HOLDDOWN and $first3 <= $t_up + $HOLDDOWN + 2"; then
        pass "IPv$f UDP back on wan1 $(python3 -c "print(round($first3 - $t_up, 2))") s after wan1 was up (holddown $HOLDDOWN s)"
    else
        fail "IPv$f UDP back on wan1 after the hold-down" "wan1 up at $t_up" "$(segments "$file" | tr '\n' ';')"
    fi
    if [[ $(ping_loss "$LAB_WORK/ping$f.txt") =~ ([0-9]+)\ packets\ transmitted,\ ([0-9]+)\ received ]] &&
        ((BASH_REMATCH[2] > BASH_REMATCH[1] / 2)); then
        pass "IPv$f ping every 100 ms across the outage: $(ping_loss "$LAB_WORK/ping$f.txt")"
    else
        fail "IPv$f ping across the outage" "$(cat "$LAB_WORK/ping$f.txt")"
    fi
done

# 3. `quic pass` by a reload: UDP to 443 is answered through the uplinks like other UDP.
sed -i "s|^config gateway 'main'|config gateway 'main'\n\toption quic 'pass'|" "$LAB_WORK/gateway.conf"
reloaded=$(nsx "$NS_GW" "$BRAID_BIN" reload --socket "$STATUS_SOCK" 2>&1)
for target in "$ORIGIN4" "$ORIGIN6"; do
    out=$(nsx "$NS_LAN" python3 "$PINGER" --connect "$target" --port 443 --refused --timeout 3)
    if [[ $(json_field result <<<"$out") == answered ]]; then
        pass "after '$reloaded', LAN UDP to [$target]:443 is answered: $(json_field data <<<"$out")"
    else
        fail "LAN UDP to [$target]:443 passed with quic pass" "reload: $reloaded" "$out"
    fi
done

# 4. Routing taken over and given back: a rule deleted by hand is put back by the next sweep (5 s);
# the rules are there once each after a SIGKILL and a restart, and gone after SIGTERM.
nsx "$NS_GW" ip rule del pref 4901
if wait_for 8 bash -c "[[ \$(ip netns exec $NS_GW ip -4 rule | grep -c '^4901:') == 1 ]]"; then
    pass "an egress rule deleted by hand is put back"
else
    fail "an egress rule deleted by hand is put back" "$(egress_rules | tr '\n' ';')"
fi
before=$(egress_rules | wc -l)
kill -KILL "$LAB_GW_PID"
wait "$LAB_GW_PID" 2>/dev/null
rm -f "$STATUS_SOCK"
start_gateway
wait_for 10 bash -c "grep -c 'gateway running' '$LAB_WORK/gateway.log' | grep -qx 2"
after=$(egress_rules | wc -l)
if ((before == 4 && after == 4)); then
    pass "egress rules once per family after a SIGKILL and restart ($after: $(egress_rules | tr -s ' ' | tr '\n' ';'))"
else
    fail "egress rules after a SIGKILL and restart" "before $before, after $after: $(egress_rules | tr '\n' ';')"
fi
kill -TERM "$LAB_GW_PID"
wait_for 10 bash -c "! kill -0 $LAB_GW_PID"
left=$(egress_rules)
if [[ -z $left ]] && ! nsx "$NS_GW" nft list table inet braid >/dev/null 2>&1; then
    pass "after SIGTERM no egress rule and no nftables table are left"
else
    fail "routing given back at stop" "rules: $(tr '\n' ';' <<<"$left")" "$(nsx "$NS_GW" nft list table inet braid 2>&1 | head -3)"
fi

finish
