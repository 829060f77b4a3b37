# hostile.sh section: a gateway that vanishes. A CPE that loses its power or every uplink sends no
# FIN and no reset: without a probe, the concentrator's end of each of its idle sessions waits for a
# byte for good, holding two descriptors and a place in the subscriber's max_sessions. With
# `keepalive 2` the concentrator probes connections silent for 2 s, four times 0.5 s apart (1 s,
# the kernel's floor), and closes those whose gateway answers none.
#
#   lan ── [gw] ══ wan1-4 ══ [inet: drops everything from and to gw1-gw4] ── [conc] ── [origin]

VANISHED_SESSIONS=8

# Sessions the concentrator has open now (its status), "" when it does not answer.
conc_sessions() {
    nsx "$NS_CONC" "$BRAID_BIN" status --json --socket "$CONC_SOCK" 2>/dev/null |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["sessions"]["active"])' 2>/dev/null
}
conc_sessions_are() { [[ $(conc_sessions) == "$1" ]]; }
conc_sessions_at_least() { local n; n=$(conc_sessions); [[ -n $n ]] && ((n >= $1)); }

section_vanished() {
    local holder t0 took kept=yes n
    # keepalive is read at start (a reload refuses a change): the concentrator restarts with it.
    hostile_restart_conc_with 20 "vanished: concentrator with keepalive 2 started, gateway's control channel up" \
        <<<"	option keepalive '2'" || return
    # Idle sessions: connections to the origin's nginx that never send a request (nginx waits 60 s).
    nsx "$NS_LAN" python3 -c '
import socket, sys, time
held = [socket.create_connection((sys.argv[1], 80), timeout=5) for _ in range(int(sys.argv[2]))]
time.sleep(120)' "$ORIGIN4" "$VANISHED_SESSIONS" &
    holder=$!
    wait_for 15 conc_sessions_at_least "$VANISHED_SESSIONS"
    # With the gateway there, 8 s of silence (four times the keepalive) close nothing: it answers.
    for ((n = 0; n < 32; n++)); do
        conc_sessions_at_least "$VANISHED_SESSIONS" || kept="no, $(conc_sessions) left after $((n / 4)) s"
        sleep 0.25 # sampling period of the 8 s the sessions must hold
    done
    # The gateway vanishes: nothing passes between it and the internet any more.
    nsx "$NS_INET" nft -f - <<'NFT'
table inet braid_test_vanished {
    chain forward {
        type filter hook forward priority -30;
        iifname { "gw1", "gw2", "gw3", "gw4" } drop
        oifname { "gw1", "gw2", "gw3", "gw4" } drop
    }
}
NFT
    t0=$(now)
    wait_for 20 conc_sessions_are 0
    took=$(elapsed "$t0" "$(now)")
    local left=$(conc_sessions)
    local subflows=$(nsx "$NS_CONC" ss -Htno "( sport = :$BRAID_PORT )" | head -4 | tr '\n' ';')
    local msks=$(nsx "$NS_CONC" ss -HMtn | head -4 | tr '\n' ';')
    nsx "$NS_INET" nft delete table inet braid_test_vanished
    kill "$holder" 2>/dev/null
    wait "$holder" 2>/dev/null # reaps it: just stopped
    if [[ $kept == yes ]]; then
        pass "vanished: $VANISHED_SESSIONS idle sessions kept through 8 s of silence while their gateway answers keepalives"
    else
        fail "vanished: idle sessions kept while their gateway answers keepalives" "kept: $kept"
    fi
    if [[ $left == 0 ]]; then
        pass "vanished: the gateway vanished; the concentrator closed its $VANISHED_SESSIONS idle sessions after $took s (keepalive 2, bound 20 s)"
    else
        fail "vanished: the concentrator closes the idle sessions of a gateway that vanished within 20 s" \
            "${left:-no answer} sessions still open after 20 s" "subflows: $subflows" "MPTCP sockets: $msks"
    fi
    # Back to the lab's concentrator (keepalive at its default) and a gateway in contact again.
    hostile_stop_pid "$LAB_CONC_PID"
    hostile_restore
}
