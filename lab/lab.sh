# braid lab: shared helpers for the demo (lab/run.sh) and the namespace tests (tests/netns/).
# Source this file; it defines functions only.
#
#                           wan1 40 Mbit/s
#   lan ── lan0 [ gw ] ──── wan2 20 Mbit/s ──── [ inet ] ── conc0 ── [ conc ]
#   198.18.0.2    │         wan3 10 Mbit/s         │  └──── org0 ── [ origin ]
#   2001:db8::2   │  198.18.{1,2,3}.2/24   .1      │         198.18.20.2, 2001:db8:20::2
#                 │                                 198.18.10.2, 2001:db8:10::2
#         gateway daemon (TPROXY, MPTCP endpoints)   concentrator daemon (MPTCP listener)
#
# Only 198.18.0.0/15 and 2001:db8::/32 are used, inside namespaces this script creates.

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TRAFFIC="$LAB_DIR/tests/netns/braid-traffic.py"
: "${BRAID_BIN:=$LAB_DIR/.build/release/braid}"
: "${LAB_TOOL:=$LAB_DIR/.build/release/braid-lab}"
LAB_SUFFIX="${LAB_SUFFIX:-$$}"
NS_LAN="braid-lan-$LAB_SUFFIX"
NS_GW="braid-gw-$LAB_SUFFIX"
NS_INET="braid-inet-$LAB_SUFFIX"
NS_CONC="braid-conc-$LAB_SUFFIX"
NS_ORG="braid-org-$LAB_SUFFIX"
LAB_NAMESPACES=("$NS_LAN" "$NS_GW" "$NS_INET" "$NS_CONC" "$NS_ORG")
LAB_WORK="${LAB_WORK:-$(mktemp -d /tmp/braid-lab.XXXXXX)}"
CONC_ADDR=198.18.10.2
ORIGIN4=198.18.20.2
ORIGIN6=2001:db8:20::2
ORIGIN_DENIED=198.18.21.2
ORIGIN_PORT=8080
BRAID_PORT=4800
UPLINK_RATES=(40 20 10)
# LAB_V6_UPLINK=1 adds wan4, an IPv6-only uplink (2001:db8:4::2/64, 10 Mbit/s), and names the
# concentrator `concentrator.lab` (A and AAAA, in the gateway namespace's /etc/hosts) so each
# uplink reaches it over its own family. Off by default: the other suites count three uplinks.
LAB_V6_UPLINK="${LAB_V6_UPLINK:-0}"
V6_UPLINK_RATE=10
CONC_ADDR6=2001:db8:10::2
CONC_NAME=concentrator.lab
# LAB_UPLINK_SUBFLOWS="2 1 1" sets each uplink's `subflows` option in the gateway's configuration
# (unset: the default, one each).
LAB_UPLINK_SUBFLOWS="${LAB_UPLINK_SUBFLOWS:-}"
LAB_PIDS=()

lab_log() { printf '[lab] %s\n' "$*" >&2; }

# Runs a command in a namespace: nsx NS cmd...
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# Polls a command every 0.1 s until it succeeds or `timeout` seconds pass.
wait_for() {
    local timeout=$1; shift
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS >= deadline)) && return 1
        sleep 0.1
    done
}

lab_veth() { # lab_veth NS_A DEV_A NS_B DEV_B
    ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
    nsx "$1" ip link set "$2" up
    nsx "$3" ip link set "$4" up
}

# Builds the namespaces and links. `shaped` (default) puts tbf on every uplink, both directions.
lab_up() {
    local shaping=${1:-shaped}
    for ns in "${LAB_NAMESPACES[@]}"; do
        ip netns add "$ns"
        nsx "$ns" ip link set lo up
        nsx "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    done
    nsx "$NS_INET" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

    lab_veth "$NS_LAN" eth0 "$NS_GW" lan0
    nsx "$NS_LAN" ip addr add 198.18.0.2/24 dev eth0
    nsx "$NS_LAN" ip addr add 2001:db8::2/64 dev eth0 nodad
    nsx "$NS_LAN" ip route add default via 198.18.0.1
    nsx "$NS_LAN" ip -6 route add default via 2001:db8::1
    nsx "$NS_GW" ip addr add 198.18.0.1/24 dev lan0
    nsx "$NS_GW" ip addr add 2001:db8::1/64 dev lan0 nodad

    local i
    for i in 1 2 3; do
        lab_veth "$NS_GW" "wan$i" "$NS_INET" "gw$i"
        nsx "$NS_GW" ip addr add "198.18.$i.2/24" dev "wan$i"
        nsx "$NS_INET" ip addr add "198.18.$i.1/24" dev "gw$i"
        if [[ $shaping == shaped ]]; then
            local rate=${UPLINK_RATES[$((i - 1))]}
            nsx "$NS_GW" tc qdisc add dev "wan$i" root tbf rate "${rate}mbit" burst 32kb latency 100ms
            nsx "$NS_INET" tc qdisc add dev "gw$i" root tbf rate "${rate}mbit" burst 32kb latency 100ms
        fi
    done
    # The first subflow follows the main table: a DHCP client on wan1 would leave this route.
    nsx "$NS_GW" ip route add default via 198.18.1.1 dev wan1
    if [[ $LAB_V6_UPLINK == 1 ]]; then
        # wan4 has IPv6 only, as LTE behind 464XLAT: no IPv4 address, no IPv4 route.
        lab_veth "$NS_GW" wan4 "$NS_INET" gw4
        nsx "$NS_GW" ip addr add 2001:db8:4::2/64 dev wan4 nodad
        nsx "$NS_INET" ip addr add 2001:db8:4::1/64 dev gw4 nodad
        nsx "$NS_GW" ip -6 route add default via 2001:db8:4::1 dev wan4
        if [[ $shaping == shaped ]]; then
            nsx "$NS_GW" tc qdisc add dev wan4 root tbf rate "${V6_UPLINK_RATE}mbit" burst 32kb latency 100ms
            nsx "$NS_INET" tc qdisc add dev gw4 root tbf rate "${V6_UPLINK_RATE}mbit" burst 32kb latency 100ms
        fi
        # `ip netns exec` mounts /etc/netns/NS/hosts over /etc/hosts: the gateway's resolver
        # finds both records of the concentrator's name there.
        mkdir -p "/etc/netns/$NS_GW"
        printf '%s %s\n%s %s\n' "$CONC_ADDR" "$CONC_NAME" "$CONC_ADDR6" "$CONC_NAME" >"/etc/netns/$NS_GW/hosts"
    fi

    lab_veth "$NS_INET" conc0 "$NS_CONC" eth0
    nsx "$NS_INET" ip addr add 198.18.10.1/24 dev conc0
    nsx "$NS_INET" ip addr add 2001:db8:10::1/64 dev conc0 nodad
    nsx "$NS_CONC" ip addr add 198.18.10.2/24 dev eth0
    nsx "$NS_CONC" ip addr add 2001:db8:10::2/64 dev eth0 nodad
    nsx "$NS_CONC" ip route add default via 198.18.10.1
    nsx "$NS_CONC" ip -6 route add default via 2001:db8:10::1

    lab_veth "$NS_INET" org0 "$NS_ORG" eth0
    nsx "$NS_INET" ip addr add 198.18.20.1/24 dev org0
    nsx "$NS_INET" ip addr add 2001:db8:20::1/64 dev org0 nodad
    nsx "$NS_ORG" ip addr add 198.18.20.2/24 dev eth0
    nsx "$NS_ORG" ip addr add "$ORIGIN_DENIED/24" dev eth0
    nsx "$NS_INET" ip route add 198.18.21.0/24 via 198.18.20.2
    nsx "$NS_ORG" ip addr add 2001:db8:20::2/64 dev eth0 nodad
    nsx "$NS_ORG" ip route add default via 198.18.20.1
    nsx "$NS_ORG" ip -6 route add default via 2001:db8:20::1
}

# Writes configs and a key, starts the origin server and both daemons, waits until they listen.
lab_start() {
    "$BRAID_BIN" genkey >"$LAB_WORK/psk"
    chmod 600 "$LAB_WORK/psk"
    cat >"$LAB_WORK/concentrator.conf" <<CONF
config concentrator 'main'
	option listen '::'
	option port '$BRAID_PORT'
	option psk_file '$LAB_WORK/psk'
	list deny_dest '$ORIGIN_DENIED/32'
	option status_socket '$LAB_WORK/concentrator.sock'
CONF
    local server=$CONC_ADDR
    [[ $LAB_V6_UPLINK == 1 ]] && server=$CONC_NAME
    cat >"$LAB_WORK/gateway.conf" <<CONF
config gateway 'main'
	option server '$server'
	option port '$BRAID_PORT'
	option psk_file '$LAB_WORK/psk'
	list lan_device 'lan0'

config uplink 'dsl'
	option device 'wan1'
	option role 'active'

config uplink 'lte'
	option device 'wan2'
	option role 'active'
	option gateway '198.18.2.1'

config uplink 'line2'
	option device 'wan3'
	option role 'active'
	option gateway '198.18.3.1'
CONF
    if [[ -n $LAB_UPLINK_SUBFLOWS ]]; then
        local counts=($LAB_UPLINK_SUBFLOWS) name i=0
        for name in dsl lte line2; do
            sed -i "/^config uplink '$name'\$/a\\\toption subflows '${counts[i++]:-1}'" "$LAB_WORK/gateway.conf"
        done
    fi
    if [[ $LAB_V6_UPLINK == 1 ]]; then
        cat >>"$LAB_WORK/gateway.conf" <<CONF

config uplink 'v6only'
	option device 'wan4'
	option role 'active'
	option gateway '2001:db8:4::1'
CONF
    fi
    ip netns exec "$NS_ORG" python3 "$TRAFFIC" serve --port "$ORIGIN_PORT" --log "$LAB_WORK/origin.log" --lifetime 3000 &
    LAB_PIDS+=($!)
    # `ip netns exec` execs the daemon, so $! is the daemon itself (signals reach it).
    ip netns exec "$NS_CONC" "$BRAID_BIN" concentrator --config "$LAB_WORK/concentrator.conf" --log-level "${BRAID_LOG_LEVEL:-info}" 2>"$LAB_WORK/concentrator.log" &
    LAB_PIDS+=($!)
    LAB_CONC_PID=$!
    wait_for 10 nsx "$NS_CONC" bash -c "ss -Hltn 'sport = :$BRAID_PORT' | grep -q LISTEN" || {
        lab_log "concentrator did not start:"; cat "$LAB_WORK/concentrator.log" >&2; return 1; }
    ip netns exec "$NS_GW" "$BRAID_BIN" gateway --config "$LAB_WORK/gateway.conf" --log-level "${BRAID_LOG_LEVEL:-info}" 2>"$LAB_WORK/gateway.log" &
    LAB_PIDS+=($!)
    LAB_GW_PID=$!
    wait_for 10 nsx "$NS_GW" nft list table inet braid || {
        lab_log "gateway did not start:"; cat "$LAB_WORK/gateway.log" >&2; return 1; }
    wait_for 10 nsx "$NS_ORG" bash -c "ss -Hltn 'sport = :$ORIGIN_PORT' | grep -q LISTEN"
}

# Stops daemons (SIGTERM, so they remove their kernel state) and deletes the namespaces.
lab_down() {
    local pid
    for pid in "${LAB_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${LAB_PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
    done
    LAB_PIDS=()
    for ns in "${LAB_NAMESPACES[@]}"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
        ip netns del "$ns" 2>/dev/null
    done
    rm -rf "/etc/netns/$NS_GW"
}

# Byte counters of the gateway's uplinks: "tx1 rx1 tx2 rx2 tx3 rx3" (then "tx4 rx4" for wan4).
lab_uplink_bytes() {
    local i out=() n=3
    [[ $LAB_V6_UPLINK == 1 ]] && n=4
    for ((i = 1; i <= n; i++)); do
        out+=("$(nsx "$NS_GW" cat "/sys/class/net/wan$i/statistics/tx_bytes")")
        out+=("$(nsx "$NS_GW" cat "/sys/class/net/wan$i/statistics/rx_bytes")")
    done
    echo "${out[*]}"
}

# The sha256 the origin logged for its last event of a kind ("sent" or "received").
origin_sha() { grep "\"event\": \"$1\"" "$LAB_WORK/origin.log" | tail -1 | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["sha256"])'; }

# A field of a JSON line: json_field KEY <<<"$json"
json_field() { python3 -c 'import json,sys; v=json.loads(sys.stdin.read()).get(sys.argv[1]); print("" if v is None else v)' "$1"; }

# Adds MS milliseconds of one-way delay to every uplink, in both directions (RTT + 2*MS), with
# braid-lab's TUN delay line: this kernel has no sch_netem. Call after lab_up; lab_down stops it.
# `lab_delay MS1 MS2 MS3` gives each uplink its own delay (DSL, LTE and a second line differ by
# tens of milliseconds, which is where multipath scheduling wins or loses).
#
# In the inet namespace each uplink i gets a TUN device dl$i. Policy rules send everything the
# gateway sends in on gw$i, and everything from conc0/org0 towards 198.18.$i.0/24, into dl$i;
# braid-lab writes each packet back MS ms later and it re-enters the stack with iif dl$i, which
# matches no rule, so the main table routes it on as if nothing had happened:
#
#   [gw] wan1 ──► gw1 ─(iif gw1: table 101, default dev dl1)─► dl1 ═► +MS ═► dl1 ─(main)─► conc0/org0
#   [gw] wan1 ◄── gw1 ◄─(main)─ dl1 ◄═ +MS ◄═ dl1 ◄─(iif conc0|org0 to 198.18.1.0/24: table 111)─ conc0/org0
#
# Traffic to or from the inet namespace's own addresses (198.18.i.1) is delivered by the local
# table before these rules and is not delayed. Uplinks 1-3 are IPv4 only, so there are no IPv6
# rules, and the IPv6-only wan4 (LAB_V6_UPLINK=1) is not delayed.
# The delay lines' pids are also in LAB_DELAY_PIDS; each prints its counters as JSON in
# $LAB_WORK/delay$i.log when it stops.
LAB_DELAY_PIDS=()
lab_delay() {
    local delays=("$@") i
    [[ -x $LAB_TOOL ]] || { lab_log "lab_delay: $LAB_TOOL is not built"; return 1; }
    # Packets come back in on dl$i from sources routed via gw$i: reverse-path filtering would drop them.
    nsx "$NS_INET" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    for i in 1 2 3; do
        # Emptied first: a log left by an earlier lab in the same LAB_WORK (bench builds several)
        # says "ready" before this delay line has made its device.
        : >"$LAB_WORK/delay$i.log"
        ip netns exec "$NS_INET" "$LAB_TOOL" delay --dev "dl$i" --ms "${delays[i - 1]:-${delays[0]}}" \
            >"$LAB_WORK/delay$i.log" 2>&1 &
        LAB_PIDS+=($!)
        LAB_DELAY_PIDS+=($!)
        wait_for 10 grep -q '"ready"' "$LAB_WORK/delay$i.log" || {
            lab_log "delay line dl$i did not start:"; cat "$LAB_WORK/delay$i.log" >&2; return 1; }
        nsx "$NS_INET" sysctl -qw "net.ipv4.conf.dl$i.rp_filter=0" "net.ipv4.conf.dl$i.forwarding=1"
        nsx "$NS_INET" ip link set "dl$i" up
        nsx "$NS_INET" ip route add default dev "dl$i" table $((100 + i))
        nsx "$NS_INET" ip route add "198.18.$i.0/24" dev "dl$i" table $((110 + i))
        nsx "$NS_INET" ip rule add iif "gw$i" lookup $((100 + i))
        nsx "$NS_INET" ip rule add iif conc0 to "198.18.$i.0/24" lookup $((110 + i))
        nsx "$NS_INET" ip rule add iif org0 to "198.18.$i.0/24" lookup $((110 + i))
    done
}
