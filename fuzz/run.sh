#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 20) and prints the
# executions per target. cargo-fuzz needs nightly features: the stable
# toolchain is asked for them with RUSTC_BOOTSTRAP=1. cargo-fuzz itself is
# installed once into ~/.cargo/bin. A crash stops the run non-zero and
# leaves the input in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${1:-20}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
for t in $(cargo fuzz list); do
  mkdir -p "corpus/$t"
  out=$(cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$SECONDS_EACH" -max_len=4096 -rss_limit_mb=1024 -timeout=5 2>&1) || {
    echo "$out" | tail -40
    echo "fuzz: $t FAILED"
    exit 1
  }
  runs=$(echo "$out" | grep -Eo '^Done [0-9]+ runs' | grep -Eo '[0-9]+')
  printf 'fuzz: %-18s %10s executions in %ss, no crash\n' "$t" "$runs" "$SECONDS_EACH"
done
