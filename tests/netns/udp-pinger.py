#!/usr/bin/env python3
"""A LAN host's UDP flow, for tests/netns/office.sh: one connected UDP socket sends a numbered
request every INTERVAL seconds for DURATION seconds and reads the answers (socat on the origin
answers each with the address it saw the request come from, then the request). Prints one JSON
object: answers received, the longest time without an answer, and the segments of consecutive
answers from one source address the origin saw (wall-clock times of the first and last answer of
each), so the caller can tell which uplink carried the flow and when it moved. The same socket all along: a flow whose NAT mapping is not re-mapped stays silent.

`--refused`: sends one datagram and reports whether the kernel turned it down with ECONNREFUSED
(an ICMP port unreachable came back) and how long that took, or what answered instead.
"""
import argparse
import ipaddress
import json
import select
import socket
import sys
import time


def refused(args, family):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.connect((args.connect, args.port))
    t0 = time.monotonic()
    s.send(b"quic?\n")
    result = {"result": "timeout"}
    r, _, _ = select.select([s], [], [], args.timeout)
    if r:
        try:
            data = s.recv(2048)
            words = data.decode(errors="replace").split()
            words[0] = str(ipaddress.ip_address(words[0].strip("[]")))
            result = {"result": "answered", "data": " ".join(words)}
        except ConnectionRefusedError:
            result = {"result": "refused"}
    result["seconds"] = round(time.monotonic() - t0, 3)
    print(json.dumps(result))


def flow(args, family):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.connect((args.connect, args.port))
    start = time.monotonic()
    end = start + args.duration
    next_send = start
    seq = 0
    answered = set()
    last_answer = start
    longest_gap = 0.0
    gap_end = None
    segments = []
    errors = 0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if now >= next_send:
            seq += 1
            try:
                s.send(f"{seq}\n".encode())
            except OSError:
                errors += 1  # an ICMP error from an earlier datagram: the flow goes on
            next_send += args.interval
        r, _, _ = select.select([s], [], [], max(0.0, min(next_send, end) - time.monotonic()))
        if not r:
            continue
        try:
            data = s.recv(2048).decode(errors="replace").split()
        except OSError:
            errors += 1
            continue
        if len(data) < 2 or not data[1].isdigit() or int(data[1]) in answered:
            continue
        # socat writes IPv6 peers bracketed and in full: the address as the caller writes it.
        data[0] = str(ipaddress.ip_address(data[0].strip("[]")))
        t = time.monotonic()
        answered.add(int(data[1]))
        if t - last_answer > longest_gap:
            longest_gap, gap_end = t - last_answer, t - start
        last_answer = t
        wall = round(time.time(), 3)
        if args.ready and not segments:
            open(args.ready, "w").close()
        if not segments or segments[-1]["source"] != data[0]:
            segments.append({"source": data[0], "first": wall, "answers": 0})
        segments[-1]["last"] = wall
        segments[-1]["answers"] += 1
    # Silence at the end counts too.
    if end - last_answer > longest_gap:
        longest_gap, gap_end = end - last_answer, end - start
    print(json.dumps({
        "sent": seq, "answered": len(answered), "longest_gap": round(longest_gap, 2),
        "gap_ended_at": round(gap_end, 2) if gap_end is not None else None, "segments": segments,
        "errors": errors, "local": s.getsockname()[1],
    }))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--connect", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--timeout", type=float, default=3)
    p.add_argument("--refused", action="store_true")
    p.add_argument("--ready", help="a file created at the first answer")
    args = p.parse_args()
    family = socket.AF_INET6 if ":" in args.connect else socket.AF_INET
    (refused if args.refused else flow)(args, family)


if __name__ == "__main__":
    sys.exit(main())
