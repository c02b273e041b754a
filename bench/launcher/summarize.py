"""Summarizes bench/launcher/run.sh's results.tsv as a Markdown table:
median of the rounds (with min-max), ratio of medians against `single`
from the same run, and supervisor memory.

Usage: summarize.py results.tsv NODE_VERSION WRK_ARGS
"""

import csv
import statistics
import sys
from collections import defaultdict

ORDER = ["single", "cluster", "pm2", "proxy", "shared", "shared-one", "inject", "reuseport"]
LABEL = {
    "single": "single `node`",
    "cluster": "Node `cluster`, 2 workers",
    "pm2": "PM2 `pm2-runtime -i max`",
    "proxy": "corefit proxy, 2 workers",
    "shared": "corefit shared (per-worker sockets), 2 workers",
    "shared-one": "corefit shared (one socket), 2 workers",
    "inject": "corefit inject (unmodified app, preload shim), 2 workers",
    "reuseport": "corefit reuseport, 2 workers",
}


def spread(values):
    if len(values) == 1:
        return f"{values[0]:.0f}"
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def main():
    path, node, wrk = sys.argv[1], sys.argv[2], sys.argv[3]
    rows = defaultdict(list)
    with open(path) as f:
        for r in csv.DictReader(f, delimiter="\t"):
            rows[(r["config"], r["route"])].append(r)
    routes = sorted({route for _, route in rows}, key=lambda r: (r != "cpu", r))
    configs = [c for c in ORDER if any((c, r) in rows for r in routes)]
    rounds = max((len(v) for v in rows.values()), default=0)
    print(f"Node {node}; {wrk}; {rounds} round(s), interleaved; median (min-max).")
    print(
        "x single: ratio of medians against `single` in this run; best: the best round of each "
        "(on a shared machine, other load only ever lowers a figure).\n"
    )
    for route in routes:
        base = [float(r["rps"]) for r in rows.get(("single", route), [])]
        base_med = statistics.median(base) if base else None
        print(f"### /{route}\n")
        best_base = max(base) if base else None
        print(
            "| configuration | req/s median (min-max) | x single | best req/s | best x single "
            "| p99 ms median (min-max) | errors | supervisor RSS MiB (peak) |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for c in configs:
            rs = rows.get((c, route), [])
            if not rs:
                continue
            rps = [float(r["rps"]) for r in rs]
            p99 = [float(r["p99_ms"]) for r in rs]
            errors = sum(int(r["errors"]) for r in rs)
            ratio = f"{statistics.median(rps) / base_med:.2f}" if base_med else "-"
            rss = [r["supervisor_rss_kib"] for r in rs if r["supervisor_rss_kib"] not in ("-", "0")]
            hwm = [r["supervisor_hwm_kib"] for r in rs if r["supervisor_hwm_kib"] not in ("-", "0")]
            mem = "-"
            if rss:
                mem = f"{statistics.median(float(x) for x in rss) / 1024:.1f} ({max(float(x) for x in hwm) / 1024:.1f})"
            p99_text = f"{statistics.median(p99):.1f} ({min(p99):.1f}-{max(p99):.1f})" if len(p99) > 1 else f"{p99[0]:.1f}"
            best_ratio = f"{max(rps) / best_base:.2f}" if best_base else "-"
            print(
                f"| {LABEL[c]} | {spread(rps)} | {ratio} | {max(rps):.0f} | {best_ratio} "
                f"| {p99_text} | {errors} | {mem} |"
            )
        print()


if __name__ == "__main__":
    main()
