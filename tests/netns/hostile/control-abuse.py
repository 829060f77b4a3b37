#!/usr/bin/env python3
"""Rude clients of the concentrator's TLS control port, for tests/netns/hostile/control.sh.

  stall    holds many TLS handshakes open from several source addresses: each connection sends
           the first bytes of a ClientHello and then nothing. Counts the connections the server
           closed at once (refused at accept) and samples the server's open descriptors.
  garbage  opens connections that send plaintext (not TLS) one after another, so each is refused.
  pinger   a subscriber with a valid certificate: says hello, then sends pings and never reads
           the pongs. Reports whether the server disconnected it and the server's peak RSS.
  flooder  the mirror, a hostile concentrator with a valid server certificate: grants a key, then
           pings the gateway and never reads the pongs. Reports the same of the gateway.

Every mode is bounded in time and prints one JSON object on stdout.
"""

import argparse
import json
import os
import select
import socket
import ssl
import struct
import sys
import threading
import time

# The first bytes of a TLS record holding a ClientHello: handshake record, TLS 1.0 on the record
# layer, length 512, then the handshake header. The rest never comes.
PARTIAL_CLIENT_HELLO = bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03])


def open_fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def family_of(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def connect_from(source, target, port, timeout=3.0):
    s = socket.socket(family_of(source), socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect((target, port))
    return s


def closed_by_peer(s):
    """True when the peer closed or reset the connection (readable and EOF or an error)."""
    try:
        readable, _, _ = select.select([s], [], [], 0)
        if not readable:
            return False
        return s.recv(4096) == b""
    except OSError:
        return True


def stall(args):
    pairs = [a.split("=") for a in args.sources.split(",")]  # SOURCE=TARGET
    conns, failed = [], 0  # (socket, when opened)
    for source, target in pairs:
        for _ in range(args.per_source):
            try:
                s = connect_from(source, target, args.port)
                s.sendall(PARTIAL_CLIENT_HELLO)
                conns.append((s, time.monotonic()))
            except OSError:
                failed += 1
    opened_at = time.monotonic()
    if args.ready:
        with open(args.ready, "w") as f:
            f.write(f"{len(conns)}\n")
    # A connection refused at accept is closed (reset) within moments of its connect; one that
    # was admitted stays until the handshake timeout (10 s), which the hold stays under.
    max_fds, at_accept, later = 0, set(), set()
    while time.monotonic() - opened_at < args.hold:
        max_fds = max(max_fds, open_fds(args.pid))
        for i, (s, when) in enumerate(conns):
            if i not in at_accept and i not in later and closed_by_peer(s):
                (at_accept if time.monotonic() - when < 3 else later).add(i)
        time.sleep(0.2)
    for s, _ in conns:
        s.close()
    print(json.dumps({
        "attempted": len(pairs) * args.per_source, "connected": len(conns), "connect_failed": failed,
        "closed_at_accept": len(at_accept), "closed_later": len(later),
        "held_open": len(conns) - len(at_accept) - len(later), "max_fds": max_fds,
    }))


def garbage(args):
    pairs = [a.split("=") for a in args.sources.split(",")]
    counts = {"connected": 0, "closed_by_server": 0, "errors": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + args.timeout

    def worker(source, target, n):
        for _ in range(n):
            if time.monotonic() > deadline:
                return
            try:
                s = connect_from(source, target, args.port)
                with lock:
                    counts["connected"] += 1
                s.sendall(b"GET / HTTP/1.1\r\nHost: braid\r\n\r\n")
                try:
                    while s.recv(4096):
                        pass
                    with lock:
                        counts["closed_by_server"] += 1
                except ConnectionResetError:
                    with lock:
                        counts["closed_by_server"] += 1
                s.close()
            except OSError:
                with lock:
                    counts["errors"] += 1

    per = args.count // len(pairs)
    threads = [threading.Thread(target=worker, args=(src, dst, per)) for src, dst in pairs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts["attempted"] = per * len(pairs)
    print(json.dumps(counts))


def frame(kind, payload):
    return struct.pack("!BBH", 1, kind, len(payload)) + payload


def ping_without_reading(tls, args, peer):
    """Sends pings and never reads the pongs, until `peer` disconnects, args.max_bytes are sent or
    args.timeout passes; prints what happened and how the RSS of args.pid grew meanwhile."""
    baseline = rss_kib(args.pid)
    batch = b"".join(frame(4, struct.pack("!QQ", n, n)) for n in range(1000))
    sent, peak, outcome = 0, baseline, "not disconnected"
    start = time.monotonic()
    while sent < args.max_bytes and time.monotonic() - start < args.timeout:
        try:
            tls.sendall(batch)
        except socket.timeout:
            outcome = f"{peer} stopped reading but kept the connection"
            break
        except (OSError, ssl.SSLError) as e:
            outcome = f"disconnected ({type(e).__name__})"
            break
        sent += len(batch)
        if sent % (50 * len(batch)) == 0:
            peak = max(peak, rss_kib(args.pid))
    peak = max(peak, rss_kib(args.pid))
    print(json.dumps({
        "result": outcome, "disconnected": outcome.startswith("disconnected"), "ping_bytes": sent,
        "seconds": round(time.monotonic() - start, 2), "rss_baseline_kib": baseline, "rss_peak_kib": peak,
        "rss_growth_kib": peak - baseline,
    }))


def pinger(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(args.ca)
    ctx.load_cert_chain(args.cert, args.key)
    raw = socket.socket(family_of(args.target), socket.SOCK_STREAM)
    # A small receive window, so the pongs back up into the server's buffers soon.
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(5)
    try:
        raw.connect((args.target, args.port))
        tls = ctx.wrap_socket(raw, server_hostname=args.server_name)
        software = b"hostile pinger"
        tls.sendall(frame(1, bytes([1, len(software)]) + software))
        # The first grant proves the channel is up (the subscriber was accepted); nothing is read after it.
        got = b""
        while len(got) < 4 or got[1] != 2:
            chunk = tls.recv(4096)
            if not chunk:
                raise ConnectionError("closed by the server")
            got += chunk
    except (OSError, ssl.SSLError) as e:
        print(json.dumps({"result": f"no control channel before the first grant: {e}", "disconnected": False}))
        return
    ping_without_reading(tls, args, "server")


def flooder(args):
    """A concentrator (a real server certificate) that grants a key, then pings the gateway
    and never reads its pongs."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(args.cert, args.key)
    ctx.load_verify_locations(args.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit the small receive window: the gateway's pongs back up soon.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.bind((args.listen, args.port))
    listener.listen(4)
    listener.settimeout(args.accept_timeout)
    if args.ready:
        with open(args.ready, "w") as f:
            f.write("listening\n")
    deadline = time.monotonic() + args.accept_timeout
    while True:
        try:
            raw, _ = listener.accept()
            raw.settimeout(5)
            tls = ctx.wrap_socket(raw, server_side=True)
            break
        except (ssl.SSLError, OSError) as e:
            if isinstance(e, socket.timeout) or time.monotonic() > deadline:
                print(json.dumps({"result": f"no gateway handshake: {e}"}))
                return
    tls.recv(4096)  # the gateway's hello
    key = os.urandom(32)
    tls.sendall(frame(2, struct.pack("!I", 7) + key + struct.pack("!IQ", 3600, 0)))
    ping_without_reading(tls, args, "the gateway")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("stall")
    s.add_argument("--sources", required=True, help="SOURCE=TARGET,... one pair per source address")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--per-source", type=int, default=40)
    s.add_argument("--hold", type=float, default=8.0, help="seconds; keep under the handshake timeout")
    s.add_argument("--pid", type=int, required=True, help="the concentrator, whose descriptors are sampled")
    s.add_argument("--ready", help="file written with the number connected once all are open")
    g = sub.add_parser("garbage")
    g.add_argument("--sources", required=True)
    g.add_argument("--port", type=int, required=True)
    g.add_argument("--count", type=int, default=1000)
    g.add_argument("--timeout", type=float, default=60)
    q = sub.add_parser("pinger")
    q.add_argument("--target", required=True)
    q.add_argument("--port", type=int, required=True)
    q.add_argument("--ca", required=True)
    q.add_argument("--cert", required=True)
    q.add_argument("--key", required=True)
    q.add_argument("--server-name", required=True)
    q.add_argument("--pid", type=int, required=True, help="the concentrator, whose RSS is sampled")
    q.add_argument("--max-bytes", type=int, default=40_000_000)
    q.add_argument("--timeout", type=float, default=60)
    c = sub.add_parser("flooder")
    c.add_argument("--listen", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--ca", required=True)
    c.add_argument("--cert", required=True)
    c.add_argument("--key", required=True)
    c.add_argument("--pid", type=int, required=True, help="the gateway, whose RSS is sampled")
    c.add_argument("--ready", help="file written once listening")
    c.add_argument("--accept-timeout", type=float, default=30)
    c.add_argument("--max-bytes", type=int, default=40_000_000)
    c.add_argument("--timeout", type=float, default=60)
    args = p.parse_args()
    {"stall": stall, "garbage": garbage, "pinger": pinger, "flooder": flooder}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
