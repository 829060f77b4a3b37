#!/usr/bin/env bash
# Builds a Debian 12 root filesystem for a generic x86-64 braid appliance and packs it as a
# tarball: board/x86-64/README.md says what it holds and what it leaves out (no bootloader).
#
#   board/x86-64/build-image.sh [--role gateway|concentrator] [--kernel] [--out DIR]
#
#   --role    which default configuration becomes /etc/config/braid (default gateway)
#   --kernel  also install Debian's linux-image-amd64 (kernel and initramfs in /boot)
#   --out     where the root filesystem and the tarball go (default .build-image/ in the repo)
#
# Needs root, debootstrap and Swift. Packages come from the mirror this machine's apt already
# uses (MIRROR=URL overrides it), so the script works wherever apt-get does.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
role=gateway
kernel=0
out=$repo/.build-image
suite=bookworm

while (($#)); do
    case $1 in
        --role) role=${2:?--role needs gateway or concentrator}; shift 2 ;;
        --kernel) kernel=1; shift ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        *) echo "usage: $0 [--role gateway|concentrator] [--kernel] [--out DIR]" >&2; exit 2 ;;
    esac
done
case $role in
    gateway | concentrator) ;;
    *) echo "build-image: unknown role ($role): gateway or concentrator" >&2; exit 2 ;;
esac

log() { printf '[image] %s\n' "$*" >&2; }
die() { printf '[image] %s\n' "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "needs root (debootstrap, chroot)"
command -v debootstrap >/dev/null || die "needs debootstrap: apt-get install debootstrap"
command -v swift >/dev/null || die "needs swift on PATH"

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
tarball=$out/braid-$role-x86-64-rootfs.tar.gz

# debootstrap mounts /proc and /sys inside the target; if anything stops half-way, undo every
# mount under it so that removing it later cannot reach the host's /proc.
cleanup() {
    local m
    if [[ -d $rootfs ]]; then
        for m in $(findmnt -rn -o TARGET | grep -F "$rootfs/" | sort -r); do umount -l "$m" || true; done
    fi
}
trap cleanup EXIT

log "building braid (release, Swift standard library linked statically)"
(cd "$repo" && swift build -c release --static-swift-stdlib --product braid)
binary=$repo/.build/release/braid

# Shared libraries the binary links besides glibc: libcrypto (OpenSSL 3), libmnl, libnftables,
# libstdc++. nftables and iproute2 are for the operator.
packages=systemd,systemd-sysv,dbus,kmod,procps,iproute2,nftables,libmnl0,libnftables1,libssl3,libstdc++6
((kernel)) && packages+=,linux-image-amd64,initramfs-tools

cleanup
rm -rf "$rootfs"
mkdir -p "$rootfs"
log "debootstrap $suite from $mirror into $rootfs"
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror"

log "staging the overlay, Config/$role.conf and the binary"
bash "$repo/board/stage.sh" "$rootfs" "$role" "$binary"

# Libraries missing from the root filesystem would only show at first boot.
missing=$(chroot "$rootfs" ldd /usr/bin/braid | awk '/not found/ { print $1 }')
[[ -z $missing ]] || die "the image lacks libraries braid links: $missing"

# The braid account now, so the units' User= resolves before first boot too; systemd-sysusers
# would create it at boot otherwise.
chroot "$rootfs" systemd-sysusers
chroot "$rootfs" systemctl enable braid-firstboot.service "braid@$role.service"

echo "braid-$role" >"$rootfs/etc/hostname"
# Every box makes its own machine id at first boot (systemd treats an empty file as first boot).
: >"$rootfs/etc/machine-id"
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/*

log "packing $tarball"
tar --numeric-owner --xattrs --acls -C "$rootfs" -czf "$tarball.tmp" .
mv "$tarball.tmp" "$tarball"
log "done: $tarball ($(du -h "$tarball" | cut -f1)); root filesystem in $rootfs"
