#!/usr/bin/env python3
"""A bounded load client for operator/tests/real_node.rs, run inside the
real node's network namespace (`ip netns exec`), where the pods are.

There is no kube-proxy on the test node: this client plays it. It sends
`GET /` on a fresh connection per request, round-robin over the Service's
ready endpoints, which it re-reads from ENDPOINTS_FILE (one `ip:port` a
line, rewritten atomically by the test as the Endpoints object changes).
No request is retried: every failure counts.

    load.py ENDPOINTS_FILE STOP_FILE PROGRESS_FILE MAX_REQUESTS MAX_SECONDS THREADS

It stops when STOP_FILE exists, after MAX_REQUESTS requests or after
MAX_SECONDS, whichever comes first, and prints one JSON summary on stdout:
ok, failed, the first failures (time, address, kind, detail) and the
answers per address.
"""

import json
import os
import socket
import sys
import threading
import time

ENDPOINTS, STOP, PROGRESS = sys.argv[1], sys.argv[2], sys.argv[3]
MAX_REQUESTS, MAX_SECONDS, THREADS = int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
# Each thread's pause between requests: about 40 requests/s per thread.
PAUSE = 0.025
TIMEOUT = 5.0

lock = threading.Lock()
state = {"ok": 0, "failed": 0, "sent": 0, "failures": [], "by_addr": {}}
started = time.monotonic()
endpoints = {"mtime": None, "list": []}


def current_endpoints():
    """The endpoints as last written (re-read when the file changed)."""
    try:
        st = os.stat(ENDPOINTS)
    except FileNotFoundError:
        return []
    with lock:
        if endpoints["mtime"] != st.st_mtime_ns:
            with open(ENDPOINTS) as f:
                endpoints["list"] = [line.strip() for line in f if line.strip()]
            endpoints["mtime"] = st.st_mtime_ns
        return list(endpoints["list"])


def request(addr):
    """None when the app answered 200 with its greeting, else (kind, detail)."""
    host, port = addr.rsplit(":", 1)
    try:
        s = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    except ConnectionRefusedError as e:
        return ("refused", str(e))
    except socket.timeout:
        return ("connect-timeout", "")
    except OSError as e:
        return ("connect", str(e))
    try:
        s.settimeout(TIMEOUT)
        s.sendall(b"GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        return ("timeout", "")
    except (ConnectionResetError, BrokenPipeError) as e:
        return ("reset", str(e))
    except OSError as e:
        return ("io", str(e))
    finally:
        s.close()
    if not data:
        return ("closed", "no response")
    head = data.split(b"\r\n", 1)[0].decode(errors="replace")
    if " 200 " not in head + " " or b"hello from worker" not in data:
        return ("bad", head)
    return None


def worker(index):
    n = index
    while True:
        with lock:
            if (state["sent"] >= MAX_REQUESTS or time.monotonic() - started >= MAX_SECONDS
                    or os.path.exists(STOP)):
                return
            state["sent"] += 1
        eps = current_endpoints()
        if eps:
            addr = eps[n % len(eps)]
            n += 1
            fail = request(addr)
        else:
            addr, fail = "-", ("no-endpoints", "the Service has no ready endpoint")
        with lock:
            if fail is None:
                state["ok"] += 1
                state["by_addr"][addr] = state["by_addr"].get(addr, 0) + 1
            else:
                state["failed"] += 1
                if len(state["failures"]) < 50:
                    state["failures"].append({"at": round(time.monotonic() - started, 3),
                                              "addr": addr, "kind": fail[0], "detail": fail[1]})
        time.sleep(PAUSE)


def progress(threads):
    """`OK FAILED` in PROGRESS_FILE every 0.2 s, for the test to wait on."""
    while True:
        alive = any(t.is_alive() for t in threads)
        with lock:
            line = "%d %d\n" % (state["ok"], state["failed"])
        with open(PROGRESS + ".tmp", "w") as f:
            f.write(line)
        os.replace(PROGRESS + ".tmp", PROGRESS)
        if not alive:
            return
        time.sleep(0.2)


threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
for t in threads:
    t.start()
progress(threads)
for t in threads:
    t.join()
state["seconds"] = round(time.monotonic() - started, 3)
del state["sent"]
print(json.dumps(state))
