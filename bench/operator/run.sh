#!/usr/bin/env bash
# The 300-ClusterApp benchmark (see converge.rs): builds the operator in
# release mode, starts the test control plane if it is not up, runs the
# benchmark, and stops the control plane again if it started it.
set -euo pipefail
cd "$(dirname "$0")/../.."
started=0
if [ -z "${COREFIT_TEST_KUBECONFIG:-}" ]; then
  tests/k8s/build-k8s.sh
  exports=$(tests/k8s/control-plane.sh start) # a failed start stops here
  eval "$exports"
  started=1
fi
trap '[ "$started" = 1 ] && tests/k8s/control-plane.sh stop' EXIT
cargo build --release -p corefit-operator --bin corefit-operator --example bench-converge
target/release/examples/bench-converge target/release/corefit-operator
