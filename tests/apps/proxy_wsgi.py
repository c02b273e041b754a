"""A WSGI app for gunicorn behind corefit (launcher/tests/proxy_limits.rs):
answers every request with what gunicorn told it about the peer, the PROXY
protocol header it parsed (gunicorn's own parser: PROXY_PROTOCOL,
REMOTE_ADDR, REMOTE_PORT, PROXY_ADDR, PROXY_PORT) and the request headers.

    gunicorn --bind 127.0.0.1:$PORT --proxy-protocol v1 --chdir tests/apps proxy_wsgi:app
"""
import json
import os

KEYS = ("PROXY_PROTOCOL", "REMOTE_ADDR", "REMOTE_PORT", "PROXY_ADDR", "PROXY_PORT")


def app(environ, start_response):
    seen = {k: environ.get(k) for k in KEYS}
    seen["pid"] = os.getpid()
    seen["headers"] = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    body = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
