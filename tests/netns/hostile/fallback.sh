# hostile.sh section: connections that fall back to plain TCP at their start. A middlebox in inet
# drops most packets from the uplinks that carry MP_CAPABLE after the SYN (the third ACK and the
# first data segments, which RFC 8684 §3.1 repeats the option in): the concentrator then creates
# the connection from a later segment without the option and falls back to TCP
# (MPCapableFallbackACK), and the gateway follows when it sees no DSS in the answer
# (MPCapableDataFallback). The soak once saw an upload arrive full length but not as sent during
# flaps, with such fallbacks in its counters: this checks that a fallen-back connection carries
# its bytes intact both ways, uploads with a pattern payload so a failure says where its wrong
# bytes came from.
#
#   lan ── [gw] ══ wan1-3 ══ [inet] ── [conc] ── [origin]
#                             drops 90 % of the non-SYN segments with MP_CAPABLE to :4800

FALLBACK_ROUNDS=${FALLBACK_ROUNDS:-6}
FALLBACK_SIZE=2000000
FALLBACK_DROP=${FALLBACK_DROP:-90} # percent of the segments carrying MP_CAPABLE after the SYN dropped

section_fallback() {
    local before after n size out want ok=0 all=0 problems=() record what
    before=$(fallback_count)
    nsx "$NS_INET" nft -f - <<NFT
table inet braid_test_mpc_drop {
    chain forward {
        type filter hook forward priority -20;
        iifname { "gw1", "gw2", "gw3" } tcp dport $BRAID_PORT tcp flags & (syn | ack) == ack \
            tcp option mptcp subtype 0 numgen random mod 100 < $FALLBACK_DROP drop
    }
}
NFT
    for n in $(seq "$FALLBACK_ROUNDS"); do
        all=$((all + 1))
        if ((n % 3)); then
            size=$((FALLBACK_SIZE + n))
            out=$(nsx "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN6" --port "$ORIGIN_PORT" \
                --put "$size" --pattern "$n" --timeout 60)
            want=$(json_field answer <<<"$out" | awk -v s="$size" '$1 == s {print $2}')
            record=$(grep "\"bytes\": $size," "$LAB_WORK/origin.log" | grep '"received"' | tail -1)
        else
            size=$((FALLBACK_SIZE + 100 + n))
            out=$(nsx "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN4" --port "$ORIGIN_PORT" \
                --get "$size" --timeout 60)
            record=$(grep "\"bytes\": $size," "$LAB_WORK/origin.log" | grep '"sent"' | tail -1)
            want=$(json_field sha256 <<<"$record")
        fi
        if [[ $(json_field result <<<"$out") == ok && $(json_field bytes <<<"$out") == "$size" &&
            -n $want && $(json_field sha256 <<<"$out") == "$want" ]]; then
            ok=$((ok + 1))
        else
            problems+=("transfer $n ($size bytes): $out" "  origin: ${record:-nothing logged}")
        fi
    done
    nsx "$NS_INET" nft delete table inet braid_test_mpc_drop
    after=$(fallback_count)
    if ((after <= before)); then
        fail "fallback: no connection fell back to TCP (MPCapableFallbackACK $before -> $after)" \
            "the middlebox rule did nothing, so the transfers proved nothing"
    elif ((ok == all)); then
        what="fallback: $all transfers with a middlebox dropping MP_CAPABLE after the SYN,"
        pass "$what $((after - before)) connections fell back to TCP, every one complete with sha256 equal"
    else
        fail "fallback: transfers on connections falling back to TCP complete and intact" "$ok of $all" "${problems[@]}"
    fi
}

# The concentrator's count of connections that fell back to TCP at their third ACK.
fallback_count() {
    nsx "$NS_CONC" nstat -asz MPTcpExtMPCapableFallbackACK 2>/dev/null |
        awk '$1 == "MPTcpExtMPCapableFallbackACK" {n = $2} END {print n + 0}'
}
