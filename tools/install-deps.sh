#!/usr/bin/env bash
# Installs what braid's build and `make test` need on Debian 12 (Swift 6 itself aside): the C
# libraries it links (libmnl, libnftables, OpenSSL), the lab's tools (iproute2, nftables, ping,
# ss from iproute2, python3), the appliance suite's (busybox, systemd-analyze, util-linux,
# readelf), openssl (a unit test makes a certificate with it) and the third-party clients and
# servers the hostile suites drive (iperf3, curl, nginx), and PostgreSQL for the store suite (which
# starts a cluster of its own). Run as root; `make test` after it. CI
# runs the same script (.ci/run).
# chromium and python3-websocket: the browser of the status-page suite and its DevTools client.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends \
    iproute2 iputils-ping nftables libmnl-dev libnftables-dev libssl-dev pkg-config python3 make procps \
    busybox systemd util-linux binutils iperf3 curl nginx-light openssl postgresql \
    chromium python3-websocket
# The office suite's UDP answerer, DNS server and client (tests/netns/office.sh).
apt-get install -y --no-install-recommends socat dnsmasq-base bind9-dnsutils
