#!/usr/bin/env python3
"""Times one worker restart for bench/launcher/restart.sh.

    restart_probe.py PORT VICTIM OLD_PIDS [TIMEOUT_S]

Sends SIGKILL to VICTIM (a worker pid), then opens a new connection to
127.0.0.1:PORT every 2 ms with one `GET /` (`connection: close`), without
waiting for earlier ones, until a pid that is not in OLD_PIDS
(comma-separated: the pids that answered before) answers. The app answers
{"pid": N, ...} (tests/apps/server.js). Requests still out then are given
up to 2 s to finish.

Prints one line: "elapsed_ms requests failed slowest_ms kill_epoch": elapsed_ms runs
from the kill to the first answer from a new pid; requests is how many
were sent meanwhile; failed counts those that got no answer (refused,
reset, or none within 2 s: a connection queued on a dead worker's socket,
or handed to a dead worker); slowest_ms is the longest request that got
an answer; kill_epoch is the wall-clock time of the kill (seconds since
the epoch, to match the supervisor's log timestamps). Exits 1 when no new
pid answered within TIMEOUT_S (default 10).
"""

import asyncio
import json
import os
import signal
import sys
import time

INTERVAL = 0.002
REQUEST_TIMEOUT = 2.0


async def get_pid(port):
    """One GET / on a new connection: the pid that answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
        data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ValueError(head[:40])
    return json.loads(body)["pid"]


async def probe(port, victim, old, timeout):
    found = asyncio.get_running_loop().create_future()
    results = []  # (ok, seconds)

    async def one():
        start = time.monotonic()
        try:
            pid = await asyncio.wait_for(get_pid(port), REQUEST_TIMEOUT)
        except (OSError, ValueError, KeyError, asyncio.TimeoutError):
            results.append((False, time.monotonic() - start))
            return
        results.append((True, time.monotonic() - start))
        if pid not in old and not found.done():
            found.set_result(time.monotonic())

    tasks = []
    t0 = time.monotonic()
    epoch = time.time()
    os.kill(victim, signal.SIGKILL)
    while not found.done() and time.monotonic() - t0 < timeout:
        tasks.append(asyncio.ensure_future(one()))
        await asyncio.sleep(INTERVAL)
    await asyncio.gather(*tasks)
    failed = sum(1 for ok, _ in results if not ok)
    slowest = max((s for ok, s in results if ok), default=0.0)
    if not found.done():
        return f"timeout {len(tasks)} {failed} {slowest * 1000:.1f} {epoch:.4f}", 1
    elapsed = found.result() - t0
    return f"{elapsed * 1000:.1f} {len(tasks)} {failed} {slowest * 1000:.1f} {epoch:.4f}", 0


def main():
    port = int(sys.argv[1])
    victim = int(sys.argv[2])
    old = {int(p) for p in sys.argv[3].split(",") if p}
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0
    line, code = asyncio.run(probe(port, victim, old, timeout))
    print(line)
    return code


if __name__ == "__main__":
    sys.exit(main())
