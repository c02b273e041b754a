#!/usr/bin/env bash
# Builds (once) the Go net/http test app (tests/apps/go/hello) twice with
# Debian's Go: dynamically linked (cgo, Go's default on Linux) and static
# (CGO_ENABLED=0), into ~/.cache/corefit/go-apps. Idempotent: rebuilt only
# when the source changes. Prints the directory on stdout (it holds
# hello-dynamic and hello-static); progress to stderr.
set -euo pipefail
SRC="$(cd "$(dirname "$0")/go/hello" && pwd)"
CACHE="${COREFIT_CACHE:-$HOME/.cache/corefit}"
OUT="$CACHE/go-apps"
STAMP="$OUT/.corefit-src"
want=$(cat "$SRC/main.go" "$SRC/go.mod" | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$OUT/hello-dynamic" ] && [ -x "$OUT/hello-static" ]; then
  echo "$OUT"
  exit 0
fi
command -v go >/dev/null || { echo "go-apps: go not found (scripts/setup.sh installs golang-go)" >&2; exit 1; }
echo "go-apps: building $SRC" >&2
mkdir -p "$OUT"
export GOCACHE="$CACHE/go-build" GOFLAGS=-mod=mod GOPATH="$CACHE/go-path"
(cd "$SRC" && CGO_ENABLED=1 go build -o "$OUT/hello-dynamic" . && CGO_ENABLED=0 go build -o "$OUT/hello-static" .) >&2
echo "$want" > "$STAMP"
echo "$OUT"
