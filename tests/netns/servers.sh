#!/usr/bin/env bash
# braid namespace tests: one gateway, two concentrators (`list server`), real separate processes.
#
#   lan ── [gw: braid gateway] ══ wan1-3 ══ [inet] ── conc0 ── [conc:  concentrator A, 198.18.10.2]
#   curl   list server conc-a, conc-b          │  └── conc1 ── [conc2: concentrator B, 198.18.11.2]
#          (names in the gw's /etc/hosts)      └───── org0 ── [origin: nginx, /big]
#                                              nft drop here blackholes A
#
# Each concentrator has its own certificate (same CA) and grants its own session keys. A is
# killed (SIGKILL) mid-transfer: a new connection is served by B within 3 s; A comes back and
# is preferred again after server_holddown; then A goes silent (its addresses dropped by nft in
# inet) and the same happens again; a reload that changes the list keeps a running transfer.
# Every transfer is curl against nginx, checked by sha256. Prints "N passed, N failed" last.
set -u
cd "$(dirname "$0")/../.."
export LAB_SUFFIX="s$$"
source lab/lab.sh
source tests/netns/harness.sh
source tests/netns/uplink-helpers.sh
source tests/netns/tls-lab.sh
NS_CONC2="braid-conc2-$LAB_SUFFIX"
LAB_NAMESPACES+=("$NS_CONC2")
CONC2_ADDR=198.18.11.2
NAME_A=conc-a.braid.test
NAME_B=conc-b.braid.test
HOLDDOWN=3
SIZE=20000000
declare -A CONC_PID

pki() { "$BRAID_BIN" pki "$@" >/dev/null; }

conc_conf() { # conc_conf A|B
    local name=$NAME_A
    [[ $1 == B ]] && name=$NAME_B
    CONC_CERT=$name CONC_CONF="$LAB_WORK/conc-$1.conf" CONC_SOCK="$LAB_WORK/conc-$1.sock" tls_conc_conf </dev/null
}

gw_conf() { # gw_conf SERVER...
    {
        printf "config gateway 'main'\n"
        local s
        for s; do printf "\tlist server '%s'\n" "$s"; done
        cat <<CONF
	option server_holddown '$HOLDDOWN'
	option port '$BRAID_PORT'
	option control_port '$CONTROL_PORT'
	option ca '$CA/ca.crt'
	option cert '$CA/issued/cpe_1.crt'
	option key '$CA/issued/cpe_1.key'
	option keepalive '1'
	option status_socket '$STATUS_SOCK'
	list lan_device 'lan0'

$TLS_GW_UPLINKS
CONF
    } >"$LAB_WORK/gateway.conf"
}

ns_of() { [[ $1 == A ]] && echo "$NS_CONC" || echo "$NS_CONC2"; }

start_conc() { # start_conc A|B
    local ns
    ns=$(ns_of "$1")
    ip netns exec "$ns" "$BRAID_BIN" concentrator --config "$LAB_WORK/conc-$1.conf" \
        --log-level "${BRAID_LOG_LEVEL:-info}" 2>>"$LAB_WORK/concentrator-$1.log" &
    CONC_PID[$1]=$!
    LAB_PIDS+=("$!")
    wait_for 10 nsx "$ns" bash -c "ss -Hltn 'sport = :$CONTROL_PORT' | grep -q LISTEN"
}

gw_json() { nsx "$NS_GW" "$BRAID_BIN" status --json --socket "$STATUS_SOCK" 2>/dev/null; }

# The concentrator new sessions go to, as the gateway says ("" if none or no answer).
in_use() {
    gw_json | python3 -c 'import json,sys
for c in json.load(sys.stdin).get("concentrators") or []:
    if c["in_use"]: print(c["server"])' 2>/dev/null
}
is_in_use() { [[ $(in_use) == "$1" ]]; }
# STATE of concentrator NAME in the gateway's status.
state_of() {
    gw_json | python3 -c 'import json,sys
for c in json.load(sys.stdin).get("concentrators") or []:
    if c["server"] == sys.argv[1]: print(c["state"])' "$1" 2>/dev/null
}
both_up() { [[ $(state_of "$NAME_A") == up && $(state_of "$NAME_B") == up ]]; }

# Data sessions a concentrator has opened since it started.
sessions_total() { # sessions_total A|B
    nsx "$(ns_of "$1")" "$BRAID_BIN" status --json --socket "$LAB_WORK/conc-$1.sock" 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["sessions"]["total"])' 2>/dev/null || echo -1
}

# curl from the LAN for nginx's /big; prints the sha256 of what arrived.
curl_big() { # curl_big MAX_SECONDS
    nsx "$NS_LAN" curl -sS --max-time "$1" "http://$ORIGIN4/big" 2>/dev/null | sha256sum | cut -d' ' -f1
}

# Tries a new connection for nginx's /small (100 kB, half a second at most: one that went to a
# silent concentrator is given up soon, so the measure is not the client's timeout) every 0.1 s from T0 until one is intact or
# DEADLINE seconds pass; prints the seconds from T0 to the end of the intact one.
first_intact_after() { # first_intact_after T0 DEADLINE
    local end=$((SECONDS + $2))
    while ((SECONDS < end)); do
        if [[ $(nsx "$NS_LAN" curl -sS --max-time 0.5 "http://$ORIGIN4/small" 2>/dev/null | sha256sum |
            cut -d' ' -f1) == "$SMALL_SHA" ]]; then
            elapsed "$1" "$(now)"
            return 0
        fi
        sleep 0.1
    done
    return 1
}

start_origin() {
    mkdir -p "$LAB_WORK/www" && head -c "$SIZE" /dev/urandom >"$LAB_WORK/www/big"
    BIG_SHA=$(sha256sum "$LAB_WORK/www/big" | cut -d' ' -f1)
    head -c 100000 /dev/urandom >"$LAB_WORK/www/small"
    SMALL_SHA=$(sha256sum "$LAB_WORK/www/small" | cut -d' ' -f1)
    origin_nginx 80 "listen 80; root $LAB_WORK/www;"
}

blackhole() { # blackhole on|off: drops everything to and from A in inet (no reset, no ICMP)
    if [[ $1 == on ]]; then
        nsx "$NS_INET" nft -f - <<NFT
table inet braid_servers_test {
    chain forward {
        type filter hook forward priority -10; policy accept;
        ip daddr $CONC_ADDR drop
        ip saddr $CONC_ADDR drop
    }
}
NFT
    else
        nsx "$NS_INET" nft delete table inet braid_servers_test
    fi
}

need_braid_lab
need_cmd curl nginx sha256sum
check_prerequisites
lab_up shaped
# The second concentrator: its own namespace (lab_up made it, from LAB_NAMESPACES) behind inet.
lab_veth "$NS_INET" conc1 "$NS_CONC2" eth0
nsx "$NS_INET" ip addr add 198.18.11.1/24 dev conc1
nsx "$NS_CONC2" ip addr add "$CONC2_ADDR/24" dev eth0
nsx "$NS_CONC2" ip route add default via 198.18.11.1
# `ip netns exec` mounts /etc/netns/NS/hosts over /etc/hosts: the gateway resolves both names
# there (lab_down removes the directory).
mkdir -p "/etc/netns/$NS_GW"
printf '%s %s\n%s %s\n' "$CONC_ADDR" "$NAME_A" "$CONC2_ADDR" "$NAME_B" >"/etc/netns/$NS_GW/hosts"

pki init "$CA" && pki issue "$CA" "$NAME_A" --server && pki issue "$CA" "$NAME_B" --server &&
    pki issue "$CA" cpe_1 || { fail "braid pki"; finish; exit 1; }
conc_conf A
conc_conf B
gw_conf "$NAME_A" "$NAME_B"
start_origin || { fail "nginx did not start" "$(cat "$LAB_WORK/nginx-error.log" 2>/dev/null)"; finish; exit 1; }
start_conc A && start_conc B || { fail "concentrators did not start" "$(tail -3 "$LAB_WORK"/concentrator-*.log)"; finish; exit 1; }
tls_start_gw || { fail "gateway did not start" "$(tail -5 "$LAB_WORK/gateway.log")"; finish; exit 1; }

# 1. Both channels up, each with its own key; new sessions on A, the preferred one.
if wait_for 15 both_up && is_in_use "$NAME_A"; then
    pass "two concentrators up, each with its own control channel; new sessions go to $NAME_A"
else
    fail "both concentrators up, A in use" "$(gw_json)" "$(tail -5 "$LAB_WORK/gateway.log")"
fi
a0=$(sessions_total A)
b0=$(sessions_total B)
if [[ $(curl_big 30) == "$BIG_SHA" ]] && (($(sessions_total A) > a0)) && (($(sessions_total B) == b0)); then
    pass "20 MB from nginx through A, sha256 equal; B opened nothing"
else
    fail "transfer through A" "A $a0 -> $(sessions_total A), B $b0 -> $(sessions_total B)"
fi

# 2. A killed mid-transfer: that session is lost; a new connection is served by B within 3 s.
nsx "$NS_LAN" curl -sS --max-time 30 "http://$ORIGIN4/big" -o "$LAB_WORK/killed.out" 2>/dev/null &
mid=$!
wait_for 10 bash -c "[[ \$(stat -c %s '$LAB_WORK/killed.out' 2>/dev/null || echo 0) -gt 2000000 ]]"
b0=$(sessions_total B)
t0=$(now)
kill -KILL "${CONC_PID[A]}"
if took=$(first_intact_after "$t0" 10); then
    if (($(sessions_total B) > b0)) && python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 3 else 1)" "$took"; then
        pass "A killed mid-transfer: a new connection served by B ${took} s after the kill (<= 3 s), sha256 equal"
    else
        fail "new connection served by B within 3 s" "took $took s; B sessions $b0 -> $(sessions_total B)"
    fi
else
    fail "new connection after A was killed" "$(tail -5 "$LAB_WORK/gateway.log")"
fi
wait "$mid" 2>/dev/null
if [[ $(sha256sum <"$LAB_WORK/killed.out" | cut -d' ' -f1) != "$BIG_SHA" ]]; then
    pass "the transfer running on A when it was killed is lost, as documented ($(stat -c %s "$LAB_WORK/killed.out") of $SIZE bytes)"
else
    fail "the session on the killed concentrator ended" "it completed intact: was it on A?"
fi

# 3. A back: preferred again once healthy for server_holddown.
start_conc A || fail "A restarted"
t0=$(now)
if wait_for 45 is_in_use "$NAME_A"; then
    back=$(elapsed "$t0" "$(now)")
    a0=$(sessions_total A)
    if python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) >= $HOLDDOWN else 1)" "$back" &&
        [[ $(curl_big 30) == "$BIG_SHA" ]] && (($(sessions_total A) > a0)); then
        pass "A back: preferred again after $back s (server_holddown $HOLDDOWN s); a new transfer served by A, sha256 equal"
    else
        fail "A preferred again after the hold-down" "after $back s; A sessions $a0 -> $(sessions_total A)"
    fi
else
    fail "A preferred again within 45 s" "$(gw_json)"
fi

# 4. A silent: its addresses blackholed (no reset, no ICMP). The probes notice; B serves.
wait_for 15 both_up
b0=$(sessions_total B)
t0=$(now)
blackhole on
if took=$(first_intact_after "$t0" 10); then
    if (($(sessions_total B) > b0)) && python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 3 else 1)" "$took"; then
        pass "A blackholed: a new connection served by B ${took} s after the drop rule (<= 3 s), sha256 equal"
    else
        fail "new connection served by B within 3 s of the blackhole" "took $took s; B sessions $b0 -> $(sessions_total B)"
    fi
else
    fail "new connection while A is blackholed" "$(tail -5 "$LAB_WORK/gateway.log")"
fi
blackhole off
t0=$(now)
if wait_for 50 is_in_use "$NAME_A"; then
    pass "blackhole lifted: A preferred again after $(elapsed "$t0" "$(now)") s"
else
    fail "A preferred again after the blackhole" "$(gw_json)"
fi

# 5. A reload that changes the list: a transfer on A, which stays, goes on intact.
wait_for 15 both_up
nsx "$NS_LAN" curl -sS --max-time 30 "http://$ORIGIN4/big" -o "$LAB_WORK/reload.out" 2>/dev/null &
mid=$!
wait_for 10 bash -c "[[ \$(stat -c %s '$LAB_WORK/reload.out' 2>/dev/null || echo 0) -gt 2000000 ]]"
gw_conf "$NAME_A"
answer=$(nsx "$NS_GW" "$BRAID_BIN" reload --socket "$STATUS_SOCK" 2>&1)
wait "$mid"
if [[ $(sha256sum <"$LAB_WORK/reload.out" | cut -d' ' -f1) == "$BIG_SHA" ]] && [[ $(state_of "$NAME_B") == "" ]] &&
    is_in_use "$NAME_A"; then
    pass "reload to one concentrator: B gone from the status, the transfer on A intact ($answer)"
else
    fail "reload changing list server" "$answer" "$(gw_json)"
fi
gw_conf "$NAME_B" "$NAME_A"
answer=$(nsx "$NS_GW" "$BRAID_BIN" reload --socket "$STATUS_SOCK" 2>&1)
if wait_for 15 is_in_use "$NAME_B" && [[ $(curl_big 30) == "$BIG_SHA" ]]; then
    pass "reload putting B first: B preferred after its hold-down, a transfer intact ($answer)"
else
    fail "reload putting B first" "$answer" "$(gw_json)"
fi

finish
