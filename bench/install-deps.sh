#!/usr/bin/env bash
# Installs what `make bench` compares braid with (Debian 12): redsocks and dante-server (SOCKS5
# chain), shadowsocks-libev (ss-redir + ss-server), mptcpize, which makes them use MPTCP, and
# matplotlib for the plots in bench/RESULTS.md.
# The packages' own services are not needed: bench starts its instances in the lab namespaces.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends redsocks dante-server shadowsocks-libev mptcpize \
    python3-matplotlib
