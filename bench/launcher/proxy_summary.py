"""Summarizes bench/launcher/proxy.sh's proxy-results.tsv as Markdown:
median of the rounds with its spread (min-max), each figure beside the
baseline measured in the same run.

Usage: proxy_summary.py proxy-results.tsv DESCRIPTION
"""

import csv
import statistics
import sys
from collections import defaultdict


def med(values):
    return statistics.median(values) if values else None


def spread(values, fmt="{:.0f}"):
    if not values:
        return "-"
    m = fmt.format(statistics.median(values))
    if len(values) == 1:
        return m
    return f"{m} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def heading(title, columns):
    """A section's title and its table's header row."""
    print(f"### {title}\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))


def print_ratio(data, part, metric, top, bottom, target):
    """top / bottom of the medians of `metric`, when both were measured."""
    t, b = med(data.get((part, top, metric), [])), med(data.get((part, bottom, metric), []))
    if t and b:
        print(f"\n{top} / {bottom} (ratio of medians): **{t / b:.2f}** (target {target})\n")


def main():
    path, description = sys.argv[1], sys.argv[2]
    data = defaultdict(list)
    round_ids = set()
    with open(path) as f:
        for r in csv.DictReader(f, delimiter="\t"):
            round_ids.add(r["round"])
            try:
                data[(r["part"], r["config"], r["metric"])].append(float(r["value"]))
            except ValueError:
                pass
    rounds = len(round_ids)
    print(f"corefit proxy cost ({description}); median of {rounds} round(s) (min-max).\n")

    if any(k[0] == "throughput" for k in data):
        heading(
            "Trivial route (`GET /hello`, tests/apps/server.js, 2 workers)",
            ["configuration", "req/s", "p99 ms", "errors", "corefit CPU us/request", "corefit RSS MiB"],
        )
        for config in ("proxy", "shared"):
            g = lambda m: data.get(("throughput", config, m), [])
            rss = [v / 1024 for v in g("rss_kib")]
            print(
                f"| `--socket {config}` | {spread(g('rps'))} | {spread(g('p99_ms'), '{:.1f}')} | "
                f"{spread(g('errors'))} | {spread(g('cpu_us_per_request'), '{:.1f}')} | {spread(rss, '{:.1f}')} |"
            )
        print_ratio(data, "throughput", "rps", "proxy", "shared", ">= 0.85")

    if any(k[0] == "memory" for k in data):
        heading("corefit's resident memory (tests/apps/proxy_app.py, 2 workers)", ["state", "VmRSS MiB", "x idle"])
        labels = [
            ("idle", "idle"),
            ("held_1", "1 idle keep-alive connection (made a request)"),
            ("held_1000", "1,000 idle keep-alive connections (made a request)"),
            ("after_1000_closed_10s", "10 s after those 1,000 closed"),
            ("held_10000_silent", "10,000 connections that never sent a request"),
            ("after_10000_closed_10s", "10 s after those 10,000 closed"),
        ]
        idle = med(data.get(("memory", "corefit", "idle"), []))
        for metric, label in labels:
            values = [v / 1024 for v in data.get(("memory", "corefit", metric), [])]
            ratio = f"{statistics.median(values) * 1024 / idle:.1f}" if values and idle else "-"
            print(f"| {label} | {spread(values, '{:.1f}')} | {ratio} |")
        print()

    if any(k[0] == "echo" for k in data):
        heading(
            "50 MiB streaming echo (`POST /echo`, body streamed back as it arrives)",
            ["path", "seconds (median of every transfer, min-max)"],
        )
        for config, label in (("direct", "directly to proxy_app.py"), ("corefit", "through corefit")):
            print(f"| {label} | {spread(data.get(('echo', config, 'seconds'), []), '{:.2f}')} |")
        print_ratio(data, "echo", "seconds", "corefit", "direct", "<= 1.5")

    if any(k[0] == "latency" for k in data):
        heading(
            "New requests, corefit started with soft nofile 1024 (hard 20000)",
            ["idle connections held", "median ms", "max ms"],
        )
        for config in sorted({k[1] for k in data if k[0] == "latency"}, key=lambda c: int(c.split("_")[1])):
            n = int(config.split("_")[1])
            print(
                f"| {n:,} | {spread(data.get(('latency', config, 'median_ms'), []), '{:.2f}')} | "
                f"{spread(data.get(('latency', config, 'max_ms'), []), '{:.2f}')} |"
            )
        print()


if __name__ == "__main__":
    main()
