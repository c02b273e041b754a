#!/usr/bin/env bash
# Creates (once) the virtualenv that holds the real Helm engine for the chart
# tests: PyPI's helm-python-sdk (import `helm_python`, Helm v4's Go SDK as a
# shared library) and pytest. Idempotent: a venv that already has the pinned
# versions is left alone. Prints the venv's path on stdout; progress to stderr.
#
#   VENV=$(tests/helm/setup-venv.sh)
#
# Works on a fresh Debian machine: installs python3-venv from apt when the
# system Python cannot make a venv. Uses Debian's /usr/bin/python3 when it is
# there (a pyenv shim may point elsewhere), else whatever python3 is on PATH.
set -euo pipefail

HELM_SDK_VERSION=0.2.2
PYTEST_VERSION=8.3.5
PYYAML_VERSION=6.0.2
CACHE="${COREFIT_CACHE:-$HOME/.cache/corefit}"
VENV="${COREFIT_HELM_VENV:-$CACHE/helm-venv}"
STAMP="$VENV/.corefit-stamp"
WANT="helm-python-sdk==$HELM_SDK_VERSION pytest==$PYTEST_VERSION pyyaml==$PYYAML_VERSION"

log() { echo "helm-venv: $*" >&2; }

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/python" ] \
   && "$VENV/bin/python" -c 'import helm_python, pytest, yaml' 2>/dev/null; then
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
"$VENV/bin/python" -c 'import helm_python, pytest, yaml' >&2
echo "$WANT" > "$STAMP"
log "ready"
echo "$VENV"
