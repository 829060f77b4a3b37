# braid namespace tests: helpers of the uplink suites (failover.sh, backup-middlebox.sh). Source
# after lab/lab.sh and harness.sh; the suite sets SIZE (download bytes) and STATUS_SOCK.

now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }

# The state of an uplink as the running gateway reports it (braid status --json).
uplink_state() {
    nsx "$NS_GW" "$BRAID_BIN" status --json --socket "$STATUS_SOCK" 2>/dev/null |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print([u["state"] for u in d["uplinks"] if u["device"]==sys.argv[1]][0])' "$1"
}

# Starts the lab with the gateway's status socket in the lab directory; SED, if given, is applied
# to the gateway's configuration too.
start_lab() { # start_lab [SED]
    lab_up shaped
    lab_start || return 1
    STATUS_SOCK="$LAB_WORK/gateway.sock"
    kill -TERM "$LAB_GW_PID"
    wait_for 10 bash -c "! kill -0 $LAB_GW_PID"
    sed -i "s|^config gateway 'main'|config gateway 'main'\n\toption status_socket '$STATUS_SOCK'|" "$LAB_WORK/gateway.conf"
    [[ -n ${1:-} ]] && sed -i "$1" "$LAB_WORK/gateway.conf"
    ip netns exec "$NS_GW" "$BRAID_BIN" gateway --config "$LAB_WORK/gateway.conf" --log-level "${BRAID_LOG_LEVEL:-info}" 2>>"$LAB_WORK/gateway.log" &
    LAB_PIDS+=($!)
    LAB_GW_PID=$!
    wait_for 10 test -S "$STATUS_SOCK"
}

# Samples the LAN client's received bytes every 50 ms into FILE until killed.
sample_lan_rx() {
    while :; do
        printf '%s %s\n' "$(now)" "$(nsx "$NS_LAN" cat /sys/class/net/eth0/statistics/rx_bytes)"
        sleep 0.05
    done >"$1"
}

# The longest time (s) the LAN client's byte counter did not move by more than 3 kB (ACKs and
# probes aside), from a sample_lan_rx file.
longest_stall() {
    python3 - "$1" <<'EOF'
import sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if len(l.split()) == 2]
longest, start, base = 0.0, None, None
for t, b in rows:
    if base is None or b - base > 3000:
        if start is not None:
            longest = max(longest, t - start)
        start, base = t, b
if start is not None and rows:
    longest = max(longest, rows[-1][0] - start)
print(f"{longest:.2f}")
EOF
}

# A field of one uplink in the gateway's status: uplink_field DEV FIELD
uplink_field() {
    nsx "$NS_GW" "$BRAID_BIN" status --json --socket "$STATUS_SOCK" 2>/dev/null |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print([u[sys.argv[2]] for u in d["uplinks"] if u["device"]==sys.argv[1]][0])' "$1" "$2"
}

# Bytes received by the gateway on uplink I so far.
rx_bytes() { nsx "$NS_GW" cat "/sys/class/net/wan$1/statistics/rx_bytes"; }

# Starts a download in the background; its JSON goes to FILE.
download_bg() {
    nsx "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN4" --port "$ORIGIN_PORT" --get "$SIZE" --timeout 300 >"$1" &
    DL_PID=$!
}

check_download() { # check_download FILE LABEL EXTRA
    local out sha
    out=$(cat "$1")
    sha=$(json_field sha256 <<<"$out")
    if [[ $(json_field result <<<"$out") == ok && $(json_field bytes <<<"$out") == "$SIZE" && $sha == "$(origin_sha sent)" ]]; then
        pass "$2: $((SIZE / 1000000)) MB intact in $(json_field seconds <<<"$out") s$3"
        return 0
    fi
    fail "$2" "client: $out" "origin sent: $(origin_sha sent)"
    return 1
}

silent_cut() { # silent_cut on|off I: drops everything at the far side of uplink I, carrier stays up
    if [[ $1 == on ]]; then
        nsx "$NS_INET" nft -f - <<NFT
table inet braid_test_cut$2 {
    chain forward { type filter hook forward priority -10; iifname "gw$2" drop; oifname "gw$2" drop; }
    chain input { type filter hook input priority -10; iifname "gw$2" drop; }
    chain output { type filter hook output priority -10; oifname "gw$2" drop; }
}
NFT
    else
        nsx "$NS_INET" nft delete table inet "braid_test_cut$2"
    fi
}

# Waits until the gateway reports `state` for DEV; prints the seconds it took, or fails after LIMIT.
time_to_state() { # time_to_state DEV STATE LIMIT
    local t0 deadline
    t0=$(now)
    deadline=$((SECONDS + $3))
    while ((SECONDS < deadline)); do
        if [[ $(uplink_state "$1") == "$2" ]]; then elapsed "$t0" "$(now)"; return 0; fi
        sleep 0.05
    done
    return 1
}

# Local ports of the subflows from ADDRESS to the concentrator, in any state.
subflow_ports() { nsx "$NS_GW" ss -Htn "( dport = :$BRAID_PORT )" | awk '{print $4}' | grep "^$1[:%]" | sed 's/.*://' | sort; }

# Established subflows from ADDRESS whose local port is not among PORTS (a list from subflow_ports):
# a subflow withdrawn from a dead path can sit in its old state until the path returns, so
# "a subflow is back" must mean a new one.
new_subflows_from() { # new_subflows_from ADDRESS PORTS
    nsx "$NS_GW" ss -Htn state established "( dport = :$BRAID_PORT )" | awk '{print $3}' | grep "^$1[:%]" |
        sed 's/.*://' | grep -vxF -f <(printf '%s\n' $2 0) | wc -l
}

# Subflows of established sessions from ADDRESS to the concentrator.
subflows_from() { nsx "$NS_GW" ss -Htn state established "( dport = :$BRAID_PORT )" | awk '{print $3}' | grep -c "^$1[:%]"; }
