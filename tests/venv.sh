# shellcheck shell=bash
# The one virtualenv recipe the test set-up scripts share, sourced by
# tests/apps/setup-python-apps.sh and tests/helm/setup-venv.sh after they
# set NAME (the log prefix), VENV, WANT (pip requirements) and define
# `ready` (the warm venv is usable) and `verify` (run once it is built).
# Idempotent: a venv whose stamp names WANT and that is `ready` is left
# alone. Prints the venv's path on stdout; progress to stderr.
#
# Uses Debian's /usr/bin/python3 when it is there (a pyenv shim may point
# elsewhere), else whatever python3 is on PATH; installs python3-venv from
# apt when that Python cannot make a venv.
STAMP="$VENV/.corefit-stamp"

log() { echo "$NAME: $*" >&2; }

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && ready; then
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
verify >&2
echo "$WANT" > "$STAMP"
log "ready"
echo "$VENV"
