#!/usr/bin/env bash
# braid namespace tests: the TUN delay line (braid-lab delay, lab_delay in lab/lab.sh).
#
#   [gw] ── wan1 ──► gw1 [inet] ─► dl1 ═ +MS ═► conc0 ── [conc] 198.18.10.2
#                                             └► org0 ── [origin] 198.18.20.2 (braid-lab serve)
#   and the same delay on the way back, so every round trip over wan1 takes 2*MS longer.
#
# No braid daemons: the gateway namespace's main default route is via wan1, so plain connections
# from it cross the delayed uplink. Transfers are checked by sha256 of what one end sent against
# what the other received. Prints "N passed, N failed" last; exits non-zero on any failure.
set -u
cd "$(dirname "$0")/../.."
export LAB_SUFFIX="d$$"
: "${LAB_TOOL:=${BRAID_LAB_TOOL:-$PWD/.build/release/braid-lab}}"
export LAB_TOOL
source lab/lab.sh
source tests/netns/harness.sh
MS=${BRAID_TEST_DELAY_MS:-20}
SIZE=20000000

require() {
    need_cmd ip ping ss python3
    need "$LAB_TOOL (swift build -c release --product braid-lab)" test -x "$LAB_TOOL"
    need "/dev/net/tun" test -c /dev/net/tun
    check_prerequisites
}

# ms_at_least VALUE MIN and ms_below VALUE MAX: float comparisons of milliseconds.
ms_at_least() { python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) else 1)' "$1" "$2"; }
ms_below() { python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)' "$1" "$2"; }

test_ping_rtt() {
    local out min max
    out=$(nsx "$NS_GW" ping -n -c 5 -i 0.2 -W 2 198.18.10.2 2>&1)
    # rtt min/avg/max/mdev = 40.912/41.089/41.274/0.128 ms
    read -r min max < <(sed -n 's|.* = \([0-9.]*\)/[0-9.]*/\([0-9.]*\)/.*|\1 \2|p' <<<"$out")
    if [[ -n ${min:-} ]] && ms_at_least "$min" $((2 * MS)) && ms_below "$max" $((2 * MS + 15)); then
        pass "ping over wan1 to the concentrator: RTT $min..$max ms with $MS ms each way"
    else
        fail "ping RTT in [$((2 * MS)), $((2 * MS + 15))) ms" "$out"
    fi
}

test_download() {
    local out
    out=$(nsx "$NS_GW" "$LAB_TOOL" get --connect "$ORIGIN4" --port "$ORIGIN_PORT" --bytes "$SIZE" --timeout 60)
    if [[ $(json_field result <<<"$out") == ok && $(json_field sha256 <<<"$out") == "$(origin_sha sent)" ]]; then
        pass "$((SIZE / 1000000)) MB down through the delay line, sha256 equal ($(json_field seconds <<<"$out") s,\
 $(json_field mbps <<<"$out") Mbit/s)"
    else
        fail "download through the delay line" "client: $out" "origin sent: $(origin_sha sent)"
    fi
}

test_upload() {
    local out sha
    out=$(nsx "$NS_GW" "$LAB_TOOL" put --connect "$ORIGIN4" --port "$ORIGIN_PORT" --bytes "$SIZE" --timeout 60)
    sha=$(json_field sha256 <<<"$out")
    if [[ $(json_field result <<<"$out") == ok && $(json_field answer <<<"$out") == "$SIZE $sha" &&
        $sha == "$(origin_sha received)" ]]; then
        pass "$((SIZE / 1000000)) MB up through the delay line, sha256 equal ($(json_field seconds <<<"$out") s,\
 $(json_field mbps <<<"$out") Mbit/s)"
    else
        fail "upload through the delay line" "client: $out" "origin received: $(origin_sha received)"
    fi
}

test_ttfb() {
    local out median
    out=$(nsx "$NS_GW" "$LAB_TOOL" ttfb --connect "$ORIGIN4" --port "$ORIGIN_PORT" --count 5)
    median=$(json_field median_ms <<<"$out")
    # Two round trips before the first byte: the handshake, then the request and its answer.
    if [[ $(json_field result <<<"$out") == ok ]] && ms_at_least "$median" $((4 * MS)); then
        pass "time to first byte $median ms >= two delayed round trips ($((4 * MS)) ms)"
    else
        fail "time to first byte >= $((4 * MS)) ms" "$out"
    fi
}

test_no_drops() {
    local i dropped=0 line
    # Packets the kernel could not queue to a delay line that fell behind count as loss too.
    for i in 1 2 3; do
        dropped=$((dropped + $(nsx "$NS_INET" cat "/sys/class/net/dl$i/statistics/tx_dropped")))
    done
    for i in 1 2 3; do kill -TERM "${LAB_DELAY_PIDS[$((i - 1))]}" 2>/dev/null; done
    for i in 1 2 3; do
        wait_for 5 grep -q '"stopped"' "$LAB_WORK/delay$i.log"
        line=$(grep '"stopped"' "$LAB_WORK/delay$i.log")
        dropped=$((dropped + $(json_field dropped <<<"$line") + $(json_field write_errors <<<"$line")))
    done
    if ((dropped == 0)); then
        pass "SIGTERM: delay lines exit cleanly, nothing dropped ($(grep '"stopped"' "$LAB_WORK/delay1.log"))"
    else
        fail "delay lines dropped packets" "$(cat "$LAB_WORK"/delay*.log)"
    fi
}

require
lab_up unshaped
# The origin's log is what origin_sha reads; braid-lab serve writes braid-traffic.py's format.
ip netns exec "$NS_ORG" "$LAB_TOOL" serve --listen :: --port "$ORIGIN_PORT" --log "$LAB_WORK/origin.log" \
    2>"$LAB_WORK/serve.log" &
LAB_PIDS+=($!)
if ! lab_delay "$MS" || ! wait_for 10 nsx "$NS_ORG" bash -c "ss -Hltn 'sport = :$ORIGIN_PORT' | grep -q LISTEN"; then
    fail "lab start" "$(cat "$LAB_WORK"/*.log 2>/dev/null)"
    finish
    exit 1
fi
test_ping_rtt
test_download
test_upload
test_ttfb
test_no_drops

finish
