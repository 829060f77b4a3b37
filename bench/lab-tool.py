#!/usr/bin/env python3
"""Stand-in for `braid-lab` (Sources/braid-lab) used by bench/bench.sh while the native tool is
missing: the same sub-commands, options and one-line JSON outputs, in Python (slower: a CPU-bound
relay measurement made with it is bounded by this script, not by the relay).

serve  --listen A --port P [--mptcp] [--log F] [--verify sha256|none]
       "GET N\\n": sends N bytes then half-closes; "PUT N\\n": reads to EOF, answers "N SHA\\n".
get    --connect A --port P --bytes N [--mptcp] [--verify ...] [--timeout S]
put    --connect A --port P --bytes N [--mptcp] [--verify ...] [--timeout S]
rate   --connect A --port P --seconds S [--concurrency C] [--bytes B] [--mptcp]
hold   --connect A --port P --count N [--seconds S] [--mptcp] [--rate R]
ttfb   --connect A --port P [--count K] [--bytes B] [--mptcp]
"""
import argparse, hashlib, json, os, signal, socket, statistics, sys, threading, time

IPPROTO_MPTCP = 262
CHUNK = 1 << 18
# Payload: a random block of a size prime to CHUNK, sent cyclically, so a reordering or a lost
# chunk changes the sha256 while generating the bytes costs nothing.
PATTERN = os.urandom(CHUNK + 4099)


def payload(offset, n):
    """n bytes of the cyclic payload starting at stream offset `offset`."""
    start = offset % len(PATTERN)
    out = PATTERN[start:start + n]
    while len(out) < n:
        out += PATTERN[:n - len(out)]
    return out


def new_socket(addr, mptcp):
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    return socket.socket(family, socket.SOCK_STREAM, IPPROTO_MPTCP if mptcp else 0)


def log_line(path, record):
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")


def serve(a):
    srv = new_socket(a.listen, a.mptcp)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if ":" in a.listen:
        srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    srv.bind((a.listen, a.port))
    srv.listen(4096)
    threading.stack_size(256 * 1024)  # thousands of idle connections (hold) means thousands of threads
    verify = a.verify == "sha256"

    def handle(conn):
        try:
            header = b""
            while not header.endswith(b"\n") and len(header) < 64:
                b = conn.recv(1)
                if not b:
                    return
                header += b
            verb, n = header.decode().split()
            n = int(n)
            h = hashlib.sha256() if verify else None
            if verb == "GET":
                sent = 0
                while sent < n:
                    block = payload(sent, min(CHUNK, n - sent))
                    conn.sendall(block)
                    if h:
                        h.update(block)
                    sent += len(block)
                log_line(a.log, {"event": "sent", "bytes": sent, "sha256": h.hexdigest() if h else "none"})
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(CHUNK):
                    pass
            elif verb == "PUT":
                got, buf = 0, bytearray(CHUNK)
                view = memoryview(buf)
                while True:
                    k = conn.recv_into(buf)
                    if not k:
                        break
                    if h:
                        h.update(view[:k])
                    got += k
                digest = h.hexdigest() if h else "none"
                log_line(a.log, {"event": "received", "bytes": got, "sha256": digest})
                conn.sendall(f"{got} {digest}\n".encode())
                conn.shutdown(socket.SHUT_WR)
        except (OSError, ValueError) as e:
            log_line(a.log, {"event": "error", "error": str(e)})
        finally:
            conn.close()

    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def get(a):
    s = new_socket(a.connect, a.mptcp)
    s.settimeout(a.timeout)
    h = hashlib.sha256() if a.verify == "sha256" else None
    out, count, ttfb = {"result": "ok"}, 0, None
    start = time.monotonic()
    try:
        s.connect((a.connect, a.port))
        s.sendall(f"GET {a.bytes}\n".encode())
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while True:
            k = s.recv_into(buf)
            if not k:
                break
            if ttfb is None:
                ttfb = time.monotonic() - start
            if h:
                h.update(view[:k])
            count += k
        if count != a.bytes:
            out["result"] = "short"
    except OSError as e:
        out.update(result="error", error=str(e))
    seconds = time.monotonic() - start
    out.update(bytes=count, sha256=h.hexdigest() if h else "none", seconds=round(seconds, 4),
               ttfb_ms=round((ttfb or 0) * 1000, 3), mbps=round(count * 8 / seconds / 1e6, 2))
    print(json.dumps(out))


def put(a):
    s = new_socket(a.connect, a.mptcp)
    s.settimeout(a.timeout)
    h = hashlib.sha256() if a.verify == "sha256" else None
    out, count, answer = {"result": "ok"}, 0, b""
    start = time.monotonic()
    try:
        s.connect((a.connect, a.port))
        s.sendall(f"PUT {a.bytes}\n".encode())
        while count < a.bytes:
            block = payload(count, min(CHUNK, a.bytes - count))
            s.sendall(block)
            if h:
                h.update(block)
            count += len(block)
        s.shutdown(socket.SHUT_WR)
        while True:
            b = s.recv(4096)
            if not b:
                break
            answer += b
        fields = answer.decode().split()
        if len(fields) != 2 or int(fields[0]) != count or (h and fields[1] != h.hexdigest()):
            out["result"] = "mismatch"
    except OSError as e:
        out.update(result="error", error=str(e))
    seconds = time.monotonic() - start
    out.update(bytes=count, sha256=h.hexdigest() if h else "none", answer=answer.decode().strip(),
               seconds=round(seconds, 4), mbps=round(count * 8 / seconds / 1e6, 2))
    print(json.dumps(out))


def one_exchange(a, n):
    """connect, GET n, read to EOF; returns (connect seconds, first byte seconds, total seconds)."""
    s = new_socket(a.connect, a.mptcp)
    s.settimeout(10)
    t0 = time.monotonic()
    try:
        s.connect((a.connect, a.port))
        t1 = time.monotonic()
        s.sendall(f"GET {n}\n".encode())
        first, got = None, 0
        while True:
            b = s.recv(65536)
            if not b:
                break
            if first is None:
                first = time.monotonic()
            got += len(b)
        if got != n:
            raise OSError("short")
        return t1 - t0, (first or time.monotonic()) - t0, time.monotonic() - t0
    finally:
        s.close()


def percentile(values, p):
    if not values:
        return 0
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def rate(a):
    deadline = time.monotonic() + a.seconds
    lat, fails, lock = [], [0], threading.Lock()

    def worker():
        while time.monotonic() < deadline:
            try:
                _, _, total = one_exchange(a, a.bytes)
                with lock:
                    lat.append(total)
            except OSError:
                with lock:
                    fails[0] += 1
    start = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(a.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - start
    print(json.dumps({"result": "ok" if lat else "error", "connections": len(lat), "failures": fails[0],
                      "per_second": round(len(lat) / seconds, 1), "seconds": round(seconds, 3),
                      "p50_ms": round(percentile(lat, 50) * 1000, 3), "p99_ms": round(percentile(lat, 99) * 1000, 3)}))


def hold(a):
    socks, fails = [], 0
    start = time.monotonic()
    deadline = start + a.seconds
    for i in range(a.count):
        if time.monotonic() > deadline:
            fails += a.count - i
            break
        if a.rate:
            pause = start + i / a.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        s = new_socket(a.connect, a.mptcp)
        s.settimeout(10)
        try:
            s.connect((a.connect, a.port))
            # A PUT that never ends: every hop of the chain has to connect and carry the header,
            # then the session stays idle until the end.
            s.sendall(b"PUT 0\n")
            socks.append(s)
        except OSError:
            fails += 1
            s.close()
    print(json.dumps({"result": "ok" if not fails else "partial", "open": len(socks), "failures": fails,
                      "seconds": round(time.monotonic() - start, 3)}), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(3600)


def ttfb(a):
    connects, firsts = [], []
    for _ in range(a.count):
        try:
            c, f, _ = one_exchange(a, a.bytes)
            connects.append(c * 1000)
            firsts.append(f * 1000)
        except OSError:
            pass
    ok = len(firsts) == a.count
    print(json.dumps({"result": "ok" if ok else "error", "count": len(firsts),
                      "median_ms": round(statistics.median(firsts), 3) if firsts else 0,
                      "min_ms": round(min(firsts), 3) if firsts else 0, "max_ms": round(max(firsts), 3) if firsts else 0,
                      "connect_ms_median": round(statistics.median(connects), 3) if connects else 0}))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(q, needs_bytes=False):
        q.add_argument("--connect", required=True)
        q.add_argument("--port", type=int, required=True)
        q.add_argument("--mptcp", action="store_true")
        if needs_bytes:
            q.add_argument("--bytes", type=int, required=True)
            q.add_argument("--verify", choices=["sha256", "none"], default="sha256")
            q.add_argument("--timeout", type=float, default=120)
    s = sub.add_parser("serve")
    s.add_argument("--listen", default="::")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--mptcp", action="store_true")
    s.add_argument("--log")
    s.add_argument("--verify", choices=["sha256", "none"], default="sha256")
    common(sub.add_parser("get"), True)
    common(sub.add_parser("put"), True)
    r = sub.add_parser("rate")
    common(r)
    r.add_argument("--seconds", type=float, default=5)
    r.add_argument("--concurrency", type=int, default=8)
    r.add_argument("--bytes", type=int, default=1)
    h = sub.add_parser("hold")
    common(h)
    h.add_argument("--count", type=int, required=True)
    h.add_argument("--seconds", type=float, default=120)
    h.add_argument("--rate", type=float, default=0)
    t = sub.add_parser("ttfb")
    common(t)
    t.add_argument("--count", type=int, default=10)
    t.add_argument("--bytes", type=int, default=1)
    a = p.parse_args()
    {"serve": serve, "get": get, "put": put, "rate": rate, "hold": hold, "ttfb": ttfb}[a.cmd](a)


if __name__ == "__main__":
    main()
