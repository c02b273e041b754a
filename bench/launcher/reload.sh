#!/usr/bin/env bash
# Rolling reload under load: 2 workers serve `GET /` to `wrk -t1 -cC` over
# keep-alive connections on 127.0.0.1; after RELOAD_AT seconds the launcher
# is told to reload (corefit: `corefit reload`; PM2: `pm2 reload all`); the
# load runs DURATION seconds in all. Reported per run: wrk's failed
# requests (socket errors: connect, read, write, timeout; plus non-2xx),
# requests served, and how many of the 2 worker pids changed.
#
# Two app kinds (see shared BENCH.md), both plain Node `http` servers:
#   drain      tests/apps/ops_app.js: on SIGTERM/SIGINT answers with
#              `connection: close` for 100 ms, then closes idle keep-alive
#              connections and finishes in-flight requests
#   immediate  tests/apps/server.js: on SIGTERM/SIGINT closes the server and
#              its idle keep-alive connections at once
#
# Configurations: proxy and shared (corefit, 2 workers) and pm2 (PM2 cluster
# mode, `pm2-runtime` with instances: max = 2 here, pmx: false).
#
# Usage: bench/launcher/reload.sh             3 rounds, interleaved
#        QUICK=1 bench/launcher/reload.sh     1 round
# Knobs: ROUNDS, DURATION (s, default 8), RELOAD_AT (s, default 2),
#        CONNECTIONS (default 8), CONFIGS="proxy shared pm2",
#        APPS="drain immediate", COREFIT_BENCH_CACHE, OUT.
set -euo pipefail
BENCH_NAME=reload-bench
# shellcheck source=bench/launcher/common.sh
source "$(dirname "$0")/common.sh"

ROUNDS=${ROUNDS:-3}
[ "${QUICK:-0}" = 1 ] && ROUNDS=1
DURATION=${DURATION:-8}
RELOAD_AT=${RELOAD_AT:-2}
CONNECTIONS=${CONNECTIONS:-8}
CONFIGS=${CONFIGS:-"proxy shared pm2"}
APPS=${APPS:-"drain immediate"}

pm2_and_node
build_corefit
NODE_VERSION=$("$NODE_BIN_DIR/node" --version)

scratch "$NODE_BIN_DIR"
CURRENT_NAME=""


app_path() {
  case $1 in
    drain) echo "$ROOT/tests/apps/ops_app.js" ;;
    immediate) echo "$ROOT/tests/apps/server.js" ;;
    *) die "unknown app kind $1" ;;
  esac
}

# worker_pids PORT: the distinct pids answering 40 requests, sorted.
worker_pids() {
  local i
  for i in $(seq 1 40); do
    curl -fsS "http://127.0.0.1:$1/" 2>/dev/null | sed -E 's/.*"pid":([0-9]+).*/\1/' || true
    echo
  done | grep -E '^[0-9]+$' | sort -un | tr '\n' ' '
}

# start_config NAME APP PORT
start_config() {
  local name=$1 app=$2 port=$3 cmd
  local control=$WORK/control-$port.sock
  local corefit_args=(--mode cluster --workers 2 --host 127.0.0.1 --port "$port" --grace-period 10s --control-socket "$control")
  case $name in
    proxy) cmd=("${CLEAN_ENV[@]}" "$COREFIT" "${corefit_args[@]}" --socket proxy -- node "$app") ;;
    shared) cmd=("${CLEAN_ENV[@]}" "$COREFIT" "${corefit_args[@]}" --socket shared -- node "$app") ;;
    pm2) cmd=("${CLEAN_ENV[@]}" PM2_HOME="$WORK/pm2-$port" BENCH_APP="$app" BENCH_PORT="$port"
      "$PM2_RUNTIME" start "$ROOT/bench/launcher/pm2.config.js") ;;
    *) die "unknown configuration $name" ;;
  esac
  "${cmd[@]}" >"$WORK/$name-$port.log" 2>&1 &
  CURRENT_PID=$!
  CURRENT_NAME=$name
  local deadline=$((SECONDS + 30))
  until [ "$(worker_pids "$port" | wc -w)" -ge 2 ]; do
    kill -0 "$CURRENT_PID" 2>/dev/null || { cat "$WORK/$name-$port.log" >&2; die "$name exited at start"; }
    [ $SECONDS -lt $deadline ] || { cat "$WORK/$name-$port.log" >&2; die "$name: 2 workers not answering after 30 s"; }
    sleep 0.1
  done
}

reload_config() {
  local name=$1 port=$2
  case $name in
    proxy | shared) "$COREFIT" reload --control-socket "$WORK/control-$port.sock" >&2 ;;
    pm2) "${CLEAN_ENV[@]}" PM2_HOME="$WORK/pm2-$port" "$PM2" reload all >/dev/null 2>&1 ;;
  esac
}

stop_config() {
  local pid=$CURRENT_PID
  CURRENT_PID=""
  stop_pid "$pid" 20
}

RESULTS=$OUT/reload.tsv
printf 'round\tconfig\tapp\trequests\tfailed\tpids_changed\treload_s\n' >"$RESULTS"
log "node $NODE_VERSION, wrk -t1 -c$CONNECTIONS -d${DURATION}s, reload at ${RELOAD_AT}s, $ROUNDS round(s)"
for round in $(seq 1 "$ROUNDS"); do
  for app_kind in $APPS; do
    for config in $CONFIGS; do
      port=$(free_port)
      start_config "$config" "$(app_path "$app_kind")" "$port"
      before=$(worker_pids "$port")
      wrk -t1 -c"$CONNECTIONS" -d"$DURATION"s "http://127.0.0.1:$port/" >"$WORK/wrk.out" 2>&1 &
      wrk_pid=$!
      sleep "$RELOAD_AT"
      t0=$(date +%s.%N)
      reload_config "$config" "$port"
      t1=$(date +%s.%N)
      wait "$wrk_pid" || true
      after=$(worker_pids "$port")
      out=$(cat "$WORK/wrk.out")
      requests=$(awk '/requests in/ {print $1}' <<<"$out")
      errors=$(awk '/Socket errors:/ {gsub(",",""); print $4+$6+$8+$10}' <<<"$out")
      non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
      failed=$(( ${errors:-0} + ${non2xx:-0} ))
      changed=0
      for p in $before; do
        case " $after " in *" $p "*) ;; *) changed=$((changed + 1)) ;; esac
      done
      reload_s=$(python3 -c "print(round($t1 - $t0, 2))")
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$config" "$app_kind" "${requests:-0}" "$failed" "$changed" "$reload_s" >>"$RESULTS"
      log "round $round $config/$app_kind: ${requests:-0} requests, $failed failed, $changed of 2 pids changed (before: $before; after: $after), reload command took ${reload_s}s"
      stop_config
    done
  done
done

python3 - "$RESULTS" <<'PY' | tee "$OUT/reload-summary.md"
import csv, sys, statistics
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
print("| app kind | configuration | runs | failed requests per run | total failed / requests | pid changes per run |")
print("|---|---|---|---|---|---|")
keys = []
for r in rows:
    k = (r["app"], r["config"])
    if k not in keys:
        keys.append(k)
for app, config in keys:
    rs = [r for r in rows if (r["app"], r["config"]) == (app, config)]
    failed = [int(r["failed"]) for r in rs]
    reqs = sum(int(r["requests"]) for r in rs)
    changed = [r["pids_changed"] + "/2" for r in rs]
    print(f"| {app} | {config} | {len(rs)} | {', '.join(map(str, failed))} | {sum(failed)} / {reqs} | {', '.join(changed)} |")
PY
