#!/usr/bin/env python3
"""A flood of unauthenticated data connections against a braid concentrator, for the namespace
tests: N connections opened at a steady rate from several source addresses, each of one kind:

  partial     the first bytes of a well-formed request, then silence (a stalled handshake)
  truncated   the first bytes of a request, then a half-close
  garbage     random bytes that are not Convert
  wrongkey    a whole request sealed with a random key (key id 0)
  unknownkey  a whole request sealed under a key id the concentrator does not have
  idle        nothing at all: the connection is held open until the concentrator ends it

With --fastopen the payload rides in the SYN (TCP Fast Open without a cookie, as a spoofed SYN
would carry it): no round trip is waited for, so a source that never sees the SYN-ACK still
delivers its data to a listener that accepts cookieless Fast Open.

Each connection is read until the concentrator closes it or the deadline passes; the result is
one JSON line: per kind and in total, what came back (hex) and how the connection ended (eof,
reset, open at the deadline, connect failed). Non-blocking sockets and one selector: every
connection and the whole run are bounded in time.
"""
import argparse, collections, errno, hashlib, hmac, json, os, resource, selectors, signal, socket, struct, time

TCP_FASTOPEN_NO_COOKIE = 34  # linux/tcp.h
KINDS = ["partial", "partial", "partial", "truncated", "garbage", "wrongkey", "unknownkey"]


def sealed(key, key_id, dest, dport):
    """A Convert request (Connect TLV + authentication TLV, type 192) with an HMAC under `key`."""
    ip = b"\0" * 10 + b"\xff\xff" + socket.inet_aton(dest)
    tlvs = bytes([10, 5]) + struct.pack("!H", dport) + ip
    auth = bytes([192, 16, 0, 0]) + struct.pack("!IQ", key_id, int(time.time() * 1000)) + os.urandom(16)
    total = 4 + len(tlvs) + len(auth) + 32
    msg = bytes([1, total // 4, 0, 0]) + tlvs + auth + b"\0" * 32
    return msg[:-32] + hmac.new(key, msg, hashlib.sha256).digest()


def payload(kind, dest, dport):
    if kind == "idle":
        return b""
    if kind in ("partial", "truncated"):
        return sealed(os.urandom(32), 0, dest, dport)[:30]
    if kind == "garbage":
        return bytes([0x47]) + os.urandom(63)  # 'G', as an HTTP request would start: not version 1
    if kind == "wrongkey":
        return sealed(os.urandom(32), 0, dest, dport)
    return sealed(os.urandom(32), 0x5EED, dest, dport)


class Conn:
    def __init__(self, kind, sock, started):
        self.kind, self.sock, self.started = kind, sock, started
        self.reply, self.end, self.connected, self.seconds = b"", None, False, None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--connect", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sources", required=True, help="comma-separated local addresses, used in turn")
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--rate", type=float, default=500, help="new connections per second")
    p.add_argument("--dest", default="198.18.20.2")
    p.add_argument("--dport", type=int, default=8080)
    p.add_argument("--deadline", type=float, default=20, help="seconds for the whole run")
    p.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds, used in turn")
    p.add_argument("--fastopen", action="store_true", help="send the payload in the SYN, without a cookie")
    a = p.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.count + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
    sources = a.sources.split(",")
    kinds = a.kinds.split(",")
    family = socket.AF_INET6 if ":" in a.connect else socket.AF_INET
    sel = selectors.DefaultSelector()
    conns, opened, live = [], 0, 0
    start = time.monotonic()
    stop = start + a.deadline

    def stop_now(*_):
        # SIGTERM ends the run early and still reports: what is open then counts as "open".
        nonlocal stop
        stop = 0

    signal.signal(signal.SIGTERM, stop_now)

    def finish(c, end):
        nonlocal live
        c.end, c.seconds = end, round(time.monotonic() - c.started, 3)
        sel.unregister(c.sock)
        c.sock.close()
        live -= 1

    while time.monotonic() < stop and (opened < a.count or live > 0):
        now = time.monotonic()
        while opened < a.count and opened < (now - start) * a.rate + 1:
            kind = kinds[opened % len(kinds)]
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setblocking(False)
            s.bind((sources[opened % len(sources)], 0))
            c = Conn(kind, s, time.monotonic())
            conns.append(c)
            opened += 1
            live += 1
            if a.fastopen:
                s.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN_NO_COOKIE, 1)
                try:
                    s.sendto(payload(c.kind, a.dest, a.dport), socket.MSG_FASTOPEN, (a.connect, a.port))
                    rc = 0
                except BlockingIOError:
                    rc = 0
                except OSError as e:
                    rc = e.errno
                c.connected = True
                event = selectors.EVENT_READ
            else:
                rc = s.connect_ex((a.connect, a.port))
                event = selectors.EVENT_WRITE
            if rc not in (0, errno.EINPROGRESS):
                c.end = "connect_failed"
                s.close()
                live -= 1
                continue
            sel.register(s, event, c)
        for key, _ in sel.select(timeout=0.01):
            c = key.data
            if not c.connected:
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    # Established, then reset before we looked: the concentrator's reset at accept.
                    finish(c, "reset" if err == errno.ECONNRESET else "connect_failed")
                    continue
                c.connected = True
                try:
                    data = payload(c.kind, a.dest, a.dport)
                    if data:
                        c.sock.send(data)
                    if c.kind == "truncated":
                        c.sock.shutdown(socket.SHUT_WR)
                except OSError:  # reset before the send, or before the half-close (ENOTCONN)
                    finish(c, "reset")
                    continue
                sel.modify(c.sock, selectors.EVENT_READ, c)
                continue
            try:
                b = c.sock.recv(4096)
            except ConnectionResetError:
                finish(c, "reset")
                continue
            except BlockingIOError:
                continue
            if not b:
                finish(c, "eof")
            else:
                c.reply += b
    for c in conns:
        if c.end is None:
            c.end = "open"
            c.sock.close()

    by_kind = collections.defaultdict(collections.Counter)
    total = collections.Counter()
    replies = collections.Counter()
    answered_after = collections.defaultdict(list)
    for c in conns:
        outcome = f"{c.end}:{c.reply.hex() or '-'}"
        by_kind[c.kind][outcome] += 1
        total[outcome] += 1
        if c.reply:
            replies[c.reply.hex()] += 1
            answered_after[c.kind].append(c.seconds)
    print(json.dumps({
        "connections": len(conns),
        "seconds": round(time.monotonic() - start, 3),
        "outcomes": dict(total),
        "replies": dict(replies),
        "by_kind": {k: dict(v) for k, v in by_kind.items()},
        "answered_after": {k: [min(v), max(v)] for k, v in answered_after.items()},
    }))


if __name__ == "__main__":
    main()
