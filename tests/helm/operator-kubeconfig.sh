#!/usr/bin/env bash
# Writes a kubeconfig that is the chart's operator ServiceAccount (with the
# chart's RBAC applied), for running the operator in end-to-end tests with
# exactly the rights a Helm install gives it. See operator_kubeconfig.py.
#
#   tests/helm/operator-kubeconfig.sh "$COREFIT_TEST_KUBECONFIG" /tmp/operator.kubeconfig [WATCH_NAMESPACE]
#   KUBECONFIG=/tmp/operator.kubeconfig target/debug/corefit-operator
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VENV=$("$HERE/setup-venv.sh")
cd "$HERE"
exec "$VENV/bin/python" operator_kubeconfig.py "$@"
