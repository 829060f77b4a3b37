# braid namespace tests: the TLS lab, as an operator runs braid — both daemons with the TLS
# control channel (operator CA in $CA, the concentrator's certificate conc.braid.test, the
# gateway's cpe_1), neither with a pre-shared key. Source after lab/lab.sh and harness.sh.
#
# A suite writes the daemons' configurations with tls_conc_conf / tls_gw_conf, starts them with
# tls_start_conc / tls_start_gw and stops them with stop_pid. What differs between suites is a
# parameter: extra options of the 'main' section on stdin, the sections after it as $1, and the
# few values below as variables set for one call (`GW_CERT=cpe_off tls_gw_conf </dev/null`).
# Stdin that is not a terminal is read to its end, so a call with nothing to add redirects it from
# /dev/null (under CI it is a pipe that never ends).

CONTROL_PORT=4803
CA="$LAB_WORK/ca"
STATUS_SOCK="$LAB_WORK/gateway.sock"
CONC_SOCK="$LAB_WORK/concentrator.sock"

# The gateway's uplinks in lab/lab.sh's topology, as most suites configure them.
TLS_GW_UPLINKS="config uplink 'dsl'
	option device 'wan1'

config uplink 'lte'
	option device 'wan2'
	option gateway '198.18.2.1'

config uplink 'line2'
	option device 'wan3'
	option gateway '198.18.3.1'"

# One class and the subscriber cpe_1 in it: the concentrator's sections unless a suite has others.
TLS_CONC_SECTIONS="config class 'standard'

config subscriber 'cpe_1'
	option class 'standard'"

# The operator CA, the concentrator's certificate and cpe_1's, plus one for each NAME given.
tls_pki() { # tls_pki [NAME...]
    local name
    "$BRAID_BIN" pki init "$CA" >/dev/null && "$BRAID_BIN" pki issue "$CA" conc.braid.test --server >/dev/null &&
        "$BRAID_BIN" pki issue "$CA" cpe_1 >/dev/null || return 1
    for name; do "$BRAID_BIN" pki issue "$CA" "$name" >/dev/null || return 1; done
}

# Writes $LAB_WORK/concentrator.conf: its 'main' section with what every TLS lab needs, extra uci
# lines for that section on stdin (crl, deny_dest, metrics_listen...), then SECTIONS (default
# $TLS_CONC_SECTIONS). CONC_CERT names the certificate in $CA (default conc.braid.test); a suite
# with two concentrators sets CONC_CONF (the file) and CONC_SOCK for each, and CONC_LISTEN (default
# '::') when they share a namespace.
tls_conc_conf() { # tls_conc_conf [SECTIONS] [<<< EXTRA_MAIN_OPTIONS]
    local extra_main="" cert=${CONC_CERT:-conc.braid.test}
    # At a terminal (someone trying this by hand) there is nothing to read: reading would block.
    [[ -t 0 ]] || extra_main=$(cat)
    cat >"${CONC_CONF:-$LAB_WORK/concentrator.conf}" <<CONF
config concentrator 'main'
	option listen '${CONC_LISTEN:-::}'
	option port '$BRAID_PORT'
	option control_port '$CONTROL_PORT'
	option ca '$CA/ca.crt'
	option cert '$CA/issued/$cert.crt'
	option key '$CA/issued/$cert.key'
	option status_socket '$CONC_SOCK'
$extra_main

${1-$TLS_CONC_SECTIONS}
CONF
}

# Writes $LAB_WORK/gateway.conf: its 'main' section, extra uci lines for it on stdin, then
# SECTIONS (default $TLS_GW_UPLINKS). Variables for one call: GW_SERVER (default $CONC_ADDR) is
# the concentrator it connects to, GW_CERT (default cpe_1) and
# GW_CERT_DIR (default $CA) pick the certificate, GW_SERVER_NAME (default conc.braid.test) is the
# name it expects of the concentrator, GW_KEEPALIVE (default 1, so a dead concentrator shows
# within seconds; empty leaves the daemon's default) the control channel's keepalive.
tls_gw_conf() { # tls_gw_conf [SECTIONS] [<<< EXTRA_MAIN_OPTIONS]
    local extra_main="" cert=${GW_CERT:-cpe_1} dir=${GW_CERT_DIR:-$CA} keepalive=${GW_KEEPALIVE-1}
    [[ -t 0 ]] || extra_main=$(cat)
    [[ -n $keepalive ]] && keepalive="	option keepalive '$keepalive'"
    cat >"$LAB_WORK/gateway.conf" <<CONF
config gateway 'main'
	option server '${GW_SERVER:-$CONC_ADDR}'
	option port '$BRAID_PORT'
	option control_port '$CONTROL_PORT'
	option ca '$CA/ca.crt'
	option cert '$dir/issued/$cert.crt'
	option key '$dir/issued/$cert.key'
	option server_name '${GW_SERVER_NAME:-conc.braid.test}'
$keepalive
	option status_socket '$STATUS_SOCK'
	list lan_device 'lan0'
$extra_main

${1-$TLS_GW_UPLINKS}
CONF
}

# Stops a daemon the way an init system does: TERM, then KILL if it is still there after 5 s.
stop_pid() {
    kill -TERM "$1" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null
}

# Starts the concentrator on $LAB_WORK/concentrator.conf; waits until PORT (default the control
# port, which it opens last) listens.
tls_start_conc() { # tls_start_conc [PORT]
    ip netns exec "$NS_CONC" "$BRAID_BIN" concentrator --config "$LAB_WORK/concentrator.conf" \
        --log-level "${BRAID_LOG_LEVEL:-info}" 2>>"$LAB_WORK/concentrator.log" &
    LAB_CONC_PID=$!
    LAB_PIDS+=("$LAB_CONC_PID")
    wait_for 10 nsx "$NS_CONC" bash -c "ss -Hltn 'sport = :${1:-$CONTROL_PORT}' | grep -q LISTEN"
}

# Starts the gateway on $LAB_WORK/gateway.conf; waits for its status socket. The socket a gateway
# stopped before left behind is removed first, so the wait is for this one's.
tls_start_gw() {
    rm -f "$STATUS_SOCK"
    ip netns exec "$NS_GW" "$BRAID_BIN" gateway --config "$LAB_WORK/gateway.conf" \
        --log-level "${BRAID_LOG_LEVEL:-info}" 2>>"$LAB_WORK/gateway.log" &
    LAB_GW_PID=$!
    LAB_PIDS+=("$LAB_GW_PID")
    wait_for 10 test -S "$STATUS_SOCK"
}

# A field of the gateway's control channel status ("" when absent or unreadable): control_field FIELD
control_field() {
    nsx "$NS_GW" "$BRAID_BIN" status --json --socket "$STATUS_SOCK" 2>/dev/null |
        python3 -c '
import json, sys
v = json.load(sys.stdin)["control"].get(sys.argv[1])
print("" if v is None else v)' "$1" 2>/dev/null
}

control_up() { [[ $(control_field state) == up ]]; }
