# braid fleet lab: one concentrator and a simulated fleet of gateways (`braid-lab fleet`), shared by
# bench/fleet.sh (make bench-fleet) and tests/netns/fleet.sh. Source after lab/lab.sh (for nsx,
# wait_for, lab_log, LAB_WORK, LAB_SUFFIX); it defines functions only.
#
#   [ fleet ] fleet0 198.18.100.1 ───────── eth0 198.18.100.2 [ fconc ]
#     braid-lab fleet: gateway i from 198.18.128.0 + i - 1         braid concentrator
#       (198.18.128.0/17 is one AnyIP local route: no address each)  data 4800, control 4803
#     braid-lab serve (origin) on 198.18.102.2:8080                  default route via fleet0
#     PostgreSQL (optional) on a private socket in FLEET_PG_DIR
#
# Only 198.18.0.0/15, inside the two namespaces made here. Every gateway has its own source
# address, as a real fleet has, so the control port's per-source handshake limit sees what it
# would see in the field.

NS_FLEET="braid-fleet-$LAB_SUFFIX"
NS_FCONC="braid-fconc-$LAB_SUFFIX"
FLEET_CONC=198.18.100.2
FLEET_SOURCE=198.18.128.0
FLEET_ORIGIN=198.18.102.2
FLEET_ORIGIN_PORT=8080
FLEET_DATA_PORT=4800
FLEET_CONTROL_PORT=4803
FLEET_SERVER_NAME=conc.fleet.test
FLEET_PREFIX=fleet_
FLEET_CA="$LAB_WORK/ca"
FLEET_CONF="$LAB_WORK/concentrator.conf"
FLEET_SOCK="$LAB_WORK/concentrator.sock"
FLEET_PG_BIN=/usr/lib/postgresql/15/bin
FLEET_PG_DIR=""
FLEET_PG_PASSWORD="braid-fleet-$RANDOM-$RANDOM"
FLEET_CONC_PID=""
FLEET_PIDS=()

fleet_up() {
    local ns
    for ns in "$NS_FLEET" "$NS_FCONC"; do
        ip netns add "$ns" || return 1
        nsx "$ns" ip link set lo up
        # Thousands of connections each way: the backlog of a listener takes a storm of SYNs.
        nsx "$ns" sysctl -qw net.core.somaxconn=8192 net.ipv4.tcp_max_syn_backlog=8192 \
            net.ipv4.ip_local_port_range="1024 65000"
    done
    ip link add fleet0 netns "$NS_FLEET" type veth peer name eth0 netns "$NS_FCONC" || return 1
    nsx "$NS_FLEET" ip link set fleet0 up
    nsx "$NS_FCONC" ip link set eth0 up
    nsx "$NS_FLEET" ip addr add 198.18.100.1/24 dev fleet0
    nsx "$NS_FCONC" ip addr add "$FLEET_CONC/24" dev eth0
    nsx "$NS_FCONC" ip route add default via 198.18.100.1
    # AnyIP: every address of the /17 is local, so each simulated gateway binds its own.
    nsx "$NS_FLEET" ip route add local 198.18.128.0/17 dev lo
    nsx "$NS_FLEET" ip addr add "$FLEET_ORIGIN/32" dev lo
}

fleet_down() {
    local pid
    for pid in "${FLEET_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${FLEET_PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
    done
    FLEET_PIDS=()
    fleet_pg_stop 2>/dev/null
    [[ -n $FLEET_PG_DIR ]] && rm -rf "$FLEET_PG_DIR"
    for ns in "$NS_FLEET" "$NS_FCONC"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
        ip netns del "$ns" 2>/dev/null
    done
}

# The operator CA, the concentrator's certificate and N gateways' (fleet_1 ... fleet_N), issued
# by `braid pki issue` as an operator would: batches of names per run (a process each costs more
# than the certificate), four runs at once (each certificate waits for its fsyncs; the CA's lock
# keeps the index whole). Prints the seconds it took.
fleet_pki() { # fleet_pki N
    local t0=$EPOCHREALTIME
    "$BRAID_BIN" pki init "$FLEET_CA" >/dev/null &&
        "$BRAID_BIN" pki issue "$FLEET_CA" "$FLEET_SERVER_NAME" --server >/dev/null || return 1
    seq -f "$FLEET_PREFIX%g" 1 "$1" | xargs -n 250 -P 4 "$BRAID_BIN" pki issue "$FLEET_CA" >/dev/null || return 1
    [[ $(ls "$FLEET_CA/issued" | grep -c "^$FLEET_PREFIX.*\.crt$") == "$1" ]] || return 1
    python3 -c "print(round($EPOCHREALTIME - $t0, 1))"
}

# The concentrator's configuration; with STORE a PostgreSQL URL, subscribers live there.
fleet_conf() { # fleet_conf N [uci|postgresql]
    cat >"$FLEET_CONF" <<CONF
config concentrator 'main'
	option listen '$FLEET_CONC'
	option port '$FLEET_DATA_PORT'
	option control_port '$FLEET_CONTROL_PORT'
	option ca '$FLEET_CA/ca.crt'
	option cert '$FLEET_CA/issued/$FLEET_SERVER_NAME.crt'
	option key '$FLEET_CA/issued/$FLEET_SERVER_NAME.key'
	option status_socket '$FLEET_SOCK'
CONF
    # Options of a test's own (tab-indented lines), e.g. a small max_control_handshakes.
    [[ -n ${FLEET_CONC_OPTIONS:-} ]] && printf '%s\n' "$FLEET_CONC_OPTIONS" >>"$FLEET_CONF"
    if [[ ${2:-uci} == postgresql ]]; then
        printf '%s\n' "$FLEET_PG_PASSWORD" >"$LAB_WORK/store-password"
        chmod 600 "$LAB_WORK/store-password"
        cat >>"$FLEET_CONF" <<CONF
	option store 'postgresql://braid@/braid?host=$FLEET_PG_DIR/sock&sslmode=disable'
	option store_password_file '$LAB_WORK/store-password'
CONF
        return
    fi
    printf "\nconfig class 'standard'\n\toption max_sessions '64'\n" >>"$FLEET_CONF"
    local i
    for ((i = 1; i <= $1; i++)); do
        printf "\nconfig subscriber '%s%d'\n\toption class 'standard'\n" "$FLEET_PREFIX" "$i"
    done >>"$FLEET_CONF"
}

# PostgreSQL 15 (Debian's) on a private socket, as tests/netns/store.sh starts it, with the
# schema (`braid store init`) and N subscribers: the class through `braid class add`, the
# subscribers with one INSERT (a provisioning system's bulk load; `braid subscriber add` is one
# process and one connection each).
fleet_pg_up() { # fleet_pg_up N
    FLEET_PG_DIR=$(mktemp -d /tmp/braid-fleet-pg.XXXXXX)
    chown postgres: "$FLEET_PG_DIR" && chmod 711 "$FLEET_PG_DIR" && mkdir -m 755 "$FLEET_PG_DIR/sock" &&
        chown postgres: "$FLEET_PG_DIR/sock" && printf '%s\n' "$FLEET_PG_PASSWORD" >"$FLEET_PG_DIR/pw" &&
        chown postgres: "$FLEET_PG_DIR/pw" &&
        runuser -u postgres -- "$FLEET_PG_BIN/initdb" -D "$FLEET_PG_DIR/data" -U braid --pwfile="$FLEET_PG_DIR/pw" \
            --auth=scram-sha-256 >/dev/null &&
        cat >>"$FLEET_PG_DIR/data/postgresql.conf" <<CONF &&
listen_addresses = ''
unix_socket_directories = '$FLEET_PG_DIR/sock'
unix_socket_permissions = 0777
CONF
        runuser -u postgres -- "$FLEET_PG_BIN/pg_ctl" -D "$FLEET_PG_DIR/data" -l "$FLEET_PG_DIR/server.log" -w -t 30 \
            start >/dev/null &&
        PGPASSWORD=$FLEET_PG_PASSWORD runuser -u postgres -- "$FLEET_PG_BIN/createdb" -h "$FLEET_PG_DIR/sock" -U braid \
            braid || return 1
    fleet_conf "$1" postgresql
    "$BRAID_BIN" store init --config "$FLEET_CONF" >/dev/null &&
        "$BRAID_BIN" subscriber class add standard --max-sessions 64 --config "$FLEET_CONF" >/dev/null &&
        fleet_sql "INSERT INTO braid_subscriber (name, class)
                   SELECT '$FLEET_PREFIX' || i, 'standard' FROM generate_series(1, $1) AS i" >/dev/null &&
        [[ $(fleet_sql "SELECT count(*) FROM braid_subscriber") == "$1" ]]
}

fleet_pg_stop() {
    [[ -n $FLEET_PG_DIR && -f $FLEET_PG_DIR/data/postmaster.pid ]] || return 0
    runuser -u postgres -- "$FLEET_PG_BIN/pg_ctl" -D "$FLEET_PG_DIR/data" -m fast -w -t 20 stop >/dev/null
}

fleet_sql() { PGPASSWORD=$FLEET_PG_PASSWORD psql -X -q -At -h "$FLEET_PG_DIR/sock" -U braid -d braid -c "$1"; }

# Starts the concentrator; returns once its control port listens (within LIMIT seconds).
fleet_conc_start() { # fleet_conc_start [LIMIT]
    ip netns exec "$NS_FCONC" "$BRAID_BIN" concentrator --config "$FLEET_CONF" \
        --log-level "${BRAID_LOG_LEVEL:-notice}" 2>>"$LAB_WORK/concentrator.log" &
    FLEET_CONC_PID=$!
    FLEET_PIDS+=("$FLEET_CONC_PID")
    wait_for "${1:-30}" nsx "$NS_FCONC" bash -c "ss -Hltn 'sport = :$FLEET_CONTROL_PORT' | grep -q LISTEN"
}

# SIGTERM, as a restart by the service manager; waits for the process to be gone.
fleet_conc_stop() {
    kill -TERM "$FLEET_CONC_PID" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$FLEET_CONC_PID" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$FLEET_CONC_PID" 2>/dev/null
}

# The origin that holds the data connections and answers PUTs with their sha256.
fleet_origin_start() {
    nsx "$NS_FLEET" "$LAB_TOOL" serve --listen "$FLEET_ORIGIN" --port "$FLEET_ORIGIN_PORT" --threads 1 \
        2>>"$LAB_WORK/origin.err" &
    FLEET_PIDS+=($!)
    wait_for 10 nsx "$NS_FLEET" bash -c "ss -Hltn 'sport = :$FLEET_ORIGIN_PORT' | grep -q LISTEN"
}

# The simulated fleet, reading commands from a FIFO (held open on descriptor 7) and writing its
# events to $LAB_WORK/fleet.events.
fleet_start() { # fleet_start N SESSIONS
    mkfifo "$LAB_WORK/fleet.in"
    nsx "$NS_FLEET" "$LAB_TOOL" fleet --connect "$FLEET_CONC" --control-port "$FLEET_CONTROL_PORT" \
        --port "$FLEET_DATA_PORT" --server-name "$FLEET_SERVER_NAME" --ca "$FLEET_CA/ca.crt" \
        --issued "$FLEET_CA/issued" --prefix "$FLEET_PREFIX" --count "$1" --source "$FLEET_SOURCE" \
        --sessions "$2" --origin "$FLEET_ORIGIN" --origin-port "$FLEET_ORIGIN_PORT" ${FLEET_ARGS:-} \
        <"$LAB_WORK/fleet.in" >"$LAB_WORK/fleet.events" 2>>"$LAB_WORK/fleet.err" &
    FLEET_PIDS+=($!)
    exec 7>"$LAB_WORK/fleet.in"
}

fleet_command() { printf '%s\n' "$*" >&7; }

# The last event named NAME (a JSON line), once there are COUNT of them; waits LIMIT seconds.
fleet_event() { # fleet_event NAME [LIMIT] [COUNT]
    local want=${3:-1}
    wait_for "${2:-60}" bash -c "(( \$(grep -c '\"event\": \"$1\"' '$LAB_WORK/fleet.events') >= $want ))" || return 1
    grep "\"event\": \"$1\"" "$LAB_WORK/fleet.events" | tail -1
}

# The concentrator's memory in KiB: "RSS PSS" (smaps_rollup).
fleet_conc_memory() {
    awk '/^Rss:/ { r = $2 } /^Pss:/ { p = $2 } END { print r, p }' "/proc/$FLEET_CONC_PID/smaps_rollup"
}

fleet_status_json() { nsx "$NS_FCONC" "$BRAID_BIN" status --json --socket "$FLEET_SOCK"; }
