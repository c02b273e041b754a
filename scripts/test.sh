#!/usr/bin/env bash
# The test command: sets up a fresh Debian machine (scripts/setup.sh), then
# checks formatting and lints, and runs every test of the workspace:
# unit tests, the launcher's real-process and real-cgroup tests (as root),
# and the operator's tests against a real kube-apiserver started here on
# 127.0.0.1 and stopped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$1" $(( $(date +%s) - started )); }

step "setup"
scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build"
cargo build --workspace --all-targets --locked

step "launcher and preload tests (unit, real processes, real cgroups, real Node/Python apps)"
cargo test -p corefit -p corefit-preload --locked

step "operator tests (real kube-apiserver 1.20.2 on 127.0.0.1, real operator binary)"
tests/k8s/run-operator-tests.sh --locked

step "Helm chart and deploy/ (real Helm engine, real kube-apiserver)"
tests/helm/run.sh

step "done"
echo "all tests passed in $(( $(date +%s) - started ))s"
