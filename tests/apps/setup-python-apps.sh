#!/usr/bin/env bash
# Creates (once) the virtualenv that holds the Python servers the proxy tests
# run behind corefit: gunicorn (a real PROXY protocol v1/v2 implementation,
# and a sync server that needs a buffering front). Idempotent: a venv that
# already has the pinned versions is left alone (a warm run takes ~0.1 s).
# Prints the venv's path on stdout; progress to stderr.
#
#   VENV=$(tests/apps/setup-python-apps.sh)
#   "$VENV/bin/gunicorn" --version
#
# Uses Debian's /usr/bin/python3 when it is there (a pyenv shim may point
# elsewhere), else whatever python3 is on PATH; installs python3-venv from
# apt when that Python cannot make a venv.
set -euo pipefail

GUNICORN_VERSION=27.0.1
PACKAGING_VERSION=25.0
CACHE="${COREFIT_CACHE:-$HOME/.cache/corefit}"
VENV="${COREFIT_APPS_VENV:-$CACHE/venv-apps}"
STAMP="$VENV/.corefit-stamp"
WANT="gunicorn==$GUNICORN_VERSION packaging==$PACKAGING_VERSION"

log() { echo "venv-apps: $*" >&2; }

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/gunicorn" ]; then
  echo "$VENV"
  exit 0
fi

PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || true)
if [ -z "$PY" ] || ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
  log "installing python3 and python3-venv from apt"
  if [ "$(id -u)" -ne 0 ]; then log "error: need root for apt-get (or install python3-venv yourself)"; exit 1; fi
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >&2
  PY=/usr/bin/python3
fi

log "creating $VENV with $PY"
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PY" -m venv "$VENV" >&2
# shellcheck disable=SC2086
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $WANT >&2
"$VENV/bin/gunicorn" --version >&2
echo "$WANT" > "$STAMP"
log "ready"
echo "$VENV"
