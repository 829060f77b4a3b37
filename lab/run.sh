#!/usr/bin/env bash
# braid lab demo: builds the topology of lab/lab.sh, starts both daemons, runs a download and an
# upload through the bonded path and prints what each uplink carried.
#
#   lab/run.sh              three IPv4 uplinks shaped 40/20/10 Mbit/s and one IPv6-only (10 Mbit/s)
#   lab/run.sh --unshaped   no shaping: relay throughput next to direct MPTCP between the same hosts
set -u
cd "$(dirname "$0")/.."
SHAPING=shaped
[[ ${1:-} == --unshaped ]] && SHAPING=unshaped
BYTES=${BRAID_LAB_BYTES:-50000000}
[[ $SHAPING == unshaped ]] && BYTES=${BRAID_LAB_BYTES:-1000000000}
export LAB_SUFFIX="lab$$"
export LAB_V6_UPLINK=${LAB_V6_UPLINK:-1}
source lab/lab.sh
[[ -x $BRAID_BIN ]] || { echo "build first: swift build -c release" >&2; exit 1; }
trap 'lab_down; rm -rf "$LAB_WORK"' EXIT INT TERM

mbit() { python3 -c "print(f'{$1 * 8 / $2 / 1e6:.1f}')"; }

report() { # report LABEL BEFORE AFTER SECONDS DIRECTION(tx|rx)
    local label=$1 seconds=$4 dir=$5
    read -r -a a <<<"$2"; read -r -a b <<<"$3"
    local i total=0 off=0
    [[ $dir == rx ]] && off=1
    printf '%s\n' "$label"
    for ((i = 0; i < ${#a[@]} / 2; i++)); do
        local n=$((b[i * 2 + off] - a[i * 2 + off])) note=""
        total=$((total + n))
        ((i == 3)) && note="  (IPv6 only)"
        printf '  wan%d  %8.1f MB  %7s Mbit/s%s\n' $((i + 1)) "$(python3 -c "print($n/1e6)")" "$(mbit $n "$seconds")" "$note"
    done
    printf '  total %8.1f MB  %7s Mbit/s on the wire\n' "$(python3 -c "print($total/1e6)")" "$(mbit $total "$seconds")"
}

transfer() { # transfer get|put
    local before after out seconds
    before=$(lab_uplink_bytes)
    out=$(nsx "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN4" --port "$ORIGIN_PORT" "--$1" "$BYTES" --timeout 600)
    after=$(lab_uplink_bytes)
    seconds=$(json_field seconds <<<"$out")
    local want
    [[ $1 == get ]] && want=$(origin_sha sent) || want=$(origin_sha received)
    local verdict="sha256 MISMATCH"
    [[ $(json_field sha256 <<<"$out") == "$want" ]] && verdict="sha256 equal"
    local dir=rx
    [[ $1 == put ]] && dir=tx
    report "$([[ $1 == get ]] && echo download || echo upload): $((BYTES / 1000000)) MB in $seconds s = $(mbit "$BYTES" "$seconds") Mbit/s goodput, $verdict" "$before" "$after" "$seconds" "$dir"
}

lab_log "building namespaces ($SHAPING)"
lab_up "$SHAPING"
lab_log "starting origin, concentrator and gateway"
lab_start || exit 1
lab_log "LAN host 198.18.0.2 -> origin $ORIGIN4:$ORIGIN_PORT through gateway and concentrator"
transfer get
transfer put
if [[ $SHAPING == unshaped ]]; then
    nsx "$NS_CONC" python3 "$TRAFFIC" serve --mptcp --port 9000 --lifetime 600 --log "$LAB_WORK/direct.log" &
    wait_for 5 nsx "$NS_CONC" bash -c "ss -Hltn 'sport = :9000' | grep -q LISTEN"
    for verb in get put; do
        out=$(nsx "$NS_GW" python3 "$TRAFFIC" client --mptcp --connect "$CONC_ADDR" --port 9000 "--$verb" "$BYTES" --timeout 600)
        echo "direct MPTCP gateway->concentrator $verb: $(mbit "$BYTES" "$(json_field seconds <<<"$out")") Mbit/s ($(json_field result <<<"$out"))"
    done
fi
