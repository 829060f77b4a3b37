# hostile.sh section: who may use the data port. The pre-shared key next to TLS, a disabled
# subscriber, the key's own class, and requests captured and played again after a restart or to a
# second concentrator sharing the key.
#
#   lan ── [gw: cpe_1, psk_file + cert] ══ wan1-3 ══ [inet: braid-traffic.py convert --psk-file]
#                                                            │
#                          [conc: conc.braid.test :4800, TLS + psk_file]  +  [conc: conc2 :4810]
#                                                            │
#                                                        [origin]

AUTH_PORT2=4810
AUTH_CONTROL2=4813

# The concentrator with the key next to TLS; extra main-section lines on stdin, extra sections as $1.
auth_conc_conf() { # auth_conc_conf [EXTRA_SECTIONS] [<<< EXTRA_MAIN]
    local extra=""
    [[ -t 0 ]] || extra=$(cat)
    hostile_conc_conf "${1:-}" <<<"	option psk_file '$LAB_WORK/auth-psk'
$extra"
}

auth_conc_reload() { nsx "$NS_CONC" "$BRAID_BIN" reload --socket "$CONC_SOCK" >/dev/null; }

# One request sealed with the key by braid-traffic.py, from the internet side; prints its JSON.
auth_convert() { # auth_convert [ARGS...]
    nsx "$NS_INET" python3 "$TRAFFIC" convert --connect "$CONC_ADDR" --port "$BRAID_PORT" \
        --psk-file "$LAB_WORK/auth-psk" --dest "$ORIGIN4" --dport "$ORIGIN_PORT" --identity conc.braid.test "$@"
}

auth_restart_conc() {
    hostile_stop_pid "$LAB_CONC_PID"
    hostile_start_conc
}

auth_control_down() { ! hostile_control_up; }
auth_uplink_up() { [[ $(uplink_state wan1) == up ]]; }

auth_refused() { # auth_refused JSON: the one Not Authorized answer (code 32)
    [[ $(json_field reply <<<"$1") == error && $(json_field code <<<"$1") == 32 ]]
}

section_auth() {
    local out first later own first_ok rate conc2_pid="" n
    "$BRAID_BIN" genkey >"$LAB_WORK/auth-psk" && chmod 600 "$LAB_WORK/auth-psk"

    # The gateway holds the key and its certificate; the concentrator has the key next to TLS.
    auth_conc_conf </dev/null
    hostile_gw_conf <<<"	option psk_file '$LAB_WORK/auth-psk'"
    hostile_stop_pid "$LAB_GW_PID"
    auth_restart_conc
    hostile_start_gw

    # 1. A disabled subscriber holding the key: its control channel is closed; its gateway,
    # restarted, has no session key and falls back to the pre-shared key, and gets nothing relayed.
    auth_conc_conf <<<"" "	option enabled '0'"
    auth_conc_reload
    wait_for 10 auth_control_down
    hostile_stop_pid "$LAB_GW_PID"
    ip netns exec "$NS_GW" "$BRAID_BIN" gateway --config "$LAB_WORK/gateway.conf" 2>>"$LAB_WORK/gateway.log" &
    LAB_GW_PID=$!
    LAB_PIDS+=("$LAB_GW_PID")
    # Its uplinks up first, so a refusal below is the concentrator's and not a gateway not ready.
    wait_for 10 test -S "$STATUS_SOCK" && wait_for 10 auth_uplink_up
    out=$(nsx "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN4" --port "$ORIGIN_PORT" --get 100000 --timeout 10)
    if auth_uplink_up && [[ $(json_field result <<<"$out") != ok && $(json_field bytes <<<"$out") == 0 ]]; then
        pass "disabled subscriber whose gateway falls back to the pre-shared key: nothing relayed ($(json_field result <<<"$out"))"
    else
        fail "disabled subscriber whose gateway falls back to the pre-shared key gets nothing relayed" "client: $out" \
            "uplinks: $(uplink_state wan1) $(uplink_state wan2) $(uplink_state wan3)"
    fi
    out=$(auth_convert --get 100000)
    if auth_refused "$out"; then
        pass "the pre-shared key next to TLS without psk_class: refused (Not Authorized)"
    else
        fail "the pre-shared key next to TLS without psk_class is refused" "reply: $out"
    fi

    # 2. The key's own class: max_sessions counts every holder together, rate_down shapes them.
    auth_conc_conf "
config class 'pskc'
	option max_sessions '2'
	option rate_down '8M'" <<<"	option psk_class 'pskc'"
    auth_conc_reload
    out=$(auth_convert --hold 3)
    n=$(python3 -c 'import json,sys; r=json.load(sys.stdin)["replies"]; print(" ".join(x["reply"] + str(x.get("code", "")) for x in r))' <<<"$out")
    if [[ $n == "ok ok error64" ]]; then
        pass "psk_class max_sessions 2: two sessions with the key open, the third gets Resource Exceeded"
    else
        fail "psk_class max_sessions 2 holds for the key's sessions" "replies: $n" "$out"
    fi
    out=$(auth_convert --get 4000000 --timeout 30)
    rate=$(python3 -c "import sys; print(f'{4000000 * 8 / max(float(sys.argv[1]), 0.001) / 1e6:.2f}')" \
        "$(json_field seconds <<<"$out")")
    if intact "$out" 4000000 sent && python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 8 * 1.1 else 1)" "$rate"; then
        pass "psk_class rate_down 8M: 4 MB with the key at $rate Mbit/s, sha256 equal"
    else
        fail "psk_class rate_down 8M shapes the key's sessions" "measured $rate Mbit/s" "client: $out"
    fi

    # 3. Refused outright by a reload, the file still configured.
    auth_conc_conf "
config class 'pskc'" </dev/null
    auth_conc_reload
    out=$(auth_convert)
    if auth_refused "$out"; then
        pass "psk_class removed by a reload (psk_file kept): the key is refused"
    else
        fail "removing psk_class refuses the key" "reply: $out"
    fi

    # 4. A captured request, played again after a restart and at a second concentrator that
    # shares the key but has another identity.
    auth_conc_conf "
config class 'pskc'" <<<"	option psk_class 'pskc'"
    auth_conc_reload
    first=$(auth_convert --save "$LAB_WORK/auth-captured" --get 100000)
    auth_restart_conc
    later=$(auth_convert --load "$LAB_WORK/auth-captured")
    # The refusal summary (every 10 s) counts it under its own reason.
    if intact "$first" 100000 sent && auth_refused "$later" &&
        wait_for 15 grep -q "reasons=.*before_start 1" "$LAB_WORK/concentrator.log"; then
        pass "a captured request: accepted once (100 kB, sha256 equal), refused after the concentrator restarts (before_start)"
    else
        fail "a captured request is refused after a restart, counted as before_start" "first: $first" \
            "after the restart: $later" "$(grep 'refused before authentication' "$LAB_WORK/concentrator.log" | tail -1)"
    fi

    "$BRAID_BIN" pki issue "$CA" conc2.braid.test --server >/dev/null
    sed -e "s|port '$BRAID_PORT'|port '$AUTH_PORT2'|; s|control_port '$CONTROL_PORT'|control_port '$AUTH_CONTROL2'|" \
        -e "s|conc.braid.test|conc2.braid.test|g; s|$CONC_SOCK|$LAB_WORK/conc2.sock|" \
        "$LAB_WORK/concentrator.conf" >"$LAB_WORK/conc2.conf"
    ip netns exec "$NS_CONC" "$BRAID_BIN" concentrator --config "$LAB_WORK/conc2.conf" \
        2>>"$LAB_WORK/conc2.log" &
    conc2_pid=$!
    LAB_PIDS+=("$conc2_pid")
    wait_for 10 nsx "$NS_CONC" bash -c "ss -Hltn 'sport = :$AUTH_PORT2' | grep -q LISTEN"
    first=$(auth_convert --save "$LAB_WORK/auth-captured" --get 100000)
    # Checked now: intact compares with the origin's latest transfer.
    intact "$first" 100000 sent && first_ok=yes || first_ok=no
    later=$(nsx "$NS_INET" python3 "$TRAFFIC" convert --connect "$CONC_ADDR" --port "$AUTH_PORT2" \
        --psk-file "$LAB_WORK/auth-psk" --dest "$ORIGIN4" --dport "$ORIGIN_PORT" --load "$LAB_WORK/auth-captured")
    own=$(nsx "$NS_INET" python3 "$TRAFFIC" convert --connect "$CONC_ADDR" --port "$AUTH_PORT2" \
        --psk-file "$LAB_WORK/auth-psk" --dest "$ORIGIN4" --dport "$ORIGIN_PORT" --identity conc2.braid.test \
        --get 100000)
    if [[ $first_ok == yes ]] && auth_refused "$later" && intact "$own" 100000 sent; then
        pass "a request captured for conc.braid.test is refused at conc2.braid.test sharing the key (which serves its own)"
    else
        fail "a captured request is refused at a second concentrator sharing the key" "at the first: $first" \
            "replayed at the second: $later" "sealed for the second: $own" "$(tail -3 "$LAB_WORK/conc2.log")"
    fi
    hostile_stop_pid "$conc2_pid"

    # 5. Revoked: the lab's configuration on both ends (no key), the gateway's channel up; a
    # reload that brings a CRL revoking cpe_1 closes its channel and drops its session keys.
    hostile_conc_conf </dev/null
    hostile_gw_conf </dev/null
    hostile_stop_pid "$LAB_GW_PID"
    auth_restart_conc
    hostile_start_gw
    out=$(lan_get 100000)
    if intact "$out" 100000 sent; then
        "$BRAID_BIN" pki revoke "$CA" cpe_1 >/dev/null
        auth_conc_reload
        out=""
        if wait_for 10 auth_control_down; then
            out=$(nsx "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN4" --port "$ORIGIN_PORT" --get 100000 \
                --timeout 10)
        fi
        if [[ -n $out && $(json_field result <<<"$out") != ok && $(json_field bytes <<<"$out") == 0 ]] &&
            auth_uplink_up; then
            pass "a reload with a CRL revoking cpe_1 closes its control channel; its session key relays nothing ($(json_field result <<<"$out"))"
        else
            fail "a reload with a CRL revoking a connected gateway closes its channel and drops its keys" \
                "control: $(auth_control_down && echo down || echo up)" "client: $out"
        fi
    else
        fail "a download through cpe_1 before its revocation" "client: $out"
    fi

    # The lab again: a new certificate for cpe_1 (the CRL names the old serial only); restarts,
    # since psk_file and the certificate files are read at start.
    "$BRAID_BIN" pki issue "$CA" cpe_1 --force >/dev/null
    hostile_stop_pid "$LAB_GW_PID"
    auth_restart_conc
    hostile_start_gw
    hostile_restore
}
