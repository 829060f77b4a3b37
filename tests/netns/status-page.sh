#!/usr/bin/env bash
# braid namespace tests: the gateway's status page, read by a real browser (headless Chromium in
# the LAN namespace, driven over the DevTools protocol by status-page-cdp.py). Topology in
# lab/lab.sh; both daemons with the TLS control channel (tests/netns/hostile/common.sh).
#
#   lan: chromium ──http://198.18.0.1/──▶ [gw: braid gateway, page on lan0]
#        braid-traffic.py, curl ───────────── wan1/wan2/wan3 ══ [inet] ── [conc] ── [origin]
#                                                                  ▲ silences wan2 (nft drop);
#                                                                  │ routes to 198.18.0.1 via wan1
#                                                                  │ and asks for the page
# Checks: the page and /status.json from the LAN; every uplink on the page; its graph moves
# during a sha256-checked download; a silenced uplink shows down within 2 s; the uplinks cannot
# reach the page; 300 idle or half-sent connections leave the relay working and the page back
# after them; a reload moves the page, one to a port in use is logged and retried while bonding
# goes on, and `off` stops it. The screenshot taken during the download, with wan2 down, is kept
# as $BRAID_TEST_LOGS/status-page.png. About a minute and a half.
#
# Prints "N passed, N failed" last; exits non-zero on any failure or missing prerequisite.
set -u
cd "$(dirname "$0")/../.."
export LAB_SUFFIX="sp$$"
source lab/lab.sh
source tests/netns/harness.sh
source tests/netns/uplink-helpers.sh
source tests/netns/hostile/common.sh
CDP="/usr/bin/python3 tests/netns/status-page-cdp.py"
CDP_PORT=9229
PAGE="http://198.18.0.1"
SIZE=${BRAID_PAGE_BYTES:-100000000}
CHROMIUM_PID=""

need_braid_lab
need_cmd curl nginx chromium
need "python3-websocket (Debian's websocket-client)" /usr/bin/python3 -c "import websocket"
check_prerequisites

# Chromium goes before the lab: the harness's trap removes the namespaces, this one the browser.
stop_chromium() {
    [[ -n $CHROMIUM_PID ]] && kill -TERM "$CHROMIUM_PID" 2>/dev/null
    for _ in $(seq 30); do [[ -z $CHROMIUM_PID ]] || ! kill -0 "$CHROMIUM_PID" 2>/dev/null && break; sleep 0.1; done
    [[ -n $CHROMIUM_PID ]] && kill -KILL "$CHROMIUM_PID" 2>/dev/null
    CHROMIUM_PID=""
}
trap 'stop_chromium; cleanup' EXIT INT TERM

# The page's state for an uplink, as the browser shows it.
page_eval() { nsx "$NS_LAN" $CDP eval "$CDP_PORT" "$1"; }
page_wait() { nsx "$NS_LAN" $CDP wait "$CDP_PORT" "$@"; }
# JS: the section of uplink NAME.
card() { echo "document.querySelector('section.uplink[data-name=\"$1\"]')"; }

lab_up shaped
hostile_start || { fail "lab start" "$(tail -5 "$LAB_WORK/gateway.log")"; finish; exit 1; }

# 1. The document and the page over plain HTTP from the LAN (curl).
# The same document: same fields everywhere, same uplinks and states. The page's copy is up to a
# second old (published once a second), so a change in that second (the control channel coming
# up) may separate the two reads: compared again for a few seconds.
same_document() {
    local page_doc socket_doc
    page_doc=$(nsx "$NS_LAN" curl -sS --max-time 2 "$PAGE/status.json") || { echo "no answer"; return 1; }
    socket_doc=$(nsx "$NS_GW" "$BRAID_BIN" status --json --socket "$STATUS_SOCK")
    python3 - "$page_doc" "$socket_doc" <<'EOF'
import json, sys
a, b = (json.loads(x) for x in sys.argv[1:3])
def shape(d):
    if isinstance(d, dict): return {k: shape(v) for k, v in d.items()}
    if isinstance(d, list): return [shape(v) for v in d]
    return None
states = lambda d: [(u["name"], u["state"]) for u in d["uplinks"]]
ok = shape(a) == shape(b) and states(a) == states(b) and a["control"] == b["control"]
print("" if ok else f"page: {a}\nsocket: {b}")
sys.exit(0 if ok else 1)
EOF
}
if wait_for 10 same_document; then
    pass "/status.json from the LAN is the document of braid status --json"
else
    fail "/status.json from the LAN is the status document" "$(same_document)" "$(tail -3 "$LAB_WORK/gateway.log")"
fi
headers=$(nsx "$NS_LAN" curl -sS --max-time 5 -D - -o "$LAB_WORK/page.html" "$PAGE/")
if grep -qi "^content-security-policy: default-src 'none'" <<<"$headers" &&
    ! grep -Eq '(src|href)=|@import|url\(' "$LAB_WORK/page.html"; then
    pass "the page references no asset and forbids every fetch but its own (Content-Security-Policy)"
else
    fail "the page is self-contained" "$headers"
fi

# 2. Chromium loads the page and shows every uplink up.
mkdir -p "$LAB_WORK/chromium"
# No DNS (every name but the gateway's address resolves to nothing) and none of Chromium's own background requests: the
# browser talks to the gateway's page and to nothing else.
ip netns exec "$NS_LAN" timeout 600 chromium --headless=new --no-sandbox --disable-gpu \
    --user-data-dir="$LAB_WORK/chromium" --remote-debugging-port="$CDP_PORT" --remote-allow-origins='*' \
    --window-size=1280,900 --no-first-run --no-default-browser-check --disable-background-networking \
    --disable-component-update --disable-sync --disable-extensions --host-resolver-rules='MAP * ~NOTFOUND, EXCLUDE 198.18.0.1' \
    "$PAGE/" >"$LAB_WORK/chromium.log" 2>&1 &
CHROMIUM_PID=$!
names=$(nsx "$NS_GW" "$BRAID_BIN" status --json --socket "$STATUS_SOCK" |
    python3 -c 'import json,sys; print(" ".join(u["name"] for u in json.load(sys.stdin)["uplinks"]))')
all_up="[$(for n in $names; do printf "'%s'," "$n"; done)].every(n => { const s = document.querySelector('section.uplink[data-name=\"' + n + '\"]'); return s && s.dataset.state === 'up' })"
if took=$(page_wait "$all_up" 30); then
    pass "Chromium shows every uplink ($names) up, $took s after it started"
else
    fail "Chromium shows every uplink up" "page: $(page_eval "document.getElementById('uplinks').innerText" 2>&1 | head -c 600)" \
        "$(tail -5 "$LAB_WORK/chromium.log")"
fi
shows=$(page_eval "[document.getElementById('concentrator').textContent, document.getElementById('control').textContent]")
[[ $shows == *"$CONC_ADDR:$BRAID_PORT"* && $shows == *'"up'* ]] &&
    pass "the page shows the concentrator in use and the control channel up: $shows" ||
    fail "concentrator and control channel on the page" "$shows"

# 3. The graph moves during a sha256-checked download.
points="JSON.stringify([...document.querySelectorAll('section.uplink')].map(s => s.querySelector('polyline.rx').getAttribute('points')))"
before=$(page_eval "$points")
download_bg "$LAB_WORK/download.json"
moving="[...document.querySelectorAll('section.uplink')].filter(s => Number(s.dataset.rxBps) > 2000000).length >= 2"
if took=$(page_wait "$moving" 15); then
    after=$(page_eval "$points")
    [[ $after != "$before" ]] && pass "the graph moves during the download: two uplinks over 2 Mbit/s on the page after $took s" ||
        fail "the graph's lines change during the download" "before: $before" "after: $after"
else
    fail "the page shows the download on the uplinks" "$(page_eval "[...document.querySelectorAll('section.uplink')].map(s => s.dataset.name + ' ' + s.dataset.rxBps)")"
fi
# The document itself is fresh: its counters move within a few seconds during the download.
doc_rx() { nsx "$NS_LAN" curl -sS --max-time 2 "$PAGE/status.json" | python3 -c 'import json,sys; print(sum(u["rx_bytes"] for u in json.load(sys.stdin)["uplinks"]))'; }
rx0=$(doc_rx)
if wait_for 3 bash -c "[[ \$(ip netns exec $NS_LAN curl -sS --max-time 1 $PAGE/status.json | python3 -c 'import json,sys; print(sum(u[\"rx_bytes\"] for u in json.load(sys.stdin)[\"uplinks\"]))') -gt $rx0 ]]"; then
    pass "/status.json is republished during the download (its rx_bytes moved from $rx0 within 3 s)"
else
    fail "/status.json is republished at least every second" "rx_bytes stayed $rx0, now $(doc_rx)"
fi

# 4. A silenced uplink turns down on the page within 2 s (probes: down_after 1 s by default),
# during the download.
sleep 3  # a few more seconds of graph before the cut, for the screenshot; not a wait for a state
t0=$(now)
silent_cut on 2
if took=$(page_wait "$(card lte).dataset.state === 'down' && $(card lte).querySelector('.badge').textContent === 'down'" 2 "$t0"); then
    pass "wan2 silenced at the far side: down on the page after $took s"
else
    fail "wan2 silenced: down on the page within 2 s" "page: $(page_eval "$(card lte).dataset.state")"
fi
sleep 2  # the graph's dip on wan2, for the screenshot
nsx "$NS_LAN" $CDP screenshot "$CDP_PORT" "$LAB_WORK/status-page.png" &&
    [[ $(head -c 8 "$LAB_WORK/status-page.png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] &&
    pass "screenshot kept ($(stat -c %s "$LAB_WORK/status-page.png") bytes PNG${BRAID_TEST_LOGS:+, in $BRAID_TEST_LOGS})" ||
    fail "screenshot of the page"
[[ -n ${BRAID_TEST_LOGS:-} ]] && mkdir -p "$BRAID_TEST_LOGS" && cp "$LAB_WORK/status-page.png" "$BRAID_TEST_LOGS/"
silent_cut off 2
took=$(page_wait "$(card lte).dataset.state === 'up'" 10) && pass "wan2 back up on the page $took s after the repair" ||
    fail "wan2 back up on the page within 10 s"
wait "$DL_PID"
check_download "$LAB_WORK/download.json" "download while the page watches and wan2 is cut" ""
stop_chromium

# 5. The uplinks cannot reach the page: inet routes the LAN address to the gateway's wan1.
nsx "$NS_INET" ip route add 198.18.0.1/32 via 198.18.1.2
drops() { nsx "$NS_GW" nft -j list chain inet braid input | python3 -c '
import json, sys
n = 0
for r in json.load(sys.stdin)["nftables"]:
    e = r.get("rule", {}).get("expr", [])
    if any("@lan_only_ports" in json.dumps(x) for x in e):
        n += sum(x["counter"]["packets"] for x in e if "counter" in x)
print(n)'; }
d0=$(drops)
if nsx "$NS_INET" curl -s --max-time 3 -o /dev/null "$PAGE/status.json"; then
    fail "the page is not reachable from the uplinks" "inet fetched $PAGE/status.json through wan1"
elif (($(drops) > d0)); then
    pass "from inet through wan1 the page does not answer; the interception table dropped $(($(drops) - d0)) packets"
else
    fail "the page is not reachable from the uplinks" "no answer, but the lan_only_ports rule dropped nothing"
fi
nsx "$NS_INET" ip route del 198.18.0.1/32 via 198.18.1.2

# 6. 300 connections that send half a request and wait: the listener's bound (64) and idle
# timeout hold them; the relay and the status socket go on, and the page answers once they go.
ip netns exec "$NS_LAN" python3 - 198.18.0.1 80 300 8 >"$LAB_WORK/slow.log" 2>&1 <<'EOF' &
import socket, sys, time
host, port, n, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
socks = []
for _ in range(n):
    try:
        s = socket.create_connection((host, port), timeout=2)
        s.send(b"GET /status.json HTTP/1.1\r\nHost: gw\r\n")  # never finished
        socks.append(s)
    except OSError:
        pass
print(f"opened {len(socks)}", flush=True)
time.sleep(hold)
EOF
SLOW_PID=$!
wait_for 10 grep -q opened "$LAB_WORK/slow.log"
held=$(nsx "$NS_GW" ss -Htn state established "( sport = :80 )" | wc -l)
flood_dl=$(lan_get 20000000)
status_ok=$(nsx "$NS_GW" timeout 5 "$BRAID_BIN" status --json --socket "$STATUS_SOCK" >/dev/null 2>&1 && echo yes)
if intact "$flood_dl" 20000000 sent && [[ $status_ok == yes ]] && ((held <= 64)); then
    pass "300 half-sent requests: the gateway keeps $held of them open, relays 20 MB intact and answers braid status"
else
    fail "300 half-sent requests" "held: $held" "download: $flood_dl" "status answered: ${status_ok:-no}"
fi
kill "$SLOW_PID" 2>/dev/null; wait "$SLOW_PID" 2>/dev/null
wait_for 5 nsx "$NS_LAN" curl -sf --max-time 1 -o /dev/null "$PAGE/status.json" &&
    pass "the page answers again once the slow clients are gone" || fail "the page answers after the slow clients"

# 7. A reload moves the page (web_listen 'lan:8080') and `off` stops it, the relay untouched.
hostile_gw_conf <<<"	option web_listen 'lan:8080'"
nsx "$NS_GW" "$BRAID_BIN" reload --socket "$STATUS_SOCK" >"$LAB_WORK/reload.out" 2>&1
if wait_for 5 nsx "$NS_LAN" curl -sf --max-time 1 -o /dev/null "$PAGE:8080/status.json" &&
    ! nsx "$NS_LAN" curl -s --max-time 1 -o /dev/null "$PAGE/status.json" &&
    nsx "$NS_GW" nft list set inet braid lan_only_ports | grep -q 8080; then
    pass "reload to web_listen lan:8080: the page moves, port 80 closes, 8080 is LAN-only"
else
    fail "reload to web_listen lan:8080" "$(cat "$LAB_WORK/reload.out")"
fi
# A port someone else holds (LuCI's uhttpd holds 80 on OpenWrt): the reload goes through, bonding
# goes on, the error is logged, and the page appears once the port is free (retried every 5 s).
ip netns exec "$NS_GW" python3 -c 'import socket, time
s = socket.socket(); s.bind(("198.18.0.1", 8081)); s.listen(); time.sleep(60)' &
SQUATTER=$!
wait_for 5 bash -c "ip netns exec $NS_GW ss -Hltn | grep -q '198.18.0.1:8081 '"
hostile_gw_conf <<<"	option web_listen 'lan:8081'"
nsx "$NS_GW" "$BRAID_BIN" reload --socket "$STATUS_SOCK" >"$LAB_WORK/reload.out" 2>&1
squatted_dl=$(lan_get 5000000)
if grep -q "^reloaded" "$LAB_WORK/reload.out" && intact "$squatted_dl" 5000000 sent &&
    wait_for 3 grep -q "status page not served" "$LAB_WORK/gateway.log"; then
    pass "web_listen on a port in use: reloaded, the error logged, 5 MB relayed intact"
else
    fail "web_listen on a port in use" "$(cat "$LAB_WORK/reload.out")" "download: $squatted_dl"
fi
kill "$SQUATTER"; wait "$SQUATTER" 2>/dev/null
wait_for 8 nsx "$NS_LAN" curl -sf --max-time 1 -o /dev/null "$PAGE:8081/status.json" &&
    pass "the page is on port 8081 within 8 s of the port coming free" || fail "the page on 8081 once the port is free"
hostile_gw_conf <<<"	option web_listen 'off'"
nsx "$NS_GW" "$BRAID_BIN" reload --socket "$STATUS_SOCK" >"$LAB_WORK/reload.out" 2>&1
wait_for 5 bash -c "! ip netns exec $NS_GW ss -Hltn | grep -q ':808[01] '" &&
    pass "reload to web_listen off: nothing listens for the page" || fail "web_listen off" "$(nsx "$NS_GW" ss -Hltn)"
hostile_restore

hostile_final_check
finish
