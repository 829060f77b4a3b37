#!/usr/bin/env bash
# braid namespace tests: the TLS control channel, session keys and service classes (topology in
# lab/lab.sh).
#
#   lan ── [gw: braid gateway] ══ wan1-3 ══ [inet] ── [conc: braid concentrator] ── [origin]
#          cert cpe_1 (or a bad one)          ▲         TLS 1.3 on 4803, data on 4800
#                                             plaintext and stalled handshakes come from here
#
# Neither daemon has a pre-shared key: data connections can only use the session keys the
# control channel grants. Every transfer is checked by sha256 against what the origin logged.
# Prints "N passed, N failed" last; exits non-zero on any failure or missing prerequisite.
set -u
cd "$(dirname "$0")/../.."
export LAB_SUFFIX="t$$"
source lab/lab.sh
source tests/netns/harness.sh
source tests/netns/uplink-helpers.sh
source tests/netns/tls-lab.sh
ROGUE="$LAB_WORK/rogue"

require() {
    need_braid_lab
    check_prerequisites
}

pki() { "$BRAID_BIN" pki "$@" >/dev/null; }

make_pki() {
    local now
    now=$(date +%s)
    tls_pki cpe_off cpe_unknown cpe_gone && pki revoke "$CA" cpe_gone &&
        pki issue "$CA" cpe_old --valid-from $((now - 200000)) --valid-until $((now - 100000)) &&
        pki init "$ROGUE" && pki issue "$ROGUE" cpe_1
}

# The concentrator's configuration; CLASS is cpe_1's service class, ENABLED (default 1) its switch.
conc_conf() { # conc_conf CLASS [ENABLED]
    tls_conc_conf "config class 'standard'

config class 'slow'
	option rate_down '16M'
	option rate_up '8M'

config class 'single'
	option rate_down '8M'
	option max_sessions '1'

config subscriber 'cpe_1'
	option class '$1'
	option enabled '${2:-1}'

config subscriber 'cpe_old'
	option class 'standard'

config subscriber 'cpe_gone'
	option class 'standard'

config subscriber 'cpe_off'
	option class 'standard'
	option enabled '0'" <<<"	option crl '$CA/crl.pem'"
}

# The gateway's configuration with certificate NAME from CA directory DIR, expecting SERVER_NAME.
gw_conf() { # gw_conf NAME [DIR] [SERVER_NAME]
    GW_CERT=$1 GW_CERT_DIR=${2:-$CA} GW_SERVER_NAME=${3:-conc.braid.test} tls_gw_conf </dev/null
}

# Waits up to LIMIT seconds for the control channel to be up; prints the seconds it took.
time_to_control_up() { # time_to_control_up LIMIT
    local t0 deadline
    t0=$(now)
    deadline=$((SECONDS + $1))
    while ((SECONDS < deadline)); do
        if [[ $(control_field state) == up ]]; then elapsed "$t0" "$(now)"; return 0; fi
        sleep 0.05
    done
    return 1
}

# A download of BYTES from the LAN; prints the client's JSON.
lan_get() { nsx "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN4" --port "$ORIGIN_PORT" --get "$1" --timeout 60; }
lan_put() { nsx "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN4" --port "$ORIGIN_PORT" --put "$1" --timeout 60; }

intact() { # intact JSON BYTES EVENT: result ok, all bytes, sha256 as the origin logged
    [[ $(json_field result <<<"$1") == ok && $(json_field bytes <<<"$1") == "$2" &&
        $(json_field sha256 <<<"$1") == "$(origin_sha "$3")" ]]
}

# The concentrator reads its configuration again; prints braid reload's answer.
conc_reload() { nsx "$NS_CONC" "$BRAID_BIN" reload --socket "$CONC_SOCK" 2>&1; }

# A shaped transfer: intact, and its rate within 10 % of WANT Mbit/s.
check_rate() { # check_rate LABEL JSON BYTES EVENT WANT [DETAIL]
    local rate
    rate=$(python3 -c "import sys; print(f'{int(sys.argv[1]) * 8 / float(sys.argv[2]) / 1e6:.2f}')" "$3" \
        "$(json_field seconds <<<"$2")")
    if intact "$2" "$3" "$4" &&
        python3 -c "import sys; sys.exit(0 if abs(float(sys.argv[1]) - float(sys.argv[2])) <= float(sys.argv[2]) / 10 else 1)" \
            "$rate" "$5"; then
        pass "$1: $(($3 / 1000000)) MB at $rate Mbit/s (within 10 %), sha256 equal"
    else
        fail "$1" "measured $rate Mbit/s" "client: $2" "${6:-}"
    fi
}

# Waits up to 8 s for PATTERN in LOG.
logged() { wait_for 8 grep -q -- "$2" "$LAB_WORK/$1.log"; }
# The concentrator counts refused TLS handshakes into one notice every 10 s, reasons with counts.
summarised() {
    wait_for 15 bash -c "grep 'control connections refused before authentication' '$LAB_WORK/concentrator.log' |
        grep -q 'reasons=[^=]*$1'"
}

require
lab_up shaped
lab_start || { fail "lab start"; finish; exit 1; }
stop_pid "$LAB_GW_PID"
stop_pid "$LAB_CONC_PID"
make_pki || { fail "braid pki"; finish; exit 1; }
conc_conf standard
gw_conf cpe_1
tls_start_conc || {
    fail "concentrator with TLS did not start" "$(tail -5 "$LAB_WORK/concentrator.log")"; finish; exit 1; }
tls_start_gw || { fail "gateway with TLS did not start" "$(tail -5 "$LAB_WORK/gateway.log")"; finish; exit 1; }

# 1. Mutual TLS, a session key, and the data path on it.
if up=$(time_to_control_up 10); then
    key=$(control_field key)
    pass "control channel up in $up s (TLS 1.3, mutual certificates, MPTCP); session key $key"
else
    fail "control channel up" "$(tail -5 "$LAB_WORK/gateway.log")" "$(tail -5 "$LAB_WORK/concentrator.log")"
fi
out=$(lan_get 20000000)
if intact "$out" 20000000 sent && [[ ${key:-0} != 0 && -n ${key:-} ]]; then
    pass "20 MB through the gateway on session key $key, sha256 equal (no pre-shared key on either side)"
else
    fail "data path on the session key" "client: $out" "key: ${key:-}" "$(tail -3 "$LAB_WORK/concentrator.log")"
fi
grep -q 'subscriber=cpe_1.*control channel up\|control channel up.*subscriber=cpe_1' "$LAB_WORK/concentrator.log" &&
    pass "the concentrator names the subscriber from the certificate (cpe_1)" ||
    fail "subscriber named in the concentrator's log" "$(grep -i control "$LAB_WORK/concentrator.log" | tail -3)"

# 2. A class's rates are enforced on the relay: cpe_1 moves to class 'slow' (16 Mbit/s down,
#    8 Mbit/s up) with a reload; sessions opened after it are shaped.
conc_conf slow
reload=$(conc_reload)
check_rate "class rate_down 16 Mbit/s" "$(lan_get 30000000)" 30000000 sent 16 "reload: $reload"
check_rate "class rate_up 8 Mbit/s" "$(lan_put 10000000)" 10000000 received 8
# A class's session limit: with max_sessions 1, a second connection while one is open is refused
# (Resource Exceeded; the LAN client sees its connection reset) and works once the first is gone.
conc_conf single
conc_reload >/dev/null
# `ip netns exec` execs python, so $! is the client itself.
ip netns exec "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN4" --port "$ORIGIN_PORT" --get 100000000 \
    --timeout 60 >/dev/null 2>&1 &
HOLD_PID=$!
sleep 1
second=$(lan_get 100000)
kill "$HOLD_PID" 2>/dev/null; wait "$HOLD_PID" 2>/dev/null
third=""
for _ in $(seq 30); do
    third=$(lan_get 100000)
    [[ $(json_field result <<<"$third") == ok ]] && break
    sleep 0.1
done
if [[ $(json_field result <<<"$second") != ok ]] && intact "$third" 100000 sent &&
    grep -q "code=64" "$LAB_WORK/concentrator.log"; then
    pass "class max_sessions 1: a second session refused (Resource Exceeded logged), served once the first ended"
else
    fail "class max_sessions 1" "second: $second" "third: $third" "$(grep 'refused' "$LAB_WORK/concentrator.log" | tail -2)"
fi
conc_conf standard
conc_reload >/dev/null

# A subscriber disabled by a reload loses its control channel and its keys at once; enabled
# again, it is served again.
conc_conf standard 0
conc_reload >/dev/null
cut_off=""
for _ in $(seq 50); do [[ $(control_field state) == down ]] && { cut_off=yes; break; }; sleep 0.1; done
refused=$(lan_get 100000)
conc_conf standard
conc_reload >/dev/null
back=$(time_to_control_up 40) && served=$(lan_get 100000)
if [[ -n $cut_off && $(json_field result <<<"$refused") != ok ]] && intact "${served:-}" 100000 sent &&
    grep -q "control channel closed: subscriber removed or disabled" "$LAB_WORK/concentrator.log"; then
    pass "subscriber disabled by a reload: control channel closed and sessions refused; enabled again: back in $back s"
else
    fail "subscriber disabled by a reload" "channel down: '$cut_off'" "while disabled: $refused" "after: ${served:-}"
fi

# 3. The gateway reconnects after the concentrator restarts, and new sessions work again.
stop_pid "$LAB_CONC_PID"
tls_start_conc
t0=$(now)
recovered=""
for _ in $(seq 150); do
    if [[ $(control_field state) == up ]] && intact "$(lan_get 1000000)" 1000000 sent; then
        recovered=$(elapsed "$t0" "$(now)")
        break
    fi
    sleep 0.1
done
if [[ -n $recovered ]] && python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 10 else 1)" "$recovered"; then
    pass "after a concentrator restart the gateway reconnected and a new session worked in $recovered s"
else
    fail "reconnect after a concentrator restart" "recovered: '${recovered:-never within 15 s}'" "$(tail -3 "$LAB_WORK/gateway.log")"
fi

# 4. The control channel dies under a running download (its port dropped on the path; with
#    keepalive 1 s the gateway gives the concentrator up after 3 s): the download goes on, on
#    the key it has, and the channel comes back once the path is mended.
SIZE=60000000
download_bg "$LAB_WORK/during.json"
sleep 1
nsx "$NS_INET" nft -f - <<NFT
table inet braid_test_control {
    chain forward {
        type filter hook forward priority -10
        tcp dport $CONTROL_PORT drop
        tcp sport $CONTROL_PORT drop
    }
}
NFT
went_down=""
for _ in $(seq 80); do [[ $(control_field state) == down ]] && { went_down=yes; break; }; sleep 0.1; done
wait "$DL_PID"
nsx "$NS_INET" nft delete table inet braid_test_control
if [[ -n $went_down ]] && intact "$(cat "$LAB_WORK/during.json")" $SIZE sent; then
    pass "the control channel went down under a download, which went on: 60 MB intact"
else
    fail "download while the control channel is down" "channel down seen: '${went_down}'" "$(cat "$LAB_WORK/during.json")"
fi
back=$(time_to_control_up 40) && pass "control channel back $back s after the path was mended" ||
    fail "control channel back after the cut" "$(tail -3 "$LAB_WORK/gateway.log")"

# 5. Refusals, each with its own reason in the log of the end that refused (the concentrator's TLS
#    refusals in its summary line every 10 s).
nsx "$NS_INET" python3 - "$CONC_ADDR" "$CONTROL_PORT" <<'PY' &
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
time.sleep(13)  # never starts the handshake: the concentrator gives up after 10 s
PY
STALL_PID=$!
nsx "$NS_INET" python3 - "$CONC_ADDR" "$CONTROL_PORT" <<'PY'
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
try:
    s.recv(100)
except OSError:
    pass
PY
summarised "not TLS" && pass "plaintext on the TLS port refused: 'not TLS' in the concentrator's refusal summary" ||
    fail "plaintext on the TLS port" "$(grep 'refused before authentication' "$LAB_WORK/concentrator.log" | tail -2)"

refusal() { # refusal LABEL LOG PATTERN NAME [DIR] [SERVER_NAME]; LOG 'summary': the concentrator's summary
    stop_pid "$LAB_GW_PID"
    gw_conf "$4" "${5:-$CA}" "${6:-conc.braid.test}"
    tls_start_gw
    if [[ $2 == summary ]]; then
        if summarised "$3"; then pass "$1 refused: '$3' in the concentrator's refusal summary"; else
            fail "$1 refused with its reason" "$(grep 'refused before authentication' "$LAB_WORK/concentrator.log" | tail -2)"; fi
    elif logged "$2" "$3"; then pass "$1 refused: '$3' logged by the $2"; else
        fail "$1 refused with its reason" "$(grep -i 'refused' "$LAB_WORK/$2.log" | tail -2)"; fi
}
refusal "expired certificate" summary "expired certificate" cpe_old
refusal "certificate from another CA" summary "unknown CA" cpe_1 "$ROGUE"
refusal "revoked certificate" summary "revoked" cpe_gone
refusal "concentrator name mismatch" gateway "reason=name mismatch" cpe_1 "$CA" other.braid.test
refusal "disabled subscriber" concentrator "reason=subscriber disabled" cpe_off
refusal "unknown subscriber" concentrator "reason=unknown subscriber" cpe_unknown
wait "$STALL_PID" 2>/dev/null
summarised "handshake timeout" &&
    pass "a handshake that never finishes is dropped: 'handshake timeout' in the concentrator's refusal summary" ||
    fail "stalled handshake" "$(grep 'refused before authentication' "$LAB_WORK/concentrator.log" | tail -3)"

finish
