#!/usr/bin/env bash
# braid namespace tests: the concentrator under a flood of unauthenticated data connections.
#
#   lan ── [gw: braid gateway] ══ wan1/wan2/wan3 (40/20/10 Mbit/s) ══ [inet] ── [conc: braid concentrator]
#                                                                      │  └──── [origin]
#                          flood from 198.18.1.1, .2.1, .3.1, .10.1 ───┘
#
# From the inet namespace, braid-flood.py opens FLOOD_COUNT connections to the concentrator's data
# port: stalled partial requests, cut-short ones, garbage and requests sealed with a wrong or
# unknown key. Meanwhile a real download runs through the gateway. Checked: the download is
# intact and its time to first byte stays near the unflooded one; the concentrator's descriptors
# stay bounded by the pending limits and fall back after handshake_timeout; every flood connection
# got the same Not Authorized answer or a reset at accept, none reached the origin; the log has
# the refusal summary instead of a line per connection.
#
# Prints "N passed, N failed" last; exits non-zero on any failure or missing prerequisite.
set -u
cd "$(dirname "$0")/../.."
export LAB_SUFFIX="u$$"
source lab/lab.sh
source tests/netns/harness.sh
FLOOD="tests/netns/braid-flood.py"
FLOOD_COUNT=${BRAID_FLOOD_COUNT:-2000}
FLOOD_SOURCES=198.18.1.1,198.18.2.1,198.18.3.1,198.18.10.1
SIZE=${BRAID_TEST_BYTES:-20000000}
# handshake_timeout 2 s is the default; max_pending_per_source is set to 64 (default 1024) so that
# 500 connections from each flood source overrun it.
HANDSHAKE_TIMEOUT=2
PER_SOURCE=64
NOT_AUTHORIZED=010200001e012000

require() {
    need_braid_lab
    check_prerequisites
}

conc_fds() { ls "/proc/$LAB_CONC_PID/fd" 2>/dev/null | wc -l; }
origin_connections() { grep -c '"event": "connection"' "$LAB_WORK/origin.log" 2>/dev/null || true; }

# download LABEL: GET SIZE bytes through the gateway; prints the client's JSON line.
download() {
    nsx "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN4" --port "$ORIGIN_PORT" --get "$SIZE" --timeout 60
}

download_ok() {
    local out=$1
    [[ $(json_field result <<<"$out") == ok && $(json_field bytes <<<"$out") == "$SIZE" &&
        $(json_field sha256 <<<"$out") == "$(origin_sha sent)" ]]
}

# Samples the concentrator's open descriptors every 0.1 s into $LAB_WORK/fds until told to stop
# (or 60 s pass).
sample_fds() {
    local deadline=$((SECONDS + 60))
    while [[ ! -e $LAB_WORK/fds.stop ]] && ((SECONDS < deadline)); do
        conc_fds >>"$LAB_WORK/fds"
        sleep 0.1
    done
}

test_flood() {
    # Unflooded reference first: the same download, its time to first byte.
    local calm calm_ttfb
    calm=$(download)
    calm_ttfb=$(json_field first_byte <<<"$calm")
    if download_ok "$calm"; then
        pass "unflooded download: $((SIZE / 1000000)) MB, sha256 equal, first byte after ${calm_ttfb} s"
    else
        fail "unflooded download" "$calm"
        return
    fi
    sleep 0.5  # the relay's descriptors close behind the download
    local base origin_before
    base=$(conc_fds)
    origin_before=$(origin_connections)

    rm -f "$LAB_WORK/fds" "$LAB_WORK/fds.stop"
    sample_fds &
    local sampler=$!
    # ~4 s of flood at 500 connections a second; the download starts once it is under way.
    nsx "$NS_INET" python3 "$FLOOD" --connect "$CONC_ADDR" --port "$BRAID_PORT" --sources "$FLOOD_SOURCES" \
        --count "$FLOOD_COUNT" --rate 500 --dest "$ORIGIN4" --dport "$ORIGIN_PORT" --deadline 30 \
        >"$LAB_WORK/flood.json" 2>"$LAB_WORK/flood.err" &
    local flooder=$!
    wait_for 5 bash -c "(( \$(ls /proc/$LAB_CONC_PID/fd | wc -l) > $base + 50 ))"
    local flooded flooded_ttfb
    flooded=$(download)
    flooded_ttfb=$(json_field first_byte <<<"$flooded")
    wait "$flooder"
    local flood_end=$SECONDS
    # Back to where it was once the last stalled handshake has had its timeout.
    local after=""
    for _ in $(seq $(((HANDSHAKE_TIMEOUT + 4) * 10))); do
        after=$(conc_fds)
        ((after <= base + 4)) && break
        sleep 0.1
    done
    touch "$LAB_WORK/fds.stop"
    wait "$sampler"
    local peak
    peak=$(sort -n "$LAB_WORK/fds" | tail -1)
    local flood; flood=$(cat "$LAB_WORK/flood.json")

    if download_ok "$flooded" && python3 -c 'import sys; c, f = map(float, sys.argv[1:]); sys.exit(f > max(2.0, 20 * c))' \
        "$calm_ttfb" "$flooded_ttfb"; then
        pass "download under the flood: sha256 equal, first byte after ${flooded_ttfb} s (unflooded ${calm_ttfb} s), $(
            json_field seconds <<<"$flooded") s in all (unflooded $(json_field seconds <<<"$calm") s)"
    else
        fail "download under the flood" "$flooded" "unflooded first byte: $calm_ttfb s"
    fi

    # Four sources, each limited to PER_SOURCE pending handshakes; a little room for the relay.
    local bound=$((base + 4 * PER_SOURCE + 40))
    if ((peak > base + 50 && peak <= bound && after <= base + 4)); then
        pass "concentrator descriptors: $base before, peak $peak (bound $bound), $after after the timeout"
    else
        fail "concentrator descriptors bounded" "before $base, peak $peak (bound $bound, must exceed $((base + 50))), after $after"
    fi

    # Each connection: the Not Authorized answer then a FIN, or a reset at accept with nothing.
    local verdict
    verdict=$(python3 - "$NOT_AUTHORIZED" "$FLOOD_COUNT" "$LAB_WORK/flood.json" <<'PY'
import json, sys
na, count = sys.argv[1], int(sys.argv[2])
r = json.loads(open(sys.argv[3]).read())
o = r["outcomes"]
answered, reset = o.get(f"eof:{na}", 0), o.get("reset:-", 0)
other = {k: v for k, v in o.items() if k not in (f"eof:{na}", "reset:-")}
stalled = r["by_kind"].get("partial", {}).get(f"eof:{na}", 0)
ok = r["connections"] == count and not other and answered > 0 and reset > 0 and stalled > 0
print(("ok" if ok else "bad") + f" {answered} answered Not Authorized, {reset} reset at accept, "
      f"{stalled} of them stalled, answered after {r['answered_after'].get('partial')} s; other: {other}")
PY
)
    if [[ $verdict == ok* ]]; then
        pass "flood of $FLOOD_COUNT: ${verdict#ok }"
    else
        fail "every flood connection gets the same answer or a reset" "${verdict#bad }" "$flood" "$(cat "$LAB_WORK/flood.err")"
    fi

    local origin_after; origin_after=$(origin_connections)
    if ((origin_after == origin_before + 1)); then
        pass "no flood connection reached the origin (only the download: $origin_before -> $origin_after)"
    else
        fail "flood kept from the origin" "origin connections $origin_before -> $origin_after, expected one more"
    fi

    # The summary comes every 10 s; one line covers the whole flood, none per connection.
    local waited=$((12 - (SECONDS - flood_end)))
    ((waited < 1)) && waited=1
    wait_for "$waited" grep -q "data connections refused before authentication" "$LAB_WORK/concentrator.log"
    local summary lines
    summary=$(grep "data connections refused before authentication" "$LAB_WORK/concentrator.log" | head -3)
    lines=$(wc -l <"$LAB_WORK/concentrator.log")
    if [[ $summary == *timeout* && $summary == *max_pending_per_source* && $summary == *198.18.* ]] &&
        ((lines < 100)); then
        pass "the log has a refusal summary ($lines lines in all): $(head -1 <<<"$summary" | cut -c1-300)"
    else
        fail "refusal summary in the log" "summary: $summary" "log lines: $lines"
    fi
}

test_still_serving() {
    local out
    out=$(nsx "$NS_GW" python3 "$TRAFFIC" convert --connect "$CONC_ADDR" --port "$BRAID_PORT" \
        --psk-file "$LAB_WORK/psk" --dest "$ORIGIN4" --dport "$ORIGIN_PORT" --mode valid)
    if [[ $(json_field reply <<<"$out") == ok ]] && kill -0 "$LAB_CONC_PID"; then
        pass "after the flood the concentrator still answers a valid request"
    else
        fail "concentrator serves after the flood" "$out"
    fi
}

require
lab_up shaped
if ! lab_start; then
    fail "lab start"
    finish
    exit 1
fi
# The flood needs a per-source limit it can overrun: the concentrator again, with PER_SOURCE.
kill -TERM "$LAB_CONC_PID"
wait_for 10 bash -c "! kill -0 $LAB_CONC_PID"
sed -i "s|^config concentrator 'main'|config concentrator 'main'\n\toption max_pending_per_source '$PER_SOURCE'|" \
    "$LAB_WORK/concentrator.conf"
ip netns exec "$NS_CONC" "$BRAID_BIN" concentrator --config "$LAB_WORK/concentrator.conf" \
    --log-level "${BRAID_LOG_LEVEL:-info}" 2>>"$LAB_WORK/concentrator.log" &
LAB_CONC_PID=$!
LAB_PIDS+=("$LAB_CONC_PID")
wait_for 10 nsx "$NS_CONC" bash -c "ss -Hltn 'sport = :$BRAID_PORT' | grep -q LISTEN" ||
    { fail "concentrator restart with max_pending_per_source $PER_SOURCE"; finish; exit 1; }
test_flood
test_still_serving

if ((FAILED)); then
    echo "--- concentrator log" >&2; tail -20 "$LAB_WORK/concentrator.log" >&2
fi
finish
