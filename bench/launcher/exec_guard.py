#!/usr/bin/env python3
"""What the inject shim's exec guard costs a worker's start-up script.

A shell runs N external commands (/bin/true, dynamically linked) in a loop,
three ways, interleaved round by round in the same run:

  plain     no preload (the baseline)
  shim      the shim preloaded, no COREFIT_INJECT_FD (the guard returns at
            its first check: the variable is not there)
  guarded   the shim preloaded and a shared socket on fd 3 that every
            child inherits, COREFIT_INJECT_FD=3: every exec reads the
            program's ELF headers (the worst case: a script that runs
            commands before the app binds)

Prints the median time per exec and each against plain.

Usage: bench/launcher/exec_guard.py [SHIM.so] [--execs N] [--rounds R]
(default SHIM: the release shim the launcher's build put under target/).
"""
import argparse
import glob
import os
import socket
import statistics
import subprocess
import sys
import time


def default_shim():
    found = glob.glob("target/*/build/corefit-*/out/preload-target/release/libcorefit_preload.so")
    if not found:
        sys.exit("no shim built: run `cargo build -p corefit` first, or pass its path")
    return max(found, key=os.path.getmtime)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shim", nargs="?")
    ap.add_argument("--execs", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    shim = os.path.abspath(a.shim or default_shim())

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    os.dup2(listener.fileno(), 3)
    os.set_inheritable(3, True)
    port = str(listener.getsockname()[1])

    loop = f'i=0; while [ $i -lt {a.execs} ]; do /bin/true; i=$((i+1)); done'
    base = {"PATH": "/usr/bin:/bin"}
    configs = {
        "plain": base,
        "shim": dict(base, LD_PRELOAD=shim),
        "guarded": dict(base, LD_PRELOAD=shim, COREFIT_INJECT_FD="3", COREFIT_INJECT_PORT=port),
    }
    times = {name: [] for name in configs}
    for _ in range(a.rounds):
        for name, env in configs.items():
            t0 = time.perf_counter()
            subprocess.run(["/bin/sh", "-c", loop], env=env, pass_fds=(3,), check=True)
            times[name].append((time.perf_counter() - t0) / a.execs)
    plain = statistics.median(times["plain"])
    print(f"exec guard: {a.execs} execs x {a.rounds} interleaved rounds, shim {shim}")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"  {name:<8} {m * 1e6:8.1f} us per exec   {m / plain:5.2f}x plain")


if __name__ == "__main__":
    main()
