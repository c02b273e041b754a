#!/usr/bin/env bash
# Runs every fuzz target (or the TARGETs named) for SECONDS each (default
# 20) and prints executions, peak RSS and wall time per target.
#
#   fuzz/run.sh [SECONDS [TARGET...]]
#
# - cargo-fuzz needs nightly features: the stable toolchain is asked for
#   them with RUSTC_BOOTSTRAP=1. cargo-fuzz itself is installed once into
#   ~/.cargo/bin (`cargo install cargo-fuzz --locked`) when missing.
# - Builds go OUTSIDE the repo, so a fresh clone in CI reuses them:
#   ${COREFIT_CACHE:-~/.cache/corefit}/fuzz-target. They are release builds
#   with debug assertions and overflow checks (-O -a) and AddressSanitizer.
#   fuzz/Cargo.lock must be up to date (checked with --locked).
# - Each target starts from a temporary corpus: the committed seeds
#   (fuzz/seeds/TARGET/) plus what earlier runs on this machine found
#   (${COREFIT_CACHE}/fuzz-corpus/TARGET/, added back after a clean run).
#   Each has a dictionary of its format's tokens (fuzz/dicts/TARGET.dict).
# - Bounds: an input running over TIMEOUT_S seconds is a hang, one
#   allocation over MALLOC_LIMIT_MB or a process over RSS_LIMIT_MB is a
#   failure, like a panic. Any of them stops the run non-zero, prints the
#   reproduction command and leaves the input in fuzz/artifacts/TARGET/.
# - With COREFIT_RELIABILITY_OUT naming a file, one JSON line per target
#   is appended to it (the shape test-support/src/record.rs writes; rendered by
#   scripts/render_reliability.py into docs/reliability.md). libFuzzer's
#   full output for each target is kept in ${COREFIT_CACHE}/fuzz-logs/.
set -euo pipefail
cd "$(dirname "$0")"

SECONDS_EACH=${1:-20}
shift || true
TIMEOUT_S=5
RSS_LIMIT_MB=1024
MALLOC_LIMIT_MB=256
MAX_LEN=4096

CACHE=${COREFIT_CACHE:-$HOME/.cache/corefit}
TARGET_DIR=$CACHE/fuzz-target
CORPUS_CACHE=$CACHE/fuzz-corpus
LOGS=$CACHE/fuzz-logs
export RUSTC_BOOTSTRAP=1
# ASan's quarantine (256 MB by default) would dominate the peak RSS figure;
# the targets are safe Rust, where use-after-free is not the question.
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=16}
export PATH=$HOME/.cargo/bin:$PATH

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked

# What each target feeds its parsers, for the reliability table.
fault() {
  case $1 in
    cgroup_values) echo "arbitrary text as cpu.max, memory.max/high, cfs_quota_us, cfs_period_us, memory.limit_in_bytes, cpuset lists, /proc/meminfo" ;;
    proc_files) echo "arbitrary text as /proc/self/mountinfo, /proc/self/cgroup (then the cgroup chain walk) and /proc/<pid>/stat lines summed over a process tree" ;;
    env_overrides) echo "arbitrary environments and flag values through override resolution, platform detection, the plan, its report and every run setting" ;;
    control_protocol) echo "arbitrary bytes on the control socket (read as the server reads), scale targets, response text" ;;
    notify_socket) echo "arbitrary NOTIFY_SOCKET datagrams (sd_notify), cut to the 4096-byte receive buffer" ;;
    node_ipc) echo "arbitrary bytes on a Node IPC channel in arbitrary chunks, line caps from 1 byte to 64 KiB" ;;
    proxy_framing) echo "arbitrary bytes as HTTP/1.1 requests and responses in arbitrary pieces, and forwarding-field rewrites of every head accepted" ;;
    proxy_affinity) echo "arbitrary request heads as --affinity reads them (the corefit_worker cookie, X-Forwarded-For and Forwarded: for= behind trusted and untrusted peers), slots from cookies, Set-Cookie added to response heads" ;;
    ipc_relay) echo "arbitrary sequences of worker IPC channels opening, sending lines and closing, through the socket.io relay's routing" ;;
    *) echo "arbitrary input" ;;
  esac
}

mkdir -p "$TARGET_DIR" "$LOGS"
cargo fetch --locked --quiet
start=$(date +%s)
cargo fuzz build -O -a --target-dir "$TARGET_DIR"
echo "fuzz: built in $(($(date +%s) - start))s (cache $TARGET_DIR)"

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/corefit-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

for t in "${targets[@]}"; do
  corpus=$work/$t
  mkdir -p "$corpus" "artifacts/$t" "$CORPUS_CACHE/$t"
  cp seeds/"$t"/* "$corpus"/
  cp -r "$CORPUS_CACHE/$t"/. "$corpus"/
  t0=$(date +%s%N)
  if ! out=$(cargo fuzz run -O -a --target-dir "$TARGET_DIR" "$t" "$corpus" -- \
    -max_total_time="$SECONDS_EACH" -max_len=$MAX_LEN -timeout=$TIMEOUT_S \
    -rss_limit_mb=$RSS_LIMIT_MB -malloc_limit_mb=$MALLOC_LIMIT_MB \
    -dict="dicts/$t.dict" -print_final_stats=1 2>&1); then
    echo "$out" | grep -v '^#[0-9]' | tail -60
    echo "fuzz: $t FAILED: input saved under fuzz/artifacts/$t/; reproduce with"
    echo "  RUSTC_BOOTSTRAP=1 cargo fuzz run -O -a --target-dir $TARGET_DIR $t fuzz/artifacts/$t/<file>"
    exit 1
  fi
  ms=$((($(date +%s%N) - t0) / 1000000))
  wall=$((ms / 1000)).$((ms % 1000 / 100))
  echo "$out" >"$LOGS/$t.log"
  runs=$(echo "$out" | grep -Eo '^Done [0-9]+ runs' | grep -Eo '[0-9]+' || true)
  fuzz_s=$(echo "$out" | grep -Eo '^Done [0-9]+ runs in [0-9]+' | grep -Eo '[0-9]+$' || true)
  slowest=$(echo "$out" | grep -Eo 'stat::slowest_unit_time_sec: *[0-9]+' | grep -Eo '[0-9]+$' || true)
  rss=$(echo "$out" | grep -Eo 'stat::peak_rss_mb: *[0-9]+' | grep -Eo '[0-9]+$' || true)
  corpus_size=$(find "$corpus" -type f | wc -l)
  cp -n "$corpus"/* "$CORPUS_CACHE/$t"/ 2>/dev/null || true
  printf 'fuzz: %-17s %10s executions in %5.1fs (fuzzing %ss, slowest input %ss), peak RSS %4s MiB, corpus %5s, no crash\n' \
    "$t" "${runs:-?}" "$wall" "${fuzz_s:-?}" "${slowest:-?}" "${rss:-?}" "$corpus_size"
  if [ -n "${COREFIT_RELIABILITY_OUT:-}" ]; then
    python3 - "$COREFIT_RELIABILITY_OUT" "$t" "$(fault "$t")" "$wall" "${runs:-0}" "${rss:-0}" \
      "$TIMEOUT_S" "$MALLOC_LIMIT_MB" "$RSS_LIMIT_MB" <<'EOF'
import json, sys
out, target, fault, wall, runs, rss, timeout, malloc_mb, rss_mb = sys.argv[1:]
line = {
    "area": "fuzzing",
    "scenario": target,
    "fault": fault,
    "duration_s": round(float(wall), 1),
    "figures": [["executions", runs], ["crashes found", "0"], ["peak RSS MiB", rss]],
    "outcome": f"no panic, no hang over {timeout} s, no allocation over {malloc_mb} MB (RSS under {rss_mb} MB)",
}
with open(out, "a", encoding="utf-8") as f:
    f.write(json.dumps(line) + "\n")
EOF
  fi
done
