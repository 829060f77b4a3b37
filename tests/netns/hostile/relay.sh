# hostile.sh section: third-party clients through the bonded path, peers that reset, half-close
# and stall in both directions, and connections from the uplinks to every port the gateway
# listens on. What one connection does must end that connection only: after each part both
# daemons are the same processes, and each round ends with sha256-checked transfers.
#
# Two rounds: the lab's daemons (TLS control channel), then fresh daemons with a pre-shared key
# only. The second matters: the TLS code (swift-nio) ignores SIGPIPE for the whole process when it
# opens its first socket, so only a daemon that never opened one shows whether the relay itself
# survives a write to a reset socket.

RUDE="$LAB_DIR/tests/netns/braid-rude.py"
RUDE_PORT=8081
TPROXY_PORT=4801  # the gateway's default tproxy_port; the lab does not set it

section_relay() {
    relay_curl
    relay_round "lab daemons, TLS control channel"
    relay_from_uplinks
    relay_second_line
    relay_gateway_killed
    relay_psk_daemons && relay_round "pre-shared key only, no TLS socket ever opened"
    hostile_stop_pid "$LAB_GW_PID"
    hostile_stop_pid "$LAB_CONC_PID"
    hostile_restore
}

relay_curl() {
    local sha
    sha=$(curl_big)
    if [[ $sha == "$BIG_SHA" ]]; then
        pass "curl: nginx's $((HOSTILE_SIZE / 1000000)) MB file through the gateway, sha256 equal"
    else
        fail "curl through the gateway" "got sha256 '$sha', want $BIG_SHA"
    fi
}

# iperf3 both ways with 1 and 8 streams, rude clients, a rude origin; then the same two daemons
# must serve a sha256-checked download, upload and curl.
relay_round() { # relay_round LABEL
    local conc_pid=$LAB_CONC_PID gw_pid=$LAB_GW_PID
    echo "   round: $1"
    relay_iperf3 "upload" &&
        relay_iperf3 "download" -R &&
        relay_iperf3 "upload, 8 streams" -P 8 &&
        relay_iperf3 "download, 8 streams" -P 8 -R
    relay_rude_clients
    relay_rude_origin
    if [[ $LAB_CONC_PID == "$conc_pid" && $LAB_GW_PID == "$gw_pid" ]]; then
        relay_transfers "$1: after the rude part, the same two daemons (pids $conc_pid, $gw_pid)"
    else
        fail "$1: the same two daemons through the rude part" \
            "concentrator pid $conc_pid -> $LAB_CONC_PID, gateway pid $gw_pid -> $LAB_GW_PID"
        relay_transfers "$1: after the rude part, daemons restarted"
    fi
}

# One iperf3 run from the LAN host to the origin's iperf3 server; passes when iperf3 succeeds and
# both daemons are still the same processes. iperf3 checks no data, so relay_transfers follows.
relay_iperf3() { # relay_iperf3 LABEL [IPERF3 OPTIONS]
    local label=$1 out bytes
    shift
    out=$(nsx "$NS_LAN" timeout 30 iperf3 -c "$ORIGIN4" -p 5201 -t 3 --connect-timeout 5000 -J "$@" 2>&1)
    bytes=$(python3 -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bytes"]))' \
        <<<"$out" 2>/dev/null)
    if [[ -n $bytes && $bytes -gt 0 ]] && relay_alive; then
        pass "iperf3 $label through the gateway: $((bytes / 1000000)) MB, both daemons alive"
        return 0
    fi
    relay_status
    fail "iperf3 $label through the gateway, both daemons alive" "$RELAY_STATUS" \
        "iperf3: $(tail -c 300 <<<"$out" | tr '\n' ' ')"
    relay_revive
    return 1
}

# Clients that reset downloads and uploads at random points, reset at once, stall and half-close,
# against the origin's braid-traffic.py server.
relay_rude_clients() {
    local out
    out=$(nsx "$NS_LAN" timeout 100 python3 "$RUDE" client --connect "$ORIGIN4" --port "$ORIGIN_PORT" \
        --deadline 60 --count 200 --parallel 20 --seed 7)
    if [[ $(json_field failures <<<"$out" 2>/dev/null) == 0 ]] && relay_alive; then
        pass "200 LAN clients that reset, stall and half-close ($(json_field modes <<<"$out")); both daemons alive"
    else
        relay_status
        fail "LAN clients that reset, stall and half-close; both daemons alive" "client: $out" "$RELAY_STATUS"
        relay_revive
    fi
}

# An origin that resets at once, mid-transfer, half-closes and stalls, for downloads and uploads.
relay_rude_origin() {
    local out pid
    # Not through nsx: a backgrounded function is a subshell, and killing it would leave python.
    ip netns exec "$NS_ORG" python3 "$RUDE" origin --port "$RUDE_PORT" --seed 11 --lifetime 300 &
    pid=$!
    LAB_PIDS+=("$pid")
    if ! wait_for 10 nsx "$NS_ORG" bash -c "ss -Hltn | grep -q ':$RUDE_PORT '"; then
        fail "rude origin listening on $RUDE_PORT"
        return
    fi
    # The origin is the rude one here: every client mode but the polite half-close, whose answer
    # this origin never gives.
    out=$(nsx "$NS_LAN" timeout 100 python3 "$RUDE" client --connect "$ORIGIN4" --port "$RUDE_PORT" \
        --deadline 60 --modes download-reset,upload-reset,half-close-reset,stall --count 200 --parallel 20 --seed 13)
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    if [[ $(json_field failures <<<"$out" 2>/dev/null) == 0 ]] && relay_alive; then
        pass "200 connections to an origin that resets, stalls and half-closes; both daemons alive"
    else
        relay_status
        fail "connections to an origin that resets, stalls and half-closes; both daemons alive" \
            "client: $out" "$RELAY_STATUS"
        relay_revive
    fi
}

# From the inet namespace (the uplinks' side) to every global address of the gateway's uplinks and
# every port it listens on: nothing may answer, and nothing may be relayed (each relayed connection
# is a session in the gateway's status; a relay loop adds thousands a second).
relay_from_uplinks() {
    local ports addrs before result relayed=0 hold
    ports=$(nsx "$NS_GW" ss -Hltn | awk '{print $4}' | sed 's/.*://' | sort -un | tr '\n' ' ')
    addrs=$(for dev in wan1 wan2 wan3; do
        nsx "$NS_GW" ip -o addr show dev "$dev" scope global | awk '{print $4}' | cut -d/ -f1
    done | tr '\n' ' ')
    if [[ -z $ports || -z $addrs ]]; then
        fail "connections from the uplinks: found the gateway's ports and addresses" \
            "ports '$ports', addresses '$addrs'"
        return
    fi
    before=$(gw_sessions_total)
    result="$LAB_WORK/uplink-scan"
    rm -f "$result"
    # Each connection that opens is held for 5 s, as an attacker would, while the session count
    # is watched; the list of what answered is written as soon as every attempt is done.
    ip netns exec "$NS_INET" python3 - "$result" "$ports" "$addrs" <<'PY' &
import os, socket, sys, time
out, ports, addrs = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
held, reached = [], []
for port in ports:
    for addr in addrs:
        s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect((addr, int(port)))
            s.sendall(b"GET 1000\n")
            reached.append(f"{addr}:{port}" if ":" not in addr else f"[{addr}]:{port}")
            held.append(s)
        except OSError:
            s.close()
with open(out + ".tmp", "w") as f:
    f.write(" ".join(reached) + "\n")
os.rename(out + ".tmp", out)
time.sleep(5 if held else 0)
PY
    hold=$!
    wait_for 60 test -f "$result"
    # 3 s without growth (polled against a deadline) says no connection became a session.
    if wait_for 3 gw_sessions_above "$before"; then relayed=$((RELAY_SESSIONS_SEEN - before)); fi
    wait "$hold"
    if [[ -f $result && -z $(tr -d ' \n' <"$result") ]]; then
        pass "no gateway port (${ports% }) answers on the uplinks' addresses (${addrs% })"
    else
        fail "no gateway port answers on the uplinks' addresses" "reached: $(cat "$result" 2>/dev/null)"
    fi
    if [[ $relayed == 0 ]] && relay_alive; then
        pass "connections from the uplinks to the gateway's ports are not relayed; both daemons alive"
    else
        relay_status
        fail "connections from the uplinks to the gateway's ports are not relayed; both daemons alive" \
            "gateway sessions: $before before, at least $relayed more within 3 s" "$RELAY_STATUS"
        hostile_stop_pid "$LAB_GW_PID"
        hostile_stop_pid "$LAB_CONC_PID"
        hostile_restore
    fi
}

# The gateway's own check behind the input chain: with that chain emptied, a connection from an
# uplink to the listener's port is accepted by the kernel, and the gateway must reset it instead
# of relaying it. The gateway is restarted afterwards to get its table back.
relay_second_line() {
    local addr=198.18.1.2 before answer relayed=0
    before=$(gw_sessions_total)
    if ! nsx "$NS_GW" nft flush chain inet braid input; then
        fail "second line: emptied the interception table's input chain"
        return
    fi
    answer=$(nsx "$NS_INET" timeout 10 python3 - "$addr" "$TPROXY_PORT" <<'PY'
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    s.sendall(b"GET 1000\n")
    print("data" if s.recv(100) else "closed")
except ConnectionResetError:
    print("reset")
except OSError as e:
    print(type(e).__name__)
PY
    )
    if wait_for 3 gw_sessions_above "$before"; then relayed=$((RELAY_SESSIONS_SEEN - before)); fi
    if [[ $answer == reset && $relayed == 0 ]] && relay_alive &&
        wait_for 5 grep -q "not handed over by the interception rule" "$LAB_WORK/gateway.log"; then
        pass "without the input chain, the gateway resets a connection from an uplink to $addr:$TPROXY_PORT"
    else
        relay_status
        fail "without the input chain, the gateway resets a connection from an uplink to $addr:$TPROXY_PORT" \
            "client saw: $answer" "gateway sessions: $before before, at least $relayed more within 3 s" \
            "$RELAY_STATUS" "$(tail -2 "$LAB_WORK/gateway.log")"
    fi
    hostile_stop_pid "$LAB_GW_PID"
    hostile_stop_pid "$LAB_CONC_PID"
    hostile_restore
}

# A gateway killed without its clean stop leaves its interception table behind. LAN TCP must not
# then leave unbonded through the main table: no packet from the LAN host's own address may reach
# the internet side (counted there by nftables; the lab has no NAT, so such a connection could not
# complete, but a CPE's would). A restarted gateway replaces the table and relays again.
relay_gateway_killed() {
    local leaked out forwarding
    # A CPE forwards (UDP, ICMP and the box's own traffic are routed, not relayed); the lab's
    # gateway namespace does not unless told to, which would hide a leak.
    forwarding=$(nsx "$NS_GW" sysctl -n net.ipv4.ip_forward)
    nsx "$NS_GW" sysctl -qw net.ipv4.ip_forward=1
    nsx "$NS_INET" nft -f - <<NFT
table inet relay_leak {
    counter lan_tcp {}
    chain forward {
        type filter hook forward priority filter; policy accept;
        ip saddr 198.18.0.0/24 meta l4proto tcp counter name lan_tcp
        ip6 saddr 2001:db8::/64 meta l4proto tcp counter name lan_tcp
    }
}
NFT
    kill -KILL "$LAB_GW_PID"
    wait "$LAB_GW_PID" 2>/dev/null
    out=$(nsx "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN4" --port "$ORIGIN_PORT" --get 100000 --timeout 3)
    leaked=$(nsx "$NS_INET" nft list counter inet relay_leak lan_tcp | awk '/packets/ {print $2}')
    nsx "$NS_INET" nft delete table inet relay_leak
    nsx "$NS_GW" sysctl -qw net.ipv4.ip_forward="$forwarding"
    if [[ $(json_field result <<<"$out" 2>/dev/null) != ok && $leaked == 0 ]]; then
        pass "gateway killed: LAN TCP does not leave unbonded through the main table"
    else
        fail "gateway killed: LAN TCP does not leave unbonded through the main table" "client: $out" \
            "TCP packets from the LAN's addresses on the internet side: '$leaked'"
    fi
    hostile_restore
    if relay_alive && wait_for 15 relay_small_get; then
        pass "gateway restarted after a kill: it relays again (sha256 equal)"
    else
        relay_status
        fail "gateway restarted after a kill: it relays again" "$RELAY_STATUS" "$(tail -3 "$LAB_WORK/gateway.log")"
    fi
}

gw_sessions_total() {
    nsx "$NS_GW" "$BRAID_BIN" status --json --socket "$STATUS_SOCK" 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["sessions"]["total"])' 2>/dev/null
}
# Whether the gateway has counted more sessions than $1; the count is left in RELAY_SESSIONS_SEEN.
gw_sessions_above() { RELAY_SESSIONS_SEEN=$(gw_sessions_total) && ((RELAY_SESSIONS_SEEN > $1)); }

# Replaces the lab's daemons with fresh ones that use a pre-shared key and no control channel.
relay_psk_daemons() {
    hostile_stop_pid "$LAB_GW_PID"
    hostile_stop_pid "$LAB_CONC_PID"
    "$BRAID_BIN" genkey >"$LAB_WORK/psk" && chmod 600 "$LAB_WORK/psk"
    cat >"$LAB_WORK/concentrator.conf" <<CONF
config concentrator 'main'
	option listen '::'
	option port '$BRAID_PORT'
	option psk_file '$LAB_WORK/psk'
	option status_socket '$CONC_SOCK'
	list deny_dest '$ORIGIN_DENIED/32'
CONF
    sed -e '/option \(psk_file\|control_port\|ca\|cert\|key\|server_name\|keepalive\) /d' \
        -e "s|^config gateway 'main'|&\n\toption psk_file '$LAB_WORK/psk'|" -i "$LAB_WORK/gateway.conf"
    ip netns exec "$NS_CONC" "$BRAID_BIN" concentrator --config "$LAB_WORK/concentrator.conf" \
        2>>"$LAB_WORK/concentrator.log" &
    LAB_CONC_PID=$!
    LAB_PIDS+=("$LAB_CONC_PID")
    ip netns exec "$NS_GW" "$BRAID_BIN" gateway --config "$LAB_WORK/gateway.conf" 2>>"$LAB_WORK/gateway.log" &
    LAB_GW_PID=$!
    LAB_PIDS+=("$LAB_GW_PID")
    if wait_for 10 nsx "$NS_CONC" bash -c "ss -Hltn 'sport = :$BRAID_PORT' | grep -q LISTEN" &&
        wait_for 10 test -S "$STATUS_SOCK" && wait_for 10 nsx "$NS_GW" nft list table inet braid &&
        wait_for 15 relay_small_get; then
        return 0
    fi
    fail "daemons with a pre-shared key only start and relay" "$(tail -3 "$LAB_WORK/concentrator.log")" \
        "$(tail -3 "$LAB_WORK/gateway.log")"
    return 1
}

relay_small_get() { local r; r=$(lan_get 100000) && intact "$r" 100000 sent; }

relay_alive() { kill -0 "$LAB_CONC_PID" 2>/dev/null && kill -0 "$LAB_GW_PID" 2>/dev/null; }

# A daemon that died is started again on the configuration it ran, so the next part still runs.
relay_revive() {
    relay_alive && return
    hostile_stop_pid "$LAB_GW_PID"
    hostile_stop_pid "$LAB_CONC_PID"
    if grep -q psk_file "$LAB_WORK/concentrator.conf"; then relay_psk_daemons; else hostile_restore; fi
}

# Sets RELAY_STATUS to what became of both daemons; a daemon that is gone is reaped here (this
# shell started it), so its exit status shows (141 = 128 + SIGPIPE). Not in $(...): a subshell
# cannot wait for its parent's children.
relay_status() {
    local c=alive g=alive
    if ! kill -0 "$LAB_CONC_PID" 2>/dev/null; then wait "$LAB_CONC_PID" 2>/dev/null; c="gone, exit status $?"; fi
    if ! kill -0 "$LAB_GW_PID" 2>/dev/null; then wait "$LAB_GW_PID" 2>/dev/null; g="gone, exit status $?"; fi
    RELAY_STATUS="concentrator $LAB_CONC_PID: $c; gateway $LAB_GW_PID: $g"
}

# A sha256-checked download, upload and curl through whatever daemons run now.
relay_transfers() {
    local down up sha
    down=$(lan_get "$HOSTILE_SIZE")
    up=$(lan_put "$HOSTILE_SIZE")
    sha=$(curl_big)
    if relay_alive && intact "$down" "$HOSTILE_SIZE" sent && intact "$up" "$HOSTILE_SIZE" received &&
        [[ $sha == "$BIG_SHA" ]]; then
        pass "$1: $((HOSTILE_SIZE / 1000000)) MB down and up and curl, sha256 equal"
    else
        relay_status
        fail "$1: transfers intact" "down: $down" "up: $up" "curl sha256: '$sha'" "$RELAY_STATUS"
    fi
}
