"""An unmodified Python `http.server` app for the `inject` strategy's tests:
it only binds ("", PORT) and answers every GET with its pid and worker id as
JSON, like tests/apps/server.js's `/`."""
import http.server

from common_listen import identity, json_handler, port

http.server.HTTPServer(("", port()), json_handler(identity)).serve_forever()
