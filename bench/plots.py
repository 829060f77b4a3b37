#!/usr/bin/env python3
"""Draws bench/bench.sh's results as PNG files for bench/RESULTS.md (matplotlib, Agg backend).

usage: plots.py RESULTS.tsv OUTPUT_DIR

- failover.png          each uplink's throughput over time through the failover scenario, per chain
                        (that chain's worst run: the one the target is about), the outage shaded
- failover-times.png    every failover run's time per chain, against the ideal and 1.10x of it
- aggregation.png       shaped-lab goodput per chain, both directions, against the uplinks' sum
- connection-rate.png   connections per second per chain
- relay.png             unshaped relay goodput per chain, both directions

A plot whose data the run did not produce is not drawn; old PNGs are removed first so RESULTS.md
never embeds a picture of an earlier run.
"""
import glob
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

CHAINS = ["braid", "redsocks", "ss", "mptcp", "tcp"]
TITLES = {"braid": "braid", "redsocks": "redsocks+dante", "ss": "ss-redir+ss-server",
          "mptcp": "direct MPTCP", "tcp": "direct TCP"}
COLOURS = {"braid": "#1f6feb", "redsocks": "#9a6700", "ss": "#8250df", "mptcp": "#57606a", "tcp": "#afb8c1"}
UPLINK_COLOURS = ["#0969da", "#1a7f37", "#bf8700"]


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


def samples(path):
    """Per-uplink receive rate (Mbit/s) between successive samples: (times, [wan1, wan2, wan3])."""
    start = float(open(path + ".start").read())
    rows = []
    for line in open(path):
        f = line.split()
        if len(f) == 7:
            rows.append([float(f[0])] + [int(x) for x in f[1:]])
    times, rates = [], [[], [], []]
    for a, b in zip(rows, rows[1:]):
        dt = b[0] - a[0]
        if dt <= 0:
            continue
        times.append((a[0] + b[0]) / 2 - start)
        for i in range(3):
            rates[i].append((b[1 + 2 * i] - a[1 + 2 * i]) * 8 / dt / 1e6)
    return times, rates


def smooth(values, n=5):
    """A centred moving average over n samples (1 s at 0.2 s): the 0.2 s counters are bursty."""
    out = []
    for i in range(len(values)):
        w = values[max(0, i - n // 2): i + n // 2 + 1]
        out.append(sum(w) / len(w))
    return out


def failover(r, meta, out):
    chains = []
    for c in CHAINS:
        runs = r.get(f"failover|get|{c}|seconds_runs", "").split()
        files = [r.get(f"failover|get|{c}|samples_{i}") for i in range(1, 100)]
        files = [f for f in files if f]
        if runs and len(runs) == len(files) and all(os.path.exists(f) for f in files):
            worst = max(range(len(runs)), key=lambda i: float(runs[i]))
            chains.append((c, files[worst], float(runs[worst])))
    if not chains:
        return
    at, length = float(meta.get("failover_at", 0)), float(meta.get("failover_seconds", 0))
    ideal = float(meta.get("failover_ideal", 0) or 0)
    rates = [float(x) for x in meta.get("uplink_rates", "40 20 10").split()]
    fig, axes = plt.subplots(len(chains), 1, figsize=(9, 2.3 * len(chains)), sharex=True, squeeze=False)
    for ax, (c, path, seconds) in zip(axes[:, 0], chains):
        t, per = samples(path)
        ax.stackplot(t, *[smooth(x) for x in per], colors=UPLINK_COLOURS,
                     labels=[f"wan{i + 1} ({rates[i]:.0f} Mbit/s)" for i in range(3)], alpha=0.85)
        ax.axvspan(at, at + length, color="#d0d7de", alpha=0.6, zorder=0, label="wan1 silent")
        ax.axvline(seconds, color="black", linewidth=1)
        if ideal:
            ax.axvline(ideal, color="black", linewidth=1, linestyle=":")
        ax.set_ylabel("Mbit/s")
        ax.set_ylim(0, sum(rates) * 1.1)
        ax.set_title(f"{TITLES[c]}: {seconds:.1f} s" + (f" ({seconds / ideal:.2f}x the ideal {ideal:.1f} s, dotted)"
                                                        if ideal else ""), fontsize=10, loc="left")
    axes[0, 0].legend(loc="upper right", fontsize=8, ncol=4)
    axes[-1, 0].set_xlabel("seconds since the run started (1 s moving average of 0.2 s samples)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "failover.png"), dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 3))
    names = [c for c in CHAINS if r.get(f"failover|get|{c}|seconds_runs")]
    for i, c in enumerate(names):
        v = [float(x) for x in r[f"failover|get|{c}|seconds_runs"].split()]
        ax.scatter([i] * len(v), v, color=COLOURS[c], zorder=3)
    if ideal:
        ax.axhline(ideal, color="black", linestyle=":", label=f"ideal {ideal:.1f} s")
        ax.axhline(ideal * 1.1, color="#cf222e", linestyle="--", label="1.10x ideal (target)")
        ax.legend(fontsize=8)
    ax.set_xticks(range(len(names)), [TITLES[c] for c in names])
    ax.set_ylabel("seconds (lower is better)")
    ax.set_title("Failover download, every run", fontsize=10, loc="left")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "failover-times.png"), dpi=110)
    plt.close(fig)


def bars(r, scenario, metric, out, name, ylabel, title, directions=("get", "put"), line=None):
    names = [c for c in CHAINS if any(num(r, f"{scenario}|{d}|{c}|{metric}") is not None for d in directions)]
    if not names:
        return
    fig, ax = plt.subplots(figsize=(8, 3.2))
    width = 0.8 / len(directions)
    labels = {"get": "download", "put": "upload", "-": None}
    for j, d in enumerate(directions):
        xs, ys = [], []
        for i, c in enumerate(names):
            v = num(r, f"{scenario}|{d}|{c}|{metric}")
            if v is not None:
                xs.append(i + (j - (len(directions) - 1) / 2) * width)
                ys.append(v)
        b = ax.bar(xs, ys, width, label=labels[d], color=[COLOURS[c] for c, v in zip(names, ys)],
                   alpha=1.0 if j == 0 else 0.55)
        ax.bar_label(b, fmt="%.0f", fontsize=8)
    for value, text in line or []:
        ax.axhline(value, color="black", linestyle=":", linewidth=1)
        ax.text(len(names) - 0.5, value, text, fontsize=8, va="bottom", ha="right")
    ax.set_xticks(range(len(names)), [TITLES[c] for c in names])
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10, loc="left")
    if len(directions) > 1:
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(os.path.join(out, name), dpi=110)
    plt.close(fig)


def main():
    r = load(sys.argv[1])
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    for old in glob.glob(os.path.join(out, "*.png")):
        os.remove(old)
    meta = {k.split("|")[3]: v for k, v in r.items() if k.startswith("meta|")}
    failover(r, meta, out)
    total = sum(float(x) for x in meta.get("uplink_rates", "40 20 10").split())
    bars(r, "agg", "mbps", out, "aggregation.png", "Mbit/s (higher is better)",
         "Aggregation over the shaped uplinks (download light, upload pale)",
         line=[(total, f"sum {total:.0f}"), (0.9 * total, "90 %")])
    bars(r, "rate", "per_second", out, "connection-rate.png", "connections/s (higher is better)",
         "Connection rate", directions=("-",))
    bars(r, "relay", "mbps", out, "relay.png", "Mbit/s (higher is better)",
         "Relay goodput, unshaped lab (download light, upload pale)")


if __name__ == "__main__":
    main()
