#!/usr/bin/env bash
# The operator's part of the test command: build (or reuse) the Kubernetes
# 1.20.2 binaries, start the control plane on 127.0.0.1, run every
# corefit-operator test (unit, pure, CRD drift, end-to-end against the real
# apiserver with the real operator binary), then the tests through real pods
# on a real node (operator/tests/real_node.rs, tests/k8s/node.sh), and stop
# the node and the control plane again whatever happened. Exits with the
# tests' status.
#
# The node starts in the background while the other tests run: it is
# tainted, so their pods (the test kubelet's) never land on it.
set -euo pipefail
cd "$(dirname "$0")/../.."
tests/k8s/build-k8s.sh
# A failed start must stop here: `eval "$(...)"` would ignore its status.
exports=$(tests/k8s/control-plane.sh start)
eval "$exports"
eval "$(tests/k8s/node.sh env)"
node_log=$(mktemp /tmp/corefit-node-start.XXXXXX)
node_pid=
cleanup() {
  # A node still starting is stopped by its own script (by PID), then
  # whatever it had started.
  if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
    kill -TERM "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
  fi
  tests/k8s/node.sh stop || status=1
  tests/k8s/control-plane.sh stop
  rm -f "$node_log"
}
status=0
# Any failure of its own (set -e, exit N) fails the script too.
trap 'rc=$?; [ "$rc" = 0 ] || status=$rc; cleanup; exit $status' EXIT
started=$SECONDS
tests/k8s/node.sh images
COREFIT_NODE_IMAGES_BUILT=1 tests/k8s/node.sh start >/dev/null 2>"$node_log" &
node_pid=$!

# A failure here still lets the real node's tests run: both are reported.
cargo test -p corefit-operator "$@" -- --skip real_node_ || status=$?

if ! wait "$node_pid"; then
  node_pid=
  echo "tests/k8s/node.sh start failed:" >&2
  cat "$node_log" >&2
  exit 1
fi
node_pid=
echo "real node: $(grep -o 'Ready in [0-9]*s' "$node_log") (started $((SECONDS - started))s ago, in the background)" >&2
t0=$SECONDS
# --nocapture: the test prints what it measured (apply to Ready, deletion).
cargo test -p corefit-operator --test real_node "$@" -- --nocapture || status=1
echo "real node tests: $((SECONDS - t0))s" >&2
tests/k8s/node.sh status >/dev/null || true
