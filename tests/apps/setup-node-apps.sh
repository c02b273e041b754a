#!/usr/bin/env bash
# Installs (once) the third-party Node.js packages the launcher's tests run
# under corefit: Express, Fastify, socket.io (server, client, cluster
# adapter) and ws, pinned by tests/apps/node/package-lock.json, into
# ~/.cache/corefit/node-apps. Idempotent: a warm run compares the lock file
# and returns at once. Prints the node_modules path on stdout (tests put it
# in NODE_PATH); progress to stderr.
#
#   NODE_PATH=$(tests/apps/setup-node-apps.sh) node tests/apps/express_app.js
set -euo pipefail
SRC="$(cd "$(dirname "$0")/node" && pwd)"
CACHE="${COREFIT_CACHE:-$HOME/.cache/corefit}"
DIR="$CACHE/node-apps"
STAMP="$DIR/.corefit-lock"
if [ -f "$STAMP" ] && cmp -s "$SRC/package-lock.json" "$STAMP" && [ -d "$DIR/node_modules" ]; then
  echo "$DIR/node_modules"
  exit 0
fi
command -v npm >/dev/null || { echo "node-apps: npm not found (scripts/setup.sh installs it)" >&2; exit 1; }
echo "node-apps: npm ci into $DIR" >&2
mkdir -p "$DIR"
rm -f "$STAMP"
cp "$SRC/package.json" "$SRC/package-lock.json" "$DIR/"
(cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error >&2)
cp "$SRC/package-lock.json" "$STAMP"
echo "$DIR/node_modules"
