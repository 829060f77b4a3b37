#!/usr/bin/env bash
# Builds a bootable raw disk image of a generic x86-64 braid appliance (Debian 12): see
# board/x86-64/README.md for what it holds, how its NICs are used and how to boot it.
#
#   board/x86-64/build-image.sh [--role gateway|concentrator] [--config FILE] [--psk FILE]
#                               [--lan ADDRESS/PREFIX] [--out DIR]
#
#   --role    gateway (default) or concentrator
#   --config  baked in as /etc/config/braid (default: board/x86-64/ROLE.conf); `braid check`ed
#   --psk     baked in as the configuration's psk_file (default: first boot generates one)
#   --lan     the gateway's LAN address (default 192.168.1.1/24; prefix /8 to /24)
#   --out     where the image and the root filesystem go (default .build-image/ in the repo)
#
# Writes OUT/braid-ROLE-x86-64.img. No loop devices or mounts: the root file system is made
# from a directory (mkfs.ext4 -d), the boot partition with mtools, and both are copied into the
# image at their partitions' offsets, so it runs wherever root can run debootstrap. Needs root and
# Swift; installs the Debian packages it builds with (debootstrap, syslinux, ...) if missing.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
board=$repo/board/x86-64
role=gateway
config=
psk=
lan=192.168.1.1/24
out=$repo/.build-image
suite=bookworm

# The one place the appliance's binary is built: release, Swift's runtime inside the binary, code
# no path reaches dropped by the linker, and without the PostgreSQL store (the package trait
# PostgreSQLStore), which would bring Foundation, ICU and a second TLS stack onto the CPE.
BUILD_FLAGS=(-c release --static-swift-stdlib -Xlinker --gc-sections --disable-default-traits)

while (($#)); do
    case $1 in
        --role) role=${2:?--role needs gateway or concentrator}; shift 2 ;;
        --config) config=${2:?--config needs a file}; shift 2 ;;
        --psk) psk=${2:?--psk needs a file}; shift 2 ;;
        --lan) lan=${2:?--lan needs ADDRESS/PREFIX}; shift 2 ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        -h | --help) sed -n '5,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-image: unknown argument ($1); --help lists them" >&2; exit 2 ;;
    esac
done

log() { printf '[image] %s\n' "$*" >&2; }
die() { printf '[image] %s\n' "$*" >&2; exit 1; }

case $role in
    gateway | concentrator) ;;
    *) die "unknown role ($role): gateway or concentrator" ;;
esac
config=${config:-$board/$role.conf}
[[ -r $config ]] || die "cannot read the configuration ($config)"
[[ -z $psk || -r $psk ]] || die "cannot read the pre-shared key ($psk)"

# The LAN address as four octets and a prefix; dnsmasq leases .100 to .250 of the first /24.
if [[ ! $lan =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)\.([0-9]+)/([0-9]+)$ ]]; then
    die "--lan needs an IPv4 ADDRESS/PREFIX ($lan)"
fi
lan_octets=("${BASH_REMATCH[@]:1:4}") lan_prefix=${BASH_REMATCH[5]}
for o in "${lan_octets[@]}"; do ((o <= 255)) || die "--lan: not an IPv4 address ($lan)"; done
((lan_prefix >= 8 && lan_prefix <= 24)) || die "--lan: prefix must be /8 to /24 ($lan)"
((lan_octets[3] < 100 || lan_octets[3] > 250)) || die "--lan: .100 to .250 are the DHCP pool ($lan)"
lan_base=${lan_octets[0]}.${lan_octets[1]}.${lan_octets[2]}
lan_mask=$(( (0xFFFFFFFF << (32 - lan_prefix)) & 0xFFFFFFFF ))
lan_netmask=$((lan_mask >> 24 & 255)).$((lan_mask >> 16 & 255)).$((lan_mask >> 8 & 255)).$((lan_mask & 255))

[[ $(id -u) == 0 ]] || die "needs root (debootstrap, chroot)"
command -v swift >/dev/null || die "needs swift on PATH"

# What building takes, from Debian: installed once, as tools/install-deps.sh would.
tools=(debootstrap:debootstrap syslinux:syslinux mcopy:mtools mkfs.fat:dosfstools sfdisk:fdisk mkfs.ext4:e2fsprogs)
missing=()
for t in "${tools[@]}"; do command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}"); done
[[ -e /usr/lib/syslinux/mbr/mbr.bin ]] || missing+=(syslinux-common)
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The Debian mirror apt is configured with: the URI of a deb822 stanza or a one-line `deb` entry
# whose suite is $suite itself (not -security or -updates).
apt_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -e $f ]] || continue
        awk -v suite="$suite" '
            /^[[:space:]]*$/ { if (uri != "" && hit) print uri; uri = ""; hit = 0; next }
            $1 == "URIs:" { uri = $2 }
            $1 == "Suites:" { for (i = 2; i <= NF; i++) if ($i == suite) hit = 1 }
            END { if (uri != "" && hit) print uri }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -e $f ]] || continue
        awk -v suite="$suite" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
            if ($(i + 1) == suite) print $i }' "$f"
    done
}
mirror=${MIRROR:-$(apt_mirror | head -n 1)}
[[ -n $mirror ]] || die "no $suite entry in /etc/apt/sources.list*; set MIRROR=URL"

rootfs=$out/rootfs-$role
image=$out/braid-$role-x86-64.img
work=$out/work-$role

# debootstrap mounts /proc and /sys inside the target; if anything stops half-way, undo every
# mount under it so that removing it later cannot reach the host's /proc.
cleanup() {
    local m
    if [[ -d $rootfs ]]; then
        for m in $(findmnt -rn -o TARGET | grep -F "$rootfs/" | sort -r); do umount -l "$m" || true; done
    fi
    rm -rf "$work"
}
trap cleanup EXIT

log "building braid (${BUILD_FLAGS[*]})"
(cd "$repo" && swift build "${BUILD_FLAGS[@]}" --product braid)
binary=$(cd "$repo" && swift build "${BUILD_FLAGS[@]}" --show-bin-path)/braid

# systemd-networkd configures the NICs, dnsmasq serves the LAN, nftables masquerades; the
# libraries are the ones braid links (libcrypto, libmnl, libnftables). Debian's kernel has MPTCP
# built in; initramfs-tools loads the disk's driver before the root file system.
packages=systemd,systemd-sysv,udev,dbus,kmod,procps,iproute2,nftables,libmnl0,libnftables1,libssl3
packages+=,linux-image-amd64,initramfs-tools,zstd
[[ $role == gateway ]] && packages+=,dnsmasq-base,systemd-resolved

cleanup
rm -rf "$rootfs"
mkdir -p "$rootfs" "$work"
log "debootstrap $suite from $mirror into $rootfs"
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror"

log "staging the overlay, the configuration and the binary"
bash "$repo/board/stage.sh" "$rootfs" "$role" "$binary"
install -m 0644 "$config" "$rootfs/etc/config/braid"
chroot "$rootfs" /usr/bin/braid check "$role" --config /etc/config/braid >&2 ||
    die "the configuration ($config) fails braid check"

# Libraries missing from the root filesystem would only show at first boot.
missing=$(chroot "$rootfs" ldd /usr/bin/braid | awk '/not found/ { print $1 }')
[[ -z $missing ]] || die "the image lacks libraries braid links: $missing"

# The braid account now, so the units' User= resolves and the key can be given to it.
chroot "$rootfs" systemd-sysusers
if [[ -n $psk ]]; then
    key_path=$(awk '$1 == "option" && $2 == "psk_file" { v = $3; gsub(/["\047]/, "", v); p = v } END { print p }' "$config")
    key_path=${key_path:-/etc/braid/psk}
    install -d -m 0755 "$rootfs$(dirname "$key_path")"
    install -m 0600 "$psk" "$rootfs$key_path"
    chroot "$rootfs" chown braid:braid "$key_path"
fi

log "network: $([[ $role == gateway ]] && echo "eth0 LAN $lan, eth1... uplinks" || echo "eth0 DHCP")"
net=$rootfs/etc/systemd/network
mkdir -p "$net" "$rootfs/etc/systemd/networkd.conf.d"
# braid owns its routing tables, source rules and routes; networkd must not remove them as
# "foreign" when it starts or a link changes.
cat >"$rootfs/etc/systemd/networkd.conf.d/braid.conf" <<'EOF'
[Network]
ManageForeignRoutingPolicyRules=no
ManageForeignRoutes=no
EOF
uplink_network() { # uplink_network NAME METRIC: DHCP and router advertisements
    cat <<EOF
[Match]
Name=$1

[Network]
DHCP=yes
IPv6AcceptRA=yes
# braid picks an uplink per connection; the main table's default (lowest metric first) carries
# what braid does not relay.
[DHCPv4]
RouteMetric=$2
[IPv6AcceptRA]
RouteMetric=$2
EOF
}
if [[ $role == gateway ]]; then
    cat >"$net/10-lan.network" <<EOF
[Match]
Name=eth0

[Network]
Address=$lan
ConfigureWithoutCarrier=yes
IPv6AcceptRA=no
EOF
    # eth1 ... eth8: the uplinks, in PCI order.
    for i in 1 2 3 4 5 6 7 8; do uplink_network "eth$i" $((100 * i)) >"$net/20-uplink-eth$i.network"; done
    cat >"$rootfs/etc/dnsmasq-lan.conf" <<EOF
# DHCP and DNS for the LAN (eth0): leases of 12 hours, this box as router and name server; names
# are forwarded to the uplinks' name servers (systemd-resolved learns them by DHCP).
interface=eth0
bind-dynamic
dhcp-range=$lan_base.100,$lan_base.250,$lan_netmask,12h
dhcp-authoritative
domain-needed
bogus-priv
resolv-file=/run/systemd/resolve/resolv.conf
dhcp-leasefile=/var/lib/misc/dnsmasq.leases
EOF
    cat >"$rootfs/etc/systemd/system/dnsmasq-lan.service" <<'EOF'
[Unit]
Description=DHCP and DNS for the LAN (dnsmasq on eth0)
After=network.target systemd-resolved.service

[Service]
Type=simple
ExecStart=/usr/sbin/dnsmasq --keep-in-foreground --conf-file=/etc/dnsmasq-lan.conf --user=dnsmasq
Restart=always
RestartSec=1s

[Install]
WantedBy=multi-user.target
EOF
    chroot "$rootfs" sh -c 'id dnsmasq >/dev/null 2>&1 || useradd --system --no-create-home --home /nonexistent --shell /usr/sbin/nologin dnsmasq'
    mkdir -p "$rootfs/var/lib/misc"
    # Traffic from the LAN that braid does not relay (UDP, ICMP, the operator's bypasses) leaves an
    # uplink with the uplink's address; the box's own traffic already has one. braid's own table
    # (inet braid) is left alone: no `flush ruleset`.
    cat >"$rootfs/etc/nftables.conf" <<'EOF'
#!/usr/sbin/nft -f
table ip appliance
delete table ip appliance
table ip appliance {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        iifname "eth0" oifname != "eth0" masquerade
    }
}
EOF
    chroot "$rootfs" systemctl enable dnsmasq-lan.service nftables.service systemd-resolved.service
else
    uplink_network eth0 100 >"$net/20-eth0.network"
fi
chroot "$rootfs" systemctl enable systemd-networkd.service braid-firstboot.service "braid@$role.service"
# A box without a keyboard: nothing may wait at first boot for answers on the console.
chroot "$rootfs" systemctl mask systemd-firstboot.service
echo "braid-$role" >"$rootfs/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tbraid-%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$role" \
    >"$rootfs/etc/hosts"
# Every box makes its own machine id at first boot (systemd treats an empty file as first boot).
: >"$rootfs/etc/machine-id"

# Drivers no appliance uses (graphics, sound, wireless, media, InfiniBand): a third of the modules.
kver=$(basename "$(ls -d "$rootfs"/lib/modules/*)")
for d in drivers/gpu drivers/media drivers/net/wireless drivers/infiniband drivers/staging drivers/iio \
    drivers/bluetooth drivers/input/touchscreen drivers/hid sound net/bluetooth net/wireless net/mac80211; do
    rm -rf "$rootfs/lib/modules/$kver/kernel/$d"
done
# The rest compressed (kmod and initramfs-tools read .ko.zst): a third of their size on disk.
find "$rootfs/lib/modules/$kver" -name '*.ko' -print0 | xargs -0 -r -n 64 -P 2 zstd -q --rm -10
chroot "$rootfs" depmod "$kver"
chroot "$rootfs" update-initramfs -u -k "$kver" >&2

chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
    "$rootfs"/usr/share/locale/* "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/log/*.log
for m in $(findmnt -rn -o TARGET | grep -F "$rootfs/" | sort -r); do umount -l "$m"; done

# The disk: an MBR with syslinux's boot code; partition 1 (FAT, active) holds syslinux, the
# kernel and the initramfs; partition 2 the root file system (ext4), sized to its content with
# room for logs and leases. Offsets in MiB.
uuid=$(cat /proc/sys/kernel/random/uuid)
boot_mib=64
cat >"$rootfs/etc/fstab" <<EOF
UUID=$uuid / ext4 defaults,noatime,errors=remount-ro 0 1
EOF

log "boot partition (syslinux, kernel $kver)"
cat >"$work/syslinux.cfg" <<EOF
SERIAL 0 115200
DEFAULT braid
PROMPT 0
TIMEOUT 0
LABEL braid
    LINUX /vmlinuz
    INITRD /initrd.img
    APPEND root=UUID=$uuid ro net.ifnames=0 console=tty0 console=ttyS0,115200n8
EOF
rm -f "$work/boot.fat"
mkfs.fat -n BRAIDBOOT -C "$work/boot.fat" $((boot_mib * 1024)) >/dev/null
syslinux --install "$work/boot.fat"
mcopy -i "$work/boot.fat" "$rootfs/boot/vmlinuz-$kver" ::/vmlinuz
mcopy -i "$work/boot.fat" "$rootfs/boot/initrd.img-$kver" ::/initrd.img
mcopy -i "$work/boot.fat" "$work/syslinux.cfg" ::/syslinux.cfg
# The boot partition holds the only copies the box boots from.
rm -f "$rootfs/boot/vmlinuz-$kver" "$rootfs/boot/initrd.img-$kver" "$rootfs/boot/System.map-$kver"

root_mib=$(($(du -sm "$rootfs" | cut -f1) * 5 / 4 + 64))
image_mib=$((1 + boot_mib + root_mib))
log "root file system (ext4, $root_mib MiB)"
rm -f "$work/root.ext4"
mkfs.ext4 -q -L braid-root -U "$uuid" -d "$rootfs" "$work/root.ext4" "${root_mib}M"

log "assembling $image ($image_mib MiB)"
rm -f "$image.tmp"
truncate -s "${image_mib}M" "$image.tmp"
sfdisk -q "$image.tmp" <<EOF
label: dos
start=2048, size=$((boot_mib * 2048)), type=c, bootable
start=$(((1 + boot_mib) * 2048)), type=83
EOF
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$image.tmp" bs=440 count=1 conv=notrunc status=none
dd if="$work/boot.fat" of="$image.tmp" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$work/root.ext4" of="$image.tmp" bs=1M seek=$((1 + boot_mib)) conv=notrunc,sparse status=none
mv "$image.tmp" "$image"
log "done: $image ($(du -h --apparent-size "$image" | cut -f1), $(du -h "$image" | cut -f1) on disk)"
