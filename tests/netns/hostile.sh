#!/usr/bin/env bash
# braid namespace tests: third-party clients, rude peers and a hostile internet (topology in
# lab/lab.sh; both daemons with the TLS control channel, as an operator runs them).
#
#   lan ── [gw: braid gateway] ══ wan1/wan2/wan3 (40/20/10 Mbit/s) ══ [inet] ── [conc] ── [origin]
#   iperf3, curl,                   ▲ scans of every port the gateway      ▲    nginx, iperf3 -s,
#   resetting clients               │ listens on come from inet            │    resetting origins
#                                   floods from many /64s, control-port abuse
#
# Each section lives in tests/netns/hostile/NAME.sh and defines `section_NAME`; it may restart
# either daemon, and leaves both running with the lab's configuration (hostile_restore) when it
# ends. HOSTILE_SECTIONS="relay policy" runs only those. Last, both daemons must be the processes
# the last section left, alive, and serve a sha256-checked download and upload.
#
# Prints "N passed, N failed" last; exits non-zero on any failure or missing prerequisite.
set -u
cd "$(dirname "$0")/../.."
export LAB_SUFFIX="h$$"
source lab/lab.sh
source tests/netns/harness.sh
source tests/netns/uplink-helpers.sh
source tests/netns/hostile/common.sh
read -r -a SECTIONS <<<"${HOSTILE_SECTIONS:-$(hostile_sections)}"
for s in "${SECTIONS[@]}"; do source "tests/netns/hostile/$s.sh"; done

need_braid_lab
need_cmd iperf3 curl nginx
check_prerequisites
lab_up shaped
hostile_start || { fail "lab start" "$(tail -5 "$LAB_WORK/concentrator.log")" "$(tail -5 "$LAB_WORK/gateway.log")"; finish; exit 1; }

for s in "${SECTIONS[@]}"; do
    echo "-- $s"
    "section_$s"
done

echo "-- after every section"
hostile_final_check
finish
