#!/usr/bin/env bash
# braid namespace tests: Prometheus metrics of both roles and the concentrator's status document
# (topology in lab/lab.sh), read with Debian's curl.
#
#   lan ── [gw: braid gateway] ══ wan1-3 ══ [inet] ── [conc: braid concentrator] ── [origin]
#    │      metrics 198.18.0.1:9100          │          metrics 198.18.10.2:9101
#    └── curl scrapes the gateway            └── curl scrapes the concentrator; plain HTTP on
#                                                the data port; abusive scrapers
#
# TLS lab (subscriber cpe_1, no pre-shared key). Both daemons are scraped before and after a
# sha256-checked download and upload: the byte counters grow by the transfer's size within 2 %.
# Prints "N passed, N failed" last; exits non-zero on any failure or missing prerequisite.
set -u
cd "$(dirname "$0")/../.."
export LAB_SUFFIX="m$$"
source lab/lab.sh
source tests/netns/harness.sh
source tests/netns/uplink-helpers.sh
source tests/netns/tls-lab.sh
GW_METRICS=198.18.0.1:9100
CONC_METRICS=198.18.10.2:9101
DOWN=20000000
UP=10000000

require() {
    need_braid_lab
    need_cmd curl
    check_prerequisites
}

conc_conf() { # conc_conf [SUBSCRIBER]: cpe_1 unless another name is given (a reload that removes it)
    tls_conc_conf "config class 'standard'

config subscriber '${1:-cpe_1}'
	option class 'standard'" <<CONF
	option metrics_listen '$CONC_METRICS'
	list deny_dest '$ORIGIN_DENIED/32'
CONF
}

# The gateway, with the daemon's default keepalive (as this suite has always run it), serving metrics.
gw_conf() { GW_KEEPALIVE='' tls_gw_conf <<<"	option metrics_listen '$GW_METRICS'"; }

# Both daemons, each waited for until its metrics port listens.
start_daemons() {
    tls_start_conc 9101 || return 1
    tls_start_gw && wait_for 10 nsx "$NS_GW" bash -c "ss -Hltn 'sport = :9100' | grep -q LISTEN"
}

# The exposition of a daemon, as Prometheus would fetch it: scrape gw|conc
scrape() {
    if [[ $1 == gw ]]; then
        nsx "$NS_LAN" curl -sf --max-time 5 "http://$GW_METRICS/metrics"
    else
        nsx "$NS_INET" curl -sf --max-time 5 "http://$CONC_METRICS/metrics"
    fi
}

# One sample's value from an exposition on stdin, 0 when absent: sample 'NAME{LABELS}'
sample() { python3 -c '
import sys
want = sys.argv[1]
for line in sys.stdin:
    if line.startswith("#"): continue
    name, _, value = line.rstrip("\n").rpartition(" ")
    if name == want: print(int(float(value))); break
else: print(0)' "$1"; }

# The sum of a metric over every label set: sum_of NAME 'LABEL="VALUE"' (label filter optional)
sum_of() { python3 -c '
import sys
name, label = sys.argv[1], sys.argv[2]
total = 0
for line in sys.stdin:
    if line.startswith(name + "{") and label in line: total += float(line.rsplit(" ", 1)[1])
print(int(total))' "$1" "${2:-}"; }

conc_status() { nsx "$NS_CONC" "$BRAID_BIN" status --json --socket "$CONC_SOCK"; }
# A field of cpe_1 (or SUBSCRIBER) in the concentrator's document: subscriber_field PATH [SUBSCRIBER]
subscriber_field() {
    conc_status | python3 -c '
import json, sys
d = json.load(sys.stdin)
s = [s for s in d["subscribers"] if s["name"] == sys.argv[2]][0]
for k in sys.argv[1].split("."): s = s[k]
print("" if s is None else s)' "$1" "${2:-cpe_1}"
}

lan_get() { nsx "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN4" --port "$ORIGIN_PORT" --get "$1" --timeout 60; }
lan_put() { nsx "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN4" --port "$ORIGIN_PORT" --put "$1" --timeout 60; }
intact() { # intact JSON BYTES EVENT: result ok, all bytes, sha256 as the origin logged
    [[ $(json_field result <<<"$1") == ok && $(json_field bytes <<<"$1") == "$2" &&
        $(json_field sha256 <<<"$1") == "$(origin_sha "$3")" ]]
}

# Whether GREW is SIZE within 2 %: within2 GREW SIZE
within2() { python3 -c 'import sys; g, s = int(sys.argv[1]), int(sys.argv[2]); sys.exit(0 if abs(g - s) <= s * 0.02 else 1)' "$1" "$2"; }
pct() { python3 -c 'import sys; print(f"{(int(sys.argv[1]) - int(sys.argv[2])) * 100 / int(sys.argv[2]):+.2f} %")' "$1" "$2"; }

fds() { ls "/proc/$1/fd" | wc -l; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

require
lab_up unshaped
mkdir -p "$LAB_WORK"
tls_pki || { fail "braid pki"; finish; exit 1; }
conc_conf
gw_conf
ip netns exec "$NS_ORG" python3 "$TRAFFIC" serve --port "$ORIGIN_PORT" --log "$LAB_WORK/origin.log" --lifetime 3000 &
LAB_PIDS+=($!)
wait_for 10 nsx "$NS_ORG" bash -c "ss -Hltn 'sport = :$ORIGIN_PORT' | grep -q LISTEN"
start_daemons || { fail "daemons with metrics_listen did not start" "$(tail -5 "$LAB_WORK/concentrator.log")" \
    "$(tail -5 "$LAB_WORK/gateway.log")"; finish; exit 1; }
wait_for 15 bash -c "[[ \$(ip netns exec $NS_GW $BRAID_BIN status --json --socket $STATUS_SOCK | grep -c '\"state\":\"up\",\"key\"') == 1 ]]" ||
    fail "control channel up" "$(tail -3 "$LAB_WORK/gateway.log")"

# 1. Both expositions, with the names an operator's dashboards use. An uplink's RTT and loss are
# series only once its probes have answered: wait for them (a busy machine answers late).
wait_for 15 bash -c "ip netns exec $NS_LAN curl -sf http://$GW_METRICS/metrics | grep -q '^braid_uplink_loss_ratio{'"
gw0=$(scrape gw)
conc0=$(scrape conc)
missing=()
for name in braid_uplink_up braid_uplink_rtt_seconds braid_uplink_loss_ratio braid_uplink_bytes_total \
    braid_sessions_open braid_sessions_total braid_session_bytes_total; do
    grep -q "^# TYPE $name " <<<"$gw0" || missing+=("gateway $name")
done
for name in braid_subscriber_bytes_total braid_subscriber_sessions_open braid_control_channels_open \
    braid_sessions_open braid_sessions_total; do
    grep -q "^# TYPE $name " <<<"$conc0" || missing+=("concentrator $name")
done
wait_for 10 bash -c "ip netns exec $NS_LAN curl -sf http://$GW_METRICS/metrics | grep -qx 'braid_uplink_up{uplink=\"dsl\"} 1.0'" ||
    missing+=("gateway braid_uplink_up{uplink=dsl} 1")
[[ $(sample braid_control_channels_open <<<"$conc0") == 1 ]] || missing+=("concentrator braid_control_channels_open 1")
if ((${#missing[@]} == 0)); then
    pass "curl scrapes both daemons' /metrics: uplink up/rtt/loss/bytes, sessions, subscriber bytes, control channels"
else
    fail "metrics exposed" "missing: ${missing[*]}" "gateway: $(head -c 600 <<<"$gw0")" "concentrator: $(head -c 600 <<<"$conc0")"
fi
[[ $(nsx "$NS_INET" curl -s -o /dev/null -w '%{http_code}' -X POST "http://$CONC_METRICS/metrics") == 405 &&
    $(nsx "$NS_INET" curl -s -o /dev/null -w '%{http_code}' "http://$CONC_METRICS/status") == 404 ]] &&
    pass "the metrics listener answers GET /metrics only (POST 405, other paths 404)" ||
    fail "metrics listener refuses other methods and paths"

# 2. A download and an upload, sha256-checked; the byte counters grow by their sizes within 2 %.
down=$(lan_get $DOWN)
up=$(lan_put $UP)
if intact "$down" $DOWN sent && intact "$up" $UP received; then
    pass "transfers through the bond: $DOWN bytes down, $UP bytes up, sha256 equal at both ends"
else
    fail "transfers through the bond" "down: $down" "up: $up"
fi
# The gateway's document is made each second: wait (bounded) for one made after the transfer.
gw_before_down=$(sample 'braid_session_bytes_total{direction="down"}' <<<"$gw0")
wait_for 5 bash -c "ip netns exec $NS_LAN curl -sf http://$GW_METRICS/metrics | grep -q '^braid_sessions_total [2-9]'"
gw1=$(scrape gw)
conc1=$(scrape conc)
check_growth() { # check_growth LABEL BEFORE AFTER SIZE
    local grew=$(($3 - $2))
    if within2 "$grew" "$4"; then
        pass "$1 grew by $grew for $4 ($(pct "$grew" "$4"), within 2 %)"
    else
        fail "$1 grew by the transfer's size within 2 %" "grew by $grew for $4 ($(pct "$grew" "$4"))"
    fi
}
key='braid_subscriber_bytes_total{subscriber="cpe_1",direction'
check_growth "concentrator braid_subscriber_bytes_total{cpe_1,down}" "$(sample "$key=\"down\"}" <<<"$conc0")" \
    "$(sample "$key=\"down\"}" <<<"$conc1")" $DOWN
check_growth "concentrator braid_subscriber_bytes_total{cpe_1,up}" "$(sample "$key=\"up\"}" <<<"$conc0")" \
    "$(sample "$key=\"up\"}" <<<"$conc1")" $UP
check_growth "gateway braid_session_bytes_total{down}" "$gw_before_down" \
    "$(sample 'braid_session_bytes_total{direction="down"}' <<<"$gw1")" $DOWN
check_growth "gateway braid_session_bytes_total{up}" "$(sample 'braid_session_bytes_total{direction="up"}' <<<"$gw0")" \
    "$(sample 'braid_session_bytes_total{direction="up"}' <<<"$gw1")" $UP
# The uplinks' counters are the devices' own: every packet with its headers, probes and the
# control channel included, so they grow by at least the payload and by at most 10 % more.
rx0=$(sum_of braid_uplink_bytes_total 'direction="rx"' <<<"$gw0")
rx1=$(sum_of braid_uplink_bytes_total 'direction="rx"' <<<"$gw1")
tx0=$(sum_of braid_uplink_bytes_total 'direction="tx"' <<<"$gw0")
tx1=$(sum_of braid_uplink_bytes_total 'direction="tx"' <<<"$gw1")
if ((rx1 - rx0 >= DOWN && rx1 - rx0 <= DOWN * 11 / 10 && tx1 - tx0 >= UP && tx1 - tx0 <= UP * 11 / 10)); then
    pass "gateway braid_uplink_bytes_total over all uplinks: rx $(pct $((rx1 - rx0)) $DOWN), tx $(pct $((tx1 - tx0)) $UP) of the payload (headers included)"
else
    fail "gateway uplink byte counters follow the transfer" "rx grew $((rx1 - rx0)) for $DOWN" "tx grew $((tx1 - tx0)) for $UP"
fi
sessions=$(($(sample braid_sessions_total <<<"$conc1") - $(sample braid_sessions_total <<<"$conc0")))
((sessions == 2)) && pass "concentrator braid_sessions_total grew by the 2 sessions" ||
    fail "concentrator braid_sessions_total grew by 2" "grew by $sessions"

# 3. The concentrator's view: cpe_1 with its class, control channel, bytes (the metrics' values).
doc=$(conc_status)
gw_key=$(control_field key)
if [[ $(subscriber_field class) == standard && $(subscriber_field control.state) == up &&
    $(subscriber_field control.key) == "$gw_key" && $(subscriber_field control.from) == 198.18.[123].2:* &&
    $(subscriber_field bytes.down) == "$(sample "$key=\"down\"}" <<<"$(scrape conc)")" &&
    $(subscriber_field bytes.down) -ge $DOWN ]]; then
    pass "braid status --json on the concentrator: cpe_1, class standard, control up from $(subscriber_field control.from) on key $gw_key, $(subscriber_field bytes.down) bytes down"
else
    fail "concentrator status document" "$doc" "gateway key: $gw_key"
fi
table=$(nsx "$NS_CONC" "$BRAID_BIN" status --socket "$CONC_SOCK")
printf '%s\n' "$table" >"$LAB_WORK/concentrator-status.log"
grep -q '^SUBSCRIBER .*RATE DOWN$' <<<"$table" && grep -q '^cpe_1 .*standard .*enabled .*up ' <<<"$table" &&
    pass "braid status on the concentrator prints its subscribers' table" || fail "concentrator status table" "$table"

# 4. Refusals by reason: plain HTTP (curl) on the data port, a request for a denied destination.
nsx "$NS_INET" curl -s --max-time 5 "http://$CONC_ADDR:$BRAID_PORT/" -o /dev/null
denied=$(nsx "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN_DENIED" --port "$ORIGIN_PORT" --get 1000 --timeout 10)
refusals=$(conc_status | python3 -c '
import json, sys
print(" ".join("%s:%s=%d" % (r["listener"], r["reason"], r["count"]) for r in json.load(sys.stdin)["refusals"]))')
conc2=$(scrape conc)
if [[ $(json_field result <<<"$denied") != ok ]] && grep -q "data:version=1" <<<"$refusals" &&
    grep -q "destination:deny_dest $ORIGIN_DENIED/32=1" <<<"$refusals" &&
    [[ $(sample 'braid_refusals_total{listener="data",reason="version"}' <<<"$conc2") == 1 &&
        $(sample "braid_refusals_total{listener=\"destination\",reason=\"deny_dest $ORIGIN_DENIED/32\"}" <<<"$conc2") == 1 ]]; then
    pass "refusals by reason in status and metrics: curl's HTTP on the data port (version), a denied destination (deny_dest)"
else
    fail "refusals by reason" "status: $refusals" "$(grep braid_refusals_total <<<"$conc2")" "client: $denied"
fi

# 5. A reload keeps every counter; a subscriber it removes stays, frozen, as 'removed'.
before=$(sample "$key=\"down\"}" <<<"$(scrape conc)")
nsx "$NS_CONC" "$BRAID_BIN" reload --socket "$CONC_SOCK" >/dev/null
after_reload=$(sample "$key=\"down\"}" <<<"$(scrape conc)")
conc_conf cpe_2
nsx "$NS_CONC" "$BRAID_BIN" reload --socket "$CONC_SOCK" >/dev/null
wait_for 5 bash -c "[[ \$(ip netns exec $NS_CONC $BRAID_BIN status --json --socket $CONC_SOCK | grep -o '\"control_channels\":0') ]]"
after_removal=$(sample "$key=\"down\"}" <<<"$(scrape conc)")
# cpe_1's gateway calls again and is refused, its certificate's subscriber unknown: counted.
wait_for 10 bash -c "ip netns exec $NS_INET curl -sf http://$CONC_METRICS/metrics |
    grep -q '^braid_refusals_total{listener=\"control\",reason=\"unknown subscriber\"} [1-9]'"
unknown=$(sample 'braid_refusals_total{listener="control",reason="unknown subscriber"}' <<<"$(scrape conc)")
if [[ $before == "$after_reload" && $before == "$after_removal" && $(subscriber_field config) == removed &&
    $(subscriber_field config cpe_2) == enabled && $unknown -ge 1 ]]; then
    pass "counters unchanged by a reload ($before bytes); cpe_1 removed by a reload: listed as removed, its counter kept, its gateway's calls counted ($unknown, unknown subscriber)"
else
    fail "counters across reloads" "before $before, after reload $after_reload, after removal $after_removal" \
        "unknown subscriber refusals: $unknown" "$(conc_status)"
fi
conc_conf
nsx "$NS_CONC" "$BRAID_BIN" reload --socket "$CONC_SOCK" >/dev/null
wait_for 30 bash -c "[[ \$(ip netns exec $NS_GW $BRAID_BIN status --json --socket $STATUS_SOCK | grep -c '\"state\":\"up\",\"key\"') == 1 ]]"

# 6. Abusive scrapers: 300 connections held open, and pipelining readers that never read. The
#    listener keeps at most 64 connections and stops reading from a peer it cannot write to, so
#    the concentrator's descriptors and memory stay bounded and the data path does not notice.
fds0=$(fds "$LAB_CONC_PID")
rss0=$(rss_kb "$LAB_CONC_PID")
nsx "$NS_INET" python3 - "${CONC_METRICS%:*}" "${CONC_METRICS#*:}" "$LAB_WORK/abuse.json" <<'PY' &
import json, socket, sys, time
host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
held, slow = [], []
request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
sent = 0
for _ in range(4):
    s = socket.create_connection((host, port), timeout=2)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    slow.append(s)
for _ in range(300):
    try:
        held.append(socket.create_connection((host, port), timeout=2))
    except OSError:
        pass
deadline = time.time() + 6
while time.time() < deadline:
    for s in slow:
        try:
            sent += s.send(request * 256)
        except (BlockingIOError, OSError):
            pass
    time.sleep(0.01)
json.dump({"connected": len(held), "request_bytes": sent}, open(out, "w"))
time.sleep(2)
PY
ABUSE_PID=$!
sleep 3
during=$(lan_get 5000000)
fds1=$(fds "$LAB_CONC_PID")
wait "$ABUSE_PID"
rss1=$(rss_kb "$LAB_CONC_PID")
requests=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["request_bytes"])' "$LAB_WORK/abuse.json" 2>/dev/null)
if intact "$during" 5000000 sent && ((fds1 - fds0 <= 64 + 8)) && ((rss1 - rss0 < 64 * 1024)); then
    pass "300 idle connections and 4 pipelining non-readers ($((requests / 1000)) kB of requests): +$((fds1 - fds0)) descriptors (64 allowed), +$(((rss1 - rss0) / 1024)) MB, a 5 MB download intact meanwhile"
else
    fail "abusive scrapers are bounded" "descriptors $fds0 -> $fds1" "RSS $rss0 -> $rss1 kB" \
        "requests sent: ${requests:-?} bytes" "download: $during"
fi
wait_for 20 bash -c "ip netns exec $NS_INET curl -sf --max-time 2 http://$CONC_METRICS/metrics | grep -q braid_sessions_open" &&
    pass "scraping works again once the abusers are gone" || fail "scrape after the abuse"

# 7. A metrics address the box does not have: the gateway logs it and relays all the same.
stop_pid "$LAB_GW_PID"
sed -i "s|option metrics_listen '$GW_METRICS'|option metrics_listen '198.18.0.99:9100'|" "$LAB_WORK/gateway.conf"
tls_start_gw
wait_for 30 bash -c "[[ \$(ip netns exec $NS_GW $BRAID_BIN status --json --socket $STATUS_SOCK | grep -c '\"state\":\"up\",\"key\"') == 1 ]]"
after=$(lan_get 1000000)
if intact "$after" 1000000 sent && grep -q "metrics not served: metrics_listen 198.18.0.99:9100" "$LAB_WORK/gateway.log"; then
    pass "metrics_listen on an address the box lacks: an error in the log, and the gateway relays all the same"
else
    fail "gateway without its metrics address" "client: $after" "$(grep -i metrics "$LAB_WORK/gateway.log" | tail -2)"
fi

finish
