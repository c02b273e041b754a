"""Python's single-threaded `http.server.HTTPServer`: one connection at a
time, so one client that sends its request head slowly blocks every other
client (as a gunicorn sync worker without a buffering front). The proxy
tests (launcher/tests/proxy_limits.rs) show corefit shields it.

    PORT=3000 python3 tests/apps/proxy_single_thread.py

Every GET is answered with {"pid", "worker"} as JSON.
"""
import http.server

from common_listen import identity, json_handler, port

http.server.HTTPServer(("127.0.0.1", port()), json_handler(identity)).serve_forever()
