# braid namespace tests: the lab of tests/netns/hostile.sh, shared by its sections: the TLS lab of
# tests/netns/tls-lab.sh (sourced here) with the origin's servers. Source after lab/lab.sh,
# harness.sh and uplink-helpers.sh.
#
# Both daemons run with the TLS control channel (operator CA in $CA, the gateway's certificate
# cpe_1, class 'standard'), neither with a pre-shared key. A section that changes a configuration
# writes it with hostile_conc_conf / hostile_gw_conf (or its own text into the same file) and
# calls hostile_restore before it returns. The hostile_* names of tls-lab.sh's functions stay for
# the suites that call them (soak.sh, status-page.sh, steering.sh and the sections).

source tests/netns/tls-lab.sh

HOSTILE_SIZE=${BRAID_TEST_BYTES:-20000000}

# The sections, in the order they run (each tests/netns/hostile/NAME.sh but common.sh).
hostile_sections() {
    local f names=()
    for f in tests/netns/hostile/*.sh; do
        f=${f##*/}
        [[ $f == common.sh ]] || names+=("${f%.sh}")
    done
    echo "${names[*]}"
}

# The concentrator's configuration (with the CA's revocation list, the origin's denied address);
# extra uci lines for its 'main' section on stdin, if any
# (`hostile_conc_conf <<<"	list allow_dest '198.18.21.0/24'"`), extra sections after them as $1.
hostile_conc_conf() { # hostile_conc_conf [EXTRA_SECTIONS] [<<< EXTRA_MAIN_OPTIONS]
    local extra_main=""
    [[ -t 0 ]] || extra_main=$(cat)
    tls_conc_conf "$TLS_CONC_SECTIONS
${1:-}" <<CONF
	option crl '$CA/crl.pem'
	list deny_dest '$ORIGIN_DENIED/32'
$extra_main
CONF
}

# Restarts the concentrator with extra uci lines for its 'main' section on stdin (fixed options
# take a restart, not a reload) and waits SECONDS for the gateway's control channel. If either
# fails: fails the check WHAT, puts the lab back and returns 1.
hostile_restart_conc_with() { # hostile_restart_conc_with SECONDS WHAT <<< EXTRA_MAIN_OPTIONS
    hostile_stop_pid "$LAB_CONC_PID"
    hostile_conc_conf
    hostile_start_conc && wait_for "$1" hostile_control_up && return 0
    fail "$2" "$(tail -5 "$LAB_WORK/concentrator.log")"
    hostile_stop_pid "$LAB_CONC_PID"
    hostile_restore
    return 1
}

# The gateway's configuration; extra uci lines for its 'main' section on stdin, if any.
hostile_gw_conf() { tls_gw_conf; }

hostile_stop_pid() { stop_pid "$@"; }

# Starts the concentrator on $LAB_WORK/concentrator.conf; waits until both its ports listen.
hostile_start_conc() { tls_start_conc; }

# Starts the gateway on $LAB_WORK/gateway.conf; waits for its status socket and control channel.
hostile_start_gw() { tls_start_gw && wait_for 15 control_up; }

hostile_control_up() { control_up; }

# The origin: braid-traffic.py on ORIGIN_PORT, nginx on 80 (a 20 MB file, /big), iperf3 -s on 5201.
hostile_start_origin() {
    mkdir -p "$LAB_WORK/www" && head -c "$HOSTILE_SIZE" /dev/urandom >"$LAB_WORK/www/big"
    BIG_SHA=$(sha256sum "$LAB_WORK/www/big" | cut -d' ' -f1)
    ip netns exec "$NS_ORG" python3 "$TRAFFIC" serve --port "$ORIGIN_PORT" --log "$LAB_WORK/origin.log" --lifetime 3000 &
    LAB_PIDS+=($!)
    origin_nginx 80 "listen 80;
        listen [::]:80;
        root $LAB_WORK/www;
        location /upload { client_body_in_file_only clean; return 200 \"ok\\n\"; }" "access_log off;
    client_max_body_size 100m;" 4096 || return 1
    ip netns exec "$NS_ORG" iperf3 -s -p 5201 >"$LAB_WORK/iperf3-server.log" 2>&1 &
    LAB_PIDS+=($!)
    wait_for 10 nsx "$NS_ORG" bash -c "ss -Hltn | grep -q ':$ORIGIN_PORT ' && ss -Hltn | grep -q ':80 ' && ss -Hltn | grep -q ':5201 '"
}

# PKI, configurations, the origin's servers and both daemons.
hostile_start() {
    tls_pki || return 1
    hostile_conc_conf </dev/null
    hostile_gw_conf </dev/null
    hostile_start_origin || return 1
    hostile_start_conc || return 1
    hostile_start_gw
}

# Puts the lab's configurations back and makes sure both daemons run them: a daemon that is not
# running is started; one that runs is reloaded.
hostile_restore() {
    hostile_conc_conf </dev/null
    hostile_gw_conf </dev/null
    if kill -0 "${LAB_CONC_PID:-0}" 2>/dev/null; then
        nsx "$NS_CONC" "$BRAID_BIN" reload --socket "$CONC_SOCK" >/dev/null 2>&1
    else
        hostile_start_conc
    fi
    if kill -0 "${LAB_GW_PID:-0}" 2>/dev/null; then
        nsx "$NS_GW" "$BRAID_BIN" reload --socket "$STATUS_SOCK" >/dev/null 2>&1
    else
        hostile_start_gw
    fi
    wait_for 15 hostile_control_up
}

# Downloads and uploads through the gateway with braid-traffic.py; prints the client's JSON.
lan_get() { nsx "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN4" --port "$ORIGIN_PORT" --get "$1" --timeout 60; }
lan_put() { nsx "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN4" --port "$ORIGIN_PORT" --put "$1" --timeout 60; }

intact() { # intact JSON BYTES EVENT: result ok, all bytes, sha256 as the origin logged
    [[ $(json_field result <<<"$1") == ok && $(json_field bytes <<<"$1") == "$2" &&
        $(json_field sha256 <<<"$1") == "$(origin_sha "$3")" ]]
}

# curl from the LAN host for nginx's /big; prints the sha256 of what arrived ("" on failure).
curl_big() { # curl_big [ADDRESS]
    nsx "$NS_LAN" curl -sS --max-time 60 -g "http://${1:-$ORIGIN4}/big" | sha256sum | cut -d' ' -f1
}

# The daemons the last section left are alive, and both directions work through them.
hostile_final_check() {
    local conc_alive=yes gw_alive=yes down up
    kill -0 "${LAB_CONC_PID:-0}" 2>/dev/null || conc_alive=no
    kill -0 "${LAB_GW_PID:-0}" 2>/dev/null || gw_alive=no
    down=$(lan_get "$HOSTILE_SIZE")
    up=$(lan_put "$HOSTILE_SIZE")
    if [[ $conc_alive == yes && $gw_alive == yes ]] && intact "$down" "$HOSTILE_SIZE" sent &&
        intact "$up" "$HOSTILE_SIZE" received; then
        pass "both daemons alive at the end; $((HOSTILE_SIZE / 1000000)) MB down and up, sha256 equal"
    else
        fail "both daemons alive and serving at the end" "concentrator alive: $conc_alive, gateway alive: $gw_alive" \
            "down: $down" "up: $up" "$(tail -3 "$LAB_WORK/concentrator.log")" "$(tail -3 "$LAB_WORK/gateway.log")"
    fi
}
