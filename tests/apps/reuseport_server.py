"""A plain HTTP server that binds PORT itself with SO_REUSEPORT, for
`corefit --socket reuseport` tests (Node 20's `listen()` cannot set
SO_REUSEPORT; Node >= 22.12 can, see server.js's REUSE_PORT=1).

GET / answers {"pid", "worker", "listen": "reuseport"} as JSON.
"""

import json
import os
import signal
import socket
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = (
            json.dumps(
                {
                    "pid": os.getpid(),
                    "worker": os.environ.get("COREFIT_WORKER_ID"),
                    "listen": "reuseport",
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


class ReusePortServer(HTTPServer):
    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def main():
    port = int(os.environ.get("PORT", "3000"))
    server = ReusePortServer(("127.0.0.1", port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"reuseport_server.py: pid {os.getpid()} listening on {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
