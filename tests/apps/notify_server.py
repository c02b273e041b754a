"""A plain HTTP server that reports readiness over the sd_notify protocol:
it listens on PORT, waits READY_DELAY_MS (default 300), then sends
"READY=1" to the Unix datagram socket named by NOTIFY_SOCKET. With
NEVER_READY=1 it never does (for the readiness-timeout test).

GET / answers {"pid", "worker", "ready"} as JSON, where "ready" says
whether READY=1 had been sent when the request came in.
"""

import os
import socket
import sys
import threading
import time
from http.server import ThreadingHTTPServer

from common_listen import identity, json_handler, port, serve

READY = threading.Event()

Handler = json_handler(
    lambda: {**identity(None), "ready": READY.is_set()},
    protocol="HTTP/1.1",
    newline=True,
    lower=True,
)


def notify_ready():
    time.sleep(int(os.environ.get("READY_DELAY_MS", "300")) / 1000)
    if os.environ.get("NEVER_READY") == "1":
        return
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        print("notify_server.py: no NOTIFY_SOCKET", file=sys.stderr, flush=True)
        return
    READY.set()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"STATUS=serving\nREADY=1\n", path)
    print(f"notify_server.py: pid {os.getpid()} sent READY=1", flush=True)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", port(3000)), Handler)
    threading.Thread(target=notify_ready, daemon=True).start()
    serve(server)


if __name__ == "__main__":
    main()
