#!/usr/bin/env bash
# braid namespace tests: uplinks that fail and come back (topology in lab/lab.sh).
#
#   lan ── [gw: braid gateway] ══ wan1/wan2/wan3 (40/20/10 Mbit/s) ══ [inet] ── [conc] ── [origin]
#                                   ▲ outages are made here: nft drop in inet (silent, carrier
#                                     up), `ip link set down` on the gateway side, or an address
#                                     change on the gateway side
#
# wan1 carries two subflows per connection (`subflows '2'`, as the benchmark runs it): its first
# subflow and a second from the same address, which must not keep the concentrator from hearing
# that wan1 is withdrawn.
#
# Every transfer is checked by sha256 against what the origin logged. The stall the LAN client
# sees is read off the LAN interface's byte counter, sampled every 50 ms.
# Prints "N passed, N failed" last; exits non-zero on any failure or missing prerequisite.
set -u
cd "$(dirname "$0")/../.."
export LAB_SUFFIX="f$$"
export LAB_UPLINK_SUBFLOWS="2 1 1"
source lab/lab.sh
source tests/netns/harness.sh
source tests/netns/uplink-helpers.sh
SIZE=${BRAID_FAILOVER_BYTES:-200000000}
OUTAGE=${BRAID_OUTAGE_SECONDS:-10}
STATUS_SOCK=""

# Established subflows at the concentrator's data port from the gateway's ADDRESS.
conc_subflows_from() {
    nsx "$NS_CONC" ss -Htn state established "( sport = :$BRAID_PORT )" | awk '{print $4}' |
        grep -c "^\[\?\(::ffff:\)\?${1//./\\.}\]\?:"
}
# The concentrator's count of RM_ADDR options received (nstat, absolute).
conc_rm_addr() { nsx "$NS_CONC" nstat -asz MPTcpExtRmAddr | awk '/MPTcpExtRmAddr/ {print $2}'; }
conc_clear_of() { (($(conc_subflows_from "$1") == 0)); }

require() {
    need_braid_lab
    check_prerequisites
}


require
start_lab || { fail "lab start"; finish; exit 1; }

# Baseline: the same download with no outage.
download_bg "$LAB_WORK/base.json"
wait "$DL_PID"
check_download "$LAB_WORK/base.json" "baseline, no outage" "" && BASE=$(json_field seconds <"$LAB_WORK/base.json")
BASE=${BASE:-0}

# 1. Silent outage of the primary uplink in the middle of a download.
download_bg "$LAB_WORK/silent.json"
sample_lan_rx "$LAB_WORK/silent.rx" & SAMPLER=$!
sleep 4
old1=$(subflow_ports 198.18.1.2)
before1=$(conc_subflows_from 198.18.1.2)
rm0=$(conc_rm_addr)
silent_cut on 1
detect=$(time_to_state wan1 down 5) || detect=""
# Nothing crosses wan1 now: only an RM_ADDR sent over wan2 or wan3 can tell the concentrator to
# close its side, and send what it had queued there on the others at once (without it, its side
# stays established, its data stuck, until its retransmission timeouts mark it stale).
if ((before1 >= 2)) && wait_for 3 conc_clear_of 198.18.1.2 && (($(conc_rm_addr) > ${rm0:-0})); then
    pass "the concentrator closed its $before1 subflows from wan1 during the outage (RM_ADDR received over a live uplink)"
else
    fail "concentrator's subflows from wan1 withdrawn during the outage" \
        "before: $before1 (want 2), 3 s after detection: $(conc_subflows_from 198.18.1.2)," \
        "RM_ADDR received: ${rm0:-?} -> $(conc_rm_addr)"
fi
# New connections during the outage: a short request must succeed within 2 s.
t0=$(now)
short=$(nsx "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN4" --port "$ORIGIN_PORT" --get 100000 --timeout 10)
took=$(elapsed "$t0" "$(now)")
if [[ $(json_field result <<<"$short") == ok ]] && python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < 2 else 1)" "$took"; then
    pass "new connection during the outage of wan1 served in $took s"
else
    fail "new connection during the outage of wan1" "took $took s: $short"
fi
sleep $((OUTAGE - 1))
silent_cut off 1
t0=$(now)
back=$(time_to_state wan1 up 10) || back=""
# wan1 carried the session's first subflow: it must get a subflow there again all the same.
rejoined=""
for _ in $(seq 100); do
    if (($(new_subflows_from 198.18.1.2 "$old1") >= 1)); then rejoined=$(elapsed "$t0" "$(now)"); break; fi
    sleep 0.1
done
wait "$DL_PID"
kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null
if [[ -n $detect ]]; then
    pass "silent outage of wan1 detected in $detect s (down_after 1 s), back up $back s after repair"
else
    fail "silent outage of wan1 not detected within 5 s"
fi
if [[ -n $rejoined ]] && python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 5 else 1)" "$rejoined"; then
    pass "after wan1 (the first subflow's uplink) is repaired the running session has a subflow on it again in $rejoined s"
else
    fail "subflow on wan1 after repair" "rejoined: '${rejoined:-never within 10 s}'"
fi
check_download "$LAB_WORK/silent.json" "download across a ${OUTAGE} s silent outage of wan1" \
    " (no outage: $BASE s; longest LAN stall $(longest_stall "$LAB_WORK/silent.rx") s)"

# 2. Carrier loss on the gateway's side of wan2, and the session's subflow coming back.
download_bg "$LAB_WORK/carrier.json"
sample_lan_rx "$LAB_WORK/carrier.rx" & SAMPLER=$!
sleep 4
old2=$(subflow_ports 198.18.2.2)
nsx "$NS_GW" ip link set wan2 down
detect=$(time_to_state wan2 down 5) || detect=""
sleep "$OUTAGE"
nsx "$NS_GW" ip link set wan2 up
t0=$(now)
regained=""
for _ in $(seq 100); do
    if (($(new_subflows_from 198.18.2.2 "$old2") >= 1)); then regained=$(elapsed "$t0" "$(now)"); break; fi
    sleep 0.1
done
if [[ -n $regained ]] && python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 5 else 1)" "$regained"; then
    pass "after carrier returns on wan2 the running session has a subflow on it again in $regained s"
else
    fail "subflow on wan2 after carrier returns" "regained: '${regained:-never within 10 s}'"
fi
wait "$DL_PID"
kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null
[[ -n $detect ]] && pass "carrier loss on wan2 seen in $detect s" || fail "carrier loss on wan2 not seen within 5 s"
check_download "$LAB_WORK/carrier.json" "download across a ${OUTAGE} s carrier loss on wan2" \
    " (longest LAN stall $(longest_stall "$LAB_WORK/carrier.rx") s)"

# 3. An address change on wan3 (a new DHCP lease or PPP session) during a download.
download_bg "$LAB_WORK/renumber.json"
sleep 4
nsx "$NS_GW" ip addr del 198.18.3.2/24 dev wan3
nsx "$NS_GW" ip addr add 198.18.3.7/24 dev wan3
t0=$(now)
moved=""
for _ in $(seq 100); do
    if (($(subflows_from 198.18.3.7) >= 1)); then moved=$(elapsed "$t0" "$(now)"); break; fi
    sleep 0.1
done
[[ -n $moved ]] && pass "after wan3 is renumbered the session has a subflow from the new address in $moved s" ||
    fail "subflow from wan3's new address" "endpoints: $(nsx "$NS_GW" ip mptcp endpoint | tr '\n' ';')"
wait "$DL_PID"
check_download "$LAB_WORK/renumber.json" "download across an address change on wan3" ""

finish
