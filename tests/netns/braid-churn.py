#!/usr/bin/env python3
"""Connection churn for braid's soak suite (tests/netns/soak.sh): many short connections through
the gateway, a share of them reset on purpose by either end at a random point.

serve   the origin: "GET N\\n" sends N random bytes and half-closes; "PUT N\\n" reads to EOF and
        answers "BYTES SHA256\\n"; "RESET N\\n" sends N bytes, then resets (SO_LINGER 0) while the
        client may still be sending; "SINK N\\n" reads N bytes, then resets while the client is
        still sending. One thread per connection, each bounded by --timeout.
run     the LAN side: for --seconds, opens --rate connections per second (at most --concurrency
        open at once), each of one kind, in turn:

          get             GET of 1-64 kB, read to EOF: done when every byte arrived
          put             PUT of 1-64 kB: done when the origin's sha256 equals what was sent,
                          corrupt when it differs
          reset_get       GET of 256 kB, the client resets after a random share of it
          reset_put       PUT of 256 kB, the client resets after sending a random share of it
          reset_connect   the client resets as soon as the connection is up, before any byte
          origin_get      RESET: the origin resets after sending a random 0-64 kB
          origin_put      SINK: the origin resets after reading a random 0-64 kB of an upload

        Non-blocking sockets and one selector; every connection and the whole run are bounded in
        time. Prints one JSON line: connections opened, per kind how each ended, puts corrupt.
"""
import argparse, collections, errno, hashlib, json, os, random, selectors, socket, struct, threading, time

CHUNK = 1 << 16
KINDS = ["get", "put", "get", "put", "reset_get", "reset_put", "reset_connect", "origin_get", "origin_put"]
BLOCK = os.urandom(1 << 18)  # what every upload sends (the sha256 is over what was sent, not its randomness)


def reset(sock):
    """Closes with an RST instead of a FIN: SO_LINGER on with a zero timeout (tcp(7))."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def serve(args):
    srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    srv.bind(("::", args.port))
    srv.listen(1024)

    def handle(conn):
        try:
            conn.settimeout(args.timeout)
            header = b""
            while not header.endswith(b"\n") and len(header) < 64:
                b = conn.recv(1)
                if not b:
                    return conn.close()
                header += b
            verb, n = header.decode().split()
            n = int(n)
            if verb in ("GET", "RESET"):
                sent = 0
                while sent < n:
                    sent += conn.send(BLOCK[: min(CHUNK, n - sent)])
                if verb == "RESET":
                    return reset(conn)
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(CHUNK):
                    pass
            elif verb == "SINK":
                got = 0
                while got < n:
                    b = conn.recv(min(CHUNK, n - got))
                    if not b:
                        break
                    got += len(b)
                return reset(conn)
            elif verb == "PUT":
                h, got = hashlib.sha256(), 0
                while True:
                    b = conn.recv(CHUNK)
                    if not b:
                        break
                    h.update(b)
                    got += len(b)
                conn.sendall(f"{got} {h.hexdigest()}\n".encode())
                conn.shutdown(socket.SHUT_WR)
        except (OSError, ValueError):
            pass
        conn.close()

    deadline = time.time() + args.lifetime
    srv.settimeout(1.0)
    while time.time() < deadline:
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            continue
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


class Conn:
    """One connection of the run: what it asks, how much it has moved, and how it must end."""

    def __init__(self, kind, sock, now):
        self.kind, self.sock, self.started = kind, sock, now
        self.connected = False
        self.received = 0
        self.answer = b""
        self.out = b""  # request bytes not yet written
        self.upload = 0  # upload bytes still to send after the request
        self.sent = 0
        self.limit = None  # the client resets after this many bytes (received or sent)
        self.sha = hashlib.sha256()
        self.size = 0
        n = random.randint(1024, 65536)
        if kind == "get":
            self.size, self.out = n, f"GET {n}\n".encode()
        elif kind == "put":
            self.size, self.upload, self.out = n, n, f"PUT {n}\n".encode()
        elif kind == "reset_get":
            self.size, self.out, self.limit = 262144, b"GET 262144\n", random.randint(1, 262143)
        elif kind == "reset_put":
            self.upload, self.out, self.limit = 262144, b"PUT 262144\n", random.randint(1, 262143)
        elif kind == "origin_get":
            self.out = f"RESET {random.randint(0, 65536)}\n".encode()
            self.upload = len(BLOCK)  # the client keeps sending while the origin resets
        elif kind == "origin_put":
            self.out = f"SINK {random.randint(0, 65536)}\n".encode()
            self.upload = len(BLOCK)


now_fn = time.monotonic


def run(args):
    targets = args.connect.split(",")
    kinds = args.kinds.split(",") if args.kinds else KINDS
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise SystemExit(f"braid-churn.py: unknown kind {', '.join(unknown)} (known: {', '.join(sorted(set(KINDS)))})")
    sel = selectors.DefaultSelector()
    ended = collections.defaultdict(collections.Counter)
    opened = corrupt = 0
    corrupt_detail = []  # what the first few corrupt PUTs sent and what the origin said it got
    start = time.monotonic()
    end = start + args.seconds
    interval = 1.0 / args.rate
    next_open = start
    conns = {}

    def finish(c, outcome):
        ended[c.kind][outcome] += 1
        sel.unregister(c.sock)
        del conns[c.sock.fileno()]
        if outcome in ("client_reset",):
            reset(c.sock)
        else:
            c.sock.close()

    def on_event(c, mask):
        nonlocal corrupt
        if not c.connected:
            err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                return finish(c, "connect_failed")
            c.connected = True
            if c.kind == "reset_connect":
                return finish(c, "client_reset")
        if mask & selectors.EVENT_WRITE:
            try:
                if c.out:
                    c.out = c.out[c.sock.send(c.out):]
                while not c.out and c.upload > 0:
                    piece = BLOCK[c.sent % len(BLOCK):][: min(CHUNK, c.upload)]
                    if c.limit is not None:
                        piece = piece[: c.limit - c.sent]
                    n = c.sock.send(piece)
                    if c.kind == "put":
                        c.sha.update(piece[:n])
                    c.sent += n
                    c.upload -= n
                    if c.limit is not None and c.sent >= c.limit:
                        return finish(c, "client_reset")
                    if n < len(piece):
                        break
            except BlockingIOError:
                pass
            except OSError as e:
                return finish(c, "reset" if e.errno in (errno.ECONNRESET, errno.EPIPE) else "error")
            if not c.out and c.upload == 0:
                if c.kind == "put":
                    try:
                        c.sock.shutdown(socket.SHUT_WR)
                    except OSError:  # reset meanwhile (ENOTCONN): the read below tells how it ended
                        pass
                sel.modify(c.sock, selectors.EVENT_READ, c)
        if mask & selectors.EVENT_READ:
            try:
                b = c.sock.recv(CHUNK)
            except BlockingIOError:
                return
            except OSError as e:
                return finish(c, "reset" if e.errno == errno.ECONNRESET else "error")
            if b:
                c.received += len(b)
                if c.kind == "put":
                    c.answer += b
                if c.limit is not None and c.kind == "reset_get" and c.received >= c.limit:
                    return finish(c, "client_reset")
                return
            # EOF
            if c.kind == "get":
                return finish(c, "done" if c.received == c.size else "short")
            if c.kind == "put":
                want = f"{c.size} {c.sha.hexdigest()}"
                if c.answer.decode(errors="replace").strip() == want:
                    return finish(c, "done")
                if c.answer:
                    corrupt += 1
                    if len(corrupt_detail) < 5:
                        # The origin's byte count tells a cut passed off as an orderly end (fewer
                        # bytes) from wrong bytes (the same count, another sha256).
                        # The local port finds the session in the daemons' debug logs.
                        try:
                            port = c.sock.getsockname()[1]
                        except OSError:
                            port = None
                        corrupt_detail.append({"want": want, "answer": c.answer.decode(errors="replace").strip(),
                                               "seconds": round(now_fn() - c.started, 2), "port": port,
                                               "at": round(time.time(), 3)})
                    return finish(c, "corrupt")
                return finish(c, "short")
            return finish(c, "eof")

    while True:
        now = time.monotonic()
        while now < end and now >= next_open and len(conns) < args.concurrency:
            kind = kinds[opened % len(kinds)]
            target = targets[opened % len(targets)]
            s = socket.socket(socket.AF_INET6 if ":" in target else socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            opened += 1
            # Advanced before the connect: a connect that fails at once (no local port left, no
            # route) must not leave this loop opening sockets forever at a frozen `now`.
            next_open += interval
            c = Conn(kind, s, now)
            try:
                s.connect((target, args.port))
            except BlockingIOError:
                pass
            except OSError:
                ended[kind]["connect_failed"] += 1
                s.close()
                continue
            conns[s.fileno()] = c
            sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
        if now >= end and (not conns or now >= end + args.timeout):
            break
        if next_open < now - 1:  # fell behind (the cap on open connections): do not burst to catch up
            next_open = now
        for key, mask in sel.select(timeout=min(interval, 0.1)):
            if key.fileobj.fileno() in conns:
                on_event(key.data, mask)
        now = time.monotonic()
        for c in [c for c in conns.values() if now - c.started > args.timeout]:
            finish(c, "timeout")
    print(json.dumps({"opened": opened, "seconds": round(time.monotonic() - start, 1), "corrupt": corrupt,
                      "corrupt_detail": corrupt_detail,
                      "ended": {k: dict(v) for k, v in sorted(ended.items())}}))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--timeout", type=float, default=30)
    s.add_argument("--lifetime", type=float, default=3600)
    r = sub.add_parser("run")
    r.add_argument("--connect", required=True, help="comma-separated addresses, used in turn")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--seconds", type=float, required=True)
    r.add_argument("--rate", type=float, default=50, help="new connections per second")
    r.add_argument("--concurrency", type=int, default=200, help="most connections open at once")
    r.add_argument("--timeout", type=float, default=20, help="seconds one connection may take")
    r.add_argument("--kinds", help="comma-separated kinds to open in turn (default: all, GET and PUT twice)")
    a = p.parse_args()
    {"serve": serve, "run": run}[a.cmd](a)


if __name__ == "__main__":
    main()
