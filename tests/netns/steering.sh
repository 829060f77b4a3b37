#!/usr/bin/env bash
# braid namespace tests: steering of bonded traffic over the uplinks (issue 13, item 3): an
# `overflow` uplink, an uplink's `share`, and a class's `uplink_share` pushed by the concentrator.
#
#   lan ── [gw] ── wan1 fibre 40 Mbit/s ─┐
#   curl,          wan2 dsl   20 Mbit/s ─┼── [inet] ── [conc] ── [origin] nginx (/big, /small),
#   iperf3 -c      wan3 lte   10 Mbit/s ─┘                        iperf3 -s, braid-traffic.py
#
# Both daemons with the TLS control channel (class 'standard'). Per-uplink bytes are the gateway's
# device counters (tx + rx), taken before and after each transfer; every transfer's sha256 is
# checked end to end.
#
#  1. lte `overflow`: under 3 % of the bytes while demand (iperf3 -R -b 15M, and a rate-limited
#     curl) stays well below the actives' 60 Mbit/s; status says standby.
#  2. the same uplink carries its part once demand exceeds the actives (an unlimited curl of
#     60 MB): status says carrying, at least 5 % of the bytes, then standby again.
#  3. `share 20` on fibre, the fastest: 20 ± 10 % of the bytes, download (curl) and upload.
#  4. the class's `list uplink_share 'fibre=20'` added by a concentrator reload reaches the running
#     gateway within seconds and holds fibre at 20 ± 10 %; removed by another reload, it is gone.
#
# Prints "N passed, N failed" last; exits non-zero on any failure or missing prerequisite.
set -u
cd "$(dirname "$0")/../.."
export LAB_SUFFIX="st$$"
source lab/lab.sh
source tests/netns/harness.sh
source tests/netns/uplink-helpers.sh
source tests/netns/hostile/common.sh
HOSTILE_SIZE=60000000
SMALL=2000000

need_braid_lab
need_cmd iperf3 curl nginx
check_prerequisites

# The concentrator's configuration; uci lines for class 'standard' as $1 (its uplink shares).
steer_conc_conf() {
    hostile_conc_conf </dev/null
    python3 - "$LAB_WORK/concentrator.conf" "${1:-}" <<'EOF'
import sys
path, extra = sys.argv[1], sys.argv[2]
text = open(path).read().replace("config class 'standard'\n", "config class 'standard'\n" + extra + ("\n" if extra else ""))
open(path, "w").write(text)
EOF
}

# The gateway's configuration: steer_gw_conf FIBRE_OPTIONS LTE_ROLE
steer_gw_conf() {
    tls_gw_conf "config uplink 'fibre'
	option device 'wan1'
$1

config uplink 'dsl'
	option device 'wan2'
	option gateway '198.18.2.1'

config uplink 'lte'
	option device 'wan3'
	option gateway '198.18.3.1'
	option role '$2'" </dev/null
}

gw_reload() { nsx "$NS_GW" "$BRAID_BIN" reload --socket "$STATUS_SOCK" 2>&1; }
conc_reload() { nsx "$NS_CONC" "$BRAID_BIN" reload --socket "$CONC_SOCK" 2>&1; }

# Each uplink's bytes so far, sent and received together: "wan1 wan2 wan3".
uplink_bytes() {
    local t
    read -r -a t <<<"$(lab_uplink_bytes)"
    echo "$((t[0] + t[1])) $((t[2] + t[3])) $((t[4] + t[5]))"
}

# share_of I BEFORE AFTER: uplink I's percent of all uplinks' bytes between two uplink_bytes.
share_of() {
    python3 -c '
import sys
i, b, a = int(sys.argv[1]), list(map(int, sys.argv[2].split())), list(map(int, sys.argv[3].split()))
d = [y - x for x, y in zip(b, a)]
print(f"{100 * d[i - 1] / max(1, sum(d)):.1f}")' "$1" "$2" "$3"
}

# within X LOW HIGH: LOW <= X <= HIGH (decimals).
within() { python3 -c 'import sys; x, lo, hi = map(float, sys.argv[1:]); sys.exit(0 if lo <= x <= hi else 1)' "$@"; }

field_is() { [[ $(uplink_field "$1" "$2") == "$3" ]]; } # field_is DEV FIELD VALUE

curl_file() { # curl_file NAME [CURL OPTIONS]: the sha256 of what arrived ("" on failure)
    local name=$1
    shift
    nsx "$NS_LAN" curl -sS --max-time 90 "$@" "http://$ORIGIN4/$name" | sha256sum | cut -d' ' -f1
}

lab_up shaped
"$BRAID_BIN" pki init "$CA" >/dev/null && "$BRAID_BIN" pki issue "$CA" conc.braid.test --server >/dev/null &&
    "$BRAID_BIN" pki issue "$CA" cpe_1 >/dev/null || { fail "PKI"; finish; exit 1; }
steer_conc_conf ""
steer_gw_conf "" overflow
hostile_start_origin && head -c "$SMALL" /dev/urandom >"$LAB_WORK/www/small" &&
    hostile_start_conc && hostile_start_gw || {
    fail "lab start" "$(tail -5 "$LAB_WORK/concentrator.log")" "$(tail -5 "$LAB_WORK/gateway.log")"
    finish
    exit 1
}
SMALL_SHA=$(sha256sum "$LAB_WORK/www/small" | cut -d' ' -f1)

echo "-- overflow"
if wait_for 10 field_is wan3 overflow standby; then
    pass "status shows lte as an overflow uplink on standby"
else
    fail "status shows lte as an overflow uplink on standby" "overflow: $(uplink_field wan3 overflow)"
fi

# Demand well below the actives' 60 Mbit/s: 15 Mbit/s of iperf3, and a curl at 250 kB/s.
before=$(uplink_bytes)
nsx "$NS_LAN" timeout 30 iperf3 -c "$ORIGIN4" -p 5201 -R -b 15M -t 8 --connect-timeout 5000 -J \
    >"$LAB_WORK/iperf3-light.json" 2>&1 &
IPERF_PID=$!
sha=$(curl_file small --limit-rate 250k)
wait "$IPERF_PID"
after=$(uplink_bytes)
iperf_bytes=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["end"]["sum_received"]["bytes"]))' \
    "$LAB_WORK/iperf3-light.json" 2>/dev/null || echo 0)
lte=$(share_of 3 "$before" "$after")
if [[ $sha == "$SMALL_SHA" ]] && ((iperf_bytes > 10000000)) && within "$lte" 0 3; then
    pass "below the actives' capacity the overflow uplink carried $lte % of the bytes (iperf3 $((iperf_bytes / 1000000)) MB at 15 Mbit/s; curl sha256 equal)"
else
    fail "below the actives' capacity the overflow uplink carries under 3 % of the bytes" \
        "lte $lte %, bytes before $before after $after, iperf3 $iperf_bytes bytes, curl sha256 ${sha:-none}"
fi

# Demand beyond the actives: an unlimited download of 60 MB.
before=$(uplink_bytes)
curl_file big >"$LAB_WORK/big.sha" &
CURL_PID=$!
carrying=no
wait_for 15 field_is wan3 overflow carrying && carrying=yes
wait "$CURL_PID"
after=$(uplink_bytes)
sha=$(cat "$LAB_WORK/big.sha")
lte=$(share_of 3 "$before" "$after")
if [[ $sha == "$BIG_SHA" && $carrying == yes ]] && within "$lte" 5 100; then
    pass "beyond the actives' capacity the overflow uplink carried $lte % of 60 MB (status: carrying; sha256 equal)"
else
    fail "beyond the actives' capacity the overflow uplink carries its part" \
        "lte $lte %, status carrying seen: $carrying, bytes before $before after $after, sha256 ${sha:-none}"
fi
if wait_for 20 field_is wan3 overflow standby; then
    pass "the overflow uplink stands by again once demand is gone"
else
    fail "the overflow uplink stands by again once demand is gone" "overflow: $(uplink_field wan3 overflow)"
fi

echo "-- share"
steer_gw_conf "	option share '20'" active
out=$(gw_reload)
if wait_for 5 field_is wan1 share_cap 20; then
    pass "a gateway reload caps fibre at 20 % (status share_cap 20)"
else
    fail "a gateway reload caps fibre at 20 %" "reload: $out" "share_cap: $(uplink_field wan1 share_cap)"
fi
before=$(uplink_bytes)
sha=$(curl_file big)
after=$(uplink_bytes)
fibre=$(share_of 1 "$before" "$after")
if [[ $sha == "$BIG_SHA" ]] && within "$fibre" 10 30; then
    pass "share 20 on the fastest uplink, download: fibre carried $fibre % of 60 MB (sha256 equal)"
else
    fail "share 20 on the fastest uplink, download: 20 ± 10 %" "fibre $fibre %, before $before after $after, sha256 ${sha:-none}"
fi
before=$(uplink_bytes)
up=$(lan_put 40000000)
after=$(uplink_bytes)
fibre=$(share_of 1 "$before" "$after")
if intact "$up" 40000000 received && within "$fibre" 10 30; then
    pass "share 20 on the fastest uplink, upload: fibre carried $fibre % of 40 MB (sha256 equal)"
else
    fail "share 20 on the fastest uplink, upload: 20 ± 10 %" "fibre $fibre %, before $before after $after, client: $up"
fi

echo "-- class uplink_share"
steer_gw_conf "" active
gw_reload >/dev/null
wait_for 5 field_is wan1 share_cap None || fail "gateway reload lifts the share" "share_cap: $(uplink_field wan1 share_cap)"
steer_conc_conf "	list uplink_share 'fibre=20'"
start=$(now)
out=$(conc_reload)
if wait_for 10 field_is wan1 share_cap 20; then
    pass "a concentrator reload pushes the class's uplink_share fibre=20 to the running gateway in $(elapsed "$start" "$(now)") s"
else
    fail "a concentrator reload pushes the class's uplink_share to the running gateway" \
        "reload: $out" "share_cap: $(uplink_field wan1 share_cap)"
fi
before=$(uplink_bytes)
sha=$(curl_file big)
after=$(uplink_bytes)
fibre=$(share_of 1 "$before" "$after")
if [[ $sha == "$BIG_SHA" ]] && within "$fibre" 10 30; then
    pass "the class's share holds fibre at $fibre % of 60 MB (sha256 equal)"
else
    fail "the class's share holds fibre at 20 ± 10 %" "fibre $fibre %, before $before after $after, sha256 ${sha:-none}"
fi
steer_conc_conf ""
conc_reload >/dev/null
if wait_for 10 field_is wan1 share_cap None; then
    pass "removing the class's uplink_share lifts the cap on the running gateway"
else
    fail "removing the class's uplink_share lifts the cap on the running gateway" "share_cap: $(uplink_field wan1 share_cap)"
fi
kill -0 "$LAB_GW_PID" 2>/dev/null && kill -0 "$LAB_CONC_PID" 2>/dev/null ||
    fail "both daemons alive at the end"
finish
