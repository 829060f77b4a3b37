#!/usr/bin/env python3
"""Traffic endpoints for braid's namespace tests and lab.

serve    an origin server speaking a tiny protocol: "GET N\\n" (server sends N random bytes, then
         half-closes), "PUT N\\n" (server reads to EOF, answers with the sha256 of what it got).
         A PUT whose payload is a pattern (client --pattern SEED) is also checked record by record:
         the log says where the first wrong byte is and where the bytes found there were sent from.
         Every connection and every transfer's sha256 is logged, so tests compare what one end
         sent with what the other end received.
client   the LAN side of a GET or PUT; prints one JSON line (bytes, sha256, seconds, result).
convert  speaks RFC 8803 Convert directly to a concentrator (independent implementation of the
         wire format, HMAC included) to test refusals that the gateway would never send.
"""
import argparse, base64, hashlib, hmac, json, os, socket, struct, sys, threading, time

IPPROTO_MPTCP = 262
CHUNK = 1 << 18
# A pattern payload is 16-byte records: 4 bytes MARK, 4 bytes seed, 8 bytes the record's own offset
# in the stream, all big-endian. Where a corrupt transfer's wrong bytes come from then shows: its
# own stream earlier or later (reordered or duplicated data), another transfer (bytes of another
# connection), or nothing known (random bytes: the churn's, iperf3's, a leftover).
MARK = b"BRPT"
RECORD = 16


def pattern(seed, offset, n):
    """n bytes of seed's pattern from stream offset `offset`."""
    first = offset // RECORD
    count = (offset + n + RECORD - 1) // RECORD - first
    raw = b"".join(MARK + struct.pack(">IQ", seed, (first + i) * RECORD) for i in range(count))
    start = offset - first * RECORD
    return raw[start:start + n]


def pattern_diagnosis(data, seed):
    """None when `data` is seed's whole pattern stream; else where it first differs and what is there.

    Returns a dict: first_bad (offset), bad_bytes (how many of the next 64 KiB differ), and for the
    bytes found at first_bad: "from" = "own stream" with shift (sender offset minus receiver
    offset), "transfer SEED" with its offset, or "unknown" when no record mark is near;
    unknown_bytes_before when random bytes come first. A leftover of k bytes in a relay's pipe shows
    as k unknown bytes, then the own stream with shift -k; reordering as the own stream, shifted."""
    want = pattern(seed, 0, len(data))
    if data == want:
        return None
    bad = next((i for i in range(len(data)) if data[i] != want[i]), len(data))
    window = data[bad:bad + 65536]
    result = {"seed": seed, "first_bad": bad,
              "bad_bytes_in_next_64k": sum(1 for a, b in zip(window, want[bad:bad + 65536]) if a != b)}
    def record(at):
        """(seed, offset) of the record at `at` if it and the next one are whole and agree."""
        if at < 0 or at + 2 * RECORD > len(data) or data[at + RECORD:at + RECORD + 4] != MARK:
            return None
        s1, o1 = struct.unpack(">IQ", data[at + 4:at + RECORD])
        s2, o2 = struct.unpack(">IQ", data[at + RECORD + 4:at + 2 * RECORD])
        return (s1, o1) if s1 == s2 and o2 == o1 + RECORD else None

    # The first whole record at or after the first wrong byte that is not the one expected there,
    # found by its mark at any alignment.
    at, found = max(0, bad - RECORD + 1), None
    while found is None:
        at = data.find(MARK, at, bad + 4096)
        if at < 0:
            break
        if data[at:at + RECORD] != want[at:at + RECORD]:
            found = record(at)
        if found is None:
            at += 1
    if found is None:
        result["from"] = "unknown"
    else:
        other, offset = found
        if at - bad >= RECORD:
            # No record starts in the first wrong bytes: they are from no pattern at all.
            result["unknown_bytes_before"] = at - bad
        if other == seed:
            result.update({"from": "own stream", "at": at, "shift": offset - at})
        else:
            result.update({"from": f"transfer {other}", "at": at, "their_offset": offset})
    # Where this stream's own records start again after the wrong bytes, and shifted by how much.
    again = data.find(MARK + struct.pack(">I", seed), bad)
    while again >= 0 and record(again) is None:
        again = data.find(MARK + struct.pack(">I", seed), again + 1)
    if again >= 0:
        result["own_stream_again"] = {"at": again, "shift": record(again)[1] - again}
    return result


def log_line(path, record):
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")


# A pattern PUT up to this size is kept whole by the server for its diagnosis.
PATTERN_LIMIT = 64 << 20


def serve(args):
    family = socket.AF_INET6 if ":" in args.listen else socket.AF_INET
    srv = socket.socket(family, socket.SOCK_STREAM, IPPROTO_MPTCP if args.mptcp else 0)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    if args.tfo:
        srv.setsockopt(socket.IPPROTO_TCP, 23, 64)  # TCP_FASTOPEN
        srv.setsockopt(socket.IPPROTO_TCP, 34, 1)  # TCP_FASTOPEN_NO_COOKIE
    srv.bind((args.listen, args.port))
    srv.listen(128)

    def handle(conn, peer):
        log_line(args.log, {"event": "connection", "peer": peer[0]})
        try:
            conn.settimeout(args.timeout)
            header = b""
            while not header.endswith(b"\n") and len(header) < 64:
                b = conn.recv(1)
                if not b:
                    return
                header += b
            # "PUT N SEED": the payload is SEED's pattern (client --pattern).
            verb, n, *seed = header.decode().split()
            n = int(n)
            seed = int(seed[0]) if seed else None
            if verb == "GET":
                h, sent = hashlib.sha256(), 0
                while sent < n:
                    block = os.urandom(min(CHUNK, n - sent))
                    conn.sendall(block)
                    h.update(block)
                    sent += len(block)
                log_line(args.log, {"event": "sent", "bytes": sent, "sha256": h.hexdigest()})
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(CHUNK):
                    pass
            elif verb == "PUT":
                h, got, kept = hashlib.sha256(), 0, []
                while True:
                    b = conn.recv(CHUNK)
                    if not b:
                        break
                    h.update(b)
                    got += len(b)
                    if got <= PATTERN_LIMIT:
                        kept.append(b)
                record = {"event": "received", "bytes": got, "sha256": h.hexdigest()}
                if seed is not None and got <= PATTERN_LIMIT:
                    record["pattern"] = pattern_diagnosis(b"".join(kept), seed) or "intact"
                # Only after EOF: this is what proves the half-close crossed the relay.
                log_line(args.log, record)
                conn.sendall(f"{got} {h.hexdigest()}\n".encode())
                conn.shutdown(socket.SHUT_WR)
        except (OSError, ValueError) as e:
            log_line(args.log, {"event": "error", "error": str(e)})
        finally:
            conn.close()

    deadline = time.time() + args.lifetime
    srv.settimeout(1.0)
    while time.time() < deadline:
        try:
            conn, peer = srv.accept()
        except socket.timeout:
            continue
        threading.Thread(target=handle, args=(conn, peer), daemon=True).start()


def client(args):
    family = socket.AF_INET6 if ":" in args.connect else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM, IPPROTO_MPTCP if args.mptcp else 0)
    if args.tfo:
        s.setsockopt(socket.IPPROTO_TCP, 30, 1)  # TCP_FASTOPEN_CONNECT
        s.setsockopt(socket.IPPROTO_TCP, 34, 1)  # TCP_FASTOPEN_NO_COOKIE
    s.settimeout(args.timeout)
    start = time.time()
    result = {"result": "ok"}
    h, count = hashlib.sha256(), 0
    try:
        s.connect((args.connect, args.port))
        if args.get is not None:
            s.sendall(f"GET {args.get}\n".encode())
            while True:
                b = s.recv(CHUNK)
                if not b:
                    break
                if count == 0:
                    result["first_byte"] = round(time.time() - start, 4)  # time to first byte
                h.update(b)
                count += len(b)
            result.update(bytes=count, sha256=h.hexdigest())
        else:
            seed = "" if args.pattern is None else f" {args.pattern}"
            s.sendall(f"PUT {args.put}{seed}\n".encode())
            while count < args.put:
                n = min(CHUNK, args.put - count)
                block = os.urandom(n) if args.pattern is None else pattern(args.pattern, count, n)
                s.sendall(block)
                h.update(block)
                count += len(block)
            s.shutdown(socket.SHUT_WR)
            answer = b""
            while True:
                b = s.recv(4096)
                if not b:
                    break
                answer += b
            result.update(bytes=count, sha256=h.hexdigest(), answer=answer.decode().strip())
    except ConnectionResetError:
        result["result"] = "reset"
    except ConnectionRefusedError:
        result["result"] = "refused"
    except socket.timeout:
        result["result"] = "timeout"
    except OSError as e:
        result["result"] = "error"
        result["error"] = str(e)
    result["seconds"] = round(time.time() - start, 3)
    result.setdefault("bytes", count)
    print(json.dumps(result))


MAC_LABEL = b"braid convert auth v2"


def convert_request(key, dest, dport, ts_ms, nonce, info=False, identity=""):
    """Connect TLV + (Info) + braid's authentication TLV (type 192). The MAC covers a label, the
    concentrator's identity (length byte + UTF-8, not sent) and the message with the MAC zeroed."""
    ip = socket.inet_pton(socket.AF_INET6, dest) if ":" in dest else b"\0" * 10 + b"\xff\xff" + socket.inet_aton(dest)
    tlvs = bytes([10, 5]) + struct.pack("!H", dport) + ip
    if info:
        tlvs += bytes([1, 1, 0, 0])
    auth_wo_mac = bytes([192, 16, 0, 0]) + struct.pack("!IQ", 0, ts_ms) + nonce
    total = 4 + len(tlvs) + len(auth_wo_mac) + 32
    msg = bytes([1, total // 4, 0, 0]) + tlvs + auth_wo_mac + b"\0" * 32
    name = identity.encode()
    mac = hmac.new(key, MAC_LABEL + bytes([len(name)]) + name + msg, hashlib.sha256).digest()
    return msg[:-32] + mac


def convert(args):
    key = base64.b64decode(open(args.psk_file).read().strip())
    now = int(time.time() * 1000)
    nonce = os.urandom(16)
    if args.mode == "stale":
        now -= 120_000
    identity = args.connect if args.identity is None else args.identity
    msg = convert_request(key, args.dest, args.dport, now, nonce, info=True, identity=identity)
    if args.load:
        # A request captured earlier (--save): sent again byte for byte, as an attacker would.
        msg = bytes.fromhex(open(args.load).read().strip())
    elif args.save:
        with open(args.save, "w") as f:
            f.write(msg.hex() + "\n")
    if args.hold > 1:
        return convert_hold(args, msg)
    if args.mode == "badmac":
        msg = msg[:-1] + bytes([msg[-1] ^ 1])
    elif args.mode == "noauth":
        msg = bytes([1, 6, 0, 0]) + msg[4:24]
    elif args.mode == "garbage":
        msg = b"GET / HTTP/1.1\r\n\r\n"
    sends = [msg, msg] if args.mode == "replay" else [msg]
    replies = []
    for i, m in enumerate(sends):
        s = socket.socket(socket.AF_INET6 if ":" in args.connect else socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
        s.settimeout(args.timeout)
        reply = b""
        try:
            if args.tfo:
                # TCP Fast Open: with a cookie from an earlier connection the whole Convert message
                # rides in the SYN; without one the SYN asks for a cookie and the data follows.
                s.sendto(m, socket.MSG_FASTOPEN, (args.connect, args.port))
            else:
                s.connect((args.connect, args.port))
                s.sendall(m)
            # Read the reply message only: on success the relay stays open behind it.
            reply, rest = read_reply(s)
            parsed = parse_reply(reply)
            if args.get and parsed["reply"] == "ok" and i == len(sends) - 1:
                parsed.update(convert_get(s, args.get, rest))
        except (ConnectionResetError, ConnectionRefusedError, socket.timeout) as e:
            replies.append({"reply": type(e).__name__})
            continue
        finally:
            s.close()
        replies.append(parsed)
    print(json.dumps(replies[-1] if args.mode != "replay" else {"first": replies[0], **replies[-1]}))


def read_reply(s):
    """The reply message only (on success the relay stays open behind it), and what followed it."""
    reply = b""
    while len(reply) < 4 or len(reply) < reply[1] * 4:
        b = s.recv(1024)
        if not b:
            break
        reply += b
    n = reply[1] * 4 if len(reply) >= 4 else len(reply)
    return reply[:n], reply[n:]


def convert_get(s, n, rest):
    """Through an accepted request: the origin's GET N, read to EOF; bytes, sha256 and seconds."""
    start = time.time()
    s.sendall(f"GET {n}\n".encode())
    h, got = hashlib.sha256(rest), len(rest)
    while True:
        b = s.recv(CHUNK)
        if not b:
            break
        h.update(b)
        got += len(b)
    return {"bytes": got, "sha256": h.hexdigest(), "seconds": round(time.time() - start, 3),
            "result": "ok" if got == n else "short"}


def convert_hold(args, msg):
    """--hold N: N connections with fresh nonces, all kept open until every reply is in (a
    class's max_sessions counts open sessions); prints the replies in order."""
    key = base64.b64decode(open(args.psk_file).read().strip())
    identity = args.connect if args.identity is None else args.identity
    socks, replies = [], []
    try:
        for _ in range(args.hold):
            m = convert_request(key, args.dest, args.dport, int(time.time() * 1000), os.urandom(16), True, identity)
            s = socket.socket(socket.AF_INET6 if ":" in args.connect else socket.AF_INET, socket.SOCK_STREAM,
                              IPPROTO_MPTCP)
            s.settimeout(args.timeout)
            socks.append(s)
            try:
                s.connect((args.connect, args.port))
                s.sendall(m)
                replies.append(parse_reply(read_reply(s)[0]))
            except (ConnectionResetError, ConnectionRefusedError, socket.timeout) as e:
                replies.append({"reply": type(e).__name__})
    finally:
        for s in socks:
            s.close()
    print(json.dumps({"replies": replies}))


def parse_reply(b):
    if len(b) < 4 or b[0] != 1:
        return {"reply": "none", "raw": b.hex()}
    total = b[1] * 4
    out = {"reply": "ok", "tlvs": []}
    off = 4
    while off + 2 <= min(total, len(b)):
        t, l = b[off], b[off + 1] * 4
        if l == 0:
            break
        out["tlvs"].append(t)
        if t == 30:
            out["reply"] = "error"
            out["code"] = b[off + 2]
        if t == 21:
            out["extensions"] = [k for k in b[off + 4:off + l] if k]
        off += l
    return out


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--listen", default="::")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--log")
    s.add_argument("--mptcp", action="store_true")
    s.add_argument("--tfo", action="store_true", help="accept TCP Fast Open without cookie")
    s.add_argument("--timeout", type=float, default=120)
    s.add_argument("--lifetime", type=float, default=3600)
    c = sub.add_parser("client")
    c.add_argument("--connect", required=True)
    c.add_argument("--port", type=int, required=True)
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("--get", type=int)
    g.add_argument("--put", type=int)
    c.add_argument("--pattern", type=int, metavar="SEED",
                   help="PUT a pattern (16-byte records naming SEED and their offset) instead of random bytes")
    c.add_argument("--mptcp", action="store_true")
    c.add_argument("--tfo", action="store_true", help="TCP Fast Open without cookie")
    c.add_argument("--timeout", type=float, default=120)
    v = sub.add_parser("convert")
    v.add_argument("--connect", required=True)
    v.add_argument("--port", type=int, required=True)
    v.add_argument("--psk-file", required=True)
    v.add_argument("--dest", required=True)
    v.add_argument("--dport", type=int, required=True)
    v.add_argument("--mode", choices=["valid", "badmac", "noauth", "stale", "replay", "garbage"], default="valid")
    v.add_argument("--timeout", type=float, default=10)
    v.add_argument("--tfo", action="store_true", help="send the request in the SYN (TCP Fast Open, with a cookie)")
    v.add_argument("--identity", help="concentrator name the MAC is bound to (default: the --connect address)")
    v.add_argument("--save", help="write the sealed request (hex) to this file")
    v.add_argument("--load", help="send this captured request (hex) instead of sealing one")
    v.add_argument("--get", type=int, help="once accepted, GET this many bytes from the origin; sha256 them")
    v.add_argument("--hold", type=int, default=1, help="open this many sessions at once, keep them open")
    a = p.parse_args()
    {"serve": serve, "client": client, "convert": convert}[a.cmd](a)


if __name__ == "__main__":
    main()
