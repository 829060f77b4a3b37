#!/usr/bin/env python3
"""Turns bench/fleet.sh's result lines (KEY<TAB>VALUE, KEY = store|metric or metric) into the
"Fleet" section of bench/RESULTS.md: replaced between its markers, appended when there are none,
so the rest of the file stays as bench/bench.sh wrote it. Prints the section.

usage: fleet-report.py RESULTS.tsv RESULTS.md
"""
import datetime, os, platform, subprocess, sys

BEGIN, END = "<!-- fleet: written by bench/fleet.sh -->", "<!-- /fleet -->"
STORES = [("uci", "uci file"), ("postgresql", "PostgreSQL")]


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


def per(r, store, a, b, over):
    """(b - a) KiB over `over` items, in KiB."""
    x, y = num(r, f"{store}|{a}"), num(r, f"{store}|{b}")
    return None if x is None or y is None or not over else (y - x) / over


def fmt(v, digits=1):
    return "n/a" if v is None else f"{v:.{digits}f}"


def main():
    r = load(sys.argv[1])
    n = int(num(r, "count") or 0)
    m = int(num(r, "sessions") or 0)
    stores = [(s, t) for s, t in STORES if f"{s}|up_seconds" in r]
    rows = []

    def row(title, f):
        rows.append(f"| {title} | " + " | ".join(f(s) for s, _ in stores) + " |")

    row("concentrator RSS / PSS, MiB: idle (subscribers loaded)",
        lambda s: f"{fmt(num(r, f'{s}|rss0') / 1024)} / {fmt(num(r, f'{s}|pss0') / 1024)}")
    row(f"… with {n} gateways connected",
        lambda s: f"{fmt(num(r, f'{s}|rss1') / 1024)} / {fmt(num(r, f'{s}|pss1') / 1024)}")
    row(f"… and {m} idle sessions each",
        lambda s: f"{fmt(num(r, f'{s}|rss2') / 1024)} / {fmt(num(r, f'{s}|pss2') / 1024)}")
    row("memory per connected gateway, KiB, RSS / PSS (no sessions)",
        lambda s: f"{fmt(per(r, s, 'rss0', 'rss1', n))} / {fmt(per(r, s, 'pss0', 'pss1', n))}")
    row(f"memory per connected gateway with {m} idle sessions, KiB, RSS / PSS",
        lambda s: f"{fmt(per(r, s, 'rss0', 'rss2', n))} / {fmt(per(r, s, 'pss0', 'pss2', n))}")
    row("memory per idle session, KiB, RSS / PSS",
        lambda s: f"{fmt(per(r, s, 'rss1', 'rss2', n * m))} / {fmt(per(r, s, 'pss1', 'pss2', n * m))}")
    row("idle sessions open through the concentrator",
        lambda s: f"{r.get(f'{s}|sessions_open', 'n/a')} of {r.get(f'{s}|sessions_wanted', 'n/a')}")
    row(f"first connect of {n} gateways (64 handshakes in flight), s",
        lambda s: f"{fmt(num(r, f'{s}|up_seconds'), 2)}")
    row("TLS handshakes per second, first connect (key granted)", lambda s: fmt(num(r, f"{s}|up_hps")))
    row("restart: concentrator listening again after, s", lambda s: fmt(num(r, f"{s}|restart_listen"), 2))
    row(f"restart: all {n} gateways hold a key again after, s",
        lambda s: f"**{fmt(num(r, f'{s}|storm_seconds'), 2)}**")
    row("… half / 90 % / 99 % of them back after, s",
        lambda s: " / ".join(fmt(num(r, f"{s}|storm_{p}"), 2) for p in ("p50", "p90", "p99")))
    row("… first key granted after, s", lambda s: fmt(num(r, f"{s}|storm_first_grant"), 2))
    row("TLS handshakes per second during the storm (first to last grant)",
        lambda s: fmt(num(r, f"{s}|storm_handshakes_per_second")))
    row("storm: attempts; failed at connect / TLS / grant",
        lambda s: f"{r.get(f'{s}|storm_attempts', 'n/a')}; {r.get(f'{s}|storm_failed_connect', 'n/a')} / "
                  f"{r.get(f'{s}|storm_failed_tls', 'n/a')} / {r.get(f'{s}|storm_failed_grant', 'n/a')}")
    row("concentrator refusals after the storm (status, by reason)", lambda s: r.get(f"{s}|refusals", "n/a"))
    row("concentrator RSS after the storm, MiB", lambda s: fmt(num(r, f"{s}|rss3") / 1024 if num(r, f"{s}|rss3") else None))
    row(f"PUT of 64 KiB through every gateway after the restart, sha256 checked",
        lambda s: f"{r.get(f'{s}|verified_ok', 'n/a')} of {n} intact")

    def git(*args):
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = [
        BEGIN, "## Fleet: one concentrator, many gateways (`make bench-fleet`)", "",
        f"{date} — kernel {platform.release()} — {os.cpu_count()} cores — commit {git('rev-parse', '--short=12', 'HEAD')}"
        f" — took {r.get('bench_seconds', '?')} s — `{r.get('binary', '?')}`. {n} gateways simulated by `braid-lab fleet` in one process "
        f"(real TLS 1.3 control channels, one `braid pki` certificate and one source address each; issuing the "
        f"{n} certificates took {r.get('pki_seconds', '?')} s), {m} idle data connections each through the "
        f"concentrator's Convert exchange to a `braid-lab serve` origin. The restart is SIGTERM and start "
        f"again; each gateway reconnects with the gateway's own backoff (500 ms doubling to 30 s, full "
        f"jitter). The simulator shares the machine's cores with the concentrator (and, here, with other "
        f"builds and tests), so rates are lower bounds.", "",
        "| figure | " + " | ".join(t for _, t in stores) + " |",
        "|---|" + "---|" * len(stores),
        *rows, "", END,
    ]
    text = "\n".join(section)
    path = sys.argv[2]
    old = open(path).read() if os.path.exists(path) else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        new = head + text + rest.split(END, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    open(path, "w").write(new)
    print(text)


if __name__ == "__main__":
    main()
