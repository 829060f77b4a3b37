#!/usr/bin/env bash
# braid namespace tests: a small simulated fleet against one concentrator, so `braid-lab fleet` and
# `make bench-fleet` (bench/fleet.sh) cannot rot. Topology in lab/fleet.sh:
#
#   [fleet: braid-lab fleet, FLEET_COUNT gateways from 198.18.128.0/17 ] ── [fconc: concentrator]
#   [       braid-lab serve origin 198.18.102.2, hold (stalled handshakes)]
#
# 50 gateways with their own `braid pki` certificates get keys; 2 idle sessions each reach the
# origin; the concentrator is restarted while one source holds 200 handshakes that never finish
# (rude: they are refused and counted, the fleet comes back all the same); every gateway then
# PUTs 64 KiB through the concentrator with the sha256 checked. Then a storm over the limit: the
# concentrator with max_control_handshakes 4, the gateways behind a 100 ms path delay retrying
# every 20 ms (rude: no backoff), restarted once more; all must hold a key again within 20 s and
# PUT 64 KiB each (before the fix, evictions kept most of them out for good). About 40 s. Prints
# "N passed, N failed" last; exits non-zero on any failure or missing prerequisite.
set -u
cd "$(dirname "$0")/../.."
export LAB_SUFFIX="fl$$"
source lab/lab.sh
source tests/netns/harness.sh
source lab/fleet.sh
COUNT=${FLEET_COUNT:-50}
SESSIONS=2
VERIFY_BYTES=65536
STALLERS=200

fleet_cleanup() {
    exec 7>&- 2>/dev/null
    fleet_down
    if [[ -n ${BRAID_TEST_LOGS:-} ]]; then
        mkdir -p "$BRAID_TEST_LOGS" && cp "$LAB_WORK"/*.log "$LAB_WORK"/*.err "$BRAID_TEST_LOGS"/ 2>/dev/null
    fi
    rm -rf "$LAB_WORK"
}
trap fleet_cleanup EXIT INT TERM

need_braid_lab
need "$LAB_TOOL (braid-lab, build it first)" test -x "$LAB_TOOL"
need_cmd mkfifo xargs
check_prerequisites

field() { # field NAME JSON
    python3 -c 'import json,sys; v=json.loads(sys.argv[2]).get(sys.argv[1]); print("" if v is None else v)' "$1" "$2"
}
# From the concentrator's status: control channels up, sessions open, a refusal reason's count.
status_value() { # status_value channels|sessions|refused REASON
    fleet_status_json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
what = sys.argv[1]
if what == "channels": print(d["control_channels"])
elif what == "sessions": print(d["sessions"]["active"])
else: print(sum(r["count"] for r in d["refusals"] if r["reason"] == sys.argv[2]))' "$@"
}
channels_are() { [[ $(status_value channels) == "$1" ]]; }
sessions_are() { [[ $(status_value sessions) == "$1" ]]; }
origin_holds() { (($(nsx "$NS_FLEET" ss -Htn state established "sport = :$FLEET_ORIGIN_PORT" | wc -l) >= $1)); }

fleet_up || { fail "fleet lab"; finish; exit 1; }
if pki_seconds=$(fleet_pki "$COUNT"); then
    pass "braid pki: CA, concentrator and $COUNT gateway certificates issued ($pki_seconds s)"
else
    fail "braid pki: $COUNT gateway certificates"; finish; exit 1
fi
fleet_conf "$COUNT" uci
fleet_origin_start || { fail "origin did not start"; finish; exit 1; }
fleet_conc_start 30 || { fail "concentrator did not start" "$(tail -5 "$LAB_WORK/concentrator.log")"; finish; exit 1; }

# 1. Every simulated gateway gets a session key over its own TLS control channel.
fleet_start "$COUNT" "$SESSIONS"
if up=$(fleet_event up 60) && wait_for 10 channels_are "$COUNT"; then
    pass "$COUNT gateways granted a key; the concentrator counts $COUNT control channels ($(field seconds "$up") s)"
else
    fail "$COUNT gateways up" "${up:-no up event}" "channels: $(status_value channels)" \
        "$(tail -3 "$LAB_WORK/fleet.err")"
fi

# 2. Their idle sessions go through the Convert exchange to the origin, which holds them.
fleet_command sessions
if sessions=$(fleet_event sessions 60) && [[ $(field open "$sessions") == $((COUNT * SESSIONS)) ]] &&
    wait_for 10 sessions_are $((COUNT * SESSIONS)) && wait_for 10 origin_holds $((COUNT * SESSIONS)); then
    pass "$((COUNT * SESSIONS)) idle sessions held through the concentrator to the origin"
else
    fail "idle sessions" "${sessions:-no sessions event}" "concentrator open: $(status_value sessions)"
fi

# 3. A restart while one source holds STALLERS handshakes that never start: the fleet comes back
#    with the gateway's backoff, the stallers are refused at accept and counted.
fleet_conc_stop
started=0
fleet_conc_start 30 && started=1
# Right as it listens again, before most gateways' first retry (up to 0.5 s after the loss).
nsx "$NS_FLEET" "$LAB_TOOL" hold --connect "$FLEET_CONC" --port "$FLEET_CONTROL_PORT" --count "$STALLERS" \
    --seconds 30 --timeout 5 >"$LAB_WORK/stallers.json" 2>>"$LAB_WORK/stallers.err" &
FLEET_PIDS+=($!)
if ((started)) && restored=$(fleet_event restored 90) && wait_for 10 channels_are "$COUNT"; then
    pass "concentrator restarted: all $COUNT gateways hold a key again after $(field seconds "$restored") s"
else
    fail "restart: every gateway back" "${restored:-no restored event}" "channels: $(status_value channels)"
fi
refused=$(status_value refused max_control_handshakes_per_source)
if kill -0 "$FLEET_CONC_PID" 2>/dev/null && [[ -n $refused ]] && ((refused > 0)); then
    pass "the concentrator stayed up; handshakes over the per-source limit refused and counted ($refused)"
else
    fail "stalled handshakes refused and counted" "refused: ${refused:-none}" "$(tail -3 "$LAB_WORK/concentrator.log")"
fi

# 4. The keys granted after the restart carry data: a PUT from every gateway, sha256 checked.
fleet_command verify "$VERIFY_BYTES"
if verified=$(fleet_event verified 60) && [[ $(field ok "$verified") == "$COUNT" ]]; then
    pass "every gateway PUT $VERIFY_BYTES bytes through the restarted concentrator, sha256 intact"
else
    fail "PUT through every gateway" "${verified:-no verified event}"
fi
fleet_command quit
fleet_event done 20 >/dev/null
exec 7>&-

# 5. A storm over the limit. max_control_handshakes 4, so 50 gateways are far more than it holds;
#    each control channel's path 100 ms long (braid-lab holds what it receives), so a handshake
#    stays in flight that long; every gateway retrying 20 ms after each failure, so newcomers
#    arrive hundreds of times faster than handshakes finish. Handshakes in flight must keep their
#    slots (newcomers refused at accept, nobody evicted): every gateway holds a key within 20 s
#    of the concentrator's restart. Evicting for newcomers, as before, left most of them out.
STORM_LIMIT=4
STORM_BOUND=20
fleet_conc_stop
FLEET_CONC_OPTIONS="	option max_control_handshakes '$STORM_LIMIT'" fleet_conf "$COUNT" uci
if fleet_conc_start 30; then
    rm -f "$LAB_WORK/fleet.in"
    FLEET_ARGS="--retry-millis 20 --delay-millis 100" fleet_start "$COUNT" 0
    if up=$(fleet_event up 60); then
        pass "storm: $COUNT rude gateways granted a key with $STORM_LIMIT handshakes at a time ($(field seconds "$up") s)"
    else
        fail "storm: $COUNT rude gateways up with $STORM_LIMIT handshakes at a time" "$(status_value channels) channels"
    fi
    fleet_conc_stop
    fleet_conc_start 30
    if restored=$(fleet_event restored "$STORM_BOUND") && wait_for 10 channels_are "$COUNT" &&
        [[ $(status_value refused evicted) == 0 ]]; then
        pass "storm: all $COUNT hold a key again $(field seconds "$restored") s after the restart (bound $STORM_BOUND s); $(
            status_value refused max_control_handshakes) refused at accept, none evicted"
    else
        fail "storm: every gateway back within $STORM_BOUND s, none evicted" "${restored:-no restored event}" \
            "channels: $(status_value channels), evicted: $(status_value refused evicted)" \
            "$(tail -2 "$LAB_WORK/fleet.err")"
    fi
    fleet_command verify "$VERIFY_BYTES"
    if verified=$(fleet_event verified 60) && [[ $(field ok "$verified") == "$COUNT" ]]; then
        pass "storm: every gateway PUT $VERIFY_BYTES bytes through the concentrator after it, sha256 intact"
    else
        fail "storm: PUT through every gateway" "${verified:-no verified event}"
    fi
    fleet_command quit
    fleet_event done 20 >/dev/null
else
    fail "storm: concentrator with max_control_handshakes $STORM_LIMIT did not start" \
        "$(tail -5 "$LAB_WORK/concentrator.log")"
fi

finish
