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
        print("### Trivial route (`GET /hello`, tests/apps/server.js, 2 workers)\n")
        print("| configuration | req/s | p99 ms | errors | corefit CPU us/request | corefit RSS MiB |")
        print("|---|---|---|---|---|---|")
        for config in ("proxy", "shared"):
            g = lambda m: data.get(("throughput", config, m), [])
            rss = [v / 1024 for v in g("rss_kib")]
            print(
                f"| `--socket {config}` | {spread(g('rps'))} | {spread(g('p99_ms'), '{:.1f}')} | "
                f"{spread(g('errors'))} | {spread(g('cpu_us_per_request'), '{:.1f}')} | {spread(rss, '{:.1f}')} |"
            )
        p, s = med(data.get(("throughput", "proxy", "rps"), [])), med(data.get(("throughput", "shared", "rps"), []))
        if p and s:
            print(f"\nproxy / shared (ratio of medians): **{p / s:.2f}** (target >= 0.85)\n")

    if any(k[0] == "memory" for k in data):
        print("### corefit's resident memory (tests/apps/proxy_app.py, 2 workers)\n")
        print("| state | VmRSS MiB | x idle |")
        print("|---|---|---|")
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
        print("### 50 MiB streaming echo (`POST /echo`, body streamed back as it arrives)\n")
        print("| path | seconds (median of every transfer, min-max) |")
        print("|---|---|")
        for config, label in (("direct", "directly to proxy_app.py"), ("corefit", "through corefit")):
            print(f"| {label} | {spread(data.get(('echo', config, 'seconds'), []), '{:.2f}')} |")
        d, c = med(data.get(("echo", "direct", "seconds"), [])), med(data.get(("echo", "corefit", "seconds"), []))
        if d and c:
            print(f"\ncorefit / direct (ratio of medians): **{c / d:.2f}** (target <= 1.5)\n")

    if any(k[0] == "latency" for k in data):
        print("### New requests, corefit started with soft nofile 1024 (hard 20000)\n")
        print("| idle connections held | median ms | max ms |")
        print("|---|---|---|")
        for config in sorted({k[1] for k in data if k[0] == "latency"}, key=lambda c: int(c.split("_")[1])):
            n = int(config.split("_")[1])
            print(
                f"| {n:,} | {spread(data.get(('latency', config, 'median_ms'), []), '{:.2f}')} | "
                f"{spread(data.get(('latency', config, 'max_ms'), []), '{:.2f}')} |"
            )
        print()


if __name__ == "__main__":
    main()
