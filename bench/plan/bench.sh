#!/usr/bin/env bash
# How much does deciding add to a container's start?
#
# Times `corefit plan --json` as a whole process against `/bin/true` in the
# same run: interleaved rounds (A B A B ...), each round N starts of each,
# under a clean environment (see ../shared/BENCH.md). Prints per-start
# medians, the spread over rounds, the difference and the ratio.
#
#   bench/plan/bench.sh [ROUNDS] [STARTS_PER_ROUND]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-7}
N=${2:-200}
cargo build --release -q -p corefit
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/corefit

run() { # run CMD...: mean microseconds per start over N starts
  local t0 t1
  t0=$EPOCHREALTIME
  for ((i = 0; i < N; i++)); do env -i PATH=/usr/bin:/bin "$@" >/dev/null; done
  t1=$EPOCHREALTIME
  echo $(( (${t1/./} - ${t0/./}) / N ))
}

true_us=(); plan_us=()
run /bin/true >/dev/null; run "$BIN" plan --json >/dev/null   # warm caches
for ((r = 0; r < ROUNDS; r++)); do
  true_us+=("$(run /bin/true)")
  plan_us+=("$(run "$BIN" plan --json)")
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
minmax() { printf '%s\n' "$@" | sort -n | awk 'NR==1{lo=$1} {hi=$1} END {print lo "-" hi}'; }
mt=$(median "${true_us[@]}"); mp=$(median "${plan_us[@]}")
echo "corefit plan --json vs /bin/true: $ROUNDS interleaved rounds x $N starts each (env -i; microseconds per start)"
printf '  %-22s median %6d us   (rounds %s)\n' "/bin/true" "$mt" "$(minmax "${true_us[@]}")"
printf '  %-22s median %6d us   (rounds %s)\n' "corefit plan --json" "$mp" "$(minmax "${plan_us[@]}")"
awk -v p="$mp" -v t="$mt" 'BEGIN { printf "  added by deciding:     %.2f ms per start; ratio %.2fx /bin/true (target: < 2 ms added)\n", (p - t) / 1000, p / t }'
