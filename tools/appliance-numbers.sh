#!/usr/bin/env bash
# The appliance's numbers for the README: the shipped binary's size and what it links, the disk
# image's size, and the gateway's resident memory idle and holding 1,000 idle sessions, measured
# in the lab (lab/lab.sh, unshaped) with the binary from the image's root file system.
#
#   tools/appliance-numbers.sh [BINARY]
#
# BINARY defaults to .build-image/rootfs-gateway/usr/bin/braid (`make image` first); the idle
# sessions are braid-lab's (`braid-lab hold`, LAB_TOOL, default .build/debug/braid-lab). Root.
set -uo pipefail
cd "$(dirname "$0")/.."
export LAB_SUFFIX="n$$"
BRAID_BIN=$(realpath "${1:-.build-image/rootfs-gateway/usr/bin/braid}")
: "${LAB_TOOL:=$PWD/.build/debug/braid-lab}"
source lab/lab.sh
SESSIONS=1000

trap 'lab_down; rm -rf "$LAB_WORK"' EXIT INT TERM
[[ -x $BRAID_BIN ]] || { echo "no binary at $BRAID_BIN: make image first" >&2; exit 1; }
[[ -x $LAB_TOOL ]] || { echo "no braid-lab at $LAB_TOOL: make build first" >&2; exit 1; }

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

echo "binary: $BRAID_BIN, $(stat -c %s "$BRAID_BIN") bytes ($(mb $(($(stat -c %s "$BRAID_BIN") / 1024))))"
echo "links: $(readelf -d "$BRAID_BIN" | awk -F'[][]' '/NEEDED/ { printf "%s ", $2 }')"
for f in .build-image/braid-*-x86-64.img; do
    [[ -e $f ]] && echo "image: $f, $(stat -c %s "$f") bytes ($(du -m --apparent-size "$f" | cut -f1) MB)"
done

lab_up unshaped && lab_start || exit 1
# Idle: nothing relayed yet, the uplinks probed for a few seconds (a measurement's settling time,
# not a wait for an event).
sleep 3
echo "gateway idle: $(mb "$(rss_kb "$LAB_GW_PID")") resident; concentrator $(mb "$(rss_kb "$LAB_CONC_PID")")"

# The sessions end at braid-lab's origin (one epoll loop; the lab's Python origin backs up on 1,000
# connects at once), as in bench/bench.sh.
HOLD_PORT=8090
nsx "$NS_ORG" "$LAB_TOOL" serve --listen :: --port "$HOLD_PORT" --verify none --log "$LAB_WORK/hold-origin.log" \
    2>"$LAB_WORK/hold-origin.err" &
LAB_PIDS+=($!)
wait_for 10 nsx "$NS_ORG" bash -c "ss -Hltn 'sport = :$HOLD_PORT' | grep -q LISTEN" || { echo "no origin on $HOLD_PORT" >&2; exit 1; }
nsx "$NS_LAN" "$LAB_TOOL" hold --connect "$ORIGIN4" --port "$HOLD_PORT" --count "$SESSIONS" --seconds 120 \
    >"$LAB_WORK/hold.json" 2>&1 &
LAB_PIDS+=($!)
wait_for 60 grep -q '"result"' "$LAB_WORK/hold.json" || { echo "hold: no report: $(cat "$LAB_WORK/hold.json")" >&2; exit 1; }
# Every session relayed: as many established connections at the origin.
origin_count() { nsx "$NS_ORG" ss -Htn state established "( sport = :$HOLD_PORT )" | wc -l; }
origin_conns() { (($(origin_count) >= SESSIONS)); }
wait_for 60 origin_conns || echo "only $(origin_count) of $SESSIONS sessions reached the origin" >&2
echo "hold: $(cat "$LAB_WORK/hold.json"); at the origin: $(origin_count)"
echo "gateway with $SESSIONS idle sessions: $(mb "$(rss_kb "$LAB_GW_PID")") resident; concentrator $(mb "$(rss_kb "$LAB_CONC_PID")")"
