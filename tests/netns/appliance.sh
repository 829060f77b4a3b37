#!/usr/bin/env bash
# braid namespace tests: the appliance files (rootfs-overlay/, board/), checked without booting an
# image. board/stage.sh assembles the overlay, Config/ and the binary into a staging tree; the
# scripts then run against it in private mount namespaces whose /etc and /usr are overlays (the
# staged files over the host's, writes into a scratch directory), so the host is never changed:
#
#   host /etc, /usr ◄─ lower ─ staged tree ◄─ lower ─ case files ◄─ upper: scratch (inspected)
#
#   - shell syntax of every script (sh, and busybox ash when installed: OpenWrt's shell);
#   - the procd init script, sourced with recording stand-ins for procd and uci functions:
#     role from the configuration, `braid check` refusing a bad one, reload by SIGHUP;
#   - first-boot defaults: configuration, sysctl link, key (mode 0600, 32 bytes), idempotence,
#     the systemd role unit enabled (a recording systemctl);
#   - the sysctl files applied in a fresh network namespace and read back (net.*); global keys
#     only checked to exist, since writing them would change the host;
#   - the systemd units with `systemd-analyze verify`;
#   - every absolute path the files use exists in the staged tree, or is made at run time;
#   - both daemons run in the lab (lab/lab.sh) as an unprivileged user holding only the
#     capabilities braid@.service grants, and a download through them arrives intact.
#
# Prints "N passed, N failed" last; exits non-zero on any failure or missing prerequisite.
set -u
cd "$(dirname "$0")/../.."
export LAB_SUFFIX="a$$"
source lab/lab.sh
source tests/netns/harness.sh
REPO=$PWD
OVERLAY=$REPO/rootfs-overlay
NS_SYSCTL="braid-sysctl-$LAB_SUFFIX"
UNIT=$OVERLAY/lib/systemd/system/braid@.service
SH_SCRIPTS=(etc/init.d/braid etc/uci-defaults/90-braid usr/libexec/braid/firstboot)
# The account the unprivileged run uses (nobody): not root, owns nothing on the host.
RUN_UID=65534

appliance_cleanup() {
    ip netns del "$NS_SYSCTL" 2>/dev/null
    cleanup
}
trap appliance_cleanup EXIT INT TERM

require() {
    need_braid_lab
    need_cmd unshare setpriv awk base64 sysctl strip
    need "overlayfs" grep -qw overlay /proc/filesystems
    check_prerequisites
}

# Stages the image's files once for every check.
stage() {
    STAGE=$LAB_WORK/stage
    mkdir -p "$STAGE"
    bash board/stage.sh "$STAGE" gateway "$BRAID_BIN"
}

# in_root CASE CMD...: runs CMD in a private mount namespace whose /etc and /usr show, top first,
# $LAB_WORK/CASE/layer, the staged tree and the host's own. Writes land in $LAB_WORK/CASE/upper,
# which survives the namespace for inspection; calling again with the same CASE continues it.
# The namespace has its own, empty network too, so nothing run there reaches the host's.
in_root() {
    local case=$LAB_WORK/$1 d
    shift
    for d in etc usr; do mkdir -p "$case/layer/$d" "$case/upper/$d" "$case/work/$d"; done
    unshare --mount --propagation private --net bash -c '
        for d in etc usr; do
            mount -t overlay overlay \
                -o "lowerdir=$1/layer/$d:$2/$d:/$d,upperdir=$1/upper/$d,workdir=$1/work/$d" "/$d" || exit 99
        done
        shift 2
        exec "$@"' in_root "$case" "$STAGE" "$@"
}

# ---- syntax

test_syntax() {
    local f shells=(sh)
    command -v busybox >/dev/null && shells+=("busybox sh")
    for f in "${SH_SCRIPTS[@]}"; do
        local sh
        for sh in "${shells[@]}"; do
            if out=$($sh -n "$OVERLAY/$f" 2>&1); then
                pass "$sh -n $f"
            else
                fail "$sh -n $f" "$out"
            fi
        done
    done
    for f in board/stage.sh board/x86-64/build-image.sh; do
        if out=$(bash -n "$f" 2>&1); then pass "bash -n $f"; else fail "bash -n $f" "$out"; fi
    done
    [[ ${#shells[@]} == 2 ]] || fail "busybox not installed: the OpenWrt shell (ash) was not checked"
}

# ---- procd init script

# Stand-ins for what rc.common, functions.sh and procd.sh provide on OpenWrt: each procd call is
# recorded as one line in $CALLS; config_foreach reads the section types from /etc/config/braid.
PROCD_STUBS='
CALLS=/etc/procd-calls
record() { echo "$*" >>"$CALLS"; }
config_load() { record "config_load $*"; }
config_foreach() {
    local cb=$1 type=$2 name
    shift 2
    for name in $(awk -v t="$type" "\$1 == \"config\" && \$2 ~ t { n = \$3; gsub(/\047/, \"\", n); print n }" \
        /etc/config/braid); do
        "$cb" "$name" "$@"
    done
}
procd_open_instance() { record "procd_open_instance $*"; }
procd_set_param() { record "procd_set_param $*"; }
procd_close_instance() { record "procd_close_instance"; }
procd_add_reload_trigger() { record "procd_add_reload_trigger $*"; }
procd_send_signal() { record "procd_send_signal $*"; }
procd_running() { [ -n "${RUNNING:-}" ] && [ "$2" = "$RUNNING" ]; }
start() { record "start"; }
logger() { record "logger $*"; }
'

# init_case NAME CONFIG ACTION [RUNNING]: runs ACTION (start_service, reload_service,
# service_triggers) of the init script with CONFIG as /etc/config/braid; RUNNING names the
# instance procd reports as running. Sets RC and CALLS (the recorded calls).
init_case() {
    local name=$1 config=$2 action=$3 running=${4:-}
    mkdir -p "$LAB_WORK/$name/layer/etc/config"
    printf '%s\n' "$config" >"$LAB_WORK/$name/layer/etc/config/braid"
    in_root "$name" env RUNNING="$running" sh -c "$PROCD_STUBS
        . /etc/init.d/braid
        $action 2>/dev/null" 
    RC=$?
    CALLS=$(cat "$LAB_WORK/$name/upper/etc/procd-calls" 2>/dev/null)
}

has_call() { grep -qxF -- "$1" <<<"$CALLS"; }

test_init_script() {
    local gw conc bad both
    gw=$(cat Config/gateway.conf)
    conc=$(cat Config/concentrator.conf)
    bad=$(sed "s/option port '4800'/option port 'eighty'/" Config/gateway.conf)
    both=$(printf '%s\n\n%s\n' "$gw" "$conc")

    init_case init-gw "$gw" start_service
    if ((RC == 0)) && has_call "procd_open_instance gateway" &&
        has_call "procd_set_param command /usr/bin/braid gateway --config /etc/config/braid" &&
        has_call "procd_set_param respawn 3600 1 5" && has_call "procd_set_param stderr 1"; then
        pass "init: a gateway configuration starts instance 'gateway':" \
            "braid gateway --config /etc/config/braid, respawn, stderr to logd"
    else
        fail "init: gateway start" "rc $RC" "$CALLS"
    fi

    init_case init-conc "$conc" start_service
    if ((RC == 0)) && has_call "procd_set_param command /usr/bin/braid concentrator --config /etc/config/braid"; then
        pass "init: a concentrator configuration starts braid concentrator"
    else
        fail "init: concentrator start" "rc $RC" "$CALLS"
    fi

    init_case init-bad "$bad" start_service
    if ((RC != 0)) && ! grep -q procd_open_instance <<<"$CALLS" && grep -q "^logger .*port.*eighty" <<<"$CALLS"; then
        pass "init: a configuration braid check rejects is not started; the check's message is logged"
    else
        fail "init: bad configuration" "rc $RC" "$CALLS"
    fi

    init_case init-both "$both" start_service
    if ((RC != 0)) && ! grep -q procd_open_instance <<<"$CALLS" && grep -q "^logger .*both" <<<"$CALLS"; then
        pass "init: a configuration with both roles is refused"
    else
        fail "init: both roles" "rc $RC" "$CALLS"
    fi

    init_case init-trigger "$gw" service_triggers
    if has_call "procd_add_reload_trigger braid"; then
        pass "init: reload trigger on the braid package"
    else
        fail "init: reload trigger" "$CALLS"
    fi

    init_case init-reload "$gw" reload_service gateway
    if ((RC == 0)) && has_call "procd_send_signal braid gateway HUP" && ! has_call start; then
        pass "init: reload of a running gateway checks, then sends SIGHUP"
    else
        fail "init: reload" "rc $RC" "$CALLS"
    fi

    init_case init-reload-bad "$bad" reload_service gateway
    if ((RC != 0)) && ! grep -q "procd_send_signal\|^start" <<<"$CALLS"; then
        pass "init: reload with a rejected configuration sends nothing (the running one stays)"
    else
        fail "init: reload of a bad configuration" "rc $RC" "$CALLS"
    fi

    init_case init-reload-role "$conc" reload_service gateway
    if ((RC == 0)) && has_call start && ! grep -q procd_send_signal <<<"$CALLS"; then
        pass "init: reload after a role change registers the service again instead of signalling"
    else
        fail "init: reload after a role change" "rc $RC" "$CALLS"
    fi
}

# ---- first boot

# Recording stand-ins for systemctl and sysctl (the real ones would change the host).
make_recorders() {
    RECORDERS=$LAB_WORK/recorders
    mkdir -p "$RECORDERS"
    local t
    for t in systemctl sysctl; do
        printf '#!/bin/sh\necho "%s $*" >>/etc/recorded\n' "$t" >"$RECORDERS/$t"
        chmod +x "$RECORDERS/$t"
    done
}

# firstboot CASE ARGS...: runs the first-boot script with the case's files; sets RC and OUT.
firstboot() {
    local case=$1
    shift
    OUT=$(in_root "$case" env PATH="$RECORDERS:$PATH" /usr/libexec/braid/firstboot "$@" 2>"$LAB_WORK/$case.err")
    RC=$?
}

psk_ok() { # psk_ok FILE: 0600 and 32 bytes of base64
    [[ -f $1 && $(stat -c %a "$1") == 600 && $(base64 -d <"$1" 2>/dev/null | wc -c) == 32 ]]
}

test_firstboot() {
    make_recorders
    local up=$LAB_WORK/fb-new/upper
    # The staged tree has a configuration; an overlay whiteout (a 0/0 character device) hides it.
    mkdir -p "$LAB_WORK/fb-new/layer/etc/config"
    mknod "$LAB_WORK/fb-new/layer/etc/config/braid" c 0 0

    firstboot fb-new gateway
    if ((RC == 0)) && [[ $OUT == gateway ]] && cmp -s "$up/etc/config/braid" Config/gateway.conf; then
        pass "firstboot: no configuration: the gateway defaults are installed, role gateway"
    else
        fail "firstboot: default configuration" "rc $RC, printed '$OUT'" "$(cat "$LAB_WORK/fb-new.err")"
    fi
    if psk_ok "$up/etc/braid/psk" && [[ $(stat -c %u "$up/etc/braid/psk") == 0 ]]; then
        pass "firstboot: /etc/braid/psk generated, mode 0600, 32 bytes, root's without a braid account"
    else
        fail "firstboot: key" "$(ls -l "$up/etc/braid" 2>&1)"
    fi
    if [[ $(readlink "$up/etc/sysctl.d/91-braid-gateway.conf") == /usr/share/braid/sysctl.d/gateway.conf ]] &&
        [[ -f $STAGE/usr/share/braid/sysctl.d/gateway.conf ]]; then
        pass "firstboot: /etc/sysctl.d/91-braid-gateway.conf links the staged gateway sysctl file"
    else
        fail "firstboot: sysctl link" "$(ls -l "$up/etc/sysctl.d" 2>&1)"
    fi
    if [[ ! -e $up/etc/recorded ]]; then
        pass "firstboot: without --systemd, neither systemctl nor sysctl runs (OpenWrt)"
    else
        fail "firstboot: recorded calls without --systemd" "$(cat "$up/etc/recorded")"
    fi

    local before
    before=$(sha256sum "$up/etc/braid/psk" "$up/etc/config/braid") || before=missing
    firstboot fb-new concentrator
    local after
    after=$(sha256sum "$up/etc/braid/psk" "$up/etc/config/braid")
    if ((RC == 0)) && [[ $OUT == gateway && $after == "$before" ]]; then
        pass "firstboot: a second run changes nothing (the configuration decides the role, not the argument)"
    else
        fail "firstboot: second run" "rc $RC, printed '$OUT'" "$(cat "$LAB_WORK/fb-new.err")"
    fi

    # A concentrator configuration naming its own key file, on a system with a braid account.
    mkdir -p "$LAB_WORK/fb-conc/layer/etc/config"
    sed "s|option psk_file '/etc/braid/psk'|option psk_file '/etc/braid/dc.key'|" Config/concentrator.conf \
        >"$LAB_WORK/fb-conc/layer/etc/config/braid"
    { cat /etc/passwd; echo "braid:x:64999:64999::/:/usr/sbin/nologin"; } >"$LAB_WORK/fb-conc/layer/etc/passwd"
    { cat /etc/group; echo "braid:x:64999:"; } >"$LAB_WORK/fb-conc/layer/etc/group"
    up=$LAB_WORK/fb-conc/upper
    firstboot fb-conc --systemd
    local recorded
    recorded=$(cat "$up/etc/recorded" 2>/dev/null)
    if ((RC == 0)) && [[ $OUT == concentrator ]] && psk_ok "$up/etc/braid/dc.key" &&
        [[ $(stat -c %u "$up/etc/braid/dc.key") == 64999 && ! -e $up/etc/braid/psk ]]; then
        pass "firstboot: the key goes where psk_file says, owned by the braid account"
    else
        fail "firstboot: concentrator key" "rc $RC, printed '$OUT'" "$(ls -ln "$up/etc/braid" 2>&1)" \
            "$(cat "$LAB_WORK/fb-conc.err")"
    fi
    if grep -qxF "systemctl enable braid@concentrator.service" <<<"$recorded" &&
        grep -qxF "systemctl start --no-block braid@concentrator.service" <<<"$recorded" &&
        grep -qxF "sysctl -q -p /etc/sysctl.d/91-braid-concentrator.conf" <<<"$recorded"; then
        pass "firstboot --systemd: applies the concentrator's sysctl file, enables and starts braid@concentrator"
    else
        fail "firstboot --systemd" "$recorded"
    fi

    mkdir -p "$LAB_WORK/fb-both/layer/etc/config"
    cat Config/gateway.conf Config/concentrator.conf >"$LAB_WORK/fb-both/layer/etc/config/braid"
    firstboot fb-both --systemd
    if ((RC != 0)) && [[ ! -e $LAB_WORK/fb-both/upper/etc/braid && ! -e $LAB_WORK/fb-both/upper/etc/recorded ]] &&
        grep -q "both" "$LAB_WORK/fb-both.err"; then
        pass "firstboot: a configuration with both roles fails before making a key or enabling anything"
    else
        fail "firstboot: both roles" "rc $RC" "$(cat "$LAB_WORK/fb-both.err")"
    fi
}

# ---- sysctl

# The key = value lines of a sysctl file, one "key value" per line, blanks squeezed.
sysctl_settings() {
    awk -F= '/^[[:space:]]*[#;]/ || !/=/ { next }
        { gsub(/[[:space:]]+/, " ", $2); gsub(/^ | $/, "", $2); gsub(/[[:space:]]/, "", $1); print $1, $2 }' "$1"
}

test_sysctl_file() {
    local file=$1 label=${1#"$OVERLAY"/} key value netfile=$LAB_WORK/netns.conf n=0
    : >"$netfile"
    ip netns del "$NS_SYSCTL" 2>/dev/null
    ip netns add "$NS_SYSCTL"
    while read -r key value; do
        n=$((n + 1))
        local path=/proc/sys/${key//.//}
        # Writable in a new network namespace: per-netns. Global keys are absent there, or
        # read-only mirrors of the host's (net.core.[rw]mem_max on Linux 6.18).
        if [[ $key == net.* ]] && nsx "$NS_SYSCTL" test -w "$path"; then
            echo "$key = $value" >>"$netfile"
        elif [[ -e $path ]]; then
            pass "$label: $key exists (global: not written here), host has $(tr -s '\t' ' ' <"$path")"
        else
            fail "$label: no such key ($key)"
        fi
    done < <(sysctl_settings "$file")
    ((n > 0)) || fail "$label: no settings read"
    [[ -s $netfile ]] || return 0
    if out=$(nsx "$NS_SYSCTL" sysctl -p "$netfile" 2>&1); then
        pass "$label: sysctl -p applies every per-netns key in a fresh network namespace"
    else
        fail "$label: sysctl -p" "$out"
    fi
    while read -r key value; do
        local got
        got=$(nsx "$NS_SYSCTL" sysctl -n "$key" | tr -s '\t ' ' ')
        if [[ $got == "$value" ]]; then
            pass "$label: $key reads back $value"
        else
            fail "$label: $key reads back '$got', file says '$value'"
        fi
    done < <(sysctl_settings "$netfile")
}

test_sysctl() {
    local f
    for f in "$OVERLAY"/etc/sysctl.d/*.conf "$OVERLAY"/usr/share/braid/sysctl.d/*.conf; do
        test_sysctl_file "$f"
    done
}

# ---- systemd units

test_units() {
    if ! command -v systemd-analyze >/dev/null; then
        fail "systemd-analyze not installed: units not verified"
        return
    fi
    local role out
    for role in gateway concentrator; do
        # In the overlay root, so the commands the units name (/usr/bin/braid, the first-boot
        # script) exist. Any output is a finding: unknown keys are warnings with exit status 0.
        out=$(in_root units sh -c "cd '$STAGE/lib/systemd/system' &&
            systemd-analyze verify braid@$role.service braid-firstboot.service" 2>&1)
        if [[ $? == 0 && -z $out ]]; then
            pass "systemd-analyze verify braid@$role.service braid-firstboot.service: clean"
        else
            fail "systemd-analyze verify braid@$role.service" "$out"
        fi
    done
}

# ---- paths

# Absolute paths used outside comments in the overlay's files, %i expanded. Paths built from
# shell variables are left to the first-boot tests, which run the script that builds them.
referenced_paths() {
    find "$OVERLAY" -type f -print0 | xargs -0 grep -hv '^[[:space:]]*#' |
        grep -oE '/(etc|usr|lib|run|var|bin|sbin)/[A-Za-z0-9_.@%/$-]*[A-Za-z0-9_%]' |
        grep -vF '$' | sed -e 's/%i/gateway/' | sort -u
}

# What the scripts or units make at run time, checked by the first-boot tests above or by
# systemd; and what the base system has (Debian's coreutils and procps; OpenWrt's rc.common).
MADE_AT_RUN_TIME=(/etc/braid/psk /var/lib/braid/firstboot.done /run/braid)
BASE_SYSTEM=(/bin/kill /usr/bin/touch /etc/rc.common)

test_paths() {
    local p missing=() n=0
    while read -r p; do
        n=$((n + 1))
        if [[ -e $STAGE$p || -L $STAGE$p ]]; then continue; fi
        if printf '%s\n' "${MADE_AT_RUN_TIME[@]}" | grep -qxF "$p"; then continue; fi
        if printf '%s\n' "${BASE_SYSTEM[@]}" | grep -qxF "$p"; then
            [[ $p == /etc/rc.common || -x $p ]] || missing+=("$p (base system, not on this Debian)")
            continue
        fi
        missing+=("$p")
    done < <(referenced_paths)
    if ((n > 5 && ${#missing[@]} == 0)); then
        pass "every one of $n paths the overlay's files use is staged, made at run time or in the base system"
    else
        fail "paths the overlay's files use but nothing provides ($n checked)" "${missing[@]}"
    fi
}

# ---- unprivileged daemons with the unit's capabilities

# The unit's AmbientCapabilities that this process's bounding set holds, as setpriv's list
# (+net_admin,+net_raw,...); those it lacks are printed as a note. A container may withhold some
# (CAP_SYS_RESOURCE, here), and no process can grant what it does not have.
declare -A CAP_BIT=([CAP_NET_BIND_SERVICE]=10 [CAP_NET_ADMIN]=12 [CAP_NET_RAW]=13 [CAP_SYS_RESOURCE]=24)
unit_caps() {
    local bounding cap held=()
    bounding=$((16#$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)))
    for cap in $(sed -n 's/^AmbientCapabilities=//p' "$UNIT"); do
        if [[ -z ${CAP_BIT[$cap]:-} ]]; then
            echo "note: $cap is new to this test; add its number to CAP_BIT" >&2
        elif (((bounding >> CAP_BIT[$cap]) & 1)); then
            held+=("+$(tr 'A-Z' 'a-z' <<<"${cap#CAP_}")")
        else
            echo "note: this sandbox does not hold $cap; the unprivileged run goes without it" >&2
        fi
    done
    local IFS=,
    echo "${held[*]}"
}

test_unprivileged() {
    local caps bounding
    caps=$(unit_caps)
    [[ -n $caps ]] || { fail "no AmbientCapabilities in $UNIT"; return; }
    bounding=$(grep -c "^CapabilityBoundingSet=$(sed -n 's/^AmbientCapabilities=//p' "$UNIT")\$" "$UNIT")
    if [[ $bounding == 1 ]]; then
        pass "unit: CapabilityBoundingSet is AmbientCapabilities"
    else
        fail "unit: CapabilityBoundingSet differs from AmbientCapabilities"
    fi

    lab_up unshaped
    local run=$LAB_WORK/run
    # The lab's directory is root's; the unprivileged daemons read their files through it.
    chmod 0711 "$LAB_WORK"
    mkdir -p "$run"
    "$BRAID_BIN" genkey >"$run/psk"
    chmod 0600 "$run/psk"
    cat >"$run/concentrator.conf" <<CONF
config concentrator 'main'
	option listen '::'
	option port '$BRAID_PORT'
	option psk_file '$run/psk'
	option status_socket '$run/concentrator.sock'
CONF
    # The status socket where RuntimeDirectory=braid would put it: a directory the account owns.
    cat >"$run/gateway.conf" <<CONF
config gateway 'main'
	option server '$CONC_ADDR'
	option port '$BRAID_PORT'
	option psk_file '$run/psk'
	option status_socket '$run/gateway.sock'
	list lan_device 'lan0'

config uplink 'dsl'
	option device 'wan1'
	option role 'active'

config uplink 'lte'
	option device 'wan2'
	option role 'active'
	option gateway '198.18.2.1'
CONF
    chown -R "$RUN_UID" "$run"
    local drop=(setpriv --reuid="$RUN_UID" --regid="$RUN_UID" --clear-groups --no-new-privs
        --inh-caps=-all,"$caps" --ambient-caps=-all,"$caps" --bounding-set=-all,"$caps")

    ip netns exec "$NS_ORG" python3 "$TRAFFIC" serve --port "$ORIGIN_PORT" --log "$LAB_WORK/origin.log" --lifetime 300 &
    LAB_PIDS+=($!)
    ip netns exec "$NS_CONC" "${drop[@]}" "$BRAID_BIN" concentrator --config "$run/concentrator.conf" \
        2>"$LAB_WORK/concentrator.log" &
    local conc=$!
    LAB_PIDS+=("$conc")
    if wait_for 10 nsx "$NS_CONC" bash -c "ss -Hltn 'sport = :$BRAID_PORT' | grep -q LISTEN"; then
        pass "unprivileged concentrator listens"
    else
        fail "unprivileged concentrator did not start" "$(cat "$LAB_WORK/concentrator.log")"
        return
    fi
    ip netns exec "$NS_GW" "${drop[@]}" "$BRAID_BIN" gateway --config "$run/gateway.conf" \
        2>"$LAB_WORK/gateway.log" &
    local gw=$!
    LAB_PIDS+=("$gw")
    if wait_for 10 nsx "$NS_GW" nft list table inet braid && wait_for 10 test -S "$run/gateway.sock"; then
        pass "unprivileged gateway installs its nftables table and status socket"
    else
        fail "unprivileged gateway did not start" "$(cat "$LAB_WORK/gateway.log")"
        return
    fi
    wait_for 10 nsx "$NS_ORG" bash -c "ss -Hltn 'sport = :$ORIGIN_PORT' | grep -q LISTEN"

    local status uid
    status=$(grep -E '^(Uid|CapEff|CapAmb):' "/proc/$gw/status" | tr -s '\t' ' ')
    uid=$(awk '/^Uid:/ { print $2 }' <<<"$status")
    if [[ $uid == "$RUN_UID" ]]; then pass "gateway runs as uid $uid, not root"; else fail "gateway's uid" "$status"; fi

    local pm
    pm=$(nsx "$NS_GW" sysctl -n net.mptcp.path_manager)
    if [[ $pm == userspace ]]; then
        pass "unprivileged gateway takes over MPTCP path management (net.mptcp.path_manager = userspace)"
    else
        fail "MPTCP path manager" "net.mptcp.path_manager = $pm" "$(cat "$LAB_WORK/gateway.log")"
    fi

    local out size=5000000
    out=$(nsx "$NS_LAN" python3 "$TRAFFIC" client --connect "$ORIGIN4" --port "$ORIGIN_PORT" --get "$size" --timeout 60)
    if [[ $(json_field result <<<"$out") == ok && $(json_field bytes <<<"$out") == "$size" &&
        $(json_field sha256 <<<"$out") == "$(origin_sha sent)" ]]; then
        pass "download through the unprivileged daemons: $size bytes, sha256 equal"
    else
        fail "download through the unprivileged daemons" "client: $out" "$(tail -5 "$LAB_WORK/gateway.log")"
    fi

    kill -TERM "$gw"
    local rc=0
    for _ in $(seq 100); do kill -0 "$gw" 2>/dev/null || break; sleep 0.1; done
    wait "$gw" || rc=$?
    if ((rc == 0)) && ! nsx "$NS_GW" nft list table inet braid >/dev/null 2>&1 &&
        [[ $(nsx "$NS_GW" sysctl -n net.mptcp.path_manager) == kernel ]]; then
        pass "unprivileged gateway stops on SIGTERM (exit 0), removes its table and gives path management back"
    else
        fail "unprivileged gateway stop" "exit $rc" "$(tail -5 "$LAB_WORK/gateway.log")"
    fi
}

require
stage
test_syntax
test_init_script
test_firstboot
test_sysctl
test_units
test_paths
test_unprivileged
finish
