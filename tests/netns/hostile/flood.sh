# hostile.sh section: cheap exhaustion before authentication. From the inet namespace, 16 IPv6
# /64s of one /48 (2001:db8:66::/48, on its loopback: the namespace is the router) open idle data
# connections to the concentrator until every pending slot is taken; meanwhile the subscriber's
# new sessions through the gateway must still work.
#
#   lan ── [gw] ══ wan1/2/3 ══ [inet] ── [conc: max_pending 1024, 64 per /64, handshake 30 s]
#                               lo: 2001:db8:66:{0..15}::1 ── 16 x 64 idle connections
#
# The attack of the hardening issue is 16 /64s x 1,024 idle connections against the default
# max_pending 16,384; scaled down here by 16 so the flood opens quickly on two cores: the same
# shape, the same 16 sources filling every slot. handshake_timeout (30 s plus the time the flood
# takes to open) keeps the idle ones pending for the whole section.
#
# Then, on the lab's configuration, SYNs with a partial request in them (Fast Open without a
# cookie) from sources that never see the SYN-ACK (2001:db8:67::/48; the inet namespace drops what
# the concentrator sends there), as a spoofed SYN would: none may become a connection the
# concentrator accepts and holds a pending slot and a descriptor for.

FLOOD_TOOL="tests/netns/braid-flood.py"
FLOOD_PREFIX=2001:db8:66
FLOOD_NETS=16
# BRAID_FLOOD_PER_NET=1024 runs the issue's full scale (16,384 idle connections, ~20 s to open).
FLOOD_PER_NET=${BRAID_FLOOD_PER_NET:-64}
FLOOD_MAX_PENDING=$((FLOOD_NETS * FLOOD_PER_NET))
SPOOF_PREFIX=2001:db8:67
SPOOF_COUNT=256

# Idle connections from the flood /48 to the data port that the concentrator holds open now.
flood_held() {
    nsx "$NS_CONC" ss -Htn state established "( sport = :$BRAID_PORT )" | grep -c "\[$FLOOD_PREFIX:" || true
}

flood_full() { (($(flood_held) >= FLOOD_MAX_PENDING)); }

# Stops the flood tool (SIGTERM: it reports what it held, then exits) and removes the flood's
# addresses. Every return of the section calls it; an interrupted run leaves both to the lab's
# own trap, which deletes the namespaces and what runs in them.
flood_cleanup() {
    if [[ -n ${FLOOD_PID:-} ]]; then
        hostile_stop_pid "$FLOOD_PID"
        wait "$FLOOD_PID" 2>/dev/null
    fi
    FLOOD_PID=""
    local n
    for ((n = 0; n < FLOOD_NETS; n++)); do
        nsx "$NS_INET" ip addr del "$FLOOD_PREFIX:$n::1/128" dev lo 2>/dev/null
    done
    return 0
}

section_flood() {
    local calm calm_ttfb
    calm=$(lan_get 1000000)
    calm_ttfb=$(json_field first_byte <<<"$calm")
    if ! intact "$calm" 1000000 sent; then
        fail "flood: unflooded reference download" "$calm"
        return
    fi

    # The concentrator with limits the flood can fill (fixed options: a restart, not a reload).
    hostile_restart_conc_with 15 "flood: concentrator restarted with max_pending $FLOOD_MAX_PENDING" <<CONF || return
	option max_pending '$FLOOD_MAX_PENDING'
	option max_pending_per_source '$FLOOD_PER_NET'
	option handshake_timeout '$((FLOOD_MAX_PENDING / 500 + 30))'
CONF

    local n sources=()
    for ((n = 0; n < FLOOD_NETS; n++)); do
        nsx "$NS_INET" ip addr add "$FLOOD_PREFIX:$n::1/128" dev lo nodad
        sources+=("$FLOOD_PREFIX:$n::1")
    done
    local IFS=,
    # A few more than fit, so each /64 also meets its own limit; held until the deadline.
    ip netns exec "$NS_INET" python3 "$FLOOD_TOOL" --connect "2001:db8:10::2" --port "$BRAID_PORT" \
        --sources "${sources[*]}" \
        --count $((FLOOD_MAX_PENDING + 4 * FLOOD_NETS)) --rate 1000 --kinds idle \
        --deadline $((FLOOD_MAX_PENDING / 1000 + 40)) \
        >"$LAB_WORK/flood-idle.json" 2>"$LAB_WORK/flood-idle.err" &
    FLOOD_PID=$!
    unset IFS
    if ! wait_for $((FLOOD_MAX_PENDING / 500 + 20)) flood_full; then
        fail "flood: $FLOOD_NETS /64s hold every pending slot" "held $(flood_held) of $FLOOD_MAX_PENDING" \
            "$(cat "$LAB_WORK/flood-idle.err")"
        flood_cleanup
        hostile_stop_pid "$LAB_CONC_PID"
        hostile_restore
        return
    fi
    pass "flood: $FLOOD_NETS /64s of one /48 hold $(flood_held) idle connections, every pending slot"

    # The subscriber's new sessions: several short ones and one long, each sha256-checked.
    local i out ok=0 worst=0 ttfb bad=""
    for i in 1 2 3 4 5; do
        out=$(lan_get 1000000)
        ttfb=$(json_field first_byte <<<"$out")
        if intact "$out" 1000000 sent; then
            ok=$((ok + 1))
            worst=$(python3 -c 'import sys; print(max(float(sys.argv[1]), float(sys.argv[2])))' "$worst" "$ttfb")
        else
            bad+=" $out"
        fi
    done
    out=$(lan_get "$HOSTILE_SIZE")
    local big_ok=no
    intact "$out" "$HOSTILE_SIZE" sent && big_ok=yes
    if ((ok == 5)) && [[ $big_ok == yes ]] &&
        python3 -c 'import sys; c, w = map(float, sys.argv[1:]); sys.exit(w > max(1.0, 10 * c))' \
            "$calm_ttfb" "$worst"; then
        pass "flood: the subscriber's 5 new sessions of 1 MB and one of $((HOSTILE_SIZE / 1000000)) MB intact\
 (sha256 equal), first byte after at most ${worst} s (unflooded ${calm_ttfb} s)"
    else
        fail "flood: the subscriber's new sessions work while the flood holds every slot" \
            "$ok of 5 short ones intact, worst first byte ${worst} s (unflooded ${calm_ttfb} s)${bad}" \
            "long one intact: $big_ok: $out" "$(grep -c 'reset at accept' "$LAB_WORK/concentrator.log") resets logged"
    fi

    # The flood's connections: held, evicted with the one Not Authorized answer, or reset at accept.
    flood_cleanup
    local verdict
    verdict=$(python3 - "$LAB_WORK/flood-idle.json" <<'PY'
import json, sys
try:
    r = json.loads(open(sys.argv[1]).read())
except Exception as e:
    print(f"bad no result from the flood tool: {e}"); sys.exit()
o = r["outcomes"]
held, evicted, reset = o.get("open:-", 0), o.get("eof:010200001e012000", 0), o.get("reset:-", 0)
other = {k: v for k, v in o.items() if k not in ("open:-", "eof:010200001e012000", "reset:-")}
ok = evicted > 0 and reset > 0 and not other
print(("ok" if ok else "bad")
      + f" {held} held, {evicted} evicted (Not Authorized), {reset} reset at accept; other: {other}")
PY
)
    if [[ $verdict == ok* ]]; then
        pass "flood: ${verdict#ok }"
    else
        fail "flood: the subscriber's sessions took slots from the flood, which saw only the refusal answers" \
            "${verdict#bad }"
    fi

    hostile_stop_pid "$LAB_CONC_PID"
    hostile_restore || fail "flood: lab configuration restored"
    flood_spoofed_fastopen
    flood_fastopen_cookies
}

conc_fds() { ls "/proc/$LAB_CONC_PID/fd" 2>/dev/null | wc -l; }

# SYNs from the spoof /48 that the concentrator's kernel holds (request sockets, or Fast Open
# children handed to braid).
spoof_syn_recv() {
    nsx "$NS_CONC" ss -Htn state syn-recv "( sport = :$BRAID_PORT )" | grep -c "\[$SPOOF_PREFIX:" || true
}
spoof_arrived() { (($(spoof_syn_recv) >= SPOOF_COUNT)); }

spoof_cleanup() {
    if [[ -n ${SPOOF_PID:-} ]]; then
        hostile_stop_pid "$SPOOF_PID"
        wait "$SPOOF_PID" 2>/dev/null
    fi
    SPOOF_PID=""
    nsx "$NS_INET" nft delete table inet braid_test_spoof 2>/dev/null
    local n
    for ((n = 0; n < FLOOD_NETS; n++)); do
        nsx "$NS_INET" ip addr del "$SPOOF_PREFIX:$n::1/128" dev lo 2>/dev/null
    done
    return 0
}

flood_spoofed_fastopen() {
    local n sources=()
    for ((n = 0; n < FLOOD_NETS; n++)); do
        nsx "$NS_INET" ip addr add "$SPOOF_PREFIX:$n::1/128" dev lo nodad
        sources+=("$SPOOF_PREFIX:$n::1")
    done
    nsx "$NS_INET" nft -f - <<NFT
table inet braid_test_spoof {
    chain input {
        type filter hook input priority 0; policy accept;
        ip6 daddr $SPOOF_PREFIX::/48 ip6 saddr 2001:db8:10::2 drop
    }
}
NFT
    local base samples=() peak
    base=$(conc_fds)
    local IFS=,
    ip netns exec "$NS_INET" python3 "$FLOOD_TOOL" --connect "2001:db8:10::2" --port "$BRAID_PORT" \
        --sources "${sources[*]}" \
        --count "$SPOOF_COUNT" --rate 2000 --kinds partial --fastopen --deadline 20 \
        >"$LAB_WORK/flood-spoof.json" 2>"$LAB_WORK/flood-spoof.err" &
    SPOOF_PID=$!
    unset IFS
    if ! wait_for 10 spoof_arrived; then
        fail "flood: $SPOOF_COUNT spoofed SYNs with data reach the concentrator" "$(spoof_syn_recv) arrived" \
            "$(cat "$LAB_WORK/flood-spoof.err")"
        spoof_cleanup
        return
    fi
    # Within handshake_timeout (2 s) of their arrival: sample the concentrator's descriptors for a
    # second, ten times (a measurement, not a wait).
    for n in $(seq 10); do
        samples+=("$(conc_fds)")
        sleep 0.1
    done
    peak=$(printf '%s\n' "${samples[@]}" | sort -n | tail -1)
    if ((peak < base + SPOOF_COUNT / 8)); then
        pass "flood: $SPOOF_COUNT spoofed SYNs with a request in them stay in the kernel (SYN-RECV):\
 concentrator descriptors $base before, at most $peak after"
    else
        fail "flood: spoofed SYNs with data take no pending slot" \
            "concentrator descriptors $base before, up to $peak after" \
            "$SPOOF_COUNT SYNs from sources that never answered"
    fi
    spoof_cleanup
}

# The sum of nstat counters in a namespace, absolute (a counter not yet counted is 0).
ns_counter() { # ns_counter NS NAME...
    local ns=$1; shift
    nsx "$ns" nstat -asz "$@" 2>/dev/null | awk '{ sum += $2 } END { print sum + 0 }'
}

# What cookies cost a gateway with `option fastopen 1`: its first connection from a source asks
# for the cookie (the request follows the handshake), later ones put the request in the SYN, and
# the concentrator takes it there (TCPFastOpenPassive) without MPTCP falling back to TCP.
flood_fastopen_cookies() {
    hostile_gw_conf <<<"	option fastopen '1'"
    hostile_stop_pid "$LAB_GW_PID"
    if ! hostile_start_gw; then
        fail "flood: gateway restarted with fastopen 1" "$(tail -5 "$LAB_WORK/gateway.log")"
        hostile_restore
        return
    fi
    local active0 passive0 fallback0 i out ok=0 sessions=6 ttfbs=()
    active0=$(ns_counter "$NS_GW" TcpExtTCPFastOpenActive)
    passive0=$(ns_counter "$NS_CONC" TcpExtTCPFastOpenPassive)
    local fallbacks=(MPTcpExtMPCapableFallbackACK MPTcpExtMPCapableFallbackSYNACK MPTcpExtMPCapableDataFallback)
    fallback0=$(ns_counter "$NS_CONC" "${fallbacks[@]}")
    for ((i = 0; i < sessions; i++)); do
        out=$(lan_get 1000000)
        intact "$out" 1000000 sent && ok=$((ok + 1))
        ttfbs+=("$(json_field first_byte <<<"$out")")
    done
    local active passive fallback
    active=$(($(ns_counter "$NS_GW" TcpExtTCPFastOpenActive) - active0))
    passive=$(($(ns_counter "$NS_CONC" TcpExtTCPFastOpenPassive) - passive0))
    fallback=$(($(ns_counter "$NS_CONC" "${fallbacks[@]}") - fallback0))
    # One cookie per source address: the gateway may open the first sessions from each of its 3 uplinks.
    if ((ok == sessions && active >= sessions - 3 && passive >= sessions - 3 && fallback == 0)); then
        pass "flood: fastopen 1 with cookies: $sessions sessions intact, $active SYNs with the request sent,\
 $passive taken by the concentrator, $fallback fell back to TCP; first bytes after ${ttfbs[*]} s"
    else
        fail "flood: a gateway with fastopen 1 still puts its request in the SYN (cookie cached)" \
            "$ok of $sessions intact, SYNs with data sent $active, taken $passive, MPTCP fallbacks $fallback" \
            "first bytes after ${ttfbs[*]} s"
    fi
    hostile_stop_pid "$LAB_GW_PID"
    hostile_restore || fail "flood: lab configuration restored"
}
