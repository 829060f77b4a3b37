#!/usr/bin/env bash
# braid namespace tests: the soak. Both daemons (TLS control channel, the lab of hostile.sh) carry
# a mixed churn for SOAK_SECONDS (default 120; `make soak` runs 600), then must come back to the
# descriptors, threads and memory they had before, as the same processes.
#
#   lan ── [gw: braid gateway] ══ wan1/wan2/wan3 (40/20/10 Mbit/s) ══ [inet] ── [conc] ── [origin]
#   braid-churn.py run              ▲ carrier flaps: ip link set wanN        ▲    braid-churn.py serve
#   curl --parallel, iperf3 -c      │ down/up on the gateway                 │    (resets on request),
#   sha256-checked transfers        silent outages: nft drop in inet          │    nginx, iperf3 -s,
#                                   reloads of both daemons (braid reload) ───┘    braid-traffic.py
#
# During the churn, in parallel and each bounded in time: thousands of short connections (a third
# of them reset by the client or the origin at a random point), curl against nginx, short iperf3
# runs, uplink flaps (one uplink at a time), reloads of both daemons alternating between two
# configurations, and back-to-back transfers checked by sha256 (a transfer may be cut by a flap,
# but one that completes must be intact, and half must complete); then a burst of 800 GETs and
# PUTs, so what a daemon keeps after a burst shows. The daemons' descriptors
# (/proc/PID/fd), threads and RSS (/proc/PID/status) are sampled every second; the baseline is
# taken after a warm-up so the allocator's growth on first use does not count.
#
# Before the churn, the join storm check: rate-limited curl downloads while wan2 loses its carrier
# SOAK_FLAPS times (default 8); the concentrator must then hold no connection with two subflows
# from one gateway address and must have refused (almost) no MP_JOIN (nstat MPJoinRejected).
# During the churn, refused joins stay paced: at most one for two connections.
#
# Nothing can hang: every step of every worker is bounded (timeout, --max-time, the tools' own
# limits), the workers get WORKER_GRACE seconds after the churn's end, and a watchdog bounds the
# whole run (SOAK_WATCHDOG_SECONDS); when it fires it prints each worker's current step, every
# process of the run and both daemons' state (threads, descriptors, wait channels, braid status),
# and the run fails.
#
# Prints "N passed, N failed" last; exits non-zero on any failure or missing prerequisite.
set -u
cd "$(dirname "$0")/../.."
export LAB_SUFFIX="s$$"
# A smaller nginx file and final transfer than hostile.sh: the soak's time goes to the churn.
export BRAID_TEST_BYTES=${BRAID_TEST_BYTES:-8000000}
source lab/lab.sh
source tests/netns/harness.sh
source tests/netns/uplink-helpers.sh
source tests/netns/hostile/common.sh
SOAK_SECONDS=${SOAK_SECONDS:-120}
SETTLE_SECONDS=${SOAK_SETTLE_SECONDS:-90}
CHURN="$LAB_DIR/tests/netns/braid-churn.py"
CHURN_PORT=8082
CHECKED_PORT=8081 # braid-traffic.py for the checked transfers alone, so its log matches them
SOAK="$LAB_WORK/soak"
WORKERS=()
# The whole run's bound: warm-up (about a minute), the churn, up to a minute for the workers to
# finish their last transfer, the settle wait and the final check (two transfers of 60 s at
# most) fit in it with room to spare on a loaded machine; past it the watchdog fails the run.
WATCHDOG_SECONDS=${SOAK_WATCHDOG_SECONDS:-$((SOAK_SECONDS + SETTLE_SECONDS + 420))}
# How long after the churn's end the workers may take to return (each bounds its last step).
WORKER_GRACE=60

# Interrupted, or the watchdog fired: stop the workers, then exit, which runs the harness's
# cleanup (lab_down).
soak_abort() {
    # Once: the watchdog may signal again while the cleanup runs.
    trap '' INT TERM
    touch "$SOAK/watchdog.handled"
    ((${#WORKERS[@]})) && kill "${WORKERS[@]}" 2>/dev/null
    if [[ -e $SOAK/watchdog.fired ]]; then
        cat "$SOAK/watchdog.report" 2>/dev/null
        fail "the soak finished within its watchdog's ${WATCHDOG_SECONDS} s (what still ran is above)"
        finish
    fi
    exit 1
}
trap soak_abort INT TERM

# What each part of the run is doing, for the watchdog's report: `step NAME WHAT...` writes
# "SINCE WHAT" to $SOAK/steps/NAME ("main" is the script itself, the others its workers).
step() { local name=$1; shift; echo "$EPOCHSECONDS $*" >"$SOAK/steps/$name"; }

# Every process below PID, children first (so a killed parent's children are not missed).
descendants() { # descendants PID
    local child
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        descendants "$child"
        echo "$child"
    done
}

# The daemons' state for a report: pid, threads, descriptors by kind, RSS, the threads' kernel
# wait channels, and `braid status` (bounded: a daemon that does not answer is itself the news).
daemon_report() { # daemon_report ROLE PID NS SOCKET
    echo "  $1 pid $2: $(proc_usage "$2" || echo gone) (descriptors RSS-kB threads)"
    [[ -d /proc/$2 ]] || return 0
    echo "    descriptors: $(fd_kinds "$2")"
    echo "    thread states: $(cat /proc/"$2"/task/*/stat 2>/dev/null | awk '{print $3}' | sort | uniq -c | tr -s ' \n' ' ')"
    echo "    wait channels: $(for t in /proc/"$2"/task/*; do cat "$t/wchan" 2>/dev/null; echo; done | sort | uniq -c | tr -s ' \n' ' ')"
    echo "    status: $(timeout 5 ip netns exec "$3" "$BRAID_BIN" status --json --socket "$4" 2>&1 | tr -d '\n' | cut -c1-600)"
}

# The watchdog: a timer for the whole run. When it fires it writes what was still running (each
# step not done, every process of the run with its age and command line, both daemons' state)
# to $SOAK/watchdog.report, kills the run's processes except the daemons (lab_down stops them),
# and makes the script fail through soak_abort.
watchdog() { # watchdog SCRIPT_PID
    local main=$1 deadline=$((EPOCHSECONDS + WATCHDOG_SECONDS)) f pid line i j
    while ((EPOCHSECONDS < deadline)); do
        kill -0 "$main" 2>/dev/null || return 0
        sleep 1 # the watchdog's own clock, bounded by its deadline
    done
    {
        echo "-- watchdog: the soak ran past ${WATCHDOG_SECONDS} s; still running:"
        for f in "$SOAK"/steps/*; do
            read -r since what <"$f"
            [[ $what == done ]] || echo "  ${f##*/}: $what (for $((EPOCHSECONDS - since)) s)"
        done
        for pid in $(descendants "$main"); do
            [[ $pid == "$BASHPID" ]] && continue
            line=$(ps -o etimes=,args= -p "$pid" 2>/dev/null | cut -c1-200)
            # Processes of the report itself are gone by now.
            [[ -n $line ]] && echo "  process $pid, running for (s), command:$line"
        done
        daemon_report gateway "$LAB_GW_PID" "$NS_GW" "$STATUS_SOCK"
        daemon_report concentrator "$LAB_CONC_PID" "$NS_CONC" "$CONC_SOCK"
    } >"$SOAK/watchdog.report" 2>&1
    touch "$SOAK/watchdog.fired"
    for pid in $(descendants "$main"); do
        [[ $pid == "$BASHPID" || $pid == "$LAB_GW_PID" || $pid == "$LAB_CONC_PID" ]] && continue
        # Only the run's clients and workers: the lab's servers and daemons go with lab_down.
        [[ " ${LAB_PIDS[*]} " == *" $pid "* ]] || kill -TERM "$pid" 2>/dev/null
    done
    # The script's trap stops it. Bash has been seen to drop a trap that arrived while it parsed
    # a command substitution ("unexpected EOF while looking for matching `)'"), so the signal is
    # sent again every 2 s until the trap has run; if it has not after 10 s, or the script has
    # not ended 60 s after the trap ran, the watchdog tears the lab down itself and ends it.
    for ((i = 0; i < 30; i++)); do
        kill -0 "$main" 2>/dev/null || return 0
        [[ -e $SOAK/watchdog.handled ]] || { ((i < 5)) && kill -TERM "$main" 2>/dev/null; } || break
        for ((j = 0; j < 20; j++)); do
            kill -0 "$main" 2>/dev/null || return 0
            sleep 0.1 # polling for the script's end, 2 s at a time
        done
    done
    cat "$SOAK/watchdog.report"
    echo "FAIL the soak finished within its watchdog's ${WATCHDOG_SECONDS} s (what still ran is above)"
    echo "the script did not stop on SIGTERM; the watchdog stopped it"
    kill -KILL "$main" 2>/dev/null
    lab_down
    rm -rf "$LAB_WORK"
}

# "descriptors rss_kb threads" of a process, or nothing when it is gone.
proc_usage() {
    local fds rss threads
    [[ -d /proc/$1 ]] || return 1
    fds=$(find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    read -r rss threads < <(awk '/^VmRSS:/ {r = $2} /^Threads:/ {t = $2} END {print r, t}' "/proc/$1/status")
    echo "$fds $rss $threads"
}

# What a process's descriptors are, counted by kind: "socket:12 pipe:8 anon_inode:[eventfd]:2 ...".
fd_kinds() {
    find "/proc/$1/fd" -mindepth 1 -maxdepth 1 -printf '%l\n' 2>/dev/null | sed 's/:\[[0-9]*\]$//; s|^/.*|file|' |
        sort | uniq -c | awk '{printf "%s:%s ", $2, $1}'
}

# The TCP and MPTCP sockets a daemon holds, one "state local peer" a line, ';'-separated.
daemon_sockets() { # daemon_sockets NS PID
    { nsx "$1" ss -Htanp; nsx "$1" ss -HanpM; } 2>/dev/null | grep "pid=$2," | awk '{print $1, $4, $5}' | tr '\n' ';'
}

# Back to the baseline: descriptors and RSS at most 5 % (descriptors: at least 1) above it,
# threads within 5 % (at least 1) either way. Fewer descriptors or less memory than at the
# baseline is no harm (pools the warm-up filled may have been trimmed since).
back_to_baseline() { # back_to_baseline "BASE" "NOW"
    local b n
    read -r -a b <<<"$1"
    read -r -a n <<<"$2"
    ((${#n[@]} == 3)) || return 1
    python3 - "${b[@]}" "${n[@]}" <<'EOF'
import math, sys
bf, br, bt, nf, nr, nt = map(int, sys.argv[1:])
tol = lambda base: max(1, math.ceil(base * 0.05))
sys.exit(0 if nf - bf <= tol(bf) and abs(nt - bt) <= tol(bt) and nr <= br * 1.05 else 1)
EOF
}

# The checked transfers: GETs and PUTs with braid-traffic.py and curl of nginx's file, one at a
# time until the end; one line per transfer in $SOAK/checked: "ok|cut|corrupt WHAT DETAIL".
# Each GET asks for a size of its own, so the origin's log line for it is found by its size.
checked_worker() {
    local n=0 out size sha want line
    while ((EPOCHSECONDS < SOAK_END)); do
        n=$((n + 1))
        case $((n % 3)) in
        0)
            size=$((4000000 + n))
            step checked "get $size from $ORIGIN4"
            out=$(timeout 60 ip netns exec "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN4" --port "$CHECKED_PORT" \
                --get "$size" --timeout 30)
            want=$(grep "\"bytes\": $size," "$LAB_WORK/checked.log" | grep '"sent"' | tail -1 | json_field sha256)
            transfer_outcome "$out" "$size" "$want" "get $size"
            ;;
        1)
            size=$((2000000 + n))
            step checked "put $size to $ORIGIN6"
            # A pattern payload: a corrupt upload's log line at the origin says where its wrong
            # bytes came from (its own stream shifted, another transfer, or unknown bytes).
            out=$(timeout 60 ip netns exec "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN6" --port "$CHECKED_PORT" \
                --put "$size" --pattern "$n" --timeout 30)
            # The origin answers "BYTES SHA256" of what it received.
            want=$(json_field answer <<<"$out" | awk -v s="$size" '$1 == s {print $2}')
            line=$(transfer_outcome "$out" "$size" "$want" "put $size")
            if [[ $line == corrupt* ]]; then
                line+=" origin: $(grep "\"bytes\": $size," "$LAB_WORK/checked.log" | grep '"received"' | tail -1)"
            fi
            echo "$line"
            ;;
        2)
            step checked "curl /big"
            size=$(nsx "$NS_LAN" curl -sS --max-time 30 -o "$SOAK/big" -w '%{size_download}' \
                "http://$ORIGIN4/big" 2>/dev/null) && sha=$(sha256sum <"$SOAK/big" | cut -d' ' -f1) || sha=""
            if [[ $sha == "$BIG_SHA" ]]; then
                echo "ok curl /big"
            elif [[ -n $sha ]]; then
                echo "corrupt curl /big: $size bytes, sha256 $sha, want $BIG_SHA"
            else
                echo "cut curl /big"
            fi
            ;;
        esac
    done >"$SOAK/checked"
    step checked done
}

transfer_outcome() { # transfer_outcome CLIENT_JSON BYTES WANT_SHA WHAT
    local result bytes sha
    result=$(json_field result <<<"$1")
    bytes=$(json_field bytes <<<"$1")
    sha=$(json_field sha256 <<<"$1")
    if [[ $result == ok && $bytes == "$2" && $sha == "$3" ]]; then
        echo "ok $4"
    elif [[ $result == ok ]]; then
        # An orderly end is a claim that everything arrived: a cut must show as a reset or timeout.
        echo "corrupt $4: $bytes bytes, sha256 $sha, want ${3:-nothing logged}"
    else
        echo "cut $4 $1"
    fi
}

# curl against nginx: batches of 40 requests for a 32 kB file, 8 at a time, each on a connection
# of its own, IPv4 and IPv6 in turn. $SOAK/curl: one line per request, "HTTP_CODE BYTES".
curl_worker() {
    local args i
    while ((EPOCHSECONDS < SOAK_END)); do
        step curl "curl --parallel, 40 requests"
        args=()
        for i in $(seq 20); do args+=(-o /dev/null "http://$ORIGIN4/small" -o /dev/null "http://[$ORIGIN6]/small"); done
        nsx "$NS_LAN" curl -sS -g --parallel --parallel-max 8 --max-time 20 -H 'Connection: close' \
            -w '%{http_code} %{size_download}\n' "${args[@]}" 2>/dev/null
    done >"$SOAK/curl"
    step curl done
}

# Short iperf3 runs (2 s, 2 streams, each direction in turn). $SOAK/iperf3: one exit code a line.
iperf3_worker() {
    local n=0 reverse
    while ((EPOCHSECONDS < SOAK_END - 3)); do
        n=$((n + 1))
        reverse=()
        ((n % 2)) && reverse=(-R)
        step iperf3 "iperf3 -c $ORIGIN4 ${reverse[*]}"
        timeout 15 ip netns exec "$NS_LAN" iperf3 -c "$ORIGIN4" -p 5201 -t 2 -P 2 -b 8M --connect-timeout 3000 \
            "${reverse[@]}" >/dev/null 2>&1
        echo $?
        sleep 1 # pacing, not a wait: leave the uplinks to the rest for a moment
    done >"$SOAK/iperf3"
    step iperf3 done
}

# Uplink flaps, one uplink at a time, 2-4 s each with 2-4 s between them: carrier loss on the
# gateway's side (ip link set down) or a silent outage in inet (nft drop, carrier up). Every flap
# is undone before the next starts and before the worker returns. $SOAK/flaps: "carrier|silent wanN".
flap_worker() {
    local i
    while ((EPOCHSECONDS < SOAK_END - 4)); do
        sleep $((2 + RANDOM % 3)) # pacing between flaps
        i=$((1 + RANDOM % 3))
        if ((RANDOM % 2)); then
            step flaps "carrier loss of wan$i"
            nsx "$NS_GW" ip link set "wan$i" down
            sleep $((2 + RANDOM % 3)) # the outage itself
            nsx "$NS_GW" ip link set "wan$i" up
            # Carrier loss took the main table's default route with it; a DHCP client puts it back.
            [[ $i == 1 ]] && nsx "$NS_GW" ip route replace default via 198.18.1.1 dev wan1
            echo "carrier wan$i"
        else
            step flaps "silent outage of wan$i"
            silent_cut on "$i"
            sleep $((2 + RANDOM % 3)) # the outage itself
            silent_cut off "$i"
            echo "silent wan$i"
        fi
    done >"$SOAK/flaps"
    step flaps done
}

# Reloads of both daemons every 5 s, in turn, alternating each between the lab's configuration
# and a variant (the gateway: max_subflows and probe_interval; the concentrator: one more deny_dest,
# a second class and subscriber), so each reload applies a real diff. $SOAK/reloads: "ROLE RC".
reload_worker() {
    local n=0
    while ((EPOCHSECONDS < SOAK_END - 2)); do
        sleep 5 # pacing between reloads
        n=$((n + 1))
        if ((n % 2)); then
            if (((n / 2) % 2)); then hostile_gw_conf </dev/null; else
                printf '\toption max_subflows %s\n\toption probe_interval %s\n' "'4'" "'300'" | hostile_gw_conf
            fi
            step reloads "reload of the gateway"
            # braid reload gives up after 30 s itself; timeout is the bound should it not.
            timeout 40 ip netns exec "$NS_GW" "$BRAID_BIN" reload --socket "$STATUS_SOCK" >>"$SOAK/reload.out" 2>&1
            echo "gateway $?"
        else
            if (((n / 2) % 2)); then
                printf '\tlist deny_dest %s\n' "'198.18.22.0/24'" | hostile_conc_conf "
config class 'premium'
	option rate_down '80M'

config subscriber 'cpe_2'
	option class 'premium'"
            else
                hostile_conc_conf </dev/null
            fi
            step reloads "reload of the concentrator"
            timeout 40 ip netns exec "$NS_CONC" "$BRAID_BIN" reload --socket "$CONC_SOCK" >>"$SOAK/reload.out" 2>&1
            echo "concentrator $?"
        fi
    done >"$SOAK/reloads"
    step reloads done
}

# Every second: "gw_fds gw_rss gw_threads conc_fds conc_rss conc_threads" into $SOAK/usage.
usage_sampler() {
    while ((EPOCHSECONDS < SOAK_END)); do
        echo "$(proc_usage "$LAB_GW_PID") $(proc_usage "$LAB_CONC_PID")"
        sleep 1 # the sampling period
    done >"$SOAK/usage"
    step usage done
}

count() { grep -c "$@" 2>/dev/null || true; }

# Every worker has returned.
workers_done() { local pid; for pid in "${WORKERS[@]}"; do kill -0 "$pid" 2>/dev/null && return 1; done; return 0; }

# MP_JOINs the concentrator's kernel has refused since the namespace was made (nstat, absolute).
join_rejected() { nsx "$NS_CONC" nstat -asz MPTcpExtMPJoinRejected 2>/dev/null | awk '$1 == "MPTcpExtMPJoinRejected" {print $2}' | grep . || echo 0; }

# No data connection of the gateway's is established (the control channel is on its own port).
no_data_sessions() { [[ -z $(nsx "$NS_GW" ss -Htn state established "( dport = :$BRAID_PORT )") ]]; }

# The concentrator's established subflows (data and control port), one "TOKEN PEER_ADDRESS" a line.
conc_subflows() {
    nsx "$NS_CONC" ss -HtinO state established "( sport = :$BRAID_PORT or sport = :$CONTROL_PORT )" 2>/dev/null |
        awk '{
            # "token:REMOTE(id:N)/LOCAL(id:M)": the local token names the connection here.
            peer = $4; sub(/:[0-9]+$/, "", peer); t = ""
            if (match($0, /token:[0-9a-f]+\(id:[0-9]+\)\/[0-9a-f]+/)) { t = substr($0, RSTART, RLENGTH); sub(/.*\//, "", t) }
            print t, peer
        }'
}

# Connections to which the concentrator holds more than one subflow from one gateway address: a
# subflow left over from a carrier loss, counting against the connection's limit of 8 joins.
stale_subflows() { conc_subflows | sort | uniq -d | wc -l; }
no_stale_subflows() { (($(stale_subflows) == 0)); }
wan2_subflows_at_least() { (($(subflows_from 198.18.2.2) >= $1)); }
new_wan2_subflows_at_least() { (($(new_subflows_from 198.18.2.2 "$2") >= $1)); } # N PORTS

# Polls until the gateway has logged N more withdrawals than BEFORE, for at most a second.
withdrawn_since() { # withdrawn_since BEFORE N
    local i
    for ((i = 0; i < 10; i++)); do
        (($(count 'subflow closed on a down uplink' "$LAB_WORK/gateway.log") >= $1 + $2)) && return 0
        sleep 0.1 # polling period, 10 times at most
    done
    return 1
}

# The join storm: long downloads (curl, rate-limited, of a 64 MB file from nginx) while wan2 loses its carrier
# FLAP_COUNT times; after each return every download gets a new wan2 subflow. Each flap starts with
# wan1 and wan3 silent until the gateway has withdrawn the wan2 subflows (a second at most, less
# than down_after): the one RM_ADDR each connection sends is lost, as in a full queue under load.
# Then the concentrator must hold no connection with two subflows from one gateway address and
# must have refused at most one MP_JOIN per flap. The downloads are slower than the flaps take;
# they are stopped then, and what each received (a flap may reset one) must be the file's first
# bytes, 200 kB or more (30 kB/s for the seconds a loaded machine needs for the flaps).
#
# The file is 64 MB, so that no download ends on the origin's side during the check: a slow
# reader's download runs megabytes ahead of it in the socket buffers on the way (with an 8 MB file,
# the origin had sent everything 76 s in, while curl still read), and a connection whose
# concentrator side is closing takes no new subflow (the gateway asked once, then backed off; the
# concentrator counted no MPJoinRejected). That was the flap failure of one soak in fifteen.
flap_join_check() {
    local i n=4 ports rejected0 rejected curls=() back=0 size sha bad=0 short=0 took t0=$EPOCHSECONDS withdrawals live pid
    head -c 64M /dev/urandom >"$LAB_WORK/www/long"
    rejected0=$(join_rejected)
    for ((i = 0; i < n; i++)); do
        timeout 310 ip netns exec "$NS_LAN" curl -sS --max-time 300 --limit-rate 30k -o "$SOAK/long$i" \
            "http://$ORIGIN4/long" 2>>"$SOAK/long.err" &
        curls+=($!)
    done
    wait_for 20 wan2_subflows_at_least "$n"
    for ((i = 0; i < FLAP_COUNT; i++)); do
        ports=$(subflow_ports 198.18.2.2)
        withdrawals=$(count 'subflow closed on a down uplink' "$LAB_WORK/gateway.log")
        silent_cut on 1
        silent_cut on 3
        nsx "$NS_GW" ip link set wan2 down
        withdrawn_since "$withdrawals" "$n"
        silent_cut off 1
        silent_cut off 3
        sleep 2 # the rest of the outage
        nsx "$NS_GW" ip link set wan2 up
        # Every download still running gets its subflow back (one reset by a flap is allowed).
        live=0
        for pid in "${curls[@]}"; do kill -0 "$pid" 2>/dev/null && live=$((live + 1)); done
        if wait_for 20 new_wan2_subflows_at_least "$live" "$ports"; then
            back=$((back + 1))
        else
            # What the next engineer needs to find the connection in the daemons' logs.
            echo "-- flap $i: $live downloads running, $(new_subflows_from 198.18.2.2 "$ports") new wan2 subflows 20 s" \
                "after wan2 came back ($(date -u +%T)); old wan2 ports: $(echo $ports);" \
                "gateway's subflows: $(nsx "$NS_GW" ss -HtinO "( dport = :$BRAID_PORT )" |
                    awk '{t = ""; if (match($0, /token:[0-9a-f]+/)) t = substr($0, RSTART + 6, RLENGTH - 6); print $1, $4, t}' |
                    tr '\n' ';')"
        fi
    done
    wait_for 15 no_stale_subflows
    local stale=$(stale_subflows) subflows=$(conc_subflows | wc -l)
    if ((stale > 0)); then # both ends' subflows, for the logs (BRAID_TEST_LOGS keeps $SOAK)
        { date -u +%T; nsx "$NS_CONC" ss -HtinO; echo "-- gateway"; nsx "$NS_GW" ss -HtinO; } >"$SOAK/stale-subflows.txt" 2>&1
    fi
    rejected=$(($(join_rejected) - rejected0))
    local alive=0
    for pid in "${curls[@]}"; do kill -0 "$pid" 2>/dev/null && alive=$((alive + 1)); done
    kill "${curls[@]}" 2>/dev/null
    wait "${curls[@]}" 2>/dev/null # reaps them: just stopped
    for ((i = 0; i < n; i++)); do
        size=$(stat -c %s "$SOAK/long$i" 2>/dev/null || echo 0)
        sha=$(sha256sum <"$SOAK/long$i" | cut -d' ' -f1)
        if ((size < 200000)); then
            short=$((short + 1))
        elif [[ $sha != "$(head -c "$size" "$LAB_WORK/www/long" | sha256sum | cut -d' ' -f1)" ]]; then
            bad=$((bad + 1))
        fi
    done
    took=$((EPOCHSECONDS - t0))
    echo "-- join storm check: $FLAP_COUNT carrier flaps of wan2 in ${took} s; $back times every running download had its wan2" \
        "subflow back; the concentrator then held $subflows subflows, $stale connections with a stale one, and had" \
        "refused $rejected MP_JOINs"
    if ((stale == 0 && rejected <= FLAP_COUNT && back == FLAP_COUNT)); then
        pass "after $FLAP_COUNT carrier flaps of one uplink: no stale subflow on the concentrator, $rejected MP_JOINs refused, every download's subflow back after each flap"
    else
        fail "after $FLAP_COUNT carrier flaps of one uplink: no stale subflow, at most one refused MP_JOIN a flap, subflows back" \
            "$stale connections with two subflows from one address; $rejected MP_JOINs refused; subflows back after $back of $FLAP_COUNT flaps" \
            "$(conc_subflows | sort | uniq -c | sort -rn | head -5 | tr '\n' ';')"
    fi
    if ((bad == 0 && short == 0)); then
        pass "the $n downloads during the flaps ($alive still running at the end): each received the file's first bytes, 200 kB or more, sha256 equal"
    else
        fail "the $n downloads during the flaps each received the file's first bytes (200 kB or more, sha256 equal)" \
            "$alive still running at the end, $short short, $bad with other bytes than the file's" "$(ls -l "$SOAK"/long? | tr '\n' ';')" \
            "$(tail -3 "$SOAK/long.err")"
    fi
    rm -f "$SOAK"/long? "$LAB_WORK/www/long"
}

need_braid_lab
need_cmd iperf3 curl nginx timeout nstat ps
check_prerequisites
mkdir -p "$SOAK"
lab_up shaped
hostile_start || { fail "lab start" "$(tail -5 "$LAB_WORK/concentrator.log")" "$(tail -5 "$LAB_WORK/gateway.log")"; finish; exit 1; }
head -c 32768 /dev/urandom >"$LAB_WORK/www/small"
ip netns exec "$NS_ORG" python3 "$CHURN" serve --port "$CHURN_PORT" --lifetime $((SOAK_SECONDS + 600)) &
LAB_PIDS+=($!)
ip netns exec "$NS_ORG" python3 "$TRAFFIC" serve --port "$CHECKED_PORT" --log "$LAB_WORK/checked.log" \
    --timeout 60 --lifetime $((SOAK_SECONDS + 600)) &
LAB_PIDS+=($!)
wait_for 10 nsx "$NS_ORG" bash -c "ss -Hltn | grep -q ':$CHURN_PORT ' && ss -Hltn | grep -q ':$CHECKED_PORT '" ||
    { fail "origin servers for the soak did not start"; finish; exit 1; }
GW_PID=$LAB_GW_PID
CONC_PID=$LAB_CONC_PID
mkdir -p "$SOAK/steps"
watchdog $$ &
WATCHDOG_PID=$!

FLAP_COUNT=${SOAK_FLAPS:-8}
step main "the join storm check: $FLAP_COUNT carrier flaps of wan2"
flap_join_check

# Warm-up: a short churn and a checked transfer each way, so the baseline is taken after the
# daemons' first use (allocator arenas, pipe pool, the control channel's first key). Then the
# burst the churn ends with, for the memory baseline alone: the allocator keeps what its first
# burst of 400 sessions grew it to, while the pipe pool gives back what the burst took only
# after a trim period, which the descriptor baseline must not include.
step main "warm-up: churn, then a checked transfer each way"
timeout 60 ip netns exec "$NS_LAN" python3 "$CHURN" run --connect "$ORIGIN4,$ORIGIN6" --port "$CHURN_PORT" \
    --seconds 5 --rate 50 >"$SOAK/warmup.json"
warm_down=$(lan_get 4000000)
warm_up=$(lan_put 4000000)
if intact "$warm_down" 4000000 sent && intact "$warm_up" 4000000 received; then
    pass "warm-up: $(json_field opened <"$SOAK/warmup.json") churn connections, 4 MB down and up, sha256 equal"
else
    fail "warm-up transfers" "down: $warm_down" "up: $warm_up"
fi
step main "warm-up: waiting for the data sessions to close"
wait_for 30 no_data_sessions
BASE_GW=$(proc_usage "$GW_PID")
BASE_CONC=$(proc_usage "$CONC_PID")
BASE_FDS_GW=$(fd_kinds "$GW_PID")
BASE_FDS_CONC=$(fd_kinds "$CONC_PID")
step main "warm-up: a burst of 800 for the memory baseline"
timeout 60 ip netns exec "$NS_LAN" python3 "$CHURN" run --connect "$ORIGIN4,$ORIGIN6" --port "$CHURN_PORT" \
    --seconds 2 --rate 400 --concurrency 400 --kinds get,put >/dev/null
wait_for 30 no_data_sessions
with_rss_of() { local b n; read -r -a b <<<"$1"; read -r -a n <<<"$2"; echo "${b[0]} ${n[1]} ${b[2]}"; }
BASE_GW=$(with_rss_of "$BASE_GW" "$(proc_usage "$GW_PID")")
BASE_CONC=$(with_rss_of "$BASE_CONC" "$(proc_usage "$CONC_PID")")

# The churn: every worker runs until SOAK_END and returns on its own, each step bounded in time
# (the churn tool bounds each connection by 20 s, so it ends at most 20 s after SOAK_END).
# Concentrator counters before it, for the join storm's count below.
JOIN_REJECTED_BEFORE=$(join_rejected)
SOAK_START=$EPOCHSECONDS
SOAK_END=$((EPOCHSECONDS + SOAK_SECONDS))
step churn "braid-churn.py run for $SOAK_SECONDS s"
( timeout $((SOAK_SECONDS + WORKER_GRACE)) ip netns exec "$NS_LAN" python3 "$CHURN" run \
    --connect "$ORIGIN4,$ORIGIN6" --port "$CHURN_PORT" --seconds "$SOAK_SECONDS" --rate "${SOAK_RATE:-60}" \
    --concurrency 300 >"$SOAK/churn.json"; step churn done ) &
WORKERS=($!)
for w in checked_worker curl_worker iperf3_worker flap_worker reload_worker usage_sampler; do
    "$w" &
    WORKERS+=($!)
done
step main "waiting for the workers to return"
if ! wait_for $((SOAK_SECONDS + WORKER_GRACE)) workers_done; then
    fail "every worker returned within ${WORKER_GRACE} s of the churn's end" \
        "$(for f in "$SOAK"/steps/*; do read -r since what <"$f"; [[ $what == done || ${f##*/} == main ]] ||
            echo "${f##*/}: $what (for $((EPOCHSECONDS - since)) s)"; done)"
    kill "${WORKERS[@]}" 2>/dev/null
fi
wait "${WORKERS[@]}" 2>/dev/null # reaps them: each has returned or was just killed
WORKERS=()
# A last burst of plain GETs and PUTs, up to 400 open at once: the churn may end with few
# sessions open, which would hide what a daemon keeps after a burst (pooled pipes, buffers).
step main "the last burst of 800"
timeout 60 ip netns exec "$NS_LAN" python3 "$CHURN" run --connect "$ORIGIN4,$ORIGIN6" --port "$CHURN_PORT" \
    --seconds 2 --rate 400 --concurrency 400 --kinds get,put >"$SOAK/burst.json"
CHURN_TOOK=$((EPOCHSECONDS - SOAK_START))
JOIN_REJECTED=$(($(join_rejected) - JOIN_REJECTED_BEFORE))

# What the churn did, and the peaks.
churn=$(cat "$SOAK/churn.json")
read -r opened done_ client_resets origin_resets corrupt_churn < <(python3 -c '
import json, sys
d = json.loads(sys.argv[1])
e = d["ended"]
total = lambda kinds, outcome: sum(e.get(k, {}).get(outcome, 0) for k in kinds)
print(d["opened"], total(["get", "put"], "done"), total(["reset_get", "reset_put", "reset_connect"], "client_reset"),
      total(["origin_get", "origin_put"], "reset"), d["corrupt"])' "$churn" 2>/dev/null)
burst=$(cat "$SOAK/burst.json")
burst_done=$(python3 -c 'import json, sys; e = json.loads(sys.argv[1])["ended"]
print(sum(e.get(k, {}).get("done", 0) for k in ("get", "put")))' "$burst" 2>/dev/null)
curl_ok=$(count -x '200 32768' "$SOAK/curl")
curl_all=$(wc -l <"$SOAK/curl")
iperf_ok=$(count -x 0 "$SOAK/iperf3")
iperf_all=$(wc -l <"$SOAK/iperf3")
flaps_carrier=$(count carrier "$SOAK/flaps")
flaps_silent=$(count silent "$SOAK/flaps")
reloads_ok=$(count ' 0$' "$SOAK/reloads")
reloads_all=$(wc -l <"$SOAK/reloads")
checked_ok=$(count '^ok' "$SOAK/checked")
checked_cut=$(count '^cut' "$SOAK/checked")
checked_corrupt=$(count '^corrupt' "$SOAK/checked")
checked_all=$((checked_ok + checked_cut + checked_corrupt))
PEAK_GW=$(awk '{for (i = 1; i <= 3; i++) if ($i > m[i]) m[i] = $i} END {print m[1] + 0, m[2] + 0, m[3] + 0}' "$SOAK/usage")
PEAK_CONC=$(awk '{for (i = 4; i <= 6; i++) if ($i > m[i]) m[i] = $i} END {print m[4] + 0, m[5] + 0, m[6] + 0}' "$SOAK/usage")

echo "-- churn of ${CHURN_TOOK} s: $opened connections by braid-churn.py ($done_ GET/PUT done, $client_resets reset" \
    "by the client, $origin_resets reset by the origin), $curl_ok/$curl_all curl requests, $iperf_ok/$iperf_all" \
    "iperf3 runs, $flaps_carrier carrier flaps, $flaps_silent silent outages, $reloads_ok/$reloads_all reloads;" \
    "then a burst of 800 GETs and PUTs, ${burst_done:-0} done"
BREAKS_WARNINGS=$(count 'uplink breaks MPTCP' "$LAB_WORK/gateway.log")
echo "-- the concentrator refused $JOIN_REJECTED MP_JOINs during the churn (nstat MPTcpExtMPJoinRejected)"
echo "-- warnings logged: gateway $(count ' warning ' "$LAB_WORK/gateway.log") ($BREAKS_WARNINGS 'uplink breaks MPTCP')," \
    "concentrator $(count ' warning ' "$LAB_WORK/concentrator.log")"
# Joins the concentrator refuses are paced per connection (a refusal backs off up to 32 s), so
# the churn's flaps and resets cost a few per flapped connection: about a thousand here. A gateway
# that asks again at the speed of events (a join taken and reset at once, asked for again by the
# pass its events start) reached 48,000 to 70,000, with an "uplink breaks MPTCP" warning for
# nearly every one of its two thousand reports.
if [[ -n ${opened:-} ]] && ((JOIN_REJECTED * 2 <= opened && BREAKS_WARNINGS <= 300)); then
    pass "joins paced: $JOIN_REJECTED MP_JOINs refused for $opened connections, $BREAKS_WARNINGS 'uplink breaks MPTCP' warnings"
else
    fail "joins paced: at most one refused MP_JOIN for two connections, at most 300 'uplink breaks MPTCP' warnings" \
        "$JOIN_REJECTED refused for ${opened:-?} connections; $BREAKS_WARNINGS warnings"
fi
if [[ -n ${opened:-} ]] && ((opened >= SOAK_SECONDS * 20 && corrupt_churn == 0 && done_ > 0)) &&
    [[ $(json_field corrupt <<<"$burst") == 0 ]]; then
    pass "churn: $opened short connections, $((client_resets + origin_resets)) of them reset on purpose, and a burst of 800; every PUT the origin answered had the sha256 sent"
else
    fail "churn of short connections" "braid-churn.py: $churn" "burst: $burst"
fi
# Half, not more: on a loaded 2-core machine a run may finish only three or four of them, and a
# flap or a late probe may cut one (allowed); what must never happen is a corrupt one.
if ((checked_corrupt == 0 && checked_ok * 2 >= checked_all && checked_ok > 0)); then
    pass "checked transfers: $checked_ok of $checked_all complete with sha256 equal, $checked_cut cut by a flap, none corrupt"
else
    fail "checked transfers: none corrupt and at least half complete" "$checked_ok ok, $checked_cut cut, $checked_corrupt corrupt" \
        "$(grep -v '^ok' "$SOAK/checked" | head -5)"
fi
if ((reloads_all > 0 && reloads_ok == reloads_all)); then
    pass "reloads: all $reloads_all accepted while the churn ran"
else
    fail "reloads during the churn" "$reloads_ok of $reloads_all accepted" "$(tail -4 "$SOAK/reload.out")"
fi

# Back to the lab's configuration, then wait until the daemons are back to their baseline.
step main "back to the lab's configuration"
hostile_restore
step main "waiting for the daemons to come back to their baseline"
settled=""
t0=$EPOCHSECONDS
deadline=$((EPOCHSECONDS + SETTLE_SECONDS))
while ((EPOCHSECONDS < deadline)) && kill -0 "$GW_PID" 2>/dev/null && kill -0 "$CONC_PID" 2>/dev/null; do
    END_GW=$(proc_usage "$GW_PID")
    END_CONC=$(proc_usage "$CONC_PID")
    if back_to_baseline "$BASE_GW" "$END_GW" && back_to_baseline "$BASE_CONC" "$END_CONC"; then
        settled=$((EPOCHSECONDS - t0))
        break
    fi
    sleep 1 # polling period, bounded by the deadline
done
for role in gateway concentrator; do
    if [[ $role == gateway ]]; then
        b=$BASE_GW p=$PEAK_GW e=$END_GW pid=$GW_PID fds=$BASE_FDS_GW ns=$NS_GW
    else
        b=$BASE_CONC p=$PEAK_CONC e=$END_CONC pid=$CONC_PID fds=$BASE_FDS_CONC ns=$NS_CONC
    fi
    line="(descriptors RSS-kB threads) baseline $b, peak $p, end $e"
    if back_to_baseline "$b" "$e"; then
        pass "$role: descriptors, threads and memory back within 5 % of the baseline ${settled}s after the churn $line"
    else
        fail "$role: descriptors, threads and memory back within 5 % of the baseline within ${SETTLE_SECONDS} s" "$line" \
            "descriptors at the baseline: $fds" "descriptors now: $(fd_kinds "$pid")" \
            "sockets now: $(daemon_sockets "$ns" "$pid")"
    fi
done

if [[ $LAB_GW_PID == "$GW_PID" && $LAB_CONC_PID == "$CONC_PID" ]] && kill -0 "$GW_PID" 2>/dev/null &&
    kill -0 "$CONC_PID" 2>/dev/null; then
    pass "neither daemon restarted: gateway pid $GW_PID, concentrator pid $CONC_PID"
else
    fail "neither daemon restarted" "gateway $GW_PID now ${LAB_GW_PID:-}, concentrator $CONC_PID now ${LAB_CONC_PID:-}" \
        "$(tail -3 "$LAB_WORK/gateway.log")" "$(tail -3 "$LAB_WORK/concentrator.log")"
fi
step main "the final check: a checked transfer each way"
hostile_final_check
step main done
kill "$WATCHDOG_PID" 2>/dev/null
if [[ -n ${BRAID_TEST_LOGS:-} ]]; then mkdir -p "$BRAID_TEST_LOGS" && cp -r "$SOAK" "$BRAID_TEST_LOGS"/; fi
finish
