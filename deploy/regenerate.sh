#!/usr/bin/env bash
# Regenerates deploy/ from charts/corefit-operator through the real Helm
# engine (default values). Run after changing the chart or crds/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=$("$ROOT/tests/helm/setup-venv.sh")
cd "$ROOT/tests/helm"
exec "$VENV/bin/python" regen_deploy.py
