#!/usr/bin/env bash
# The main job: on a fresh Debian machine, build corefit, show its decision
# for this machine, then run the sample Node.js app (tests/apps/server.js,
# plain `http`) under the launcher on PORT (default 3000), in the
# foreground. Try `curl http://127.0.0.1:3000/` from another shell; stop
# with Ctrl-C (corefit shuts the workers down gracefully).
#
#   scripts/demo.sh                      # the plan's decision, proxy strategy
#   scripts/demo.sh --socket inject      # extra flags go to corefit
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --app >/dev/null
cargo build --release -q -p corefit
export PORT=${PORT:-3000}
target/release/corefit plan -- node tests/apps/server.js
echo
echo "== corefit $* -- node tests/apps/server.js  (http://127.0.0.1:$PORT/)"
exec target/release/corefit "$@" -- node tests/apps/server.js
