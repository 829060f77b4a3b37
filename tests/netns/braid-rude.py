#!/usr/bin/env python3
"""Rude peers for braid's namespace tests: clients and an origin that reset, half-close and stall
at random points, to prove that what one connection does ends that connection only.

client   opens --count connections (--parallel at a time) to an origin speaking braid-traffic.py's
         protocol ("GET N\\n", "PUT N\\n") and misbehaves on each, a mode drawn from --modes:
           connect-reset   resets right after connecting
           download-reset  asks for N bytes, reads a random part of them, resets
           upload-reset    announces N bytes, sends a random part of them, resets
           stall           asks for N bytes, reads nothing for a while (back-pressure), resets
           half-close-reset
                           asks for N bytes, half-closes, reads a random part of them, resets
                           (the reset reaches a socket that already saw the FIN: EPIPE, not
                           ECONNRESET, for the relay's next write)
           half-close      sends a whole upload, half-closes, reads the answer; the one polite
                           mode: the origin's sha256 must equal what was sent
         Prints one JSON line: connections per mode, failures (connections that could not be
         opened, half-close uploads whose answer was wrong, connections not made by --deadline)
         and their first reasons.
origin   serves the same protocol rudely: per connection, a mode drawn at random:
           reset-at-once   resets before reading anything
           reset-mid       reads the request, sends a random part of a GET (or reads a random part
                           of a PUT), resets
           half-close      half-closes right after the request, reads a random part of what
                           follows, resets
           stall           reads the request, sends nothing for a while, resets
A reset is close() with SO_LINGER {on, 0}: the kernel sends RST instead of FIN.
"""
import argparse, hashlib, json, os, random, socket, struct, sys, threading, time

CHUNK = 1 << 16
LINGER_RESET = struct.pack("ii", 1, 0)


def reset(sock):
    """Closes with a RST, the way a browser closing a tab or a crashing server does."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    except OSError:
        pass
    sock.close()


def read_some(sock, limit, deadline):
    """Reads up to `limit` bytes or until EOF, an error or the deadline; returns the count."""
    got = 0
    while got < limit and time.time() < deadline:
        try:
            b = sock.recv(min(CHUNK, limit - got))
        except OSError:
            return got
        if not b:
            return got
        got += len(b)
    return got


def send_some(sock, limit, deadline):
    """Sends `limit` random bytes or until an error or the deadline; returns their sha256 and count."""
    h, sent = hashlib.sha256(), 0
    while sent < limit and time.time() < deadline:
        block = os.urandom(min(CHUNK, limit - sent))
        try:
            sock.sendall(block)
        except OSError:
            break
        h.update(block)
        sent += len(block)
    return h.hexdigest(), sent


def client_one(args, mode, rng):
    """One rude connection; returns None or the reason it counts as a failure."""
    family = socket.AF_INET6 if ":" in args.connect else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # A relay that is gone leaves SYNs unanswered: a short connect timeout keeps the run bounded.
    sock.settimeout(min(args.timeout, 5))
    deadline = time.time() + args.timeout
    try:
        sock.connect((args.connect, args.port))
        sock.settimeout(args.timeout)
    except OSError as e:
        sock.close()
        return f"{mode}: connect: {e}"
    try:
        if mode == "connect-reset":
            pass
        elif mode == "download-reset":
            sock.sendall(f"GET {args.size}\n".encode())
            read_some(sock, rng.randrange(0, args.size // 4 + 1), deadline)
        elif mode == "upload-reset":
            sock.sendall(f"PUT {args.size}\n".encode())
            send_some(sock, rng.randrange(0, args.size // 4 + 1), deadline)
        elif mode == "half-close-reset":
            sock.sendall(f"GET {args.size}\n".encode())
            sock.shutdown(socket.SHUT_WR)
            read_some(sock, rng.randrange(0, args.size // 4 + 1), deadline)
        elif mode == "stall":
            sock.sendall(f"GET {args.size}\n".encode())
            time.sleep(rng.uniform(0.2, args.stall))
        elif mode == "half-close":
            n = rng.randrange(1, args.size // 8 + 2)
            sock.sendall(f"PUT {n}\n".encode())
            digest, sent = send_some(sock, n, deadline)
            sock.shutdown(socket.SHUT_WR)
            answer = b""
            while time.time() < deadline:
                b = sock.recv(256)
                if not b:
                    break
                answer += b
            if answer.decode(errors="replace").split() != [str(sent), digest]:
                return f"half-close: sent {sent} bytes sha256 {digest}, origin answered {answer[:100]!r}"
    except OSError as e:
        if mode == "half-close":
            return f"half-close: {e}"
    finally:
        reset(sock)
    return None


def client(args):
    modes = args.modes.split(",")
    rng = random.Random(args.seed)
    plan = [(rng.choice(modes), rng.randrange(1 << 30)) for _ in range(args.count)]
    counts = {m: 0 for m in modes}
    failures = []
    lock = threading.Lock()
    work = iter(plan)

    stop = time.time() + args.deadline

    def worker():
        while time.time() < stop:
            with lock:
                item = next(work, None)
            if item is None:
                return
            mode, seed = item
            why = client_one(args, mode, random.Random(seed))
            with lock:
                counts[mode] += 1
                if why:
                    failures.append(why)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if sum(counts.values()) < args.count:
        failures.append(f"only {sum(counts.values())} of {args.count} connections within {args.deadline} s")
    print(json.dumps({"connections": sum(counts.values()), "modes": counts, "failures": len(failures),
                      "first_failures": failures[:3]}))
    return 1 if failures else 0


def origin(args):
    family = socket.AF_INET6 if ":" in args.listen else socket.AF_INET
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    srv.bind((args.listen, args.port))
    srv.listen(256)
    modes = ["reset-at-once", "reset-mid", "half-close", "stall"]
    rng = random.Random(args.seed)

    def handle(conn, mode, r):
        conn.settimeout(args.timeout)
        deadline = time.time() + args.timeout
        try:
            if mode == "reset-at-once":
                return
            header = b""
            while not header.endswith(b"\n") and len(header) < 64:
                b = conn.recv(1)
                if not b:
                    return
                header += b
            verb, n = header.decode().split()
            n = int(n)
            if mode == "reset-mid":
                if verb == "GET":
                    send_some(conn, r.randrange(0, n + 1), deadline)
                else:
                    read_some(conn, r.randrange(0, n + 1), deadline)
            elif mode == "half-close":
                conn.shutdown(socket.SHUT_WR)
                read_some(conn, r.randrange(0, n + 1), deadline)
            elif mode == "stall":
                time.sleep(r.uniform(0.2, args.stall))
        except (OSError, ValueError):
            pass
        finally:
            reset(conn)

    deadline = time.time() + args.lifetime
    srv.settimeout(1.0)
    while time.time() < deadline:
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            continue
        mode = rng.choice(modes)
        threading.Thread(target=handle, args=(conn, mode, random.Random(rng.randrange(1 << 30))), daemon=True).start()
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("client")
    c.add_argument("--connect", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--modes", default="connect-reset,download-reset,upload-reset,half-close-reset,stall,half-close")
    c.add_argument("--count", type=int, default=50)
    c.add_argument("--parallel", type=int, default=10)
    c.add_argument("--size", type=int, default=4_000_000, help="bytes a GET asks for, a PUT announces")
    c.add_argument("--stall", type=float, default=2.0, help="longest stall, seconds")
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--timeout", type=float, default=30, help="longest connection, seconds")
    c.add_argument("--deadline", type=float, default=90, help="no new connection after this many seconds")
    o = sub.add_parser("origin")
    o.add_argument("--listen", default="::")
    o.add_argument("--port", type=int, required=True)
    o.add_argument("--stall", type=float, default=2.0)
    o.add_argument("--seed", type=int, default=2)
    o.add_argument("--timeout", type=float, default=30)
    o.add_argument("--lifetime", type=float, default=600)
    args = p.parse_args()
    sys.exit(client(args) if args.cmd == "client" else origin(args))


if __name__ == "__main__":
    main()
