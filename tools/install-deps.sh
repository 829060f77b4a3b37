#!/usr/bin/env bash
# Installs what braid's build and `make test` need on Debian 12 (Swift 6 itself aside): the C
# libraries it links (libmnl, libnftables, OpenSSL), the lab's tools (iproute2, nftables, ping,
# ss from iproute2, python3), the appliance suite's (busybox, systemd-analyze, util-linux,
# readelf), openssl (a unit test makes a certificate with it) and the third-party clients and
# servers the hostile suites drive (iperf3, curl, nginx); PostgreSQL for the store suite (which
# starts a cluster of its own); for the appliance image, what builds it
# (debootstrap, syslinux, mtools, dosfstools, fdisk, e2fsprogs) and what boots and wires it in
# tests/netns/image.sh (qemu-system-x86, dnsmasq-base for the uplinks' DHCP). Run as root; `make`
# runs it once by itself before building (the Makefile's DEPS_STAMP), so CI's `make test` does too.
# chromium and python3-websocket: the browser of the status-page suite and its DevTools client.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends \
    iproute2 iputils-ping nftables libmnl-dev libnftables-dev libssl-dev pkg-config python3 make procps \
    busybox systemd util-linux binutils iperf3 curl nginx-light openssl postgresql \
    chromium python3-websocket \
    debootstrap syslinux syslinux-common mtools dosfstools fdisk e2fsprogs qemu-system-x86 dnsmasq-base
# The office suite's UDP answerer, DNS server and client (tests/netns/office.sh).
apt-get install -y --no-install-recommends socat dnsmasq-base bind9-dnsutils
# The quota suite's movable clock: libfaketime under both daemons (tests/netns/quota.sh).
apt-get install -y --no-install-recommends faketime
