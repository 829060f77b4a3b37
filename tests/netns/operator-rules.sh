#!/usr/bin/env bash
# braid namespace tests: rules the operator provisions on the concentrator for a service class
# (`config rule` with `option class`), pushed over the TLS control channel to that class's
# gateways (topology in lab/lab.sh):
#
#   lan ── [gw: braid gateway] ══ wan1 (dsl) / wan2 / wan3 ══ [inet] ── [conc] 198.18.10.2
#   curl   rules chain: the gateway's own       ◀── TLS 4803: operatorRules ──  config rule 'op_web'
#          ─▶ jump operator_rules (pushed)                                        option class 'office'
#          ─▶ default_action bond                                   [origin] nginx 80, 8090, 8091, 8093
#
# nginx logs the source of each request: the concentrator (bonded) or wan1's own address (direct).
# Every download's sha256 is checked. Subscriber cpe_1 is in class 'office'. Checked: an operator
# rule makes port 8090 direct; a gateway rule for port 8093 (bond) wins over the operator's (direct);
# another class's rule (8091 block) does not apply; hits in `braid status --json`; a concentrator
# reload changes op_web to block (refused at once), a reload moving cpe_1 to class 'standard'
# brings that class's rule and drops office's, a reload back with op_web removed bonds 8090 again,
# each applied within a few seconds (the time is printed); a bonded 24 MB download runs across all
# of them intact; the gateway keeps the last set in its state directory: restarted while the
# concentrator is down, it applies them at once. About 30 s (27 s here, under load).
# Prints "N passed, N failed" last; exits non-zero on any failure or missing prerequisite.
set -u
cd "$(dirname "$0")/../.."
export LAB_SUFFIX="o$$"
source lab/lab.sh
source tests/netns/harness.sh
source tests/netns/tls-lab.sh
WAN1=198.18.1.2

need_braid_lab
need_cmd nginx curl sha256sum
check_prerequisites

# The concentrator: cpe_1 in CLASS, then RULES (uci text).
conc_conf() { # conc_conf CLASS RULES
    tls_conc_conf "config class 'standard'

config class 'office'

config subscriber 'cpe_1'
	option class '$1'

config rule 'op_other'
	option class 'standard'
	list dest_port '8091'
	option action 'block'

config rule 'op_over'
	option class 'office'
	list dest_port '8093'
	option action 'direct'

$2" </dev/null
}

OP_DIRECT="config rule 'op_web'
	option class 'office'
	list dest '198.18.20.0/24'
	list dest_port '8090'
	option action 'direct'"
OP_BLOCK=${OP_DIRECT/\'direct\'/\'block\'}

gw_conf() {
    tls_gw_conf "$TLS_GW_UPLINKS

config rule 'gw_over'
	list dest_port '8093'
	option action 'bond'" </dev/null
}

gw_status() { nsx "$NS_GW" "$BRAID_BIN" status --json --socket "$STATUS_SOCK" 2>/dev/null; }

# The gateway's rules as `braid status --json` lists them: "NAME/ORIGIN/ACTION/HITS" each, in order.
rules_now() {
    gw_status | python3 -c '
import json, sys
d = json.load(sys.stdin)
keys = ("name", "origin", "action", "hits")
print(" ".join("/".join(str(r[k]) for k in keys) for r in d.get("rules") or []))' 2>/dev/null
}

# The rules without their hits, as a reload's effect is checked.
rules_shape() { rules_now | sed -E 's#/[0-9]+( |$)#\1#g'; }

# Seconds (to the hundredth) until the gateway's rules read WANT, or fails after LIMIT seconds.
time_to_rules() { # time_to_rules WANT LIMIT
    local t0 deadline
    t0=$(date +%s.%N)
    deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do
        if [[ $(rules_shape) == "$1" ]]; then
            python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 2))" "$t0" "$(date +%s.%N)"
            return 0
        fi
        sleep 0.05
    done
    return 1
}

url() { echo "http://$ORIGIN4:$1/$2?id=$3"; }
source_of() { awk -v id="id=$1" '$5 ~ id"$" {print $1}' "$LAB_WORK/access.log" | tail -1; }

# Checks that /file on PORT arrives intact and that nginx saw it from EXPECTED.
expect_from() { # expect_from LABEL PORT EXPECTED
    local id=$RANDOM$RANDOM sha src
    sha=$(nsx "$NS_LAN" curl -sS --max-time 20 "$(url "$2" file "$id")" 2>>"$LAB_WORK/curl.err" |
        sha256sum | cut -d' ' -f1)
    src=$(source_of "$id")
    if [[ $sha == "$FILE_SHA" && $src == "$3" ]]; then
        pass "$1: port $2 reached from $src, sha256 intact"
    else
        fail "$1: port $2 from $3" "sha256 ${sha:0:12} (want ${FILE_SHA:0:12}), nginx saw '$src'" \
            "$(tail -2 "$LAB_WORK/curl.err" | tr '\n' ';')"
    fi
}

# Checks that TCP to PORT is refused at once (a reset: curl's "Connection refused").
expect_refused() { # expect_refused LABEL PORT
    local id=$RANDOM$RANDOM err rc
    err=$(nsx "$NS_LAN" curl -sS -v --max-time 3 -o /dev/null "$(url "$2" file "$id")" 2>&1)
    rc=$?
    if ((rc == 7)) && [[ $err == *"Connection refused"* && -z $(source_of "$id") ]]; then
        pass "$1: port $2 refused at once"
    else
        fail "$1: port $2 refused at once" "curl rc $rc: $(grep -m1 -i 'connect\|refused' <<<"$err")" \
            "nginx saw '$(source_of "$id")'"
    fi
}

# Rewrites the concentrator's configuration and reloads it; checks the reload's summary.
conc_reload() { # conc_reload LABEL CLASS RULES
    conc_conf "$2" "$3"
    local out
    out=$(nsx "$NS_CONC" "$BRAID_BIN" reload --socket "$CONC_SOCK" 2>&1)
    [[ $out == *"reloaded"* || $out == *"changed"* ]] || fail "$1: concentrator reload" "$out"
}

# Waits until the gateway's rules read WANT after a reload; passes with the time it took.
expect_rules() { # expect_rules LABEL WANT
    local t
    if t=$(time_to_rules "$2" 10); then
        pass "$1: in force on the gateway after $t s ($2)"
    else
        fail "$1: gateway rules after 10 s" "want: $2" "have: $(rules_shape)" \
            "$(grep -i rule "$LAB_WORK/gateway.log" | tail -2)"
    fi
}

lab_up unshaped
nsx "$NS_GW" sysctl -qw net.ipv4.ip_forward=1
# As in tests/netns/rules.sh: relayed connections stay on their socket through the table itself.
nsx "$NS_GW" sysctl -qw net.ipv4.tcp_early_demux=0
mkdir -p "$LAB_WORK/www"
head -c 2000000 /dev/urandom >"$LAB_WORK/www/file"
head -c 24000000 /dev/urandom >"$LAB_WORK/www/slow"
FILE_SHA=$(sha256sum "$LAB_WORK/www/file" | cut -d' ' -f1)
SLOW_SHA=$(sha256sum "$LAB_WORK/www/slow" | cut -d' ' -f1)
access="log_format src '\$remote_addr \$server_port \$status \$body_bytes_sent \$request_uri';
    access_log $LAB_WORK/access.log src;"
origin_nginx 8093 "listen 80; listen 8090; listen 8091; listen 8093;
        root $LAB_WORK/www;
        location /slow { limit_rate 2m; }" "$access" || { fail "nginx start"; finish; exit 1; }

tls_pki || { fail "braid pki"; finish; exit 1; }
conc_conf office "$OP_DIRECT"
gw_conf
# braid check on both: the concentrator's rules, and a refusal for an operator rule naming an uplink.
if out=$("$BRAID_BIN" check --config "$LAB_WORK/concentrator.conf" 2>&1) &&
    "$BRAID_BIN" check --config "$LAB_WORK/gateway.conf" >/dev/null 2>&1; then
    pass "braid check accepts the concentrator's class rules and the gateway's own"
else
    fail "braid check" "$out"
fi
cp "$LAB_WORK/concentrator.conf" "$LAB_WORK/bad.conf"
printf '\toption uplink %s\n' "'dsl'" >>"$LAB_WORK/bad.conf"
out=$("$BRAID_BIN" check --config "$LAB_WORK/bad.conf" 2>&1)
if [[ $? != 0 && $out == *"op_web.uplink: an operator rule cannot name an uplink"*"(dsl)"* ]]; then
    pass "braid check refuses an operator rule naming an uplink: ${out##*: }"
else
    fail "braid check refuses option uplink on the concentrator" "$out"
fi

tls_start_conc || { fail "concentrator start" "$(tail -5 "$LAB_WORK/concentrator.log")"; finish; exit 1; }
tls_start_gw || { fail "gateway start" "$(tail -5 "$LAB_WORK/gateway.log")"; finish; exit 1; }

# 1. Class office's rules, pushed when the channel comes up, after the gateway's own.
OFFICE="gw_over/local/bond op_over/operator/direct op_web/operator/direct"
expect_rules "class office's rules pushed at connect" "$OFFICE"
expect_from "operator rule op_web (direct)" 8090 "$WAN1"
expect_from "gateway rule gw_over (bond) wins over the operator's op_over (direct)" 8093 "$CONC_ADDR"
expect_from "class standard's op_other (block) does not apply to class office" 8091 "$CONC_ADDR"
expect_from "unmatched port, default_action bond" 80 "$CONC_ADDR"
hits=$(rules_now)
if [[ $hits =~ op_web/operator/direct/([0-9]+) ]] && ((BASH_REMATCH[1] > 0)) &&
    [[ $hits =~ gw_over/local/bond/([0-9]+) ]] && ((BASH_REMATCH[1] > 0)) &&
    [[ $hits == *op_over/operator/direct/0* ]]; then
    pass "braid status --json shows each rule's origin and hits: $hits"
else
    fail "rule hits in braid status --json" "$hits"
fi
table=$(nsx "$NS_GW" "$BRAID_BIN" status --socket "$STATUS_SOCK" 2>&1)
if grep -qE '^op_web +operator +direct +[1-9]' <<<"$table"; then
    pass "braid status table lists op_web (operator, direct) with its hits"
else
    fail "braid status table rules" "$(grep -A4 RULE <<<"$table")"
fi

# 2. A bonded download runs across every change below.
slow_id=$RANDOM$RANDOM
nsx "$NS_LAN" curl -sS --max-time 50 -o "$LAB_WORK/slow.out" "$(url 80 slow "$slow_id")" 2>"$LAB_WORK/slow.err" &
SLOW_PID=$!
wait_for 10 bash -c "[[ \$(stat -c %s '$LAB_WORK/slow.out' 2>/dev/null || echo 0) -gt 500000 ]]"

# 3. The operator changes op_web to block.
conc_reload "op_web to block" office "$OP_BLOCK"
expect_rules "reload: op_web direct -> block" "gw_over/local/bond op_over/operator/direct op_web/operator/block"
expect_refused "operator rule op_web (block)" 8090

# 4. cpe_1 moves to class standard: its rule instead of office's.
conc_reload "cpe_1 to class standard" standard "$OP_BLOCK"
expect_rules "reload: cpe_1 moved to class standard" "gw_over/local/bond op_other/operator/block"
expect_refused "class standard's op_other (block)" 8091
expect_from "office's op_web no longer applies: bonded" 8090 "$CONC_ADDR"

# 5. Back to office, op_web removed.
conc_reload "op_web removed" office ""
expect_rules "reload: back to office without op_web" "gw_over/local/bond op_over/operator/direct"
expect_from "op_web removed: bonded through the concentrator again" 8090 "$CONC_ADDR"
expect_from "op_other no longer applies" 8091 "$CONC_ADDR"

running=no
kill -0 "$SLOW_PID" 2>/dev/null && running=yes
wait_for 40 bash -c "! kill -0 $SLOW_PID 2>/dev/null"
wait "$SLOW_PID"
slow_rc=$?
sha=$(sha256sum "$LAB_WORK/slow.out" | cut -d' ' -f1)
src=$(source_of "$slow_id")
if [[ $running == yes && $slow_rc == 0 && $sha == "$SLOW_SHA" && $src == "$CONC_ADDR" ]]; then
    pass "the bonded 24 MB download running across three concentrator reloads ended intact (sha256)"
else
    fail "bonded download across the reloads" "running after the last reload: $running, curl rc $slow_rc" \
        "$(cat "$LAB_WORK/slow.err")" "sha256 ${sha:0:12} (want ${SLOW_SHA:0:12}), nginx saw '$src'"
fi

# 6. The last set is kept: a gateway restarted while the concentrator is down applies it at once.
conc_reload "op_web direct again" office "$OP_DIRECT"
expect_rules "reload: op_web direct again" "$OFFICE"
stop_pid "$LAB_CONC_PID"
stop_pid "$LAB_GW_PID"
tls_start_gw || { fail "gateway restart" "$(tail -5 "$LAB_WORK/gateway.log")"; finish; exit 1; }
# Down: the control client runs and cannot reach the concentrator.
deadline=$((SECONDS + 10))
until [[ $(control_field state) == down ]] || ((SECONDS >= deadline)); do sleep 0.1; done
state=$(control_field state)
shape=$(rules_shape)
if [[ $state == down && $shape == "$OFFICE" &&
    -s $LAB_WORK/gateway.operator-rules ]]; then
    pass "restarted with the concentrator down (control $state): the kept rules apply ($shape)"
else
    fail "kept operator rules after a restart" "control: $state" "rules: $shape" "$(ls -l "$LAB_WORK" | grep operator)"
fi
expect_from "kept op_web (direct) with no concentrator" 8090 "$WAN1"

finish
