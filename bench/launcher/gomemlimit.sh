#!/usr/bin/env bash
# GOMEMLIMIT from corefit against none, in the same run (issue 18): a Go app
# with a memory-hungry handler (bench/launcher/gomem/main.go: 150 MiB live
# per worker, 64 MiB of garbage per request) under corefit with 2 workers
# in a real cgroup v1 memory cgroup of 512 MiB, loaded for SECONDS by 4
# concurrent clients; rounds interleaved (with, without, with, without...).
# "without" sets GOMEMLIMIT=off, which corefit keeps as the user's value
# (Go then sizes its heap by GOGC alone, ~2x the live data per worker).
# Prints, per round, the kernel's OOM kills in the cgroup and the failed
# requests. Needs root and the cgroup v1 memory hierarchy (this machine).
#
#   bench/launcher/gomemlimit.sh [ROUNDS [SECONDS]]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-2}
SECONDS_PER=${2:-15}
COREFIT=${COREFIT:-${CARGO_TARGET_DIR:-target}/debug/corefit}
CACHE=${COREFIT_BENCH_CACHE:-$HOME/.cache/corefit-bench}
MEM=/sys/fs/cgroup/memory
[ -x "$COREFIT" ] || cargo build -q -p corefit
mkdir -p "$CACHE"
(cd bench/launcher/gomem && GOCACHE="$CACHE/go-build" GO111MODULE=off CGO_ENABLED=0 \
  go build -o "$CACHE/gomem" main.go)

run_round() { # MODE ROUND
  local mode=$1 cg="$MEM/corefit-bench-gomem-$$-$2" port pid ok=0 bad=0 end limit
  mkdir "$cg"
  echo $((512 * 1024 * 1024)) > "$cg/memory.limit_in_bytes"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  local env=(LIVE_MIB=150 GARBAGE_MIB=64)
  [ "$mode" = without ] && env+=(GOMEMLIMIT=off)
  env "${env[@]}" sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" \
    "$COREFIT" --workers 2 --memory-per-worker 256M --socket proxy --port "$port" --grace-period 5s -- "$CACHE/gomem" \
    > "$CACHE/gomem-$mode-$2.log" 2>&1 &
  pid=$!
  end=$((SECONDS + 30))
  until curl -sf -o /dev/null "http://127.0.0.1:$port/"; do
    [ $SECONDS -lt $end ] || { echo "no answer within 30 s: $(tail -3 "$CACHE/gomem-$mode-$2.log")" >&2; break; }
    sleep 0.2
  done
  limit=$(tr '\0' '\n' < /proc/$(pgrep -P "$pid" | head -1)/environ 2>/dev/null | grep '^GOMEMLIMIT=' || echo "GOMEMLIMIT=?")
  local results="$CACHE/gomem-$mode-$2.res"
  : > "$results"
  for c in 1 2 3 4; do
    (n=0; stop=$((SECONDS + SECONDS_PER))
     while [ $SECONDS -lt $stop ] && [ $n -lt 2000 ]; do
       if curl -sf -m 10 -o /dev/null "http://127.0.0.1:$port/"; then echo ok; else echo bad; fi
       n=$((n + 1))
     done >> "$results") &
  done
  wait $(jobs -p | grep -v "^$pid$") 2>/dev/null || true
  ok=$(grep -c '^ok' "$results" || true)
  bad=$(grep -c '^bad' "$results" || true)
  local kills
  kills=$(awk '$1 == "oom_kill" {print $2}' "$cg/memory.oom_control")
  local peak=$(( $(cat "$cg/memory.max_usage_in_bytes") / 1024 / 1024 ))
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  end=$((SECONDS + 10))
  while [ -s "$cg/cgroup.procs" ] && [ $SECONDS -lt $end ]; do sleep 0.2; done
  rmdir "$cg"
  printf '%-8s round %s  %-22s  OOM kills %3s  requests %5s ok %4s failed  peak %s MiB of 512\n' \
    "$mode" "$2" "$limit" "$kills" "$ok" "$bad" "$peak"
}

for r in $(seq 1 "$ROUNDS"); do
  run_round with "$r"
  run_round without "$r"
done
