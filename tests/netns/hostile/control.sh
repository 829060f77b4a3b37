# hostile.sh section: abuse of the concentrator's TLS control port from the internet.
#
#   [inet] lo: 198.18.30.1-4, 2001:db8:30:1-4::1 ──► [conc] :4803 (TLS control port)
#     stall    40 half-sent ClientHellos from each of 8 sources, held 9 s
#     garbage  1000 plaintext connections, each refused as not TLS
#     pinger   a subscriber (cpe_2, a real certificate) that pings and never reads the pongs
#   [conc] flooder in place of the concentrator: pings the gateway, never reads the pongs
#
# While the handshakes stall, the real gateway restarts and gets its control channel back, and a
# download through it is sha256-checked. Defaults: max_control_handshakes_per_source 16.

CONTROL_ABUSE="tests/netns/hostile/control-abuse.py"
CONTROL_SOURCES4=(198.18.30.1 198.18.30.2 198.18.30.3 198.18.30.4)
CONTROL_SOURCES6=(2001:db8:30:1::1 2001:db8:30:2::1 2001:db8:30:3::1 2001:db8:30:4::1)
CONTROL_PER_SOURCE_LIMIT=16

# SOURCE=TARGET pairs for control-abuse.py: IPv4 sources to the concentrator's IPv4 address,
# IPv6 sources (each its own /64) to its IPv6 address.
control_pairs() {
    local a pairs=()
    for a in "${CONTROL_SOURCES4[@]}"; do pairs+=("$a=$CONC_ADDR"); done
    for a in "${CONTROL_SOURCES6[@]}"; do pairs+=("$a=2001:db8:10::2"); done
    local IFS=,
    echo "${pairs[*]}"
}

control_sources() { # control_sources add|del
    local a
    for a in "${CONTROL_SOURCES4[@]}"; do nsx "$NS_INET" ip addr "$1" "$a/32" dev lo; done
    for a in "${CONTROL_SOURCES6[@]}"; do nsx "$NS_INET" ip addr "$1" "$a/128" dev lo nodad 2>/dev/null ||
        nsx "$NS_INET" ip addr "$1" "$a/128" dev lo; done
}

conc_fds() { ls "/proc/$LAB_CONC_PID/fd" 2>/dev/null | wc -l; }

# Log lines the concentrator wrote after byte OFFSET that contain TEXT.
conc_log_since() { tail -c "+$(($1 + 1))" "$LAB_WORK/concentrator.log" | grep -c -- "$2"; }

# (a) Stalled handshakes from several sources: the concentrator closes those over the per-source
# limit at accept, its descriptors stay bounded, and the real gateway reconnects and carries data.
control_stalled_handshakes() {
    local ready="$LAB_WORK/stall.ready" out="$LAB_WORK/stall.json" base pid sources=8 per=40
    local held closed max_fds up=no sha=""
    rm -f "$ready"
    base=$(conc_fds)
    nsx "$NS_INET" python3 "$CONTROL_ABUSE" stall --sources "$(control_pairs)" --port "$CONTROL_PORT" \
        --per-source "$per" --hold 9 --pid "$LAB_CONC_PID" --ready "$ready" >"$out" &
    pid=$!
    wait_for 20 test -s "$ready"
    # During the flood: the gateway starts again, so its control channel needs a new handshake.
    hostile_stop_pid "$LAB_GW_PID"
    hostile_start_gw && up=yes
    sha=$(curl_big)
    wait_for 30 bash -c "! kill -0 $pid"
    wait "$pid"
    held=$(json_field held_open <"$out")
    closed=$(json_field closed_at_accept <"$out")
    max_fds=$(json_field max_fds <"$out")
    echo "     stall: $(cat "$out"); descriptors before: $base"
    local allowed=$((sources * CONTROL_PER_SOURCE_LIMIT))
    if [[ -n $held ]] && ((held <= allowed && closed >= sources * per - allowed)); then
        pass "control port: $((sources * per)) stalled handshakes from $sources sources; $closed closed at accept, $held held (limit $allowed)"
    else
        fail "control port: stalled handshakes over the per-source limit are closed at accept" \
            "held open $held (want <= $allowed), closed at accept $closed (want >= $((sources * per - allowed)))"
    fi
    if [[ -n $max_fds ]] && ((max_fds - base <= allowed + 8)); then
        pass "control port: descriptors bounded during the flood ($base before, $max_fds at most)"
    else
        fail "control port: descriptors bounded during the flood" "$base before, $max_fds at most (want <= $((base + allowed + 8)))"
    fi
    if [[ $up == yes && $sha == "$BIG_SHA" ]]; then
        pass "control port: during the flood the gateway's control channel came back and curl's download has the sha256 sent"
    else
        fail "control port: gateway reconnects and carries data during the flood" "control up: $up, sha256 '$sha'" \
            "$(tail -3 "$LAB_WORK/gateway.log")"
    fi
}

# (b) A flood of refused handshakes is a summary in the log, not a line per connection.
control_refusal_summary() {
    local offset count=1000 out lines per_connection refused
    offset=$(stat -c %s "$LAB_WORK/concentrator.log")
    out=$(nsx "$NS_INET" python3 "$CONTROL_ABUSE" garbage --sources "$(control_pairs)" --port "$CONTROL_PORT" \
        --count "$count" --timeout 60)
    echo "     garbage: $out"
    # The summary comes within its 10 s interval.
    wait_for 15 bash -c "tail -c +$((offset + 1)) '$LAB_WORK/concentrator.log' | grep -q 'control connections refused'"
    lines=$(conc_log_since "$offset" "control connections refused")
    per_connection=$(conc_log_since "$offset" "TLS refused")
    refused=$(tail -c "+$((offset + 1))" "$LAB_WORK/concentrator.log" | grep "control connections refused" |
        grep -o 'refused=[0-9]*' | cut -d= -f2 | awk '{ s += $1 } END { print s + 0 }')
    if [[ $(json_field closed_by_server <<<"$out") == "$count" ]] && ((per_connection == 0 && lines >= 1 && lines <= 3 &&
        ${refused:-0} >= count)); then
        pass "control port: $count refused handshakes logged as $lines summary line(s) counting $refused, no line per connection"
    else
        fail "control port: refused handshakes are summarised in the log" \
            "closed by the server: $(json_field closed_by_server <<<"$out") of $count" \
            "per-connection lines: $per_connection (want 0), summary lines: $lines (want 1-3) counting ${refused:-0} (want >= $count)"
    fi
}

# (c) A subscriber that pings without reading the pongs is disconnected; the concentrator's RSS
# stays bounded and the disconnection is logged once. The concentrator runs with one handshake
# slot: the gateway's channel and then the pinger's can only both come up if a finished handshake
# gives its slot back.
control_pinger() {
    local offset out growth logged limit_kib=32768
    [[ -f $CA/issued/cpe_2.crt ]] || "$BRAID_BIN" pki issue "$CA" cpe_2 >/dev/null
    hostile_conc_conf "config subscriber 'cpe_2'
	option class 'standard'" <<<"	option max_control_handshakes '1'"
    hostile_stop_pid "$LAB_CONC_PID"
    hostile_start_conc
    wait_for 45 control_key_granted_by_real_concentrator ||
        fail "control port: the gateway back after a restart with max_control_handshakes 1" "$(tail -3 "$LAB_WORK/gateway.log")"
    offset=$(stat -c %s "$LAB_WORK/concentrator.log")
    out=$(nsx "$NS_INET" timeout 90 python3 "$CONTROL_ABUSE" pinger --target "$CONC_ADDR" --port "$CONTROL_PORT" \
        --ca "$CA/ca.crt" --cert "$CA/issued/cpe_2.crt" --key "$CA/issued/cpe_2.key" --server-name conc.braid.test \
        --pid "$LAB_CONC_PID" --max-bytes 40000000 --timeout 60)
    echo "     pinger: $out"
    growth=$(json_field rss_growth_kib <<<"$out")
    wait_for 5 bash -c "tail -c +$((offset + 1)) '$LAB_WORK/concentrator.log' | grep -q 'does not read'"
    logged=$(conc_log_since "$offset" "does not read")
    if [[ $(json_field disconnected <<<"$out") == True && -n $growth ]] && ((growth < limit_kib && logged == 1)); then
        pass "control port: a subscriber that never reads its pongs is disconnected (logged once); RSS grew $((growth / 1024)) MiB"
    else
        fail "control port: a subscriber that never reads is disconnected, RSS bounded, logged once" \
            "$(json_field result <<<"$out"), RSS growth ${growth:-?} KiB (want < $limit_kib), log lines: $logged (want 1)"
    fi
}

# (d) The mirror: a concentrator (a real server certificate, stolen or broken) that pings the
# gateway and never reads the pongs gets disconnected, and the gateway's RSS stays bounded.
control_hostile_concentrator() {
    local ready="$LAB_WORK/flooder.ready" out="$LAB_WORK/flooder.json" pid growth limit_kib=32768
    rm -f "$ready"
    hostile_stop_pid "$LAB_CONC_PID"
    nsx "$NS_CONC" timeout 120 python3 "$CONTROL_ABUSE" flooder --listen 0.0.0.0 --port "$CONTROL_PORT" \
        --ca "$CA/ca.crt" --cert "$CA/issued/conc.braid.test.crt" --key "$CA/issued/conc.braid.test.key" \
        --pid "$LAB_GW_PID" --ready "$ready" --max-bytes 40000000 --timeout 60 >"$out" &
    pid=$!
    wait_for 10 test -s "$ready"
    wait_for 100 bash -c "! kill -0 $pid"
    wait "$pid"
    echo "     flooder: $(cat "$out")"
    growth=$(json_field rss_growth_kib <"$out")
    if [[ $(json_field disconnected <"$out") == True && -n $growth ]] && ((growth < limit_kib)); then
        pass "control port: a concentrator that never reads its pongs is dropped by the gateway; RSS grew $((growth / 1024)) MiB"
    else
        fail "control port: the gateway drops a concentrator that never reads, RSS bounded" \
            "$(json_field result <"$out"), RSS growth ${growth:-?} KiB (want < $limit_kib)"
    fi
    # The real concentrator again, with the lab's configuration; the gateway keeps the flooder's
    # key (7) until it has a real one.
    hostile_conc_conf </dev/null
    hostile_start_conc
    wait_for 45 control_key_granted_by_real_concentrator ||
        fail "control port: the gateway back on the real concentrator after the flooder" "$(tail -3 "$LAB_WORK/gateway.log")"
}

control_key_granted_by_real_concentrator() {
    nsx "$NS_GW" "$BRAID_BIN" status --json --socket "$STATUS_SOCK" 2>/dev/null | python3 -c '
import json, sys
c = json.load(sys.stdin)["control"]
sys.exit(0 if c["state"] == "up" and c["key"] not in (None, 7) else 1)'
}

section_control() {
    control_sources add
    control_stalled_handshakes
    control_refusal_summary
    control_pinger
    control_hostile_concentrator
    control_sources del
    hostile_restore
}
