#!/usr/bin/env bash
# braid namespace tests: the gateway's rules (`config rule`, `default_action`) decide which LAN
# traffic is bonded, routed direct or refused (topology in lab/lab.sh, with IPv6 on the uplinks):
#
#   lan ── [gw: braid gateway] ══ wan1 (dsl) / wan2 (lte) / wan3 ══ [inet] ── [conc] 198.18.10.2
#   curl, dig      rules chain ─▶ bond: TPROXY ─▶ MPTCP ─▶ concentrator ─▶ ┐       2001:db8:10::2
#                              ─▶ direct: routed, NAT to the uplink's address ─▶ [origin]: nginx
#                              ─▶ block: TCP reset / ICMP prohibited at once        80, 8090-8092
#
# nginx logs the source address of each request, which tells who reached it: the concentrator
# (bonded) or an uplink's own address (direct). Every download's sha256 is checked. Checked, IPv4
# and IPv6: with default_action bond, an unmatched port is bonded, a direct rule leaves by the best
# uplink (wan1), a direct rule naming `lte` leaves by wan2, a block rule refuses TCP at once
# (connection refused) and UDP at once (ICMP, dig's error); then a reload to default_action direct
# with a bond rule, made while a bonded download runs: the rule's port is bonded, the rest goes
# direct, the removed block rule no longer refuses, and the running download (now a port that
# new connections take direct) ends intact through the concentrator. About 15 s.
# Prints "N passed, N failed" last; exits non-zero on any failure or missing prerequisite.
set -u
cd "$(dirname "$0")/../.."
export LAB_SUFFIX="r$$"
source lab/lab.sh
source tests/netns/harness.sh
STATUS_SOCK=""
CONC6=2001:db8:10::2

need_braid_lab
need_cmd nginx curl dig sha256sum
check_prerequisites

# Dual-stack uplinks and a forwarding gateway, as the appliance's sysctl file sets it (as in
# tests/netns/office.sh).
rules_lab_up() {
    local i
    nsx "$NS_GW" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    # Early demux would deliver a relayed connection's packets to its socket before routing
    # whatever the rules say; off, the download across the reload checks that the interception
    # table itself keeps relayed connections on their socket when a rule would route them.
    nsx "$NS_GW" sysctl -qw net.ipv4.tcp_early_demux=0
    for i in 1 2 3; do
        nsx "$NS_GW" ip -6 addr replace "2001:db8:$i::2/64" dev "wan$i" nodad
        nsx "$NS_INET" ip -6 addr replace "2001:db8:$i::1/64" dev "gw$i" nodad
        nsx "$NS_GW" ip -6 route replace default via "2001:db8:$i::1" dev "wan$i" metric "$i"
    done
    # nginx on the origin: /file (2 MB) and /slow (16 MB at 2 MB/s, a download that outlives a
    # reload), on 80 and 8090-8092, each request logged with the source it came from.
    mkdir -p "$LAB_WORK/www"
    head -c 2000000 /dev/urandom >"$LAB_WORK/www/file"
    head -c 16000000 /dev/urandom >"$LAB_WORK/www/slow"
    FILE_SHA=$(sha256sum "$LAB_WORK/www/file" | cut -d' ' -f1)
    SLOW_SHA=$(sha256sum "$LAB_WORK/www/slow" | cut -d' ' -f1)
    local listen="" port
    for port in 80 8090 8091 8092; do listen+="listen $port; listen [::]:$port; "; done
    local log="log_format src '\$remote_addr \$server_port \$status \$body_bytes_sent \$request_uri';
    access_log $LAB_WORK/access.log src;"
    origin_nginx 8092 "$listen
        root $LAB_WORK/www;
        location /slow { limit_rate 2m; }" "$log"
}

# The lab's gateway configuration with a status socket of its own, then RULES (uci text).
gateway_conf() { # gateway_conf DEFAULT_ACTION RULES
    sed -i "/^config rule/,\$d; /option default_action/d; /option status_socket/d" "$LAB_WORK/gateway.conf"
    local head="config gateway 'main'\n\toption status_socket '$STATUS_SOCK'\n\toption default_action '$1'"
    sed -i "s|^config gateway 'main'|$head|" "$LAB_WORK/gateway.conf"
    printf '\n%s\n' "$2" >>"$LAB_WORK/gateway.conf"
}

RULES_A="config rule 'web_direct'
	list dest '198.18.20.0/24'
	list dest '2001:db8:20::/64'
	list dest_port '8090'
	option action 'direct'

config rule 'pinned'
	list dest_port '8092'
	option action 'direct'
	option uplink 'lte'

config rule 'blocked'
	list dest_port '8091'
	option proto 'any'
	option action 'block'"

RULES_B="config rule 'bonded'
	list dest_port '8090'
	option action 'bond'"

# The URL of PATH on the origin's ADDRESS and PORT, tagged with ID (nginx logs it).
url() { # url ADDRESS PORT PATH ID
    local host=$1
    [[ $host == *:* ]] && host="[$host]"
    echo "http://$host:$2/$3?id=$4"
}

# Downloads /file from the LAN host; prints "SHA SOURCE": what arrived and whom nginx saw.
fetch() { # fetch ADDRESS PORT ID
    local sha
    sha=$(nsx "$NS_LAN" curl -sS -g --max-time 20 "$(url "$1" "$2" file "$3")" 2>>"$LAB_WORK/curl.err" |
        sha256sum | cut -d' ' -f1)
    echo "$sha $(source_of "$3")"
}

# The source address nginx logged for request ID.
source_of() { awk -v id="id=$1" '$5 ~ id"$" {print $1}' "$LAB_WORK/access.log" | tail -1; }

# Checks that /file on ADDRESS:PORT arrives intact and that nginx saw it from EXPECTED.
expect_from() { # expect_from LABEL ADDRESS PORT EXPECTED
    local id=$RANDOM$RANDOM got sha src
    got=$(fetch "$2" "$3" "$id")
    read -r sha src <<<"$got"
    if [[ $sha == "$FILE_SHA" && $src == "$4" ]]; then
        pass "$1: [$2]:$3 reached from $src, sha256 intact"
    else
        fail "$1: [$2]:$3 from $4" "sha256 ${sha:0:12} (want ${FILE_SHA:0:12}), nginx saw '${src}'" \
            "$(tail -2 "$LAB_WORK/curl.err" | tr '\n' ';')"
    fi
}

# Seconds since the epoch, fractional.
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 2))" "$1" "$2"; }
under() { python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$1" "$2"; }

lab_up unshaped
rules_lab_up
lab_start || { fail "lab start"; finish; exit 1; }
STATUS_SOCK="$LAB_WORK/gateway.sock"
kill -TERM "$LAB_GW_PID"
wait_for 10 bash -c "! kill -0 $LAB_GW_PID"
gateway_conf bond "$RULES_A"
if ! nsx "$NS_GW" "$BRAID_BIN" check --config "$LAB_WORK/gateway.conf" >"$LAB_WORK/check.out" 2>&1; then
    fail "braid check accepts the rules" "$(cat "$LAB_WORK/check.out")"
fi
ip netns exec "$NS_GW" "$BRAID_BIN" gateway --config "$LAB_WORK/gateway.conf" --log-level "${BRAID_LOG_LEVEL:-info}" \
    2>>"$LAB_WORK/gateway.log" &
LAB_PIDS+=($!)
LAB_GW_PID=$!
wait_for 10 test -S "$STATUS_SOCK" || { fail "gateway start" "$(tail -5 "$LAB_WORK/gateway.log")"; finish; exit 1; }
# Bonded connections need the concentrator's session; direct ones the egress rule (4901).
wait_for 10 bash -c "ip netns exec $NS_GW ip -6 rule | grep -q '^4901:'"

# 1. default_action bond with a direct, a pinned and a block rule.
for f in 4 6; do
    origin=$ORIGIN4 conc=$CONC_ADDR wan1=198.18.1.2 wan2=198.18.2.2
    [[ $f == 6 ]] && origin=$ORIGIN6 conc=$CONC6 wan1=2001:db8:1::2 wan2=2001:db8:2::2
    expect_from "IPv$f unmatched port, default_action bond: bonded" "$origin" 80 "$conc"
    expect_from "IPv$f rule web_direct: direct by the best uplink, NATed to its address" "$origin" 8090 "$wan1"
    expect_from "IPv$f rule pinned (uplink lte): direct by wan2" "$origin" 8092 "$wan2"

    id=$RANDOM$RANDOM
    t0=$(now)
    # -v: curl's summary says only "Couldn't connect"; the verbose line has the socket's error.
    err=$(nsx "$NS_LAN" curl -sS -v -g --max-time 10 -o /dev/null "$(url "$origin" 8091 file "$id")" 2>&1)
    rc=$?
    t=$(elapsed "$t0" "$(now)")
    err=$(grep -m1 -o 'connect to .*Connection refused' <<<"$err" || tr '\n' ';' <<<"$err")
    if ((rc == 7)) && [[ $err == *"Connection refused"* ]] && under "$t" 1 && [[ -z $(source_of "$id") ]]; then
        pass "IPv$f rule blocked: TCP refused at once ($t s: $err)"
    else
        fail "IPv$f rule blocked: TCP refused at once" "curl rc $rc after $t s: $err" "nginx saw '$(source_of "$id")'"
    fi
    t0=$(now)
    out=$(nsx "$NS_LAN" dig +tries=1 +time=5 -p 8091 @"$origin" rules.test A 2>&1)
    t=$(elapsed "$t0" "$(now)")
    # Administratively prohibited is EHOSTUNREACH from ICMP, EACCES from ICMPv6 (the kernel's
    # icmp_err_convert and icmpv6_err_convert); a lost datagram would be a 5 s timeout instead.
    want="host unreachable"
    [[ $f == 6 ]] && want="permission denied"
    reason=$(grep -oE 'communications error[^;]*' <<<"$out" | head -1)
    if [[ $out == *"$want"* ]] && under "$t" 2; then
        pass "IPv$f rule blocked (proto any): UDP answered with ICMP at once ($t s: dig: $reason)"
    else
        fail "IPv$f rule blocked: UDP refused at once" "after $t s: $(tr '\n' ';' <<<"$out" | head -c 400)"
    fi
done

# 2. A reload to the white-list model while a bonded download of port 80 runs.
slow_id=$RANDOM$RANDOM
nsx "$NS_LAN" curl -sS -g --max-time 60 -o "$LAB_WORK/slow.out" "$(url "$ORIGIN4" 80 slow "$slow_id")" \
    2>"$LAB_WORK/slow.err" &
SLOW_PID=$!
wait_for 10 bash -c "[[ \$(stat -c %s '$LAB_WORK/slow.out' 2>/dev/null || echo 0) -gt 1000000 ]]"
gateway_conf direct "$RULES_B"
reloaded=$(nsx "$NS_GW" "$BRAID_BIN" reload --socket "$STATUS_SOCK" 2>&1)
still_running=no
kill -0 "$SLOW_PID" 2>/dev/null && still_running=yes
if [[ $reloaded == *"rules 3 -> 1"* && $reloaded == *"default_action bond -> direct"* ]]; then
    pass "reload applied while the download runs ($still_running): $reloaded"
else
    fail "reload to default_action direct" "$reloaded" "$(tail -3 "$LAB_WORK/gateway.log")"
fi
for f in 4 6; do
    origin=$ORIGIN4 conc=$CONC_ADDR wan1=198.18.1.2
    [[ $f == 6 ]] && origin=$ORIGIN6 conc=$CONC6 wan1=2001:db8:1::2
    expect_from "IPv$f rule bonded under default_action direct: through the concentrator" "$origin" 8090 "$conc"
    expect_from "IPv$f unmatched port under default_action direct: direct by wan1" "$origin" 80 "$wan1"
    expect_from "IPv$f the block rule a reload removed no longer refuses" "$origin" 8091 "$wan1"
done
wait_for 30 bash -c "! kill -0 $SLOW_PID 2>/dev/null"
wait "$SLOW_PID"
slow_rc=$?
sha=$(sha256sum "$LAB_WORK/slow.out" | cut -d' ' -f1)
src=$(source_of "$slow_id")
if [[ $still_running == yes && $slow_rc == 0 && $sha == "$SLOW_SHA" && $src == "$CONC_ADDR" ]]; then
    pass "the bonded download running across the reload ended intact (16 MB, sha256) through the concentrator"
else
    fail "bonded download across the reload" \
        "running at reload: $still_running, curl rc $slow_rc $(cat "$LAB_WORK/slow.err")" \
        "sha256 ${sha:0:12} (want ${SLOW_SHA:0:12}), nginx saw '$src'"
fi

finish
