# hostile.sh section: LAN connections that arrive before the gateway can carry them. The gateway
# intercepts LAN TCP from its start, but carries a connection only with a session key, which the
# control channel brings once the concentrator answers: at boot, after a restart, after the
# concentrator's. A connection in between waits for the key (up to 30 s, the control channel's
# longest reconnect backoff) instead of a reset.
#
#   lan ── [gw: started first] ══ wan1-3 ══ [inet] ── [conc: started once the gateway holds it] ── [origin]

STARTUP_SIZE=3000000

section_startup() {
    local curl_pid rc=0 sha want t0 took
    hostile_stop_pid "$LAB_GW_PID"
    hostile_stop_pid "$LAB_CONC_PID"
    # The gateway alone: its control channel keeps failing to connect.
    if ! hostile_start_gw_only; then
        fail "startup: the gateway starts without its concentrator" "$(tail -3 "$LAB_WORK/gateway.log")"
        hostile_restore
        return
    fi
    : >"$LAB_WORK/startup.body"
    t0=$(now)
    nsx "$NS_LAN" curl -sS --max-time 50 -r "0-$((STARTUP_SIZE - 1))" -o "$LAB_WORK/startup.body" \
        "http://$ORIGIN4/big" 2>"$LAB_WORK/startup-curl.err" &
    curl_pid=$!
    # The connection is the gateway's now (TPROXY took it, no key to carry it); then the concentrator
    # starts, and the key comes at the control channel's next attempt (its backoff, a few seconds).
    wait_for 5 bash -c "nsx $NS_GW ss -Htn state established '( sport = :80 or dport = :80 )' | grep -q ."
    hostile_start_conc
    wait "$curl_pid" || rc=$?
    took=$(elapsed "$t0" "$(now)")
    sha=$(sha256sum <"$LAB_WORK/startup.body" | cut -d' ' -f1)
    want=$(head -c "$STARTUP_SIZE" "$LAB_WORK/www/big" | sha256sum | cut -d' ' -f1)
    if ((rc == 0)) && [[ $sha == "$want" ]]; then
        pass "startup: a LAN connection made before the gateway had a session key waited for it and completed (curl, $STARTUP_SIZE bytes, sha256 equal, $took s)"
    else
        fail "startup: a LAN connection made before the gateway had a session key waits for it" \
            "curl exit $rc: $(cat "$LAB_WORK/startup-curl.err")" "$(grep -c . "$LAB_WORK/startup.body") lines received"
    fi
    wait_for 15 hostile_control_up
    hostile_restore
}

# Starts the gateway without waiting for its control channel (hostile_start_gw waits for it).
hostile_start_gw_only() { tls_start_gw; }
