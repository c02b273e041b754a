"""A plain HTTP server that binds PORT itself with SO_REUSEPORT, for
`corefit --socket reuseport` tests (Node 20's `listen()` cannot set
SO_REUSEPORT; Node >= 22.12 can, see server.js's REUSE_PORT=1).

GET / answers {"pid", "worker", "listen": "reuseport"} as JSON.
"""

import os
import socket
from http.server import HTTPServer

from common_listen import identity, json_handler, port, serve

Handler = json_handler(
    lambda: {**identity(None), "listen": "reuseport"},
    protocol="HTTP/1.1",
    newline=True,
    lower=True,
)


class ReusePortServer(HTTPServer):
    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def main():
    listen = port(3000)
    server = ReusePortServer(("127.0.0.1", listen), Handler)
    print(f"reuseport_server.py: pid {os.getpid()} listening on {listen}", flush=True)
    serve(server)


if __name__ == "__main__":
    main()
