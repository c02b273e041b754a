#!/usr/bin/env bash
# Creates (once) the virtualenv that holds the real Helm engine for the chart
# tests: PyPI's helm-python-sdk (import `helm_python`, Helm v4's Go SDK as a
# shared library) and pytest. Idempotent: a venv that already has the pinned
# versions is left alone. Prints the venv's path on stdout; progress to stderr.
#
#   VENV=$(tests/helm/setup-venv.sh)
#
# Works on a fresh Debian machine; the recipe (which Python, apt's
# python3-venv when needed) is tests/venv.sh.
set -euo pipefail

HELM_SDK_VERSION=0.2.2
PYTEST_VERSION=8.3.5
PYYAML_VERSION=6.0.2
CACHE="${COREFIT_CACHE:-$HOME/.cache/corefit}"
VENV="${COREFIT_HELM_VENV:-$CACHE/helm-venv}"
NAME=helm-venv
WANT="helm-python-sdk==$HELM_SDK_VERSION pytest==$PYTEST_VERSION pyyaml==$PYYAML_VERSION"
ready() { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import helm_python, pytest, yaml' 2>/dev/null; }
verify() { "$VENV/bin/python" -c 'import helm_python, pytest, yaml'; }
# shellcheck source=tests/venv.sh
source "$(dirname "$0")/../venv.sh"
