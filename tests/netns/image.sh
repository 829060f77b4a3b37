#!/usr/bin/env bash
# braid namespace tests: the gateway appliance image, booted in QEMU, bonding for a LAN host.
#
#   [lan] eth0 ─┐                          ┌─ tap1 198.18.1.1 ─┐
#     udhcpc,   └─ brlan ── tap0 ═ [ QEMU: gateway image ]     [inet] ── conc0 ── [conc] braid concentrator
#     curl           (in inet)   eth0 LAN  eth1, eth2 ═════════ tap2 198.18.2.1     └── org0 ── [origin] nginx
#                                198.18.50.1/24 (baked)         dnsmasq: DHCP on tap1, tap2     198.18.20.2
#
# The suite builds the gateway image (board/x86-64/build-image.sh) with a configuration and a
# pre-shared key of its own baked in, boots it with its three NICs on tap devices in the inet
# namespace (the LAN's tap bridged to the LAN host's veth), and checks: the LAN host's lease comes
# from the image; time from power-on to the first byte that crossed the bonded path (nginx sees
# the concentrator's address); a download during which uplink 1 is silenced for 5 s, and an upload,
# both sha256-checked; subflows on both uplinks; ICMP (not relayed) masqueraded; the serial console's
# login prompt. KVM when /dev/kvm runs a kernel within a bounded probe, software emulation otherwise.
#
# BRAID_IMAGE=FILE boots that image instead of building one, with BRAID_IMAGE_PSK=FILE the key baked
# into it (board/x86-64/build-image.sh --psk) and this suite's gateway configuration.
set -u
cd "$(dirname "$0")/../.."
export LAB_SUFFIX="i$$"
source lab/lab.sh
source tests/netns/harness.sh

NS_LAN="bimg-lan-$LAB_SUFFIX"
NS_INET="bimg-inet-$LAB_SUFFIX"
NS_CONC="bimg-conc-$LAB_SUFFIX"
NS_ORG="bimg-org-$LAB_SUFFIX"
LAB_NAMESPACES=("$NS_LAN" "$NS_INET" "$NS_CONC" "$NS_ORG")
LAN_ADDR=198.18.50.1
DOWN_BYTES=40000000
UP_BYTES=10000000
# Each uplink's downstream rate: the download must outlast the 5 s outage.
UPLINK_MBIT=20
# Software emulation on a busy 2-core machine took 4 minutes to the lease; an idle one is faster.
BOOT_BUDGET=${BRAID_IMAGE_BOOT_SECONDS:-480}
OUT=$LAB_DIR/.build-image/test

need_cmd ip nft ss qemu-system-x86_64 busybox curl nginx dnsmasq sha256sum timeout mcopy
need "$BRAID_BIN (build it first)" test -x "$BRAID_BIN"
need "kernel MPTCP" grep -qx 1 /proc/sys/net/mptcp/enabled
need "/dev/net/tun" test -c /dev/net/tun
check_prerequisites

# The files baked into the image: the gateway's configuration and the key both ends share.
if [[ -n ${BRAID_IMAGE_PSK:-} ]]; then
    install -m 0600 "$BRAID_IMAGE_PSK" "$LAB_WORK/psk"
else
    "$BRAID_BIN" genkey >"$LAB_WORK/psk"
    chmod 600 "$LAB_WORK/psk"
fi
cat >"$LAB_WORK/gateway.conf" <<CONF
config gateway 'main'
	option server '$CONC_ADDR'
	option port '$BRAID_PORT'
	option psk_file '/etc/braid/psk'
	list lan_device 'eth0'

config uplink 'wan1'
	option device 'eth1'
	option role 'active'

config uplink 'wan2'
	option device 'eth2'
	option role 'active'
CONF

image=${BRAID_IMAGE:-}
if [[ -z $image ]]; then
    started=$SECONDS
    if ! bash board/x86-64/build-image.sh --role gateway --config "$LAB_WORK/gateway.conf" --psk "$LAB_WORK/psk" \
        --lan "$LAN_ADDR/24" --out "$OUT" >"$LAB_WORK/build.log" 2>&1; then
        tail -30 "$LAB_WORK/build.log"
        fail "the gateway image builds" "log above"
        finish
        exit 1
    fi
    image=$OUT/braid-gateway-x86-64.img
    pass "the gateway image builds ($((SECONDS - started)) s, $(du -m --apparent-size "$image" | cut -f1) MB raw)"
fi

lab_log "namespaces and taps"
for ns in "${LAB_NAMESPACES[@]}"; do
    ip netns add "$ns"
    nsx "$ns" ip link set lo up
    nsx "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
done
nsx "$NS_INET" sysctl -qw net.ipv4.ip_forward=1
for i in 0 1 2; do nsx "$NS_INET" ip tuntap add "tap$i" mode tap && nsx "$NS_INET" ip link set "tap$i" up; done
nsx "$NS_INET" ip link add brlan type bridge
nsx "$NS_INET" ip link set brlan up
nsx "$NS_INET" ip link set tap0 master brlan
lab_veth "$NS_LAN" eth0 "$NS_INET" lanh
nsx "$NS_INET" ip link set lanh master brlan
for i in 1 2; do
    nsx "$NS_INET" ip addr add "198.18.$i.1/24" dev "tap$i"
    nsx "$NS_INET" tc qdisc add dev "tap$i" root tbf rate "${UPLINK_MBIT}mbit" burst 32kb latency 100ms
done
lab_veth "$NS_INET" conc0 "$NS_CONC" eth0
nsx "$NS_INET" ip addr add 198.18.10.1/24 dev conc0
nsx "$NS_CONC" ip addr add "$CONC_ADDR/24" dev eth0
nsx "$NS_CONC" ip route add default via 198.18.10.1
lab_veth "$NS_INET" org0 "$NS_ORG" eth0
nsx "$NS_INET" ip addr add 198.18.20.1/24 dev org0
nsx "$NS_ORG" ip addr add "$ORIGIN4/24" dev eth0
nsx "$NS_ORG" ip route add default via 198.18.20.1

# The uplinks' DHCP server (the ISPs'): Debian's dnsmasq, DHCP only.
nsx "$NS_INET" dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 --bind-interfaces \
    --interface=tap1 --interface=tap2 --dhcp-range=198.18.1.10,198.18.1.20,1h --dhcp-range=198.18.2.10,198.18.2.20,1h \
    --dhcp-leasefile="$LAB_WORK/isp.leases" --pid-file="$LAB_WORK/isp-dnsmasq.pid" --user=root \
    2>"$LAB_WORK/isp-dnsmasq.log" &
LAB_PIDS+=($!)

# The origin: nginx with a file to download, a small one to time the first byte, and /upload/,
# where a PUT stores its body as a file (WebDAV's PUT).
mkdir -p "$LAB_WORK/www" "$LAB_WORK/nginx-body"
head -c "$DOWN_BYTES" /dev/urandom >"$LAB_WORK/www/big"
echo small >"$LAB_WORK/www/small"
cat >"$LAB_WORK/nginx.conf" <<CONF
daemon off;
user root;
worker_processes 1;
pid $LAB_WORK/nginx.pid;
error_log $LAB_WORK/nginx-error.log;
events { worker_connections 256; }
http {
    log_format peer '\$remote_addr \$request_uri \$status';
    access_log $LAB_WORK/nginx-access.log peer;
    client_body_temp_path $LAB_WORK/nginx-body;
    proxy_temp_path $LAB_WORK/nginx-proxy;
    fastcgi_temp_path $LAB_WORK/nginx-fastcgi;
    uwsgi_temp_path $LAB_WORK/nginx-uwsgi;
    scgi_temp_path $LAB_WORK/nginx-scgi;
    client_max_body_size 100m;
    server {
        listen 80;
        root $LAB_WORK/www;
        location /upload/ { dav_methods PUT; create_full_put_path on; }
    }
}
CONF
ip netns exec "$NS_ORG" nginx -c "$LAB_WORK/nginx.conf" &
LAB_PIDS+=($!)
cat >"$LAB_WORK/concentrator.conf" <<CONF
config concentrator 'main'
	option listen '::'
	option port '$BRAID_PORT'
	option psk_file '$LAB_WORK/psk'
	option status_socket '$LAB_WORK/concentrator.sock'
CONF
ip netns exec "$NS_CONC" "$BRAID_BIN" concentrator --config "$LAB_WORK/concentrator.conf" \
    --log-level "${BRAID_LOG_LEVEL:-info}" 2>"$LAB_WORK/concentrator.log" &
LAB_PIDS+=($!)
wait_for 10 nsx "$NS_CONC" bash -c "ss -Hltn 'sport = :$BRAID_PORT' | grep -q LISTEN" &&
    wait_for 10 nsx "$NS_ORG" bash -c "ss -Hltn 'sport = :80' | grep -q LISTEN" || {
    fail "concentrator and origin start" "$(cat "$LAB_WORK/concentrator.log" "$LAB_WORK/nginx-error.log")"
    finish
    exit 1
}

# KVM only if it boots a kernel here within 30 s (on some hosts /dev/kvm opens but a guest
# hangs): the image's kernel, from its boot partition (1 MiB in), without a root file system
# panics and QEMU exits (-no-reboot).
accel=tcg
if [[ -r /dev/kvm && -w /dev/kvm ]]; then
    kernel=$LAB_WORK/vmlinuz
    mcopy -n -i "$image@@1M" ::/vmlinuz "$kernel" 2>/dev/null || kernel=
    if [[ -n $kernel ]] && timeout 30 qemu-system-x86_64 -accel kvm -m 128 -display none -no-reboot \
        -serial "file:$LAB_WORK/kvm-probe.log" -kernel "$kernel" -append "console=ttyS0 panic=-1" \
        >/dev/null 2>&1 && grep -q "Kernel panic" "$LAB_WORK/kvm-probe.log"; then
        accel=kvm
    fi
fi

lab_log "booting $image ($accel)"
boot_ns=$(date +%s%N)
# -snapshot: the guest's writes stay out of the image file. NICs in PCI order: LAN, uplink 1, 2.
# -nodefaults: no floppy, CD-ROM or graphics for the kernel to probe.
ip netns exec "$NS_INET" qemu-system-x86_64 -accel "$accel" -m 256 -smp 1 -nodefaults -display none -no-reboot \
    -serial "file:$LAB_WORK/console.log" -snapshot \
    -drive "file=$image,format=raw,if=virtio" \
    -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-pci,netdev=n0,mac=52:54:00:00:50:01,addr=0x5,romfile= \
    -netdev tap,id=n1,ifname=tap1,script=no,downscript=no -device virtio-net-pci,netdev=n1,mac=52:54:00:00:01:01,addr=0x6,romfile= \
    -netdev tap,id=n2,ifname=tap2,script=no,downscript=no -device virtio-net-pci,netdev=n2,mac=52:54:00:00:02:01,addr=0x7,romfile= \
    2>"$LAB_WORK/qemu.log" &
LAB_PIDS+=($!)
since_boot() { echo $((($(date +%s%N) - boot_ns) / 1000000)); }

# The LAN host's lease, with busybox udhcpc: the script records what the server offered and
# configures the address and default route.
cat >"$LAB_WORK/udhcpc.sh" <<'SCRIPT'
#!/bin/sh
[ "$1" = bound ] || exit 0
ip addr add "$ip/$subnet" dev "$interface"
ip route replace default via "$router"
echo "ip=$ip serverid=$serverid router=$router dns=$dns" >"$LEASE_FILE"
SCRIPT
chmod +x "$LAB_WORK/udhcpc.sh"
lease=
deadline=$((SECONDS + BOOT_BUDGET))
while ((SECONDS < deadline)) && [[ -z $lease ]]; do
    LEASE_FILE=$LAB_WORK/lease nsx "$NS_LAN" timeout 20 busybox udhcpc -i eth0 -f -q -n -t 5 -T 2 \
        -s "$LAB_WORK/udhcpc.sh" >>"$LAB_WORK/udhcpc.log" 2>&1
    [[ -s $LAB_WORK/lease ]] && lease=$(cat "$LAB_WORK/lease")
done
lease_ms=$(since_boot)
if [[ $lease =~ ip=198\.18\.50\.([0-9]+)\ serverid=$LAN_ADDR\ router=$LAN_ADDR\ dns=$LAN_ADDR ]] &&
    ((BASH_REMATCH[1] >= 100 && BASH_REMATCH[1] <= 250)); then
    pass "the LAN host's lease comes from the image's dnsmasq ($lease, $((lease_ms / 1000)) s after power-on)"
else
    fail "LAN lease from the image" "lease: ${lease:-none}" "console: $(tail -5 "$LAB_WORK/console.log")"
    finish
    exit 1
fi

# The first bonded byte: GET /small?try=N until nginx logs one from the concentrator's address.
# Before braid runs, LAN TCP is masqueraded out of an uplink (source 198.18.1.x or 198.18.2.x).
first_ms= try=0 unbonded=0
while ((SECONDS < deadline)); do
    try=$((try + 1))
    t0=$(date +%s%N)
    if ttfb=$(nsx "$NS_LAN" curl -sf -o /dev/null --max-time 5 -w '%{time_starttransfer}' "http://$ORIGIN4/small?try=$try"); then
        if grep -q "^$CONC_ADDR /small?try=$try 200" "$LAB_WORK/nginx-access.log"; then
            first_ms=$((($t0 - boot_ns) / 1000000 + $(awk -v t="$ttfb" 'BEGIN { printf "%d", t * 1000 }')))
            break
        fi
        unbonded=$((unbonded + 1))
    fi
    sleep 0.2
done
if [[ -n $first_ms ]]; then
    pass "power-on to the first bonded byte: $(awk -v t="$first_ms" 'BEGIN { printf "%.1f", t / 1000 }') s ($accel; $unbonded answer(s) before it masqueraded, not bonded)"
else
    fail "a bonded byte within ${BOOT_BUDGET}s of power-on" "tries: $try, unbonded: $unbonded" \
        "console: $(tail -20 "$LAB_WORK/console.log")"
    finish
    exit 1
fi

# Subflows from both uplinks' DHCP addresses, seen at the concentrator while data flows.
subflow_peers() {
    # The concentrator listens on '::': IPv4 peers show as [::ffff:198.18.1.10]:PORT.
    nsx "$NS_CONC" ss -Htn state established "( sport = :$BRAID_PORT )" | awk '{print $4}' |
        grep -o '198\.18\.[0-9]*\.[0-9]*' | sort -u | tr '\n' ' '
}

# The download, with uplink 1 silenced (everything on tap1 dropped both ways) for 5 s after 2 s.
big_sha=$(sha256sum "$LAB_WORK/www/big" | cut -d' ' -f1)
nsx "$NS_LAN" curl -sf --max-time 180 -o "$LAB_WORK/down" -w '%{size_download} %{time_total}\n' "http://$ORIGIN4/big" \
    >"$LAB_WORK/down.json" 2>&1 &
curl_pid=$!
peers=
for _ in $(seq 20); do
    peers=$(subflow_peers)
    [[ $peers == *198.18.1.* && $peers == *198.18.2.* ]] && break
    sleep 0.1
done
sleep 2
nsx "$NS_INET" nft -f - <<'NFT'
table inet silence {
    chain forward { type filter hook forward priority -10; iifname "tap1" drop; oifname "tap1" drop; }
    chain input { type filter hook input priority -10; iifname "tap1" drop; }
    chain output { type filter hook output priority -10; oifname "tap1" drop; }
}
NFT
sleep 5
nsx "$NS_INET" nft delete table inet silence
running_after=0
kill -0 "$curl_pid" 2>/dev/null && running_after=1
wait "$curl_pid"
got_sha=$(sha256sum "$LAB_WORK/down" 2>/dev/null | cut -d' ' -f1)
if [[ $got_sha == "$big_sha" ]] && ((running_after)); then
    pass "$((DOWN_BYTES / 1000000)) MB down with uplink 1 silenced for 5 s mid-transfer, sha256 equal ($(cat "$LAB_WORK/down.json"))"
else
    fail "download across a 5 s silence of uplink 1" "sha256 $got_sha vs $big_sha, still running after: $running_after" \
        "curl: $(cat "$LAB_WORK/down.json")"
fi
if [[ $peers == *198.18.1.* && $peers == *198.18.2.* ]]; then
    pass "subflows from both uplinks' DHCP addresses at the concentrator ($peers)"
else
    fail "subflows from both uplinks" "peers: $peers"
fi
if [[ $(tail -1 "$LAB_WORK/nginx-access.log") == "$CONC_ADDR /big 200" ]]; then
    pass "the download crossed the bonded path (nginx saw $CONC_ADDR)"
else
    fail "download bonded" "last access: $(tail -1 "$LAB_WORK/nginx-access.log")"
fi

# The upload: nginx stores the PUT's body as a file; its sha256 against the one sent.
head -c "$UP_BYTES" /dev/urandom >"$LAB_WORK/up"
up_sha=$(sha256sum "$LAB_WORK/up" | cut -d' ' -f1)
answer=$(nsx "$NS_LAN" curl -s --max-time 120 -o /dev/null -w '%{http_code}' -T "$LAB_WORK/up" "http://$ORIGIN4/upload/up")
stored_sha=$(sha256sum "$LAB_WORK/www/upload/up" 2>/dev/null | cut -d' ' -f1)
if [[ $answer == 201 && $stored_sha == "$up_sha" ]] && grep -q "^$CONC_ADDR /upload/up 201" "$LAB_WORK/nginx-access.log"; then
    pass "$((UP_BYTES / 1000000)) MB up through the bonded path, sha256 equal"
else
    fail "upload" "answer: $answer, sha256 $stored_sha vs $up_sha" "last access: $(tail -1 "$LAB_WORK/nginx-access.log")"
fi

# Not relayed: ICMP leaves masqueraded (inet has no route back to the LAN's 198.18.50.0/24).
if nsx "$NS_LAN" ping -c 2 -W 2 -q "$ORIGIN4" >/dev/null; then
    pass "ICMP from the LAN reaches the origin, masqueraded"
else
    fail "ICMP masqueraded"
fi

if grep -q "braid-gateway login:" "$LAB_WORK/console.log"; then
    pass "serial console offers a login prompt"
else
    fail "serial console login prompt" "$(tail -5 "$LAB_WORK/console.log")"
fi

finish
