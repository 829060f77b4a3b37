#!/usr/bin/env bash
# braid namespace tests: uplinks of one address family (issue 12, items 3 and 4). The lab with
# LAB_V6_UPLINK=1 (lab/lab.sh): three IPv4-only uplinks and wan4, IPv6 only.
#
#                 wan1-3  198.18.{1,2,3}.2 (IPv4 only)
#   lan ── [gw] ─────────────────────────────── [inet] ── [conc] 198.18.10.2, 2001:db8:10::2
#          │    wan4  2001:db8:4::2 (IPv6 only)   │  └─── [origin] braid-traffic.py, nginx
#          └ /etc/netns/<gw>/hosts: concentrator.lab  A 198.18.10.2, AAAA 2001:db8:10::2
#
# Part 1, pre-shared key, `option server 'concentrator.lab'`: the name resolves to both
# families; `braid status` shows wan4 up with family ipv6; a sha256-checked download carries
# subflows from wan4 to the concentrator's IPv6 address next to the IPv4 uplinks' (ss); with
# wan1-3 silent (nft drop at their far side), new connections (curl against nginx) are served
# over wan4 alone; a reload resolves the name again; a name that does not resolve stops the
# gateway with a message naming it.
# Part 2, TLS control channel, `option server '198.18.10.2'` (IPv4 only) and uplinks wan1 and
# wan4: the concentrator announces its IPv6 address on the channel, so wan4 comes up; with wan1
# silent, the control channel comes back over IPv6 and new connections start on wan4 at the
# concentrator's IPv6 address: the whole path (LAN, uplink, concentrator, origin) is IPv6.
# Prints "N passed, N failed" last; exits non-zero on any failure or missing prerequisite.
set -u
cd "$(dirname "$0")/../.."
export LAB_SUFFIX="fam$$" LAB_V6_UPLINK=1
source lab/lab.sh
source tests/netns/harness.sh
source tests/netns/uplink-helpers.sh
source tests/netns/tls-lab.sh
SIZE=20000000
FILE_SIZE=4000000
NS_ALONE="braid-fam-alone-$$"

need_braid_lab
need_cmd curl nginx sha256sum
check_prerequisites

# The gateway's whole status document, or one field of it: status_field PYTHON-EXPRESSION-ON-d
status_field() {
    nsx "$NS_GW" "$BRAID_BIN" status --json --socket "$STATUS_SOCK" 2>/dev/null |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1" 2>/dev/null
}

# Established subflows from LOCAL to the concentrator's data port at REMOTE, as ss shows them on
# the gateway (IPv6 in brackets, %device when bound to the uplink's device).
subflows_between() { # subflows_between LOCAL REMOTE
    nsx "$NS_GW" ss -Htn state established "( dport = :$BRAID_PORT )" | awk '{print $3, $4}' |
        grep -cE "^\[?$1(%[^]: ]*)?\]?(%[^: ]*)?:[0-9]+ \[?$2\]?:$BRAID_PORT$"
}

rx_sum() { # rx_sum I... : bytes received on the gateway's uplinks I...
    local i n=0
    for i; do n=$((n + $(rx_bytes "$i"))); done
    echo "$n"
}

start_nginx() {
    mkdir -p "$LAB_WORK/www" && head -c "$FILE_SIZE" /dev/urandom >"$LAB_WORK/www/file"
    FILE_SHA=$(sha256sum "$LAB_WORK/www/file" | cut -d' ' -f1)
    origin_nginx 80 "listen 80; listen [::]:80; root $LAB_WORK/www;"
}

# curl of nginx's file from the LAN host; true when it arrived whole (sha256 equal).
curl_file() { # curl_file HOST LABEL
    local got
    got=$(nsx "$NS_LAN" curl -sS --max-time 30 -g "http://$1/file" | sha256sum | cut -d' ' -f1)
    [[ $got == "$FILE_SHA" ]]
}

all_down() { local i; for i; do [[ $(uplink_state "wan$i") == down ]] || return 1; done; }
all_up() { local i; for i; do [[ $(uplink_state "wan$i") == up ]] || return 1; done; }
# Whether DEV is up with family FAMILY in braid status.
up_with_family() { [[ $(uplink_state "$1") == up && $(uplink_field "$1" family) == "$2" ]]; }

# ---------------------------------------------------------------------------------------------
# Part 1: pre-shared key, the concentrator by name.
start_lab || { fail "lab start" "$(tail -5 "$LAB_WORK/gateway.log")"; finish; exit 1; }
start_nginx || fail "nginx in the origin namespace did not start" "$(cat "$LAB_WORK/nginx-error.log" 2>/dev/null)"

# 1. Status: wan4 up, family ipv6; the name resolved to both families.
if wait_for 10 up_with_family wan4 ipv6 && up_with_family wan1 ipv4; then
    pass "braid status: v6only (wan4, 2001:db8:4::2 only) up with family ipv6, dsl (wan1) with family ipv4"
else
    fail "wan4 up with family ipv6" "wan4: $(uplink_field wan4 state) $(uplink_field wan4 family)" \
        "$(tail -5 "$LAB_WORK/gateway.log")"
fi
addresses=$(status_field 'sorted(d["concentrator_addresses"])')
if [[ $addresses == "['198.18.10.2', '2001:db8:10::2']" && $(status_field 'd["concentrator"]') == "$CONC_NAME:$BRAID_PORT" ]]; then
    pass "option server '$CONC_NAME' resolved to its A and AAAA records: $addresses"
else
    fail "server by name" "concentrator: $(status_field 'd["concentrator"]')" "addresses: $addresses"
fi

# 2. A download carries subflows from wan4 to the concentrator's IPv6 address next to IPv4 ones.
rx4=$(rx_bytes 4)
rx123=$(rx_sum 1 2 3)
download_bg "$LAB_WORK/dl1.json"
seen6=0 seen4=0 sessions=0
deadline=$((SECONDS + 30))
while kill -0 "$DL_PID" 2>/dev/null && ((SECONDS < deadline)); do
    n=$(subflows_between 2001:db8:4::2 "$CONC_ADDR6")
    ((n > seen6)) && seen6=$n
    n=$(subflows_between 198.18.2.2 "$CONC_ADDR")
    ((n > seen4)) && seen4=$n
    n=$(nsx "$NS_GW" ss -HMn state established | wc -l)
    ((n > sessions)) && sessions=$n
    sleep 0.1
done
wait "$DL_PID"
carried4=$(($(rx_bytes 4) - rx4))
carried123=$(($(rx_sum 1 2 3) - rx123))
if check_download "$LAB_WORK/dl1.json" "download over four uplinks" \
    ", wan4 (IPv6) carried $((carried4 / 1000)) kB, wan1-3 (IPv4) $((carried123 / 1000)) kB"; then
    if ((seen6 >= 1 && seen4 >= 1 && sessions == 1 && carried4 >= SIZE / 20)); then
        pass "one MPTCP session (ss -M), both families: subflow 2001:db8:4::2 -> [$CONC_ADDR6]:$BRAID_PORT next to 198.18.2.2 -> $CONC_ADDR:$BRAID_PORT (ss), wan4 carried $((carried4 * 100 / SIZE)) % of the bytes"
    else
        fail "wan4 carries its share" "IPv6 subflows seen: $seen6, IPv4 (wan2) subflows seen: $seen4" \
            "MPTCP sessions on the gateway: $sessions (want 1)" \
            "wan4 received $carried4 bytes of $SIZE" "$(grep -i 'subflow' "$LAB_WORK/gateway.log" | tail -3)"
    fi
fi

# 3. IPv4 uplinks silent: new connections start on wan4 and are served over it alone.
for i in 1 2 3; do silent_cut on "$i"; done
if wait_for 10 all_down 1 2 3 && [[ $(uplink_state wan4) == up ]]; then
    rx4=$(rx_bytes 4)
    rx123=$(rx_sum 1 2 3)
    ok=0
    curl_file "$ORIGIN4" && curl_file "[$ORIGIN6]" && ok=1
    carried4=$(($(rx_bytes 4) - rx4))
    carried123=$(($(rx_sum 1 2 3) - rx123))
    if ((ok && carried4 >= 2 * FILE_SIZE && carried123 < 20000)); then
        pass "wan1-3 silent: curl of nginx's $((FILE_SIZE / 1000000)) MB file to $ORIGIN4 and [$ORIGIN6], sha256 equal, over wan4 alone ($((carried4 / 1000)) kB on wan4, $carried123 B on wan1-3)"
    else
        fail "new connections over wan4 alone" "curl intact: $ok" "wan4 received $carried4 B, wan1-3 $carried123 B" \
            "$(tail -5 "$LAB_WORK/gateway.log")"
    fi
else
    fail "wan1-3 down, wan4 up" "states: $(for i in 1 2 3 4; do uplink_state "wan$i"; done | tr '\n' ' ')"
fi
for i in 1 2 3; do silent_cut off "$i"; done
wait_for 10 all_up 1 2 3 4 || fail "wan1-3 back up after the cut"

# 4. A reload resolves the name again: with its AAAA record gone, wan4 has no path (down, no
# family); with it back, wan4 is up again. The hosts file is rewritten in place (the gateway's
# namespace sees it through a bind mount of that inode).
only_v4() { [[ $(status_field 'd["concentrator_addresses"]') == "['$CONC_ADDR']" ]] && [[ $(uplink_state wan4) == down ]]; }
printf '%s %s\n' "$CONC_ADDR" "$CONC_NAME" >"/etc/netns/$NS_GW/hosts"
nsx "$NS_GW" "$BRAID_BIN" reload --socket "$STATUS_SOCK" >/dev/null 2>&1
if wait_for 10 only_v4 && [[ $(uplink_field wan4 family) == None ]]; then
    printf '%s %s\n%s %s\n' "$CONC_ADDR" "$CONC_NAME" "$CONC_ADDR6" "$CONC_NAME" >"/etc/netns/$NS_GW/hosts"
    nsx "$NS_GW" "$BRAID_BIN" reload --socket "$STATUS_SOCK" >/dev/null 2>&1
    if wait_for 10 up_with_family wan4 ipv6; then
        pass "braid reload resolves $CONC_NAME again: AAAA removed, wan4 down without a family; AAAA back, wan4 up (ipv6)"
    else
        fail "AAAA record back after reload" "wan4: $(uplink_state wan4)" "$(status_field 'd["concentrator_addresses"]')"
    fi
else
    fail "AAAA record removed, reload" "addresses: $(status_field 'd["concentrator_addresses"]')" \
        "wan4: $(uplink_state wan4) $(uplink_field wan4 family)" "$(tail -3 "$LAB_WORK/gateway.log")"
    printf '%s %s\n%s %s\n' "$CONC_ADDR" "$CONC_NAME" "$CONC_ADDR6" "$CONC_NAME" >"/etc/netns/$NS_GW/hosts"
fi

# 5. A name that does not resolve stops the gateway at start with the name and the reason. In a
# namespace of its own with only lo, and a resolver pointed at the lab (nothing leaves it).
ip netns add "$NS_ALONE"
mkdir -p "/etc/netns/$NS_ALONE"
printf '127.0.0.1 localhost\n' >"/etc/netns/$NS_ALONE/hosts"
printf 'nameserver 198.18.10.2\noptions timeout:1 attempts:1\n' >"/etc/netns/$NS_ALONE/resolv.conf"
sed -e "s/option server '$CONC_NAME'/option server 'nowhere.lab'/" -e "s|$STATUS_SOCK|$LAB_WORK/alone.sock|" \
    "$LAB_WORK/gateway.conf" >"$LAB_WORK/alone.conf"
msg=$(timeout 20 ip netns exec "$NS_ALONE" "$BRAID_BIN" gateway --config "$LAB_WORK/alone.conf" 2>&1)
rc=$?
ip netns del "$NS_ALONE"
rm -rf "/etc/netns/$NS_ALONE"
if ((rc != 0 && rc != 124)) && grep -q "server: nowhere.lab does not resolve" <<<"$msg"; then
    pass "a server name that does not resolve stops the start: $(grep -o 'server: nowhere.lab does not resolve[^"]*' <<<"$msg" | head -1)"
else
    fail "unresolvable server name" "exit $rc" "$msg"
fi

# ---------------------------------------------------------------------------------------------
# Part 2: TLS control channel, the concentrator configured by its IPv4 address only.
stop_pid "$LAB_GW_PID"
stop_pid "$LAB_CONC_PID"
tls_pki || { fail "braid pki"; finish; exit 1; }
tls_conc_conf </dev/null
tls_gw_conf "config uplink 'dsl'
	option device 'wan1'

config uplink 'v6only'
	option device 'wan4'
	option gateway '2001:db8:4::1'" </dev/null
tls_start_conc || fail "concentrator with TLS did not start" "$(tail -5 "$LAB_WORK/concentrator.log")"
tls_start_gw || fail "gateway with TLS did not start" "$(tail -5 "$LAB_WORK/gateway.log")"

# 6. The control channel comes up (over wan1: the only address known yet is IPv4).
if wait_for 15 control_up; then
    pass "TLS control channel up to $CONC_ADDR:$CONTROL_PORT"
else
    fail "control channel up" "$(status_field 'd["control"]')" "$(tail -5 "$LAB_WORK/gateway.log")"
fi

# 7. The concentrator announces its IPv6 address over the channel: the IPv6-only wan4, which has
# no path to an IPv4 concentrator, comes up with family ipv6.
if wait_for 10 up_with_family wan4 ipv6; then
    pass "the concentrator announced $CONC_ADDR6 on the control channel: IPv6-only wan4 up with family ipv6 (addresses $(status_field 'd["concentrator_addresses"]'))"
else
    fail "announced IPv6 address" "wan4: $(uplink_field wan4 state) $(uplink_field wan4 family)" \
        "addresses: $(status_field 'd["concentrator_addresses"]')" "$(grep -i announc "$LAB_WORK/gateway.log" | tail -2)"
fi

# 8. The whole path over IPv6: wan1 silent; the control channel comes back over wan4 to the
# concentrator's IPv6 address, and a LAN IPv6 client reaches an IPv6 origin through it, sha256-checked.
silent_cut on 1
if wait_for 10 all_down 1; then
    control_over_v6() {
        control_up && nsx "$NS_CONC" ss -Htn state established "( sport = :$CONTROL_PORT )" | grep -q '\[2001:db8:4::2\]'
    }
    if wait_for 20 control_over_v6; then
        pass "wan1 silent: the TLS control channel came back over IPv6, 2001:db8:4::2 -> [$CONC_ADDR6]:$CONTROL_PORT"
    else
        fail "control channel over IPv6" "$(status_field 'd["control"]')" \
            "$(nsx "$NS_CONC" ss -Htn "( sport = :$CONTROL_PORT )")" "$(tail -5 "$LAB_WORK/gateway.log")"
    fi
    rx1=$(rx_bytes 1)
    rx4=$(rx_bytes 4)
    out=$(nsx "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN6" --port "$ORIGIN_PORT" --get 5000000 --timeout 60)
    carried1=$(($(rx_bytes 1) - rx1))
    carried4=$(($(rx_bytes 4) - rx4))
    if [[ $(json_field result <<<"$out") == ok && $(json_field bytes <<<"$out") == 5000000 &&
        $(json_field sha256 <<<"$out") == "$(origin_sha sent)" ]] && ((carried4 >= 5000000 && carried1 < 20000)); then
        pass "whole path over IPv6: [2001:db8::2] -> wan4 -> [$CONC_ADDR6] -> [$ORIGIN6], 5 MB, sha256 equal, session key $(status_field 'd["control"]["key"]') ($((carried4 / 1000)) kB on wan4, $carried1 B on wan1)"
    else
        fail "whole path over IPv6" "client: $out" "origin sent: $(origin_sha sent)" "wan4 $carried4 B, wan1 $carried1 B"
    fi
else
    fail "wan1 down after its cut" "wan1: $(uplink_state wan1)"
fi
silent_cut off 1

finish
