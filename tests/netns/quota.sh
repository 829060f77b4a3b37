#!/usr/bin/env bash
# braid namespace tests: an uplink's data cap (`option quota`), topology in lab/lab.sh (shaped):
#
#   lan ── [gw: braid gateway] ══ wan1 dsl  40 Mbit/s, active ═════ [inet] ── [conc] 198.18.10.2
#   curl                        ══ wan2 lte  20 Mbit/s, active, quota 3M/day  └── [origin] nginx
#                               ══ wan3 line2 10 Mbit/s, active
#
# Both daemons run under Debian's libfaketime (LD_PRELOAD) with one timestamp file, so the suite
# moves their wall clock together (the Convert MAC's timestamp must agree) without a hook in the
# daemon; monotonic time, which timers use, is left alone. Checked, each download's sha256
# against the file's: the cap reached in the middle of a bonded download turns lte `backup` (the
# status document says reached, role backup) with the download intact, and lte carries almost
# nothing of the rest; a clean restart and a kill -9 both start over the cap (the count after a
# kill is not below the count before it: the device's counter fills the gap since the last
# write); a reload raising the cap brings lte back and one lowering it sends it away again; the
# clock moved past midnight (the period's end) clears the cap, lte is active again and carries
# its part of a download. About 60 s.
# Prints "N passed, N failed" last; exits non-zero on any failure or missing prerequisite.
set -u
cd "$(dirname "$0")/../.."
export LAB_SUFFIX="q$$"
source lab/lab.sh
source tests/netns/harness.sh

FAKETIME_LIB=$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -1)
need_braid_lab
need_cmd nginx curl sha256sum
need "libfaketime (Debian package faketime)" test -n "$FAKETIME_LIB"
check_prerequisites

CAP=3000000
STATUS_SOCK="$LAB_WORK/gateway.sock"
STATE_DIR="$LAB_WORK/state"
CLOCK="$LAB_WORK/faketime"
echo "+0" >"$CLOCK"
# What both daemons run under: the faked wall clock (re-read each second), real monotonic time,
# and UTC as local time, so the daily period ends at 00:00 UTC. FAKETIME_SHARED names shared
# memory that does not exist: without it, libfaketime's constructor calls setenv() to publish its
# own, which moves `environ`, and the Swift runtime, which finds argv next to the original
# environment, then sees no arguments at all (each process keeps its own fake clock state; the
# timestamp file is what both follow).
FAKED=(env LD_PRELOAD="$FAKETIME_LIB" FAKETIME_SHARED="/braid_quota_nosem /braid_quota_noshm"
    FAKETIME_TIMESTAMP_FILE="$CLOCK" FAKETIME_CACHE_DURATION=1 FAKETIME_DONT_FAKE_MONOTONIC=1 TZ=UTC)

quota_lab_up() {
    mkdir -p "$LAB_WORK/www"
    head -c 30000000 /dev/urandom >"$LAB_WORK/www/big"
    BIG_SHA=$(sha256sum "$LAB_WORK/www/big" | cut -d' ' -f1)
    origin_nginx 80 "listen 80; root $LAB_WORK/www;" "" 64
}

# The lab's gateway configuration with a status socket, a state directory and lte capped at
# QUOTA bytes a day.
gateway_conf() { # gateway_conf QUOTA
    sed -i "/option status_socket/d; /option state_dir/d; /option quota/d" "$LAB_WORK/gateway.conf"
    local head="config gateway 'main'\n\toption status_socket '$STATUS_SOCK'\n\toption state_dir '$STATE_DIR'"
    sed -i "s|^config gateway 'main'|$head|" "$LAB_WORK/gateway.conf"
    local lte="config uplink 'lte'\n\toption quota '$1'\n\toption quota_period 'day'"
    sed -i "s|^config uplink 'lte'|$lte|" "$LAB_WORK/gateway.conf"
}

start_concentrator() {
    ip netns exec "$NS_CONC" "${FAKED[@]}" "$BRAID_BIN" concentrator --config "$LAB_WORK/concentrator.conf" \
        --log-level "${BRAID_LOG_LEVEL:-info}" 2>>"$LAB_WORK/concentrator.log" &
    LAB_PIDS+=($!)
    LAB_CONC_PID=$!
    wait_for 10 nsx "$NS_CONC" bash -c "ss -Hltn 'sport = :$BRAID_PORT' | grep -q LISTEN"
}

start_gateway() {
    rm -f "$STATUS_SOCK"
    ip netns exec "$NS_GW" "${FAKED[@]}" "$BRAID_BIN" gateway --config "$LAB_WORK/gateway.conf" \
        --log-level "${BRAID_LOG_LEVEL:-info}" 2>>"$LAB_WORK/gateway.log" &
    LAB_PIDS+=($!)
    LAB_GW_PID=$!
    # Out of the job table, so bash does not report the kill -9 below (lab_down stops it by pid).
    disown "$LAB_GW_PID"
    wait_for 10 test -S "$STATUS_SOCK" && wait_for 10 status_ok
}

stop_gateway() { # stop_gateway SIGNAL
    kill "-$1" "$LAB_GW_PID"
    wait_for 10 bash -c "! kill -0 $LAB_GW_PID"
    # libfaketime removes its shared memory at exit; a killed daemon leaves it, named by its pid.
    rm -f "/dev/shm/faketime_shm_$LAB_GW_PID" "/dev/shm/sem.faketime_sem_$LAB_GW_PID"
}

status_ok() { nsx "$NS_GW" "$BRAID_BIN" status --socket "$STATUS_SOCK" --json >/dev/null; }

# A field of lte in the status document: lte role, lte quota.used, ...
lte() {
    nsx "$NS_GW" "$BRAID_BIN" status --socket "$STATUS_SOCK" --json 2>/dev/null | python3 -c '
import json, sys
u = next(u for u in json.load(sys.stdin)["uplinks"] if u["name"] == "lte")
for k in sys.argv[1].split("."):
    u = u.get(k) if isinstance(u, dict) else None
print("" if u is None else u)' "$1"
}

lte_is() { [[ $(lte quota.state) == "$1" && $(lte role) == "$2" ]]; }

# Bytes wan2 (lte) carried, both ways, from its device counters.
wan2_bytes() {
    echo $(($(nsx "$NS_GW" cat /sys/class/net/wan2/statistics/tx_bytes) + \
        $(nsx "$NS_GW" cat /sys/class/net/wan2/statistics/rx_bytes)))
}

# Downloads /big from the LAN host (bonded) into FILE in the background; sets DOWNLOAD_PID.
download() { # download FILE
    nsx "$NS_LAN" curl -sS --max-time 60 -o "$1" "http://$ORIGIN4/big" 2>"$1.err" &
    DOWNLOAD_PID=$!
}

# Waits for the download and checks what arrived.
download_intact() { # download_intact LABEL FILE
    wait "$DOWNLOAD_PID"
    local rc=$? sha
    sha=$(sha256sum "$2" 2>/dev/null | cut -d' ' -f1)
    if [[ $rc == 0 && $sha == "$BIG_SHA" ]]; then
        pass "$1"
    else
        fail "$1" "curl rc $rc: $(cat "$2.err"), sha256 ${sha:0:12} (want ${BIG_SHA:0:12})"
    fi
}

lab_up shaped
quota_lab_up
lab_start || { fail "lab start"; finish; exit 1; }
kill -TERM "$LAB_GW_PID" "$LAB_CONC_PID"
wait_for 10 bash -c "! kill -0 $LAB_GW_PID && ! kill -0 $LAB_CONC_PID"
gateway_conf "$CAP"
if ! nsx "$NS_GW" "$BRAID_BIN" check --config "$LAB_WORK/gateway.conf" >"$LAB_WORK/check.out" 2>&1; then
    fail "braid check accepts the cap" "$(cat "$LAB_WORK/check.out")"
fi
start_concentrator || {
    fail "concentrator start under faketime" "$(tail -5 "$LAB_WORK/concentrator.log")"; finish; exit 1; }
start_gateway || { fail "gateway start under faketime" "$(tail -5 "$LAB_WORK/gateway.log")"; finish; exit 1; }

# 1. Under the cap: lte active, its quota in the status document.
if wait_for 5 lte_is ok active && [[ $(lte quota.cap) == "$CAP" && $(lte quota.period) == day ]]; then
    pass "status shows lte's cap: ok, active, cap $CAP a day"
else
    fail "status shows lte's cap" "$(nsx "$NS_GW" "$BRAID_BIN" status --socket "$STATUS_SOCK" --json)"
fi

# 2. The cap reached in the middle of a download: lte turns backup, the download ends intact.
download "$LAB_WORK/got1"
at_cap=""
if wait_for 20 lte_is reached backup; then
    if kill -0 "$DOWNLOAD_PID" 2>/dev/null; then
        at_cap=$(wan2_bytes)
        pass "cap reached mid-download: lte reached, role backup (used $(lte quota.used))"
    else
        fail "cap reached mid-download" "the download had ended before the cap was seen"
    fi
else
    fail "cap reached mid-download: lte reached, role backup" "state $(lte quota.state), role $(lte role)"
fi
download_intact "download across the cap intact (sha256)" "$LAB_WORK/got1"
# The rest of the download (most of 30 MB) went over dsl and line2; lte kept its probes, ACKs and
# what was in flight when its subflow turned backup.
if [[ -z $at_cap ]]; then
    fail "lte carries little of the rest after its cap" "not measured: lte did not turn backup mid-download"
elif after=$(($(wan2_bytes) - at_cap)); ((after < 1500000)); then
    pass "lte carried $after bytes of the rest (backup)"
else
    fail "lte carried $after bytes after its cap (want under 1.5 MB)"
fi
table=$(nsx "$NS_GW" "$BRAID_BIN" status --socket "$STATUS_SOCK")
if grep -q "^lte: quota .* of 3.0 MB this day, resets on .*; reached: backup until then" <<<"$table"; then
    pass "braid status table: lte's quota line says reached"
else
    fail "braid status table: lte's quota line" "$table"
fi

# 3. Restarts: a clean stop writes the count; a kill -9 loses none of it (the device counter
#    saved with the count covers the gap since the last write).
used=$(lte quota.used)
stop_gateway TERM
start_gateway || fail "gateway restart" "$(tail -5 "$LAB_WORK/gateway.log")"
if lte_is reached backup && (($(lte quota.used) >= used)); then
    pass "after a restart: still reached, backup (used $(lte quota.used) >= $used)"
else
    fail "after a restart: still reached" "state $(lte quota.state), role $(lte role), used $(lte quota.used) < $used?"
fi
used=$(lte quota.used)
stop_gateway KILL
start_gateway || fail "gateway start after kill -9" "$(tail -5 "$LAB_WORK/gateway.log")"
if lte_is reached backup && (($(lte quota.used) >= used)); then
    pass "after kill -9: still reached, backup (used $(lte quota.used) >= $used)"
else
    fail "after kill -9: still reached" "state $(lte quota.state), role $(lte role), used $(lte quota.used) < $used?"
fi

# 4. A reload: a cap above the count brings lte back; one below sends it away again.
gateway_conf 1G
nsx "$NS_GW" "$BRAID_BIN" reload --socket "$STATUS_SOCK" >"$LAB_WORK/reload.out" 2>&1
if wait_for 5 lte_is ok active; then
    pass "reload raising the cap: lte ok, active"
else
    fail "reload raising the cap" "$(cat "$LAB_WORK/reload.out"), state $(lte quota.state), role $(lte role)"
fi
gateway_conf "$CAP"
nsx "$NS_GW" "$BRAID_BIN" reload --socket "$STATUS_SOCK" >"$LAB_WORK/reload.out" 2>&1
if wait_for 5 lte_is reached backup; then
    pass "reload lowering the cap: lte reached, backup"
else
    fail "reload lowering the cap" "$(cat "$LAB_WORK/reload.out"), state $(lte quota.state), role $(lte role)"
fi

# 5. The period's end: both daemons' clocks move to 5 s past the next midnight (UTC).
resets_on=$(lte quota.resets_on)
resets_at=$(lte quota.resets_at)
offset=$((resets_at + 5 - $(date +%s)))
echo "+$offset" >"$CLOCK"
if wait_for 10 lte_is ok active && (($(lte quota.used) < CAP)) && [[ $(lte quota.resets_on) > $resets_on ]]; then
    pass "clock past $resets_on 00:00: cap cleared, lte active, resets on $(lte quota.resets_on)"
else
    fail "clock past the period's end" "state $(lte quota.state), role $(lte role), used $(lte quota.used)," \
        "resets on $(lte quota.resets_on) (was $resets_on)"
fi
before=$(wan2_bytes)
download "$LAB_WORK/got2"
download_intact "download after the period's end intact (sha256)" "$LAB_WORK/got2"
carried=$(($(wan2_bytes) - before))
# lte (20 of 70 Mbit/s) carries its part again; over 3 MB of 30 MB, or it was not back.
if ((carried > 3000000)); then
    pass "lte carries its part again: $carried bytes"
else
    fail "lte carries its part again" "only $carried bytes"
fi

finish
