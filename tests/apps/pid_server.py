"""An unmodified Python `http.server` app for the `inject` strategy's tests:
it only binds ("", PORT) and answers every GET with its pid and worker id as
JSON, like tests/apps/server.js's `/`."""
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


http.server.HTTPServer(("", int(os.environ["PORT"])), Handler).serve_forever()
