#!/usr/bin/env bash
# Assembles what every board puts on a root filesystem, into DEST:
#
#   rootfs-overlay/*            → DEST/ as it is (init scripts, units, sysctl, first-boot defaults)
#   Config/gateway.conf,
#   Config/concentrator.conf    → DEST/usr/share/braid/ (the defaults first boot installs from)
#   Config/ROLE.conf            → DEST/etc/config/braid (the box's configuration)
#   BINARY                      → DEST/usr/bin/braid, stripped of debug information
#
#   board/stage.sh DEST ROLE BINARY
#
# DEST may be an empty directory (an OpenWrt image builder's FILES=) or a root filesystem
# (board/x86-64/build-image.sh). Nothing outside DEST is touched.
set -euo pipefail

if (($# != 3)); then
    echo "usage: $0 DEST gateway|concentrator BINARY" >&2
    exit 2
fi
dest=$1 role=$2 binary=$3
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

case $role in
    gateway | concentrator) ;;
    *) echo "stage: unknown role ($role): gateway or concentrator" >&2; exit 2 ;;
esac
[[ -d $dest ]] || { echo "stage: no such directory ($dest)" >&2; exit 2; }
[[ -x $binary ]] || { echo "stage: not an executable ($binary)" >&2; exit 2; }

# Through tar rather than cp: on a merged-/usr root filesystem (Debian 12) /lib is a link to
# usr/lib, which cp refuses to replace with the overlay's lib/ directory and tar follows
# (--keep-directory-symlink). The files belong to root on the box, whoever checked them out.
tar -C "$repo/rootfs-overlay" --owner=0 --group=0 -cf - . | tar -C "$dest" --keep-directory-symlink -xf -
install -d -m 0755 "$dest/usr/share/braid" "$dest/etc/config" "$dest/usr/bin"
install -m 0644 "$repo/Config/gateway.conf" "$repo/Config/concentrator.conf" "$dest/usr/share/braid/"
install -m 0644 "$repo/Config/$role.conf" "$dest/etc/config/braid"
# Debug information is most of a Swift binary's size; the symbols stay for backtraces.
strip --strip-debug -o "$dest/usr/bin/braid" "$binary"
chmod 0755 "$dest/usr/bin/braid"
