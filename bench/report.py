#!/usr/bin/env python3
"""Turns bench/bench.sh's result lines (KEY<TAB>VALUE, KEY = scenario|direction|chain|metric) into
the table it prints, bench/RESULTS.md and bench/results.json.

usage: report.py RESULTS.tsv RESULTS.md results.json
"""
import datetime, json, os, platform, subprocess, sys

CHAINS = ["braid", "redsocks", "ss", "mptcp", "tcp"]
PEERS = ["redsocks", "ss"]
TITLES = {"braid": "braid", "redsocks": "redsocks+dante", "ss": "ss-redir+ss-server",
          "mptcp": "direct MPTCP", "tcp": "direct TCP"}
UPLINK_SUM = 70.0  # Mbit/s, lab/lab.sh UPLINK_RATES
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(path):
    r = {}
    for line in open(path):
        if "\t" in line:
            k, v = line.rstrip("\n").split("\t", 1)
            r[k] = v
    return r


def num(r, key):
    try:
        return float(r[key])
    except (KeyError, ValueError):
        return None


def fmt(v, digits=1):
    if v is None:
        return "n/a"
    return f"{v:.{digits}f}"


def ratio(a, b):
    return None if a is None or not b else a / b


def best(values, higher):
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return max(vals) if higher else min(vals)


def machine():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    def git(*args):
        try:
            return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    commit = git("rev-parse", "--short=12", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "kernel": platform.release(), "cpu": cpu, "cores": os.cpu_count(),
            "commit": commit + ("-dirty" if dirty else "")}


def main():
    r = load(sys.argv[1])
    meta = {k.split("|")[3]: v for k, v in r.items() if k.startswith("meta|")}
    rows, targets = [], []

    def row(scenario, direction, metric, higher):
        return {c: num(r, f"{scenario}|{direction}|{c}|{metric}") for c in CHAINS}

    def add(label, direction, vals, higher, digits=1, cells=None, ratios=True):
        bp = best([vals[p] for p in PEERS], higher)
        rbp = ratio(vals["braid"], bp) if ratios else None
        rmp = ratio(vals["braid"], vals["mptcp"]) if ratios else None
        rows.append({"scenario": label, "direction": direction,
                     "values": {c: vals[c] for c in CHAINS},
                     "cells": cells or {c: fmt(vals[c], digits) for c in CHAINS},
                     "braid_over_best_peer": rbp, "braid_over_direct_mptcp": rmp})
        return rbp, rmp

    dirs = {"get": "download", "put": "upload"}
    for verb in ("get", "put"):
        vals = row("relay", verb, "mbps", True)
        rbp, rmp = add("1 relay goodput, Mbit/s (unshaped)", dirs[verb], vals, True)
        ok = rbp is not None and rmp is not None and rbp >= 1.5 and rmp >= 0.5
        targets.append({"target": f"relay {dirs[verb]}: braid >= 1.5x best peer and >= 0.5x direct MPTCP",
                        "value": f"{fmt(rbp, 2)}x best peer, {fmt(rmp, 2)}x direct MPTCP",
                        "met": ok if vals["braid"] is not None else None})
    for verb in ("get", "put"):
        vals = row("relay", verb, "cpu_s_per_gb", False)
        add("1 relay CPU, s per GB, both sides (lower is better)", dirs[verb], vals, False, digits=2)
        rows[-1]["braid_over_direct_mptcp"] = None
    for verb in ("get", "put"):
        vals = row("agg", verb, "mbps", True)
        cells = {c: (f"{vals[c]:.1f} ({vals[c] / UPLINK_SUM:.0%})" if vals[c] is not None else "n/a") for c in CHAINS}
        add(f"2 aggregation, Mbit/s (% of {UPLINK_SUM:.0f})", dirs[verb], vals, True, cells=cells)
        share = None if vals["braid"] is None else vals["braid"] / UPLINK_SUM
        targets.append({"target": f"aggregation {dirs[verb]}: braid >= 90% of {UPLINK_SUM:.0f} Mbit/s",
                        "value": f"{share:.0%}" if share is not None else "n/a",
                        "met": None if share is None else share >= 0.9})

    # Scenario 2b: the same shaped uplinks with a different one-way delay each (bench.sh
    # bench_unequal_phase); the first subflow of every chain, and direct TCP, use wan1.
    unequal = meta.get("unequal_delays_ms")
    if unequal:
        label = "/".join(unequal.split())
        for verb in ("get", "put"):
            vals = row("aggd", verb, "mbps", True)
            cells = {c: (f"{vals[c]:.1f} ({vals[c] / UPLINK_SUM:.0%})" if vals[c] is not None else "n/a")
                     for c in CHAINS}
            add(f"2b aggregation, one-way delays {label} ms, Mbit/s (% of {UPLINK_SUM:.0f})", dirs[verb], vals, True,
                cells=cells)
            share = None if vals["braid"] is None else vals["braid"] / UPLINK_SUM
            targets.append({"target": f"aggregation with delays {label} ms {dirs[verb]}: braid >= 80% of "
                                      f"{UPLINK_SUM:.0f} Mbit/s",
                            "value": f"{share:.0%}" if share is not None else "n/a",
                            "met": None if share is None else share >= 0.8})
        vals = row("setupd", "-", "ttfb_ms", False)
        add(f"2b setup: time to first byte, delays {label} ms, ms (lower is better)", "-", vals, False, digits=2)
        drtt = num(r, "setupd|-|tcp|connect_ms")
        extra = {c: (None if vals[c] is None or vals["tcp"] is None or not drtt else (vals[c] - vals["tcp"]) / drtt)
                 for c in CHAINS}
        add(f"2b setup: extra round trips vs direct TCP (RTT {fmt(drtt, 2)} ms)", "-", extra, False, digits=2,
            ratios=False)
        targets.append({"target": f"setup with delays {label} ms: no extra round trip (braid extra < 0.5 RTT)",
                        "value": "n/a" if extra["braid"] is None else f"{extra['braid']:+.2f} RTT",
                        "met": None if extra["braid"] is None else extra["braid"] < 0.5})

    vals = row("setup", "-", "ttfb_ms", False)
    add("3 setup: time to first byte, ms (lower is better)", "-", vals, False, digits=2)
    delay = float(meta.get("delay_ms", 0) or 0)
    rtt = num(r, "setup|-|tcp|connect_ms")
    if delay > 0:
        extra = {c: (None if vals[c] is None or vals["tcp"] is None or not rtt else (vals[c] - vals["tcp"]) / rtt)
                 for c in CHAINS}
        add(f"3 setup: extra round trips vs direct TCP (RTT {fmt(rtt, 2)} ms)", "-", extra, False, digits=2, ratios=False)
    else:
        extra = {c: (None if vals[c] is None or vals["tcp"] is None else vals[c] - vals["tcp"]) for c in CHAINS}
        add("3 setup: ms more than direct TCP (no delay line)", "-", extra, False, digits=2, ratios=False)
    if delay > 0 and extra["braid"] is not None:
        targets.append({"target": "setup: no extra round trip vs direct TCP (braid extra < 0.5 RTT)",
                        "value": f"{extra['braid']:+.2f} RTT", "met": extra["braid"] < 0.5})
    else:
        targets.append({"target": "setup: no extra round trip vs direct TCP",
                        "value": "not measurable without a delay line (lab_delay missing)", "met": None})

    vals = row("rate", "-", "per_second", True)
    add("4 connection rate, conn/s", "-", vals, True)
    vals = row("rate", "-", "cpu_us_per_conn", False)
    add("4 CPU per connection, µs, both sides (lower is better)", "-", vals, False)
    rows[-1]["braid_over_direct_mptcp"] = None
    for side, key in (("gateway", "gw"), ("concentrator", "conc")):
        vals = {c: (None if num(r, f"mem|-|{c}|{key}_bytes_per_session") is None
                    else num(r, f"mem|-|{c}|{key}_bytes_per_session") / 1024) for c in CHAINS}
        add(f"4 memory per idle session, KiB, {side} side (lower is better)", "-", vals, False)
        rows[-1]["braid_over_direct_mptcp"] = None
        targets.append({"target": f"memory per idle session, {side} side <= 16 KiB",
                        "value": f"{fmt(vals['braid'], 1)} KiB", "met": None if vals["braid"] is None else vals["braid"] <= 16})

    ideal = float(meta.get("failover_ideal", 0) or 0)
    if ideal > 0:
        label = (f"5 failover: {int(meta.get('failover_bytes', 0)) / 1e6:.0f} MB download, wan1 silent "
                 f"{meta.get('failover_seconds')} s, s (ideal {ideal:.1f}; lower is better)")
        vals = row("failover", "get", "seconds", False)
        add(label + ", median", "download", vals, False)
        worst = row("failover", "get", "seconds_worst", False)
        add(label + ", worst run", "download", worst, False)
        w = worst["braid"]
        targets.append({"target": f"failover: every run within 1.10x the ideal {ideal:.1f} s",
                        "value": "n/a" if w is None else f"worst {w:.1f} s = {w / ideal:.2f}x ideal "
                                 f"(runs: {r.get('failover|get|braid|seconds_runs', '')})",
                        "met": None if w is None else w <= 1.10 * ideal})

    header = ["scenario", "direction"] + [TITLES[c] for c in CHAINS] + ["braid/best peer", "braid/direct MPTCP"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for x in rows:
        cells = [x["scenario"], x["direction"]] + [x["cells"][c] for c in CHAINS]
        cells += [fmt(x["braid_over_best_peer"], 2) + ("x" if x["braid_over_best_peer"] is not None else ""),
                  fmt(x["braid_over_direct_mptcp"], 2) + ("x" if x["braid_over_direct_mptcp"] is not None else "")]
        lines.append("| " + " | ".join(cells) + " |")
    tlines = ["| target | braid | |", "|---|---|---|"]
    for t in targets:
        verdict = "n/a" if t["met"] is None else ("met" if t["met"] else "MISSED")
        tlines.append(f"| {t['target']} | {t['value']} | {verdict} |")

    # Subflow evidence: MP_JOINs the gateway namespace saw, and what each uplink carried.
    sub = []
    for c in CHAINS:
        parts = []
        for phase in ("relay", "agg", "aggd"):
            b, a = r.get(f"subflows|{phase}|{c}|before"), r.get(f"subflows|{phase}|{c}|after")
            if b and a:
                bd = dict(x.split("=") for x in b.split())
                ad = dict(x.split("=") for x in a.split())
                d = {k: int(ad[k]) - int(bd[k]) for k in ad}
                parts.append(f"{phase}: {d['joins']} MP_JOIN acks, {d['capable']} MPTCP handshakes, {d['fallback']} fallbacks")
        for key, what in (("agg", "shaped"), ("aggd", "shaped and delayed")):
            for verb in ("get", "put"):
                u = r.get(f"{key}|{verb}|{c}|uplink_bytes")
                if u:
                    n = [int(x) for x in u.split()]
                    tot = sum(n) or 1
                    parts.append(f"{what} {dirs[verb]} per uplink wan1/wan2/wan3: "
                                 + "/".join(f"{x / tot:.0%}" for x in n))
        h = r.get(f"subflows|hold|{c}|per_address")
        if h:
            parts.append(f"established subflows per source address during hold: {h.strip()}")
        o = r.get(f"mem|-|{c}|open")
        if o:
            gp, cp = num(r, f"mem|-|{c}|gw_pss_per_session"), num(r, f"mem|-|{c}|conc_pss_per_session")
            parts.append(f"hold: {o} open, {r.get(f'mem|-|{c}|reached_origin')} reached the origin, "
                         f"processes gateway+concentrator {r.get(f'mem|-|{c}|processes')}, PSS per session "
                         f"{fmt(gp / 1024 if gp is not None else None)}/{fmt(cp / 1024 if cp is not None else None)} KiB")
        if parts:
            sub.append(f"- {TITLES[c]}: " + "; ".join(parts))

    problems = {}
    for k, v in r.items():
        if k.startswith("problem|"):
            problems.setdefault(f"{k.split('|', 3)[3]}: {v}", 0)
            problems[f"{k.split('|', 3)[3]}: {v}"] += 1
    for c in CHAINS:
        for k in (f"start|-|{c}|failed", f"relay|get|{c}|failures", f"relay|put|{c}|failures",
                  f"agg|get|{c}|failures", f"agg|put|{c}|failures",
                  f"aggd|get|{c}|failures", f"aggd|put|{c}|failures", f"failover|get|{c}|failures"):
            if k in r:
                problems[f"{TITLES[c]}: {k.split('|')[0]} {k.split('|')[1]} failed (see the bench log)"] = 1
    probs = [f"- {p}" + (f" (x{n})" if n > 1 else "") for p, n in problems.items()] or ["- none"]

    m = machine()
    m["seconds"] = meta.get("seconds")
    # The braid measured: its path, and the commit of the checkout it was built in.
    bb = meta.get("braid_bin", "")
    try:
        bc = subprocess.run(["git", "-C", os.path.dirname(bb) or ".", "rev-parse", "--short=12", "HEAD"],
                            capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        bc = ""
    m["braid_bin"] = bb
    m["braid_commit"] = bc or "unknown"
    note = (f"Traffic tool: {meta.get('tool')}. Median of {meta.get('runs')} run(s). Scenario 1: "
            f"{int(meta.get('relay_bytes', 0)) / 1e6:.0f} MB per transfer, unshaped lab, without sha256 "
            f"(`--verify none`; the byte count is still checked); CPU = utime+stime of every process in "
            f"the gateway and concentrator namespaces. Scenario 2: {int(meta.get('agg_bytes', 0)) / 1e6:.0f} MB, "
            f"uplinks shaped 40/20/10 Mbit/s, sha256 checked end to end, median of {meta.get('agg_runs', meta.get('runs'))} "
            f"run(s); direct TCP is not run there (one path: wan1's 40 Mbit/s)"
            f"{'; braid with option subflows ' + meta['agg_subflows'].replace(' ', '/') + ' on wan1/wan2/wan3 (one each elsewhere)' if meta.get('agg_subflows') else ''}. "
            f"{'Scenario 2b: the same with one-way delays of ' + unequal.replace(' ', '/') + ' ms on wan1/wan2/wan3 (TUN delay line), and time to first byte there. ' if unequal else ''}Scenario 3: median of {meta.get('ttfb_count')} GET 1 exchanges, "
            f"{'lab_delay ' + meta.get('delay_ms', '0') + ' ms one way per uplink' if delay > 0 else 'no delay line (lab_delay missing)'}"
            f"; RTT = direct TCP connect time. Scenario 4: `rate` for {meta.get('rate_seconds')} s with "
            f"{meta.get('rate_concurrency')} concurrent clients; memory = VmRSS of every process in each namespace "
            f"before and after `hold --count {meta.get('hold_count')}` (idle sessions, counted once every one reached "
            f"the origin). Peers run under `mptcpize run` with the per-uplink routing and MPTCP endpoints braid's "
            f"gateway would install"
            f"{', and the peers and direct paths with congestion control ' + meta['peer_cc'] + ' (route congctl; braid sets CUBIC itself)' if meta.get('peer_cc') else ''}"
            f"; ss-redir/ss-server do not carry a half-close, so their uploads are timed to "
            f"the origin's EOF (polled every 20 ms) and checked against the origin's log."
            + (f" Scenario 5: {int(meta.get('failover_bytes', 0)) / 1e6:.0f} MB GET, sha256 checked, over the shaped "
               f"uplinks; wan1's far side drops everything from {meta.get('failover_at')} s to "
               f"{int(meta.get('failover_at', 0)) + int(meta.get('failover_seconds', 0))} s into the transfer (its carrier "
               f"stays up); the ideal is the time the shaped line rates allow (all uplinks, then all but wan1 during "
               f"the outage), so packet headers count against every chain." if ideal > 0 else ""))
    # The plots bench/plots.py drew in this run (it removes the old ones first).
    plot_dir = os.path.join(os.path.dirname(os.path.abspath(sys.argv[2])), "plots")
    captions = {"failover.png": "Throughput per uplink during the failover scenario (the worst run of each chain; "
                                "the grey band is wan1's outage)",
                "failover-times.png": "Failover: every run's time against the ideal",
                "aggregation.png": "Aggregation over the shaped uplinks",
                "connection-rate.png": "Connection rate",
                "relay.png": "Relay goodput, unshaped lab"}
    pics = [f"![{cap}](plots/{name})\n\n*{cap}.*\n" for name, cap in captions.items()
            if os.path.exists(os.path.join(plot_dir, name))]
    md = [f"# braid benchmark", "",
          f"{m['date']} — kernel {m['kernel']} — {m['cpu']} ({m['cores']} cores) — commit {m['commit']} — "
          f"`make bench` took {m['seconds']} s", "", f"braid binary: `{bb}` (checkout at {m['braid_commit']})", "", note, "", *lines, "", "## Targets", "", *tlines, "",
          *(["## Plots", "", *pics] if pics else []),
          "## Subflows and sessions", "", *sub, "", "## Problems seen in this run", "", *probs, ""]
    # bench/fleet.sh's section (make bench-fleet) is another run's: carried over as it was.
    try:
        previous = open(sys.argv[2]).read()
        begin, end = "<!-- fleet: written by bench/fleet.sh -->", "<!-- /fleet -->"
        if begin in previous and end in previous:
            md += [begin + previous.split(begin, 1)[1].split(end, 1)[0] + end, ""]
    except OSError:
        pass
    open(sys.argv[2], "w").write("\n".join(md))
    json.dump({"machine": m, "meta": meta, "rows": [{k: v for k, v in x.items() if k != "cells"} for x in rows],
               "targets": targets, "subflows": sub, "problems": list(problems), "raw": r}, open(sys.argv[3], "w"), indent=1, sort_keys=True)
    print("\n".join(lines + [""] + tlines + [""] + sub + [""] + probs))


if __name__ == "__main__":
    main()
