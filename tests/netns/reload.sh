#!/usr/bin/env bash
# braid namespace tests: reloading both daemons while sessions run (topology in lab/lab.sh).
#
#   lan ── [gw: braid gateway] ══ wan1/wan2/wan3 (40/20/10 Mbit/s) ══ [inet] ── [conc] ── [origin]
#            ▲ starts with wan1 and wan2; reloads add wan3,        ▲ a reload denies the origin:
#              remove wan1, put it back, and are refused             new connections refused,
#              for a broken file and for an option that              the running one completes
#              needs a restart
#
# Every transfer is checked by sha256 against what the origin logged; a session reset shows as a
# client result other than "ok". Subflows are read from the gateway's socket table (ss).
# Prints "N passed, N failed" last; exits non-zero on any failure or missing prerequisite.
set -u
cd "$(dirname "$0")/../.."
export LAB_SUFFIX="r$$"
source lab/lab.sh
source tests/netns/harness.sh
source tests/netns/uplink-helpers.sh
SIZE=${BRAID_RELOAD_BYTES:-200000000}
STATUS_SOCK=""
CONC_SOCK="$LAB_WORK/concentrator.sock"

require() {
    need_braid_lab
    check_prerequisites
}

# The gateway's uplinks as "device:state" words, in its order.
uplinks_shown() {
    nsx "$NS_GW" "$BRAID_BIN" status --json --socket "$STATUS_SOCK" 2>/dev/null |
        python3 -c 'import json,sys; print(" ".join(u["device"] + ":" + u["state"]
                                                  for u in json.load(sys.stdin)["uplinks"]))'
}

# Runs `braid reload` on a socket; sets RELOAD_OUT (stdout and stderr) and RELOAD_RC.
reload() { # reload NS SOCKET
    RELOAD_OUT=$(nsx "$1" "$BRAID_BIN" reload --socket "$2" 2>&1)
    RELOAD_RC=$?
}

# Waits up to LIMIT seconds until a command's output equals WANT; prints the seconds it took.
wait_output() { # wait_output LIMIT WANT CMD...
    local limit=$1 want=$2 t0 deadline
    shift 2
    t0=$(now)
    deadline=$((SECONDS + limit))
    while ((SECONDS < deadline)); do
        if [[ $("$@" 2>/dev/null) == "$want" ]]; then elapsed "$t0" "$(now)"; return 0; fi
        sleep 0.1
    done
    return 1
}

has_subflow_from() { (($(subflows_from "$1") >= 1)) && echo yes || echo no; }

require
start_lab '/^config uplink .line2./,$d' || { fail "lab start"; finish; exit 1; }
GW_CONF="$LAB_WORK/gateway.conf"
CONC_CONF="$LAB_WORK/concentrator.conf"
TWO=$(cat "$GW_CONF")
THREE="$TWO
config uplink 'line2'
	option device 'wan3'
	option role 'active'
	option gateway '198.18.3.1'"
# wan1 is the dsl section: the first uplink, the one every download's first subflow starts on.
WITHOUT_WAN1=$(sed '/^config uplink .dsl./,/^$/d' <<<"$THREE")

shown=$(uplinks_shown)
[[ $shown == "wan1:up wan2:up" ]] && pass "gateway runs with wan1 and wan2 only" ||
    fail "gateway with two uplinks" "status: $shown"

# 1. A reload adds wan3 while a long download runs: the session gets a subflow on it.
download_bg "$LAB_WORK/long.json"
wait_output 10 yes has_subflow_from 198.18.1.2 >/dev/null
sleep 2
echo "$THREE" >"$GW_CONF"
reload "$NS_GW" "$STATUS_SOCK"
if ((RELOAD_RC == 0)) && [[ $RELOAD_OUT == "reloaded: uplink line2 added (wan3, active)" ]]; then
    pass "braid reload adding wan3: $RELOAD_OUT"
else
    fail "braid reload adding wan3" "rc $RELOAD_RC: $RELOAD_OUT"
fi
if took=$(wait_output 10 yes has_subflow_from 198.18.3.2); then
    pass "the running session has a subflow from 198.18.3.2 (wan3) $took s after the reload"
else
    fail "subflow from wan3 for the running session" "$(nsx "$NS_GW" ss -Htn state established | tr '\n' ';')"
fi
sub=$(uplink_field wan3 subflows)
((sub >= 1)) && pass "braid status shows wan3 with $sub subflow(s)" || fail "wan3 in braid status" "subflows: '$sub'"

# 2. A reload removes wan1, the uplink of the running session's first subflow.
sleep 2
echo "$WITHOUT_WAN1" >"$GW_CONF"
reload "$NS_GW" "$STATUS_SOCK"
if ((RELOAD_RC == 0)) && [[ $RELOAD_OUT == "reloaded: uplink dsl removed (wan1);"* ]]; then
    pass "braid reload removing wan1: $RELOAD_OUT"
else
    fail "braid reload removing wan1" "rc $RELOAD_RC: $RELOAD_OUT"
fi
if took=$(wait_output 10 0 subflows_from 198.18.1.2); then
    pass "no subflow from 198.18.1.2 (wan1) remains, $took s after the reload"
else
    fail "wan1's subflows withdrawn" "$(nsx "$NS_GW" ss -Htn state established | tr '\n' ';')"
fi
shown=$(uplinks_shown)
rules=$(nsx "$NS_GW" ip rule show | grep -c "from 198.18.1.2 ")
old_table=$(nsx "$NS_GW" ip route show table 4803 | wc -l)
if [[ $shown == "wan2:up wan3:up" ]] && ((rules == 0 && old_table == 0)); then
    pass "wan1 is gone from the status, its source rule removed, wan3's old table 4803 empty"
else
    fail "kernel state after removing wan1" "status: $shown" "rules from wan1: $rules" "routes in 4803: $old_table"
fi
(($(subflows_from 198.18.2.2) >= 1 && $(subflows_from 198.18.3.2) >= 1)) &&
    pass "the session keeps its subflows on wan2 and wan3 while their tables move" ||
    fail "subflows on wan2 and wan3 after the tables moved" "$(nsx "$NS_GW" ss -Htn state established | tr '\n' ';')"
wait "$DL_PID"
check_download "$LAB_WORK/long.json" "download across reloads adding wan3 and removing wan1, never reset" ""

# 3. SIGHUP puts wan1 back.
echo "$THREE" >"$GW_CONF"
sed -i "/^config uplink .lte./i config uplink 'dsl'\n\toption device 'wan1'\n\toption role 'active'\n" "$GW_CONF"
kill -HUP "$LAB_GW_PID"
if wait_output 10 "wan1:up wan2:up wan3:up" uplinks_shown >/dev/null &&
    grep "configuration reloaded" "$LAB_WORK/gateway.log" | tail -1 | grep -q "uplink dsl added (wan1, active)"; then
    pass "SIGHUP reloads: wan1 is back, the reload is logged"
else
    fail "SIGHUP reload" "status: $(uplinks_shown)" "$(grep reload "$LAB_WORK/gateway.log" | tail -2)"
fi

# 4. A LAN device added and removed: the set's elements change, the table is the same table.
good=$(cat "$GW_CONF")
lan_devices() { nsx "$NS_GW" nft list set inet braid lan_devices | tr -d ' \t\n' | grep -o 'elements={[^}]*}'; }
# A table made again gets a new handle (handles count up per namespace): the same handle is the same table.
table_handle() { nsx "$NS_GW" nft -a list table inet braid | head -1 | grep -o 'handle [0-9]*'; }
handle=$(table_handle)
sed -i "s|^\tlist lan_device 'lan0'|\tlist lan_device 'lan0'\n\tlist lan_device 'lan9'|" "$GW_CONF"
reload "$NS_GW" "$STATUS_SOCK"
added=$(lan_devices)
echo "$good" >"$GW_CONF"
reload "$NS_GW" "$STATUS_SOCK"
removed=$(lan_devices)
if [[ $added == 'elements={"lan0","lan9"}' && $removed == 'elements={"lan0"}' &&
    $RELOAD_OUT == "reloaded: lan_device lan9 removed" && $(table_handle) == "$handle" ]]; then
    pass "lan_device lan9 added and removed in the nftables set, the table kept ($handle)"
else
    fail "lan_device reload" "added: $added" "removed: $removed ($RELOAD_OUT)" "table: $handle -> $(table_handle)"
fi

# 5. A broken file, and an option that needs a restart: refused, everything keeps running.
before=$(uplinks_shown)
sed -i "s|^config gateway 'main'|config gateway 'main'\n\toption probe_interval 'fast'|" "$GW_CONF"
line=$(grep -n "probe_interval 'fast'" "$GW_CONF" | cut -d: -f1)
reload "$NS_GW" "$STATUS_SOCK"
want="$GW_CONF:$line: main.probe_interval: must be milliseconds from 20 to 60000 (fast)"
if ((RELOAD_RC == 1)) && [[ $RELOAD_OUT == "$want" ]]; then
    pass "a broken file is refused, exit 1: $RELOAD_OUT"
else
    fail "broken file refused" "rc $RELOAD_RC: $RELOAD_OUT" "wanted: $want"
fi
# (`server` changes live since list server: tests/netns/servers.sh; the listener's port cannot.)
echo "$good" | sed "s|^config gateway 'main'|config gateway 'main'\n\toption tproxy_port '4901'|" >"$GW_CONF"
line=$(grep -n "option tproxy_port" "$GW_CONF" | cut -d: -f1)
reload "$NS_GW" "$STATUS_SOCK"
want="$GW_CONF:$line: main.tproxy_port: cannot change while running, restart to apply (4801 -> 4901)"
if ((RELOAD_RC == 1)) && [[ $RELOAD_OUT == "$want" ]]; then
    pass "a change of tproxy_port is refused, exit 1: $RELOAD_OUT"
else
    fail "tproxy_port change refused" "rc $RELOAD_RC: $RELOAD_OUT" "wanted: $want"
fi
after=$(uplinks_shown)
if kill -0 "$LAB_GW_PID" 2>/dev/null && [[ $after == "$before" ]]; then
    pass "the gateway keeps running, status unchanged ($after)"
else
    fail "gateway after refused reloads" "before: $before" "after: $after"
fi
SIZE=20000000
nsx "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN4" --port "$ORIGIN_PORT" --get "$SIZE" --timeout 60 \
    >"$LAB_WORK/after.json"
check_download "$LAB_WORK/after.json" "new download after the refused reloads" ""

# 6. The concentrator: a reload denying the origin refuses new connections to it, and the
#    download already running to it completes.
SIZE=100000000
download_bg "$LAB_WORK/denied.json"
wait_output 10 yes has_subflow_from 198.18.1.2 >/dev/null
sleep 2
echo "	list deny_dest '198.18.20.0/24'" >>"$CONC_CONF"
reload "$NS_CONC" "$CONC_SOCK"
if ((RELOAD_RC == 0)) && [[ $RELOAD_OUT == "reloaded: deny_dest 198.18.20.0/24 added" ]]; then
    pass "concentrator reload: $RELOAD_OUT"
else
    fail "concentrator reload" "rc $RELOAD_RC: $RELOAD_OUT"
fi
short=$(nsx "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN4" --port "$ORIGIN_PORT" --get 100000 --timeout 10)
# Refusals are counted, not logged one by one: the notice every 10 s names the rule.
if [[ $(json_field result <<<"$short") != ok ]] &&
    wait_for 12 bash -c "grep 'refused destinations' '$LAB_WORK/concentrator.log' | grep -q 'deny_dest 198.18.20.0/24'"; then
    pass "a new connection to the now denied origin is refused ($(json_field result <<<"$short"))"
else
    fail "new connection to the denied origin" "client: $short"
fi
wait "$DL_PID"
check_download "$LAB_WORK/denied.json" "download running while its destination was denied completes" ""

finish
