# braid namespace tests: what every suite shares. Source after lab/lab.sh.
#
# Results: `pass LABEL`, `fail LABEL [DETAIL...]`, and `finish` prints "N passed, N failed" and
# returns non-zero on any failure. Prerequisites: `need_cmd TOOL...` and `need WHAT CHECK...`
# collect what is missing, `check_prerequisites` fails the suite (never skips it) if anything is.
# The lab is torn down on exit, whatever happens. BRAID_TEST_LOGS=DIR keeps the daemons' logs
# there (BRAID_LOG_LEVEL=debug makes them say more).

PASSED=0
FAILED=0
MISSING=()

cleanup() {
    lab_down
    if [[ -n ${BRAID_TEST_LOGS:-} ]]; then mkdir -p "$BRAID_TEST_LOGS" && cp "$LAB_WORK"/*.log "$BRAID_TEST_LOGS"/ 2>/dev/null; fi
    rm -rf "$LAB_WORK"
}
trap cleanup EXIT INT TERM

pass() { PASSED=$((PASSED + 1)); printf 'ok   %s\n' "$1"; }
fail() { FAILED=$((FAILED + 1)); printf 'FAIL %s\n' "$1"; [[ $# -gt 1 ]] && printf '     %s\n' "${@:2}"; }

# What every suite that runs braid in the lab needs: the lab's tools, the binary, kernel MPTCP.
need_braid_lab() {
    need_cmd ip tc nft ss python3
    need "$BRAID_BIN (build it first)" test -x "$BRAID_BIN"
    need "kernel MPTCP" grep -qx 1 /proc/sys/net/mptcp/enabled
}

need_cmd() { local t; for t; do command -v "$t" >/dev/null || MISSING+=("$t"); done; }
need() { local what=$1; shift; "$@" >/dev/null 2>&1 || MISSING+=("$what"); }

check_prerequisites() {
    [[ $(id -u) == 0 ]] || MISSING+=("root")
    if ((${#MISSING[@]})); then
        echo "missing prerequisites: ${MISSING[*]}" >&2
        echo "0 passed, 1 failed"
        exit 1
    fi
}

finish() {
    echo "$PASSED passed, $FAILED failed"
    ((FAILED == 0))
}

# nginx on the origin, its files under $LAB_WORK (root's alone, made by mktemp -d, so it runs as
# root); the suite puts what it serves in $LAB_WORK/www. SERVER is the server block's body,
# HTTP_LINES the http block's own lines (default: no access log), CONNECTIONS worker_connections
# (default 256). Waits up to 10 s until PORT listens.
origin_nginx() { # origin_nginx PORT SERVER [HTTP_LINES] [CONNECTIONS]
    cat >"$LAB_WORK/nginx.conf" <<CONF
daemon off;
user root;
worker_processes 1;
pid $LAB_WORK/nginx.pid;
error_log $LAB_WORK/nginx-error.log;
events { worker_connections ${4:-256}; }
http {
    ${3:-access_log off;}
    client_body_temp_path $LAB_WORK/nginx-body;
    proxy_temp_path $LAB_WORK/nginx-proxy;
    fastcgi_temp_path $LAB_WORK/nginx-fastcgi;
    uwsgi_temp_path $LAB_WORK/nginx-uwsgi;
    scgi_temp_path $LAB_WORK/nginx-scgi;
    server {
        $2
    }
}
CONF
    ip netns exec "$NS_ORG" nginx -c "$LAB_WORK/nginx.conf" &
    LAB_PIDS+=($!)
    wait_for 10 nsx "$NS_ORG" bash -c "ss -Hltn 'sport = :$1' | grep -q LISTEN"
}
