#!/usr/bin/env bash
# The test command: sets up a fresh Debian machine (scripts/setup.sh), then
# checks formatting and lints, and runs every test of the workspace:
# unit tests, the launcher's real-process and real-cgroup tests (as root),
# the launcher's chaos and security tests, the container tier (podman +
# runc), the cgroup v2 tier (a QEMU guest), the operator's tests (fault,
# hostile-spec and end-to-end) against a real kube-apiserver started here
# on 127.0.0.1 and through real pods on a real kubelet + containerd node,
# all stopped afterwards, the Helm chart with a real Helm engine, and each
# fuzz target for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

# --fast: the tier for every change. The plan, the launcher's and the
# operator's unit tests (machine, settings, launch plan, desired()) and
# the test binaries that need neither root nor a control plane; no set-up,
# no fmt or clippy. Under a minute on a warm machine.
if [ "${1:-}" = "--fast" ]; then
  cargo test -p corefit-plan -p corefit -p corefit-operator --lib --locked \
    --test plan_table --test plan_properties --test probe_fixtures --test plan_cli \
    --test desired --test crd_drift
  echo "fast tier passed in $(( $(date +%s) - started ))s"
  exit 0
fi
step() { printf '\n== %s (%ss)\n' "$1" $(( $(date +%s) - started )); }

# Chaos, fault, hostile-spec, security and fuzz runs append their figures
# here (test-support/src/record.rs, fuzz/run.sh); the last step renders them.
COREFIT_RELIABILITY_OUT=$(mktemp /tmp/corefit-reliability.XXXXXX)
export COREFIT_RELIABILITY_OUT
trap 'rm -f "$COREFIT_RELIABILITY_OUT"' EXIT

# The build directory lives outside the checkout, like every slow build of
# the set-up: a clean checkout then recompiles only the workspace's own
# crates, not its ~400 dependencies. Emptied when it outgrows 30 GiB (each
# checkout path leaves its own copy of the workspace's crates there). Not
# under $HOME: the security tests run the built corefit as another user,
# who cannot enter root's home.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/corefit/target}"
mkdir -p "$CARGO_TARGET_DIR"
chmod 755 "$(dirname "$CARGO_TARGET_DIR")"
if [ "$(du -sm "$CARGO_TARGET_DIR" | cut -f1)" -gt 30720 ]; then
  echo "$CARGO_TARGET_DIR is above 30 GiB: emptying it"
  rm -rf "${CARGO_TARGET_DIR:?}"/*
fi
# The tiers outside cargo test run the debug corefit built below.
export COREFIT_BIN="$CARGO_TARGET_DIR/debug/corefit"

step "setup"
scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build"
cargo build --workspace --all-targets --locked

step "plan, launcher and preload tests (unit, real processes, real cgroups, real Node/Python apps)"
cargo test -p corefit-plan -p corefit -p corefit-preload --locked

step "containers (podman + runc)"
tests/container/run.sh

step "cgroup v2 guest (QEMU TCG, Debian's cloud kernel)"
tests/cgroup-v2/run.sh

step "operator tests (real kube-apiserver 1.20.2 on 127.0.0.1, real operator binary, real pods on a real kubelet + containerd node)"
tests/k8s/run-operator-tests.sh --locked

step "Helm chart and deploy/ (real Helm engine, real kube-apiserver)"
tests/helm/run.sh

step "fuzzing (cargo fuzz, ${COREFIT_FUZZ_SECONDS:-6} s per target)"
fuzz/run.sh "${COREFIT_FUZZ_SECONDS:-6}"

step "reliability table renders with every area (scripts/reliability.sh writes docs/reliability.md)"
mkdir -p target
python3 scripts/render_reliability.py "$COREFIT_RELIABILITY_OUT" \
  --require launcher --require operator --require "hostile specs" \
  --require security --require fuzzing > target/reliability.md
grep -c '^| ' target/reliability.md | sed 's/^/table lines: /'

step "done"
echo "all tests passed in $(( $(date +%s) - started ))s"
