#!/usr/bin/env bash
# The proxy's cost (issue 12), each figure against a baseline measured in
# the same run:
#
#   throughput  GET /hello of tests/apps/server.js (trivial), 2 workers,
#               `--socket proxy` vs `--socket shared`, wrk -t1 -cC -dD,
#               rounds interleaved (proxy shared proxy shared ...); corefit's
#               CPU time (utime+stime of /proc/PID/stat over the wrk run)
#               divided by the requests wrk counted
#   memory      corefit's VmRSS idle, with 1 and 1,000 idle keep-alive
#               connections (each made one request: 2 descriptors each), 10 s
#               after those closed, with 10,000 connections that never sent
#               a request (1 descriptor each; COREFIT_MAX_CONNECTIONS=10000,
#               the auto value being (20000 - 128) / 2 here), and 10 s after
#               they closed (tests/apps/proxy_app.py workers: no idle timeout
#               of their own)
#   echo        a 50 MiB POST /echo streamed back as it arrives (client
#               writes and reads at once, sha256 checked), through corefit vs
#               directly to one proxy_app.py, interleaved, 3 of each a round
#   latency     new requests (each on a new connection) with 0 and with
#               5,000 idle connections held, corefit started under
#               `prlimit --nofile=1024:20000`
#
# Every process runs under `env -i` with the same small environment (shared
# BENCH.md). Results: $OUT/proxy-results.tsv and $OUT/proxy-summary.md.
#
# Usage: bench/launcher/proxy.sh           full (3 rounds, wrk 10 s; ~6 min)
#        QUICK=1 bench/launcher/proxy.sh   smoke (1 round, wrk 2 s; ~1.5 min)
# Knobs: ROUNDS, DURATION (s), CONNECTIONS (wrk, 32), PARTS="throughput
#        memory echo latency", OUT (default target/bench-launcher),
#        COREFIT (a binary to measure instead of building release).
# Run it on a quiet machine: not while builds or tests run (BENCH.md).
# Needs: wrk, curl, python3, node, prlimit (util-linux), cargo.
set -euo pipefail
BENCH_NAME=proxy-bench
# shellcheck source=bench/launcher/common.sh
source "$(dirname "$0")/common.sh"

quick_or_full
CONNECTIONS=${CONNECTIONS:-32}
PARTS=${PARTS:-"throughput memory echo latency"}
ECHO_MIB=50
HELD_LATENCY=5000
LATENCY_REQUESTS=50

for tool in wrk curl python3 node prlimit; do
  command -v "$tool" >/dev/null || die "$tool not found"
done

if [ -z "${COREFIT:-}" ]; then
  build_corefit
fi
[ -x "$COREFIT" ] || die "no corefit binary at $COREFIT"
NODE_DIR=$(dirname "$(command -v node)")
NODE_VERSION=$(node --version)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
SERVER_JS=$ROOT/tests/apps/server.js
PROXY_APP=$ROOT/tests/apps/proxy_app.py
CLIENT=$ROOT/tests/apps/proxy_client.py
TICK=$(getconf CLK_TCK)

mkdir -p "$OUT"
scratch "$NODE_DIR"
HOLD_PID=""
APP_PID=""

cleanup() {
  stop_pid "$HOLD_PID" || true
  stop_pid "$APP_PID" || true
  stop_pid "$CURRENT_PID" || true
  rm -rf "$WORK"
}
trap cleanup EXIT


wait_http() { # wait_http PORT PATH WHAT PID: bounded wait until PATH answers
  local deadline=$((SECONDS + 30))
  until curl -fsS -m 5 -o /dev/null "http://127.0.0.1:$1$2" 2>/dev/null; do
    kill -0 "$4" 2>/dev/null || { cat "$WORK/$3.log" >&2 || true; die "$3 exited at start"; }
    [ $SECONDS -lt $deadline ] || { cat "$WORK/$3.log" >&2 || true; die "$3 not answering after 30 s"; }
    sleep 0.1
  done
}

# start_corefit NAME PORT ADMIN [PREFIX...] -- CORFIT_ARGS... -- APP...
# (PREFIX: e.g. prlimit --nofile=1024:20000; env settings go in PREFIX too)
start_corefit() {
  local name=$1 port=$2 admin=$3
  shift 3
  local prefix=()
  while [ "$1" != "--" ]; do prefix+=("$1"); shift; done
  shift
  local args=()
  while [ "$1" != "--" ]; do args+=("$1"); shift; done
  shift
  "${CLEAN_ENV[@]}" "${prefix[@]}" "$COREFIT" --mode cluster --workers 2 --allow-oversubscribe \
    --host 127.0.0.1 --port "$port" --grace-period 5s --admin-addr "127.0.0.1:$admin" \
    --control-socket "$WORK/$name.sock" "${args[@]}" -- "$@" >"$WORK/$name.log" 2>&1 &
  CURRENT_PID=$!
  wait_http "$port" /hello "$name" "$CURRENT_PID"
  # Both workers answering (bounded: 10 s).
  local i seen=$WORK/pids
  : >"$seen"
  for i in $(seq 1 200); do
    { curl -fsS -m 5 "http://127.0.0.1:$port/" 2>/dev/null | sed -E 's/.*"pid": ?([0-9]+).*/\1/'; echo; } >>"$seen" || true
    if [ "$(sort -u "$seen" | grep -c .)" -ge 2 ]; then break; fi
    sleep 0.05
  done
  if [ "$(sort -u "$seen" | grep -c .)" -lt 2 ]; then log "warning: $name: one worker answered in 10 s"; fi
}

stop_corefit() { stop_pid "$CURRENT_PID"; CURRENT_PID=""; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }

metric() { # metric ADMIN NAME -> value or empty
  curl -fsS -m 5 "http://127.0.0.1:$1/metrics" 2>/dev/null | awk -v n="$2" '$1 == n {print $2}' | head -1
}

# hold PORT N [--request]: starts a holder, waits (bounded) until it holds N
# connections and corefit counts them (when it has the metric).
hold() {
  local port=$1 n=$2 admin=$3
  shift 3
  "${CLEAN_ENV[@]}" "$PY" "$CLIENT" hold "$port" "$n" "$@" >"$WORK/hold.out" 2>&1 &
  HOLD_PID=$!
  local deadline=$((SECONDS + 60))
  until grep -q "^held $n" "$WORK/hold.out" 2>/dev/null; do
    kill -0 "$HOLD_PID" 2>/dev/null || { cat "$WORK/hold.out" >&2; die "holder of $n connections failed"; }
    [ $SECONDS -lt $deadline ] || die "holder of $n connections not done after 60 s"
    sleep 0.1
  done
  # corefit may not have accepted the last ones yet (the listen backlog):
  # wait until its gauge counts them (bounded: 15 s; 1 s without the gauge).
  local seen
  deadline=$((SECONDS + 15))
  while [ $SECONDS -lt $deadline ]; do
    seen=$(metric "$admin" corefit_proxy_connections || true)
    if [ -z "$seen" ]; then sleep 1; break; fi
    if [ "${seen%.*}" -ge "$n" ]; then break; fi
    sleep 0.1
  done
  sleep 0.5
}

unhold() { stop_pid "$HOLD_PID"; HOLD_PID=""; }

RESULTS=$OUT/proxy-results.tsv
printf 'round\tpart\tconfig\tmetric\tvalue\n' >"$RESULTS"
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }

# run_wrk PORT -> "rps requests p99_ms errors"
run_wrk() {
  local out
  out=$(wrk -t1 -c"$CONNECTIONS" -d"$2"s --latency "http://127.0.0.1:$1/hello" 2>&1)
  echo "$out" >>"$WORK/wrk.log"
  wrk_figures <<<"$out"
}

part_throughput() {
  local round=$1 config port admin before after rps requests p99 errors us
  for config in proxy shared; do
    port=$(free_port); admin=$(free_port)
    start_corefit "$config" "$port" "$admin" -- --socket "$config" -- node "$SERVER_JS"
    run_wrk "$port" 1 >/dev/null # warm up
    before=$(cpu_ticks "$CURRENT_PID")
    read -r rps requests p99 errors < <(run_wrk "$port" "$DURATION")
    after=$(cpu_ticks "$CURRENT_PID")
    us=$("$PY" -c "print(f'{($after - $before) * 1e6 / $TICK / max($requests, 1):.2f}')")
    record "$round" throughput "$config" rps "$rps"
    record "$round" throughput "$config" p99_ms "$p99"
    record "$round" throughput "$config" errors "$errors"
    record "$round" throughput "$config" cpu_us_per_request "$us"
    record "$round" throughput "$config" rss_kib "$(rss_kib "$CURRENT_PID")"
    log "round $round $config: $rps req/s, p99 $p99 ms, errors $errors, corefit CPU $us us/request"
    stop_corefit
  done
}

part_memory() {
  local round=$1 port admin pid
  port=$(free_port); admin=$(free_port)
  start_corefit memory "$port" "$admin" COREFIT_MAX_CONNECTIONS=10000 -- -- "$PY" "$PROXY_APP"
  pid=$CURRENT_PID
  for _ in $(seq 1 20); do curl -fsS -m 5 -o /dev/null "http://127.0.0.1:$port/hello"; done
  sleep 1
  record "$round" memory corefit idle "$(rss_kib "$pid")"
  hold "$port" 1 "$admin" --request
  record "$round" memory corefit held_1 "$(rss_kib "$pid")"
  unhold
  hold "$port" 1000 "$admin" --request
  record "$round" memory corefit held_1000 "$(rss_kib "$pid")"
  unhold
  sleep 10
  record "$round" memory corefit after_1000_closed_10s "$(rss_kib "$pid")"
  hold "$port" 10000 "$admin"
  record "$round" memory corefit held_10000_silent "$(rss_kib "$pid")"
  unhold
  sleep 10
  record "$round" memory corefit after_10000_closed_10s "$(rss_kib "$pid")"
  log "round $round memory (KiB): $(awk -F'\t' -v r="$round" '$1 == r && $2 == "memory" {printf "%s=%s ", $4, $5}' "$RESULTS")"
  stop_corefit
}

part_echo() {
  local round=$1 port admin direct t
  direct=$(free_port)
  "${CLEAN_ENV[@]}" PORT="$direct" "$PY" "$PROXY_APP" >"$WORK/direct.log" 2>&1 &
  APP_PID=$!
  wait_http "$direct" /hello direct "$APP_PID"
  port=$(free_port); admin=$(free_port)
  start_corefit echo "$port" "$admin" -- -- "$PY" "$PROXY_APP"
  # Warm up both paths once, then alternate.
  "$PY" "$CLIENT" echo "$direct" 4 >/dev/null
  "$PY" "$CLIENT" echo "$port" 4 >/dev/null
  for config in direct corefit direct corefit direct corefit; do
    if [ "$config" = direct ]; then t=$(timeout 120 "$PY" "$CLIENT" echo "$direct" "$ECHO_MIB") || t=fail
    else t=$(timeout 120 "$PY" "$CLIENT" echo "$port" "$ECHO_MIB") || t=fail; fi
    [ "$t" = fail ] && { log "round $round echo $config failed or stalled"; t=120; }
    record "$round" echo "$config" seconds "$t"
    log "round $round echo $ECHO_MIB MiB $config: $t s"
  done
  stop_corefit
  stop_pid "$APP_PID"; APP_PID=""
}

part_latency() {
  local round=$1 port admin median max
  port=$(free_port); admin=$(free_port)
  start_corefit latency "$port" "$admin" prlimit --nofile=1024:20000 -- -- "$PY" "$PROXY_APP"
  read -r median max < <("$PY" "$CLIENT" latency "$port" "$LATENCY_REQUESTS")
  record "$round" latency held_0 median_ms "$median"
  record "$round" latency held_0 max_ms "$max"
  hold "$port" "$HELD_LATENCY" "$admin" --request
  read -r median max < <("$PY" "$CLIENT" latency "$port" "$LATENCY_REQUESTS")
  record "$round" latency "held_$HELD_LATENCY" median_ms "$median"
  record "$round" latency "held_$HELD_LATENCY" max_ms "$max"
  log "round $round latency with $HELD_LATENCY held (soft nofile 1024 at start): median $median ms, max $max ms"
  unhold
  stop_corefit
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "corefit $COREFIT, node $NODE_VERSION, wrk -t1 -c$CONNECTIONS -d${DURATION}s, $ROUNDS round(s), parts: $PARTS"
for round in $(seq 1 "$ROUNDS"); do
  for part in $PARTS; do
    "part_$part" "$round"
  done
done

{
  "$PY" "$ROOT/bench/launcher/proxy_summary.py" "$RESULTS" \
    "node $NODE_VERSION; wrk -t1 -c$CONNECTIONS -d${DURATION}s; $ROUNDS round(s)"
  echo
  echo "Machine: $(nproc) CPUs; load average at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg)."
} | tee "$OUT/proxy-summary.md"
