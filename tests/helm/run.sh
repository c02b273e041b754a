#!/usr/bin/env bash
# All chart checks against the real Helm engine and a real control plane:
#
#   tests/helm/run.sh [pytest args...]
#
# 1. sets up the Helm engine's virtualenv (tests/helm/setup-venv.sh, cached
#    in ~/.cache/corefit/helm-venv);
# 2. starts its own Kubernetes 1.20.2 control plane with
#    tests/k8s/control-plane.sh (binaries from tests/k8s/build-k8s.sh, cached), in a state directory of its own so that it
#    never shares (or stops) one that someone else started. To use an
#    existing one instead, set COREFIT_HELM_KUBECONFIG to its kubeconfig: it
#    must be fresh for these tests (they install into corefit-system and
#    finally delete the ClusterApp CRD with `kubectl delete -k deploy/`);
# 3. builds the operator binary (cargo, debug profile) unless
#    COREFIT_OPERATOR_BIN names one already;
# 4. runs pytest over tests/helm/ and stops what it started, whatever
#    happened. Exits with pytest's status.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
log() { echo "tests/helm: $*" >&2; }

command -v kubectl >/dev/null || { log "error: kubectl missing (Debian: apt-get install kubernetes-client)"; exit 1; }
VENV=$("$HERE/setup-venv.sh")

# The real operator binary, run with the chart's ServiceAccount token.
if [ -z "${COREFIT_OPERATOR_BIN:-}" ]; then
  log "building corefit-operator"
  (cd "$ROOT" && cargo build --quiet -p corefit-operator --bin corefit-operator)
  export COREFIT_OPERATOR_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/corefit-operator"
fi

STARTED=""
cleanup() {
  if [ -n "$STARTED" ]; then
    # Its output goes to a file first: with our stderr a closed pipe (e.g.
    # `run.sh | head`), a log line would kill the stop half-way.
    trap '' PIPE
    local out
    out=$(mktemp)
    COREFIT_K8S_STATE="$STARTED" "$ROOT/tests/k8s/control-plane.sh" stop >"$out" 2>&1 || true
    cat "$out" >&2 2>/dev/null || true
    rm -f "$out"
    STARTED=""
  fi
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "${COREFIT_HELM_KUBECONFIG:-}" ]; then
  [ -f "$COREFIT_HELM_KUBECONFIG" ] || { log "error: COREFIT_HELM_KUBECONFIG=$COREFIT_HELM_KUBECONFIG is not a file"; exit 1; }
  export COREFIT_TEST_KUBECONFIG="$COREFIT_HELM_KUBECONFIG"
  log "using the control plane of $COREFIT_TEST_KUBECONFIG"
else
  "$ROOT/tests/k8s/build-k8s.sh" >&2   # cached after the first machine-wide build
  STATE="${TMPDIR:-/tmp}/corefit-helm-k8s-$(id -u)-$$"
  STARTED="$STATE"
  exports=$(COREFIT_K8S_STATE="$STATE" "$ROOT/tests/k8s/control-plane.sh" start)
  eval "$exports"
fi

cd "$HERE"
set +e
"$VENV/bin/python" -m pytest -p no:cacheprovider -ra "$@"
rc=$?
set -e
exit $rc
