#!/usr/bin/env bash
# The operator's part of the test command: build (or reuse) the Kubernetes
# 1.20.2 binaries, start the control plane on 127.0.0.1, run every
# corefit-operator test (unit, pure, CRD drift, end-to-end against the real
# apiserver with the real operator binary), and stop the control plane
# again whatever happened. Exits with the tests' status.
set -euo pipefail
cd "$(dirname "$0")/../.."
tests/k8s/build-k8s.sh
# A failed start must stop here: `eval "$(...)"` would ignore its status.
exports=$(tests/k8s/control-plane.sh start)
eval "$exports"
trap 'tests/k8s/control-plane.sh stop' EXIT
cargo test -p corefit-operator "$@"
