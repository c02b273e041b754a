"""Python's single-threaded `http.server.HTTPServer`: one connection at a
time, so one client that sends its request head slowly blocks every other
client (as a gunicorn sync worker without a buffering front). The proxy
tests (launcher/tests/proxy_limits.rs) show corefit shields it.

    PORT=3000 python3 tests/apps/proxy_single_thread.py

Every GET is answered with {"pid", "worker"} as JSON.
"""
import http.server
import json
import os


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"pid": os.getpid(), "worker": os.environ.get("COREFIT_WORKER_ID", "")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
