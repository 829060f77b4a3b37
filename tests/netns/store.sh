#!/usr/bin/env bash
# braid namespace tests: the shared subscriber store in PostgreSQL (topology in lab/lab.sh).
#
#   lan ── [gw: braid gateway] ══ wan1-3 ══ [inet] ── [conc: concentrator A 198.18.10.2 ] ── [origin]
#          cert cpe_1                                 [      concentrator B 198.18.10.3 ]
#                                                            │ both: store 'postgresql://…?host=SOCKDIR'
#                                   PostgreSQL 15 (Debian's), a cluster of the test's own on a
#                                   private Unix socket, password auth (scram-sha-256)
#
# Two concentrators on one store; a subscriber disabled in the store refused by both within 2 s;
# usage rows matching sha256-checked transfers within 1 %; the store stopped and started again
# with the concentrator serving meanwhile and no usage lost. Prints "N passed, N failed" last;
# exits non-zero on any failure or missing prerequisite.
set -u
cd "$(dirname "$0")/../.."
export LAB_SUFFIX="st$$"
source lab/lab.sh
source tests/netns/harness.sh
source tests/netns/tls-lab.sh
PG_BIN=/usr/lib/postgresql/15/bin
CONC_B=198.18.10.3
# PostgreSQL refuses to run as root: its directory belongs to the postgres user, outside LAB_WORK (0700).
PG_DIR=$(mktemp -d /tmp/braid-store-pg.XXXXXX)
PG_PASSWORD="braid-$RANDOM-$RANDOM-secret"
STORE_URL="postgresql://braid@/braid?host=$PG_DIR/sock&sslmode=disable"

pg() { runuser -u postgres -- "$@"; }
pg_stop() { [[ -f $PG_DIR/data/postmaster.pid ]] && pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 20 stop >/dev/null; }
pg_start() { pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 20 start >/dev/null; }
# psql as the superuser over the private socket: sql QUERY prints the unaligned result.
sql() { PGPASSWORD=$PG_PASSWORD psql -X -q -At -h "$PG_DIR/sock" -U braid -d braid -c "$1"; }

store_cleanup() {
    cleanup
    pg_stop 2>/dev/null
    rm -rf "$PG_DIR"
}
trap store_cleanup EXIT INT TERM

require() {
    need_braid_lab
    need_cmd runuser psql
    need "PostgreSQL 15 server (Debian's postgresql)" test -x "$PG_BIN/postgres"
    need "a postgres user" id postgres
    check_prerequisites
}

make_cluster() {
    # 0711 and 0755: the concentrators keep no CAP_DAC_OVERRIDE once started, and reconnect later.
    chown postgres: "$PG_DIR" && chmod 711 "$PG_DIR" && mkdir -m 755 "$PG_DIR/sock" && chown postgres: "$PG_DIR/sock" &&
        printf '%s\n' "$PG_PASSWORD" >"$PG_DIR/pw" && chown postgres: "$PG_DIR/pw" &&
        pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U braid --pwfile="$PG_DIR/pw" --auth=scram-sha-256 >/dev/null &&
        cat >>"$PG_DIR/data/postgresql.conf" <<CONF &&
listen_addresses = ''
unix_socket_directories = '$PG_DIR/sock'
unix_socket_permissions = 0777
CONF
        pg_start && PGPASSWORD=$PG_PASSWORD pg "$PG_BIN/createdb" -h "$PG_DIR/sock" -U braid braid
}

# The concentrator's configuration: conc_conf NAME ADDRESS
conc_conf() {
    mkdir -p "$LAB_WORK/$1"
    printf '%s\n' "$PG_PASSWORD" >"$LAB_WORK/store-password"
    chmod 600 "$LAB_WORK/store-password"
    CONC_LISTEN=$2 CONC_CONF="$LAB_WORK/$1/concentrator.conf" CONC_SOCK="$LAB_WORK/$1/concentrator.sock" \
        tls_conc_conf "" <<CONF
	option store '$STORE_URL'
	option store_password_file '$LAB_WORK/store-password'
	option accounting_interval '1'
CONF
}

gw_conf() { # gw_conf SERVER
    GW_SERVER=$1 tls_gw_conf "config uplink 'dsl'
	option device 'wan1'

config uplink 'lte'
	option device 'wan2'
	option gateway '198.18.2.1'" </dev/null
}

start_conc() { # start_conc NAME ADDRESS; sets CONC_PID_NAME
    ip netns exec "$NS_CONC" "$BRAID_BIN" concentrator --config "$LAB_WORK/$1/concentrator.conf" \
        --log-level "${BRAID_LOG_LEVEL:-info}" 2>>"$LAB_WORK/$1.log" &
    local pid=$!
    LAB_PIDS+=("$pid")
    printf -v "CONC_PID_$1" '%s' "$pid"
    wait_for 20 nsx "$NS_CONC" bash -c "ss -Hltn 'src $2 and sport = :$CONTROL_PORT' | grep -q LISTEN"
}


lan_get() { nsx "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN4" --port "$ORIGIN_PORT" --get "$1" --timeout 60; }
lan_put() { nsx "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN4" --port "$ORIGIN_PORT" --put "$1" --timeout 60; }
intact() { # intact JSON BYTES EVENT: result ok, all bytes, sha256 as the origin logged
    [[ $(json_field result <<<"$1") == ok && $(json_field bytes <<<"$1") == "$2" &&
        $(json_field sha256 <<<"$1") == "$(origin_sha "$3")" ]]
}

subscriber() { "$BRAID_BIN" subscriber "$@" --config "$LAB_WORK/A/concentrator.conf"; }

# Usage rows of cpe_1 written by concentrator A: "UP DOWN" (bytes).
usage_a() {
    sql "SELECT coalesce(sum(bytes_up), 0) || ' ' || coalesce(sum(bytes_down), 0) FROM braid_usage
         WHERE subscriber = 'cpe_1' AND concentrator LIKE '% 198.18.10.2:$BRAID_PORT'"
}
# Whether A's usage grew from BEFORE ("UP DOWN") by UP and DOWN bytes, within 1 %.
usage_grew() { # usage_grew BEFORE UP DOWN
    python3 - "$1" "$(usage_a)" "$2" "$3" <<'PY'
import sys
b_up, b_down = map(int, sys.argv[1].split()); a_up, a_down = map(int, sys.argv[2].split())
want_up, want_down = int(sys.argv[3]), int(sys.argv[4])
# A direction with no payload still carries the request line: at most 1 kB then.
def near(got, want): return abs(got - want) <= (want / 100 if want else 1000)
ok = near(a_up - b_up, want_up) and near(a_down - b_down, want_down)
sys.exit(0 if ok else 1)
PY
}

now_ms() { date +%s%3N; }
# Polls COMMAND every 50 ms for at most LIMIT_MS; prints the milliseconds it took.
within_ms() { # within_ms LIMIT_MS COMMAND...
    local limit=$1 t0 t
    shift
    t0=$(now_ms)
    while :; do
        if "$@" >/dev/null 2>&1; then echo $(($(now_ms) - t0)); return 0; fi
        t=$(now_ms)
        ((t - t0 > limit)) && return 1
        sleep 0.05
    done
}
# Log lines are "… metadata … [module] message": the metadata comes first.
refused_logged() { grep -q "refused_now=cpe_1 .*subscribers changed in the store" "$LAB_WORK/$1.log"; }
both_refused() { refused_logged A && refused_logged B; }
not_up() { ! control_up; }

require
lab_up unshaped
lab_start || { fail "lab start"; finish; exit 1; }
stop_pid "$LAB_GW_PID"
stop_pid "$LAB_CONC_PID"
nsx "$NS_CONC" ip addr add "$CONC_B/24" dev eth0
"$BRAID_BIN" pki init "$CA" >/dev/null && "$BRAID_BIN" pki issue "$CA" conc.braid.test --server >/dev/null &&
    "$BRAID_BIN" pki issue "$CA" cpe_1 >/dev/null || { fail "braid pki"; finish; exit 1; }
make_cluster || { fail "PostgreSQL cluster did not start" "$(tail -5 "$PG_DIR/server.log" 2>/dev/null)"; finish; exit 1; }
conc_conf A "$CONC_ADDR"
conc_conf B "$CONC_B"

# 1. The schema: created, then nothing to do the second time; the password never printed.
out1=$("$BRAID_BIN" store init --config "$LAB_WORK/A/concentrator.conf" 2>&1)
out2=$("$BRAID_BIN" store init --config "$LAB_WORK/A/concentrator.conf" 2>&1)
if [[ $out1 == *"applied migration 1"* && $out2 == *"nothing to do"* && $(sql "SELECT max(version) FROM braid_schema_version") == 1 ]]; then
    pass "braid store init: schema created at version 1, a second run changes nothing"
else
    fail "braid store init" "$out1" "$out2"
fi
subscriber class add standard >/dev/null && subscriber add cpe_1 --class standard >/dev/null &&
    subscriber add cpe_2 --class standard --disabled >/dev/null
listed=$(subscriber list 2>&1)
if [[ $(sql "SELECT string_agg(name || ':' || class || ':' || enabled, ',' ORDER BY name) FROM braid_subscriber") == \
    "cpe_1:standard:true,cpe_2:standard:false" && $listed == *cpe_2*no* ]]; then
    pass "braid subscriber add/list: rows in braid_subscriber, list shows them"
else
    fail "braid subscriber add/list" "$listed"
fi

# 2. Two concentrators on one store, a gateway on A: its control channel and a checked transfer.
start_conc A "$CONC_ADDR" || { fail "concentrator A did not start" "$(tail -5 "$LAB_WORK/A.log")"; finish; exit 1; }
start_conc B "$CONC_B" || { fail "concentrator B did not start" "$(tail -5 "$LAB_WORK/B.log")"; finish; exit 1; }
if grep -q "subscribers=2 .*subscribers read from the store" "$LAB_WORK/A.log" &&
    grep -q "subscribers=2 .*subscribers read from the store" "$LAB_WORK/B.log"; then
    pass "both concentrators read 2 subscribers from the store at start"
else
    fail "concentrators read the store" "$(grep store "$LAB_WORK/A.log" | tail -3)" "$(grep store "$LAB_WORK/B.log" | tail -3)"
fi
gw_conf "$CONC_ADDR"
tls_start_gw || { fail "gateway did not start" "$(tail -5 "$LAB_WORK/gateway.log")"; finish; exit 1; }
wait_for 15 control_up || fail "control channel to A up" "$(tail -5 "$LAB_WORK/gateway.log")"

# 3. Usage rows: a 20 MB download and a 5 MB upload, sha256-checked, are in A's rows within 1 %.
before=$(usage_a)
down=$(lan_get 20000000)
up=$(lan_put 5000000)
if intact "$down" 20000000 sent && intact "$up" 5000000 received; then
    if wait_for 10 usage_grew "$before" 5000000 20000000; then
        pass "usage rows: 20 MB down, 5 MB up (sha256 equal) written by A within 1 % ($(usage_a) bytes up/down)"
    else
        fail "usage rows within 1 %" "before $before, now $(usage_a)"
    fi
else
    fail "transfers through A" "$down" "$up"
fi

# 4. The store away: A serves from its last known subscribers, keeps usage, writes it when back.
before=$(usage_a)
pg_stop
if wait_for 10 grep -q "store unreachable; serving the last known subscribers" "$LAB_WORK/A.log"; then
    pass "store stopped: A logs it is serving from its last known subscribers"
else
    fail "store down logged" "$(tail -3 "$LAB_WORK/A.log")"
fi
down=$(lan_get 10000000)
if intact "$down" 10000000 sent; then
    pass "store down: 10 MB through A, sha256 equal"
else
    fail "transfer with the store down" "$down"
fi
sleep 2 # two accounting periods close while the database is away (their rows wait in memory)
pg_start || fail "PostgreSQL restart" "$(tail -3 "$PG_DIR/server.log")"
if wait_for 40 grep -q "store reachable again" "$LAB_WORK/A.log" && wait_for 10 usage_grew "$before" 0 10000000; then
    pass "store back: A reconnected and wrote the outage's usage (10 MB down within 1 %, nothing lost)"
else
    fail "usage after the outage" "before $before, now $(usage_a)" "$(grep -i store "$LAB_WORK/A.log" | tail -3)"
fi

# 5. cpe_1 disabled in the store: refused by both concentrators within 2 s.
wait_for 15 control_up
wait_for 40 grep -q "store reachable again" "$LAB_WORK/B.log"
t0=$(now_ms)
subscriber disable cpe_1 >/dev/null || fail "braid subscriber disable"
if within_ms $((2000 - ($(now_ms) - t0))) both_refused >/dev/null; then
    pass "cpe_1 disabled in the store (braid subscriber disable): both A and B refuse it $(($(now_ms) - t0)) ms after the command started (within 2 s)"
else
    fail "disable seen within 2 s" "$(grep "store" "$LAB_WORK/A.log" | tail -2)" "$(grep "store" "$LAB_WORK/B.log" | tail -2)"
fi
if wait_for 5 not_up; then
    out=$(lan_get 100000)
    if [[ $(json_field result <<<"$out") != ok ]]; then
        pass "A closed cpe_1's control channel and refuses its new connections"
    else
        fail "cpe_1 still served by A after the disable" "$out"
    fi
else
    fail "cpe_1's control channel to A still up"
fi
# The gateway moves to B: refused while disabled, served once enabled again.
stop_pid "$LAB_GW_PID"
gw_conf "$CONC_B"
tls_start_gw || fail "gateway restart on B"
if ! wait_for 4 control_up && grep -q "reason=subscriber disabled subscriber=cpe_1 .*control channel refused" "$LAB_WORK/B.log"; then
    pass "B refuses cpe_1's control channel (subscriber disabled)"
else
    fail "B refuses the disabled cpe_1" "$(tail -3 "$LAB_WORK/B.log")"
fi
subscriber enable cpe_1 >/dev/null || fail "braid subscriber enable"
if wait_for 20 control_up; then
    out=$(lan_get 5000000)
    if intact "$out" 5000000 sent; then
        pass "cpe_1 enabled again: B grants it a key, 5 MB through B, sha256 equal"
    else
        fail "transfer through B" "$out"
    fi
else
    fail "control channel to B after enable" "$(tail -3 "$LAB_WORK/gateway.log")"
fi

# 6. The password is in no log and no command output.
if ! grep -qF "$PG_PASSWORD" "$LAB_WORK"/*.log && [[ $out1$out2$listed != *"$PG_PASSWORD"* ]]; then
    pass "the store's password appears in no log or output"
else
    fail "password leaked" "$(grep -lF "$PG_PASSWORD" "$LAB_WORK"/*.log)"
fi

finish
