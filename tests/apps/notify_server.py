"""A plain HTTP server that reports readiness over the sd_notify protocol:
it listens on PORT, waits READY_DELAY_MS (default 300), then sends
"READY=1" to the Unix datagram socket named by NOTIFY_SOCKET. With
NEVER_READY=1 it never does (for the readiness-timeout test).

GET / answers {"pid", "worker", "ready"} as JSON, where "ready" says
whether READY=1 had been sent when the request came in.
"""

import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

READY = threading.Event()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = (
            json.dumps(
                {
                    "pid": os.getpid(),
                    "worker": os.environ.get("COREFIT_WORKER_ID"),
                    "ready": READY.is_set(),
                }
            )
            + "\n"
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


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
    port = int(os.environ.get("PORT", "3000"))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    threading.Thread(target=notify_ready, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
