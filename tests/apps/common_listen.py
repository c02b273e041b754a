"""What the Python test apps share: a handler answering every GET with the
worker's identity as JSON, the port from PORT, and a clean exit on SIGTERM.

    from common_listen import json_handler, port, serve

The apps differ only in what they add to the document, how they bind, and
when they say they are ready.
"""

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler


def port(default=None):
    """PORT from the environment (required unless a default is given)."""
    if default is None:
        return int(os.environ["PORT"])
    return int(os.environ.get("PORT", str(default)))


def json_handler(document, protocol="HTTP/1.0", newline=False, lower=False):
    """A handler class answering every GET with `document()` as JSON (a
    trailing newline if `newline`; header names in lower case if
    `lower`) and logging nothing."""
    content_type, content_length = (
        ("content-type", "content-length") if lower else ("Content-Type", "Content-Length")
    )

    class Handler(BaseHTTPRequestHandler):
        protocol_version = protocol

        def do_GET(self):
            body = (json.dumps(document()) + ("\n" if newline else "")).encode()
            self.send_response(200)
            self.send_header(content_type, "application/json")
            self.send_header(content_length, str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


def identity(worker_default=""):
    """{"pid", "worker"} of this process."""
    return {"pid": os.getpid(), "worker": os.environ.get("COREFIT_WORKER_ID", worker_default)}


def serve(server, exit_on_sigterm=True):
    """Serves until the process ends (SIGTERM exits 0 when asked)."""
    if exit_on_sigterm:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()
