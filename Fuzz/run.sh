#!/usr/bin/env bash
# Builds a libFuzzer target and runs it for a given time: Fuzz/run.sh TARGET|all SECONDS
#   TARGET: convert (Convert parser and handshakes), control (control frames and sessions),
#           uci (UCI parser).
# New inputs that reach new code go to .build-fuzz/corpus/TARGET (kept between runs, not
# committed; copy the interesting ones into Fuzz/Corpus/TARGET). A crash, sanitizer report or
# broken invariant writes the input to Fuzz/Crashes/ and makes this script fail; reproduce with
#   .build-fuzz/release/fuzz-TARGET Fuzz/Crashes/FILE
# libFuzzer and AddressSanitizer come with the Swift toolchain for Linux (lib/swift/clang).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: $0 convert|control|uci|all SECONDS" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
targets=$1
seconds=$2
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || { echo "SECONDS must be a positive integer, not '$seconds'" >&2; exit 2; }
case $targets in
    all) targets="convert control uci" ;;
    convert | control | uci) ;;
    *) echo "unknown fuzz target '$targets'" >&2; usage ;;
esac

SWIFT=${SWIFT:-swift}
scratch=.build-fuzz
# Seen with Swift 6.3.1: when make's MFLAGS (empty) is in the environment, swift build compiles
# the modules without coverage instrumentation, and libFuzzer degrades to random input.
unset MAKEFLAGS MFLAGS MAKELEVEL
# Release for speed; preconditions and bounds checks stay on in release builds.
"$SWIFT" build --package-path Fuzz --scratch-path "$scratch" -c release --sanitize fuzzer --sanitize address

mkdir -p Fuzz/Crashes
status=0
for target in $targets; do
    # Inputs larger than any message plus slack: the control stream carries several frames.
    case $target in
        convert) max_len=2048 ;;
        control) max_len=4096 ;;
        uci) max_len=4096 ;;
    esac
    # A fuzzer without coverage feedback still runs and finds nothing: refuse to pretend.
    if ! readelf -S "$scratch/release/fuzz-$target" | grep -q __sancov_cntrs; then
        echo "fuzz-$target has no coverage instrumentation; remove $scratch and run again" >&2
        exit 1
    fi
    work="$scratch/corpus/$target"
    mkdir -p "$work"
    echo "== fuzz-$target for ${seconds}s"
    # The working corpus comes first: libFuzzer writes new inputs there, never into the seeds.
    "$scratch/release/fuzz-$target" "$work" "Fuzz/Corpus/$target" \
        -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="Fuzz/Crashes/$target-" -print_final_stats=1 || status=1
done
exit $status
