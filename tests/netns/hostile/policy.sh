# hostile.sh section: the concentrator's destination policy, through the whole path.
#
#   lan ──▶ [gw] ══ wan1-3 ══ [inet] ──▶ [conc] ── nft output: SYNs counted; anything outside
#   curl http://DENIED/                            198.18.0.0/15 and 2001:db8::/32 dropped here
#
# The LAN host asks for private, shared, metadata and embedded addresses; the gateway intercepts
# the request and carries it to the concentrator as a Convert destination. Nothing answers on
# those addresses and no packet to them leaves the concentrator's namespace: its output chain
# counts every SYN it sends and drops those to addresses outside the lab's ranges. A refusal must
# be the policy's (no SYN counted), and a range opened with allow_dest shows as a counted SYN.

POLICY_V4=(172.16.5.1 10.5.5.1 192.168.5.1 100.64.5.1 169.254.169.254 100.100.100.200 168.63.129.16)
# fc00::/7 and metadata; NAT64, 6to4 and Teredo (server 198.18.20.2, client 169.254.169.254
# inverted) forms of 169.254.169.254.
POLICY_V6=(fd00:5::1 fd00:ec2::254 64:ff9b::a9fe:a9fe 2002:a9fe:a9fe::1 2001:0:c612:1402::5601:5601)
POLICY_NFT_TABLE=braid_policy_test

# Counts the concentrator's SYNs and keeps whatever is not for the lab inside its namespace.
policy_setup() {
    nsx "$NS_CONC" nft -f - <<NFT
table inet $POLICY_NFT_TABLE {
    counter syns {}
    chain output {
        type filter hook output priority filter; policy accept;
        # The concentrator's only outgoing connections are to destinations: count their first SYNs.
        tcp flags & (syn | ack) == syn counter name syns
        ip daddr != 198.18.0.0/15 drop
        ip6 daddr != 2001:db8::/32 drop
    }
}
NFT
}

policy_teardown() { nsx "$NS_CONC" nft delete table inet "$POLICY_NFT_TABLE" 2>/dev/null; }

# Connection attempts the concentrator has sent so far.
policy_syns() { nsx "$NS_CONC" nft list counter inet "$POLICY_NFT_TABLE" syns | awk '/packets/ {print $2}'; }

# Writes the concentrator's configuration with extra 'main' lines (stdin) and reloads it; the
# reload's answer goes to POLICY_RELOAD.
policy_reload() {
    hostile_conc_conf
    POLICY_RELOAD=$(nsx "$NS_CONC" "$BRAID_BIN" reload --socket "$CONC_SOCK" 2>&1)
}

# A LAN host's request for http://ADDRESS[:PORT]/big must be refused quickly (a reset, not a hang),
# with nothing received and no SYN leaving the concentrator.
policy_refused() { # policy_refused LABEL ADDRESS [PORT]
    local label=$1 host=$2 port=${3:-80} before after seconds bytes rc
    [[ $host == *:* ]] && host="[$host]"
    : >"$LAB_WORK/policy.body"  # curl creates it only when something arrives
    before=$(policy_syns)
    seconds=$(nsx "$NS_LAN" curl -sS -g --max-time 10 -o "$LAB_WORK/policy.body" -w '%{time_total}' \
        "http://$host:$port/big" 2>"$LAB_WORK/policy.err")
    rc=$?
    after=$(policy_syns)
    bytes=$(wc -c <"$LAB_WORK/policy.body")
    if ((rc != 0 && rc != 28 && bytes == 0 && after == before)) && awk -v s="$seconds" 'BEGIN { exit !(s < 5) }'; then
        pass "$label: $host:$port refused (curl exit $rc after ${seconds}s), no SYN from the concentrator"
    else
        fail "$label: $host:$port refused" "curl exit $rc, $bytes bytes received, sha256 $(sha256sum <"$LAB_WORK/policy.body" | cut -c1-16)…" \
            "after ${seconds}s: $(cat "$LAB_WORK/policy.err")" \
            "SYNs the concentrator sent: $before -> $after"
    fi
    rm -f "$LAB_WORK/policy.body" "$LAB_WORK/policy.err"
}

# A LAN host's request for ADDRESS must make the concentrator open a connection to it (a SYN
# counted; the lab drops it, as nothing serves that address here).
policy_tried() { # policy_tried LABEL ADDRESS
    local host=$2 before after
    [[ $host == *:* ]] && host="[$host]"
    before=$(policy_syns)
    nsx "$NS_LAN" curl -sS -g --max-time 10 -o /dev/null "http://$host/big" 2>/dev/null
    after=$(policy_syns)
    if ((after > before)); then
        pass "$1: the concentrator connects to $2 (SYNs $before -> $after)"
    else
        fail "$1: the concentrator connects to $2" "SYNs the concentrator sent: $before -> $after" \
            "$(tail -3 "$LAB_WORK/concentrator.log")"
    fi
}

# A LAN host's download of nginx's /big from ADDRESS must arrive whole (sha256 equal).
policy_served() { # policy_served LABEL ADDRESS
    local sha
    sha=$(curl_big "$([[ $2 == *:* ]] && echo "[$2]" || echo "$2")")
    if [[ $sha == "$BIG_SHA" ]]; then
        pass "$1: $((HOSTILE_SIZE / 1000000)) MB from $2 through the gateway, sha256 equal"
    else
        fail "$1: download from $2" "got sha256 '$sha', want $BIG_SHA" "$(tail -3 "$LAB_WORK/concentrator.log")"
    fi
}

section_policy() {
    local a
    if ! policy_setup; then
        fail "policy: the concentrator's SYN counter" "could not add the nft table"
        policy_teardown
        return
    fi

    # 1. The built-in list, with the lab's own configuration (no allow_dest).
    for a in "${POLICY_V4[@]}" "${POLICY_V6[@]}"; do policy_refused "built-in" "$a"; done
    policy_refused "built-in, IPv4-mapped IPv6 destination" "::ffff:172.16.5.1"

    # 2. allow_dest opens what it names, nothing more; the concentrator itself stays closed.
    policy_reload <<<"	list allow_dest '172.16.5.0/24'
	list allow_dest '169.254.0.0/16'
	list allow_dest 'fd00:5::/64'
	list allow_dest '::ffff:198.18.10.0/120'
	list allow_dest '2001:db8:10::/64'"
    if [[ $POLICY_RELOAD == "reloaded: allow_dest 172.16.5.0/24 added; allow_dest 169.254.0.0/16 added; allow_dest fd00:5::/64 added; allow_dest 198.18.10.0/24 added; allow_dest 2001:db8:10::/64 added" ]]; then
        pass "allow_dest by reload: $POLICY_RELOAD"
    else
        fail "allow_dest by reload" "$POLICY_RELOAD"
    fi
    policy_tried "allow_dest 172.16.5.0/24" 172.16.5.1
    policy_tried "allow_dest fd00:5::/64" fd00:5::1
    policy_refused "allow_dest 172.16.5.0/24, neighbour outside it" 172.16.6.1
    policy_refused "allow_dest 169.254.0.0/16, the metadata host in it" 169.254.169.254
    policy_refused "allow_dest 169.254.0.0/16, the metadata host as NAT64" 64:ff9b::a9fe:a9fe
    policy_refused "allow_dest of its own network, the concentrator itself" "$CONC_ADDR" "$CONTROL_PORT"
    policy_refused "allow_dest of its own network, the concentrator itself (IPv6)" 2001:db8:10::2 "$CONTROL_PORT"
    policy_refused "the concentrator itself as NAT64" 64:ff9b::c612:a02 "$CONTROL_PORT"

    # 3. Ports.
    policy_reload <<<"	list deny_port '8000-8080'"
    policy_refused "deny_port 8000-8080" "$ORIGIN4" "$ORIGIN_PORT"
    policy_served "deny_port 8000-8080, port 80" "$ORIGIN4"
    policy_reload <<<"	list allow_port '80'"
    policy_refused "allow_port 80, port $ORIGIN_PORT" "$ORIGIN4" "$ORIGIN_PORT"
    policy_served "allow_port 80" "$ORIGIN4"

    # 4. Refusals are counted, not logged one by one: the notice every 10 s names the rules.
    local log="$LAB_WORK/concentrator.log"
    if wait_for 12 bash -c "grep 'refused destinations' '$log' | grep -q 'own address'" &&
        grep 'refused destinations' "$log" | grep -q 'built-in 172.16.0.0/12'; then
        pass "refusals counted by rule: $(grep 'refused destinations' "$log" | grep -o 'rules=[^=]*' | head -1)"
    else
        fail "refusals counted by rule" "$(grep 'refused destinations' "$log" | tail -2)"
    fi

    policy_teardown
    hostile_restore
}
