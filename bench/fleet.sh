#!/usr/bin/env bash
# braid fleet benchmark (make bench-fleet): one concentrator, FLEET_COUNT simulated gateways
# (`braid-lab fleet`: real TLS control channels, one `braid pki` certificate and one source address
# each) holding FLEET_SESSIONS idle data connections each through the concentrator to an origin;
# then the concentrator is restarted and every gateway reconnects with the gateway's own backoff
# and jitter. Once with the subscribers in the uci file, once in PostgreSQL (Debian's, started
# here on a private socket). Topology: lab/fleet.sh.
#
# Reports, per store: concentrator memory (RSS and PSS) before, with every gateway connected, and
# with their idle sessions; TLS handshakes per second at the first connect (64 in flight) and during
# the storm; how long until every gateway holds a key again after the restart, with the
# refusals counted meanwhile; and a sha256-checked PUT through every gateway after it.
#
# Writes the "Fleet" section of bench/RESULTS.md (between its markers; the rest of the file is left
# as bench/bench.sh wrote it) and prints it. Not in CI: about 5 minutes for 2,000 gateways here.
#
#   FLEET_COUNT=2000 FLEET_SESSIONS=2 FLEET_STORES="uci postgresql" bash bench/fleet.sh
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
PATH=$PATH:/usr/sbin:/sbin
: "${BRAID_BIN:=$ROOT/.build/release/braid}"
: "${LAB_TOOL:=$ROOT/.build/release/braid-lab}"
export BRAID_BIN LAB_TOOL
COUNT=${FLEET_COUNT:-2000}
SESSIONS=${FLEET_SESSIONS:-2}
STORES=(${FLEET_STORES:-uci postgresql})
VERIFY_BYTES=65536

export LAB_SUFFIX="fb$$"
source lab/lab.sh
source lab/fleet.sh
RESULTS=$LAB_WORK/fleet.tsv
: >"$RESULTS"
bench_cleanup() {
    exec 7>&- 2>/dev/null
    fleet_down
    [[ ${BENCH_KEEP:-0} == 1 ]] && echo "logs kept in $LAB_WORK" >&2 || rm -rf "$LAB_WORK"
}
trap bench_cleanup EXIT INT TERM

log() { printf '[fleet] %s\n' "$*" >&2; }
record() { printf '%s\t%s\n' "$1" "$2" >>"$RESULTS"; }
field() { # field NAME JSON
    python3 -c 'import json,sys; v=json.loads(sys.argv[2]).get(sys.argv[1]); print("" if v is None else v)' "$1" "$2"
}
die() { log "$*"; tail -5 "$LAB_WORK/concentrator.log" "$LAB_WORK/fleet.err" >&2 2>/dev/null; exit 1; }

[[ -x $BRAID_BIN && -x $LAB_TOOL ]] || die "no $BRAID_BIN or $LAB_TOOL: make release"
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [[ " ${STORES[*]} " == *" postgresql "* ]]; then
    [[ -x $FLEET_PG_BIN/postgres ]] && command -v psql >/dev/null || bash tools/install-deps.sh >/dev/null ||
        die "PostgreSQL is missing (tools/install-deps.sh)"
fi
BENCH_START=$SECONDS

log "issuing $COUNT gateway certificates with braid pki"
pki_seconds=$(fleet_pki "$COUNT") || die "braid pki failed"
record pki_seconds "$pki_seconds"
log "  $pki_seconds s"

run_store() { # run_store uci|postgresql
    local store=$1 t0 up sessions restored verified done mem
    log "== $store: $COUNT gateways, $SESSIONS idle sessions each"
    fleet_up || die "fleet lab"
    if [[ $store == postgresql ]]; then
        fleet_pg_up "$COUNT" || die "PostgreSQL store"
    else
        fleet_conf "$COUNT" uci
    fi
    fleet_origin_start || die "origin did not start"
    fleet_conc_start 60 || die "concentrator did not start"
    # Its memory once idle: started (its status answers), the subscribers loaded, nothing connected.
    wait_for 20 fleet_status_json || die "$store: no status from the concentrator"
    mem=$(fleet_conc_memory)
    record "$store|rss0" "${mem% *}"
    record "$store|pss0" "${mem#* }"

    rm -f "$LAB_WORK/fleet.in" "$LAB_WORK/fleet.events"
    fleet_start "$COUNT" "$SESSIONS"
    up=$(fleet_event up 600) || die "$store: not every gateway came up"
    log "  up: $up"
    record "$store|up_seconds" "$(field seconds "$up")"
    record "$store|up_hps" "$(field handshakes_per_second "$up")"
    record "$store|up_failures" "$(field failures "$up")"
    mem=$(fleet_conc_memory)
    record "$store|rss1" "${mem% *}"
    record "$store|pss1" "${mem#* }"

    fleet_command sessions
    sessions=$(fleet_event sessions 300) || die "$store: sessions did not open"
    log "  sessions: $sessions"
    record "$store|sessions_open" "$(field open "$sessions")"
    record "$store|sessions_wanted" "$(field wanted "$sessions")"
    mem=$(fleet_conc_memory)
    record "$store|rss2" "${mem% *}"
    record "$store|pss2" "${mem#* }"

    # The restart: SIGTERM (its sessions end with it), then the same configuration again.
    t0=$EPOCHREALTIME
    fleet_conc_stop
    fleet_conc_start 60 || die "$store: concentrator did not start again"
    record "$store|restart_listen" "$(python3 -c "print(round($EPOCHREALTIME - $t0, 2))")"
    restored=$(fleet_event restored 600) || die "$store: not every gateway came back"
    log "  restored: $restored"
    local k
    for k in seconds p50 p90 p99 first_grant handshakes_per_second attempts failures failed_connect failed_tls \
        failed_grant failed_channel; do
        record "$store|storm_$k" "$(field "$k" "$restored")"
    done
    mem=$(fleet_conc_memory)
    record "$store|rss3" "${mem% *}"
    record "$store|pss3" "${mem#* }"
    record "$store|refusals" "$(fleet_status_json | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(", ".join("%s %d" % (r["reason"], r["count"]) for r in d.get("refusals", []) if r["count"]) or "none")')"

    fleet_command verify "$VERIFY_BYTES"
    verified=$(fleet_event verified 300) || die "$store: verify did not finish"
    log "  verified: $verified"
    record "$store|verified_ok" "$(field ok "$verified")"
    fleet_command quit
    fleet_event done 60 >/dev/null
    exec 7>&-
    fleet_down
}

for store in "${STORES[@]}"; do run_store "$store"; done
record bench_seconds $((SECONDS - BENCH_START))
record count "$COUNT"
record binary "$BRAID_BIN"
record sessions "$SESSIONS"
python3 bench/fleet-report.py "$RESULTS" bench/RESULTS.md
