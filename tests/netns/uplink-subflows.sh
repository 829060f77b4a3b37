#!/usr/bin/env bash
# braid namespace tests: an uplink's `subflows` option (several MPTCP subflows per connection on
# the fastest uplink, because Linux's scheduler leaves it idle part of the time otherwise).
#
#   lan ── [gw: braid gateway] ══ wan1 40 Mbit/s: 2 subflows per connection (dsl, subflows 2)
#                              ══ wan2 20, wan3 10 Mbit/s: 1 each        ══ [inet] ── [conc] ── [origin]
#
# A download and an upload (iperf3 would not check bytes: braid-traffic.py does, by sha256) while
# the gateway's connections are counted per uplink address in the kernel's socket table; then a
# reload to `subflows 3` on lte. About 40 s. Prints "N passed, N failed" last.
set -u
cd "$(dirname "$0")/../.."
export LAB_SUFFIX="sf$$"
export LAB_UPLINK_SUBFLOWS="2 1 1"
source lab/lab.sh
source tests/netns/harness.sh
SIZE=30000000

need_braid_lab
check_prerequisites

# Established subflows from an uplink address to the concentrator's data port.
subflows_from() {
    nsx "$NS_GW" ss -Htn state established "( dport = :$BRAID_PORT )" | awk -v a="$1" '{split($3, l, ":"); sub(/%.*/, "", l[1]); if (l[1] == a) n++} END {print n + 0}'
}

# transfer get|put LABEL WANT1 WANT2 WANT3: one transfer, and the subflows per uplink while it runs.
# Every connection (the data connection, and the control connection when there is one) has the
# same subflows, so each uplink's count is a multiple of what one connection has: wan1's must be
# WANT1 times wan3's, wan2's WANT2 times.
transfer() {
    local verb=$1 label=$2 w1=$3 w2=$4 w3=$5 out="$LAB_WORK/$1.json" n1=0 n2=0 n3=0 deadline
    nsx "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN4" --port "$ORIGIN_PORT" "--$verb" "$SIZE" \
        --timeout 60 >"$out" &
    local cp=$!
    deadline=$((SECONDS + 20))
    while ((SECONDS < deadline)) && kill -0 "$cp" 2>/dev/null; do
        n1=$(subflows_from 198.18.1.2) n2=$(subflows_from 198.18.2.2) n3=$(subflows_from 198.18.3.2)
        ((n3 > 0 && n1 == w1 * n3 / w3 && n2 == w2 * n3 / w3)) && break
        sleep 0.1
    done
    wait "$cp"
    local sha event=sent
    [[ $verb == put ]] && event=received
    sha=$(json_field sha256 <"$out")
    if ((n3 > 0 && n1 * w3 == w1 * n3 && n2 * w3 == w2 * n3)) && [[ $(json_field result <"$out") == ok &&
        $(json_field bytes <"$out") == "$SIZE" && $sha == "$(origin_sha "$event")" ]]; then
        pass "$label: subflows wan1/wan2/wan3 $n1/$n2/$n3 ($w1:$w2:$w3 per connection), sha256 equal"
    else
        fail "$label" "subflows wan1/wan2/wan3 $n1/$n2/$n3, wanted $w1:$w2:$w3 per connection" "client: $(cat "$out")" \
            "origin $event: $(origin_sha "$event")"
    fi
}

lab_up shaped
if ! lab_start; then
    fail "lab start"
    finish
    exit 1
fi
if ! "$BRAID_BIN" check --config "$LAB_WORK/gateway.conf" >/dev/null; then
    fail "braid check accepts subflows 2" "$("$BRAID_BIN" check --config "$LAB_WORK/gateway.conf" 2>&1)"
fi
wait_for 10 bash -c "[[ \$(nsx $NS_GW $BRAID_BIN status --json --config $LAB_WORK/gateway.conf | grep -o '\"state\":\"up\"' | wc -l) -ge 3 ]]"

transfer get "download with 2 subflows on wan1" 2 1 1
transfer put "upload with 2 subflows on wan1" 2 1 1

# Reload: lte gets 3; new connections have them (running ones get the missing ones too).
# (lab_start wrote `option subflows '1'` as the line after lte's section header.)
sed -i "/^config uplink 'lte'\$/{n;s/option subflows '1'/option subflows '3'/}" "$LAB_WORK/gateway.conf"
kill -HUP "$LAB_GW_PID"
if wait_for 10 grep -q "subflows 1 -> 3" "$LAB_WORK/gateway.log"; then
    transfer get "after a reload to subflows 3 on wan2" 2 3 1
else
    fail "reload to subflows 3 on lte" "$(grep -i reload "$LAB_WORK/gateway.log" | tail -3)"
fi

# A value out of range is refused by braid check, naming option and value.
bad="$LAB_WORK/bad.conf"
sed "s/option subflows '3'/option subflows '9'/" "$LAB_WORK/gateway.conf" >"$bad"
msg=$("$BRAID_BIN" check --config "$bad" 2>&1)
if [[ $? != 0 && $msg == *subflows* && $msg == *9* ]]; then
    pass "braid check refuses subflows 9 ($msg)"
else
    fail "braid check refuses subflows 9" "$msg"
fi

if ((FAILED)); then
    echo "--- gateway log" >&2
    tail -20 "$LAB_WORK/gateway.log" >&2
fi
finish
