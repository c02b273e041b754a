#!/usr/bin/env bash
# Creates (once) the virtualenv that holds the Python servers the proxy tests
# run behind corefit: gunicorn (a real PROXY protocol v1/v2 implementation,
# and a sync server that needs a buffering front), and uvicorn with FastAPI
# (an asyncio framework as users deploy it). Idempotent: a venv that
# already has the pinned versions is left alone (a warm run takes ~0.1 s).
# Prints the venv's path on stdout; progress to stderr.
#
#   VENV=$(tests/apps/setup-python-apps.sh)
#   "$VENV/bin/gunicorn" --version
#
# The recipe (which Python, apt's python3-venv when needed) is tests/venv.sh.
set -euo pipefail

GUNICORN_VERSION=27.0.1
PACKAGING_VERSION=25.0
UVICORN_VERSION=0.54.0
FASTAPI_VERSION=0.165.0
CACHE="${COREFIT_CACHE:-$HOME/.cache/corefit}"
VENV="${COREFIT_APPS_VENV:-$CACHE/venv-apps}"
NAME=venv-apps
WANT="gunicorn==$GUNICORN_VERSION packaging==$PACKAGING_VERSION uvicorn==$UVICORN_VERSION fastapi==$FASTAPI_VERSION"
ready() { [ -x "$VENV/bin/gunicorn" ] && [ -x "$VENV/bin/uvicorn" ]; }
verify() { "$VENV/bin/gunicorn" --version && "$VENV/bin/uvicorn" --version; }
# shellcheck source=tests/venv.sh
source "$(dirname "$0")/../venv.sh"
