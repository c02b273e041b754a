#!/usr/bin/env bash
# Rolling reload under load: 2 workers serve `GET /` to `wrk -t1 -cC
# --timeout 10s` over keep-alive connections on 127.0.0.1; RELOAD_AT
# seconds in, the launcher is told to reload (corefit: `corefit reload`;
# PM2: `pm2 reload all`; Node's cluster: SIGHUP to the primary of
# bench/launcher/node_cluster_reload.js); the load runs DURATION seconds in
# all (SLOW_DURATION for the slow app, whose reload takes 2 x its boot).
# Reported per run: wrk's failed requests (socket errors: connect, read,
# write, timeout; plus non-2xx), the longest request (wrk's max latency),
# requests served, how many of the 2 worker pids changed, and how long the
# reload took (until the launcher said it was complete).
#
# Apps (tests/apps), as users write them:
#   express    express_app.js: Express, server.close() on SIGTERM/SIGINT
#   fastify    fastify_app.js: Fastify, fastify.close() on SIGTERM/SIGINT
#   fastapi    fastapi_app.py under uvicorn's own process (`--port $PORT`,
#              `--fd 3` in shared); uvicorn's own graceful stop
#   go         the Go net/http app (tests/apps/go/hello, hello-dynamic):
#              proxy only (it binds with raw system calls: no inject; it
#              does not take fd 3: no shared)
#   slow       slow_app.js: server.js after a 3 s boot (START_DELAY=3s)
#   drain      ops_app.js: answers `connection: close` for 100 ms, then
#              closes (the app that reloads cleanly everywhere)
#   immediate  server.js: server.close() and closeIdleConnections() at once
#
# Configurations (2 workers each): proxy, shared, inject (corefit);
# pm2 (PM2 cluster mode, `pm2-runtime`, instances: max = 2 here,
# pmx: false; Node apps only); cluster (Node's cluster module with a rolling
# restart on SIGHUP: bench/launcher/node_cluster_reload.js; Node apps only).
# Rounds are interleaved (round 1: every app x configuration, then round
# 2...); the summary gives each configuration's figures beside PM2's and
# Node cluster's from the same run.
#
# Network namespace: by default everything runs in the host's (and its
# net.ipv4.tcp_migrate_req, 0 unless the host set it). NETNS=1 runs the
# whole comparison, every launcher alike, in a network namespace of its own
# (`unshare -n`, `unshare -rn` when not root; loopback only) with
# tcp_migrate_req=1 set there (never on the host), as a container can have
# it (docs/sockets.md): corefit is built and the tools installed first, then
# the script runs itself again inside the namespace.
#
# Load: each run's 1-minute load average at its start is recorded (column
# load1; the benchmark's own previous run counts in it). QUIET_LOAD=2.5 waits
# before each round, polling /proc/loadavg every 20 s, until the 1-minute
# load is under it: at most QUIET_WAIT s (default 1500) before round 1 and
# QUIET_WAIT_ROUND s (default 120) before each later round, then measures
# anyway and says so.
#
# Usage: bench/launcher/reload.sh             3 rounds (~15 min)
#        QUICK=1 bench/launcher/reload.sh     1 round (~4 min)
#        NETNS=1 APPS="express slow" bench/launcher/reload.sh
# Knobs: ROUNDS, DURATION (s, default 9), SLOW_DURATION (s, default 12),
#        RELOAD_AT (s, default 2), CONNECTIONS (default 8),
#        CONFIGS="proxy shared inject pm2 cluster",
#        APPS="express fastify fastapi go slow", NETNS (0|1), QUIET_LOAD,
#        QUIET_WAIT, QUIET_WAIT_ROUND, COREFIT (a binary to measure instead
#        of building release), COREFIT_BENCH_CACHE, OUT.
set -euo pipefail
BENCH_NAME=reload-bench
# shellcheck source=bench/launcher/common.sh
source "$(dirname "$0")/common.sh"

ROUNDS=${ROUNDS:-3}
[ "${QUICK:-0}" = 1 ] && ROUNDS=1
DURATION=${DURATION:-9}
SLOW_DURATION=${SLOW_DURATION:-12}
RELOAD_AT=${RELOAD_AT:-2}
CONNECTIONS=${CONNECTIONS:-8}
CONFIGS=${CONFIGS:-"proxy shared inject pm2 cluster"}
APPS=${APPS:-"express fastify fastapi go slow"}
NETNS=${NETNS:-0}
case $NETNS in 0 | 1) ;; *) die "NETNS must be 0 or 1, not '$NETNS'" ;; esac

for tool in curl python3; do
  command -v "$tool" >/dev/null || die "$tool not found"
done
pm2_and_node
if [ -z "${COREFIT:-}" ]; then
  build_corefit
fi
[ -x "$COREFIT" ] || die "no corefit binary at $COREFIT"
NODE_VERSION=$("$NODE_BIN_DIR/node" --version)
NODE_MODULES=$("$ROOT/tests/apps/setup-node-apps.sh")
VENV=$("$ROOT/tests/apps/setup-python-apps.sh")
GO_APPS=$("$ROOT/tests/apps/setup-go-apps.sh")
APPS_DIR=$ROOT/tests/apps

# NETNS=1: everything above ran in the host's namespace (the build, npm and
# the app caches may need it); now the script runs again in a namespace of
# its own, where all of it is warm, with COREFIT set.
if [ "$NETNS" = 1 ] && [ "${RELOAD_NETNS_INSIDE:-0}" != 1 ]; then
  for tool in unshare ip sysctl; do
    command -v "$tool" >/dev/null || die "$tool not found (NETNS=1)"
  done
  NS=(unshare -n)
  [ "$(id -u)" = 0 ] || NS=(unshare -rn)
  exec "${NS[@]}" env RELOAD_NETNS_INSIDE=1 COREFIT="$COREFIT" bash "$ROOT/bench/launcher/reload.sh"
fi
if [ "${RELOAD_NETNS_INSIDE:-0}" = 1 ]; then
  ip link set lo up
  sysctl -q -w net.ipv4.tcp_migrate_req=1
  NAMESPACE="own network namespace"
else
  NAMESPACE="host network namespace"
fi
MIGRATE=$(cat /proc/sys/net/ipv4/tcp_migrate_req 2>/dev/null || echo "?")

# load1: the 1-minute load average now.
load1() { cut -d' ' -f1 /proc/loadavg; }

# wait_quiet SECONDS: with QUIET_LOAD set, waits (polling every 20 s, at most
# SECONDS) until the 1-minute load is under QUIET_LOAD.
wait_quiet() {
  [ -n "${QUIET_LOAD:-}" ] || return 0
  local max=$1 start=$SECONDS load
  while :; do
    load=$(load1)
    if awk -v a="$load" -v b="$QUIET_LOAD" 'BEGIN {exit !(a < b)}'; then
      log "load $load < $QUIET_LOAD after $((SECONDS - start)) s of waiting"
      return 0
    fi
    if [ $((SECONDS - start)) -ge "$max" ]; then
      log "warning: load $load still >= $QUIET_LOAD after $((SECONDS - start)) s: measuring anyway"
      return 0
    fi
    sleep 20
  done
}

scratch "$NODE_BIN_DIR"
CURRENT_NAME=""

is_node_app() {
  case $1 in express | fastify | slow | drain | immediate) return 0 ;; *) return 1 ;; esac
}

# applies CONFIG APP: whether the configuration can run the app.
applies() {
  case $1/$2 in
    pm2/* | cluster/*) is_node_app "$2" ;;
    shared/go | inject/go) return 1 ;;
    *) return 0 ;;
  esac
}

# node_app APP: the Node app's path.
node_app() {
  case $1 in
    express) echo "$APPS_DIR/express_app.js" ;;
    fastify) echo "$APPS_DIR/fastify_app.js" ;;
    slow) echo "$APPS_DIR/slow_app.js" ;;
    drain) echo "$APPS_DIR/ops_app.js" ;;
    immediate) echo "$APPS_DIR/server.js" ;;
    *) die "unknown Node app $1" ;;
  esac
}

# app_command CONFIG APP: the worker command corefit runs (one word a line).
app_command() {
  local uvicorn=("$VENV/bin/uvicorn" --app-dir "$APPS_DIR" --no-access-log --log-level warning)
  case $2 in
    fastapi)
      if [ "$1" = shared ]; then
        printf '%s\n' "${uvicorn[@]}" --fd 3 fastapi_app:app
      else
        printf '%s\n' sh -c "exec ${uvicorn[*]} --port \"\$PORT\" fastapi_app:app"
      fi
      ;;
    go) echo "$GO_APPS/hello-dynamic" ;;
    *) printf '%s\n' node "$(node_app "$2")" ;;
  esac
}

# worker_pids PORT: the distinct pids answering 40 requests, sorted (JSON
# `pid`, or Go's `hello from PID`).
worker_pids() {
  local i
  for i in $(seq 1 40); do
    curl -fsS -m 5 "http://127.0.0.1:$1/" 2>/dev/null |
      sed -E 's/.*"pid":([0-9]+).*/\1/; s/^hello from ([0-9]+)$/\1/' || true
    echo
  done | grep -E '^[0-9]+$' | sort -un | tr '\n' ' '
}

# start_config NAME APP PORT
start_config() {
  local name=$1 app=$2 port=$3 cmd
  local control=$WORK/control-$port.sock
  local env=("${CLEAN_ENV[@]}" NODE_PATH="$NODE_MODULES")
  [ "$app" = slow ] && env+=(START_DELAY=3s)
  local corefit_args=(--mode cluster --workers 2 --host 127.0.0.1 --port "$port" --grace-period 10s --control-socket "$control")
  case $name in
    proxy | shared | inject)
      mapfile -t worker < <(app_command "$name" "$app")
      cmd=("${env[@]}" "$COREFIT" "${corefit_args[@]}" --socket "$name" -- "${worker[@]}")
      ;;
    pm2) cmd=("${env[@]}" PM2_HOME="$WORK/pm2-$port" BENCH_APP="$(node_app "$app")" BENCH_PORT="$port"
      "$PM2_RUNTIME" start "$ROOT/bench/launcher/pm2.config.js") ;;
    cluster) cmd=("${env[@]}" PORT="$port" WORKERS=2 GRACE_MS=10000 BENCH_APP="$(node_app "$app")"
      node "$ROOT/bench/launcher/node_cluster_reload.js") ;;
    *) die "unknown configuration $name" ;;
  esac
  "${cmd[@]}" >"$WORK/$name-$port.log" 2>&1 &
  CURRENT_PID=$!
  CURRENT_NAME=$name
  local deadline=$((SECONDS + 30))
  until [ "$(worker_pids "$port" | wc -w)" -ge 2 ]; do
    kill -0 "$CURRENT_PID" 2>/dev/null || { cat "$WORK/$name-$port.log" >&2; die "$name/$app exited at start"; }
    [ $SECONDS -lt $deadline ] || { cat "$WORK/$name-$port.log" >&2; die "$name/$app: 2 workers not answering after 30 s"; }
    sleep 0.1
  done
}

# reload_config NAME PORT: starts the reload and returns once the launcher
# says it is complete (bounded: 60 s).
reload_config() {
  local name=$1 port=$2 log=$WORK/$1-$2.log deadline=$((SECONDS + 60))
  case $name in
    proxy | shared | inject)
      "$COREFIT" reload --control-socket "$WORK/control-$port.sock" >/dev/null
      until grep -q "reload complete" "$log"; do
        [ $SECONDS -lt $deadline ] || die "$name: no 'reload complete' after 60 s"
        sleep 0.05
      done
      ;;
    # `pm2 reload` returns when every worker is replaced.
    pm2) "${CLEAN_ENV[@]}" PM2_HOME="$WORK/pm2-$port" "$PM2" reload all >/dev/null 2>&1 ;;
    cluster)
      kill -HUP "$CURRENT_PID"
      until grep -q "reload complete" "$log"; do
        [ $SECONDS -lt $deadline ] || die "cluster: no 'reload complete' after 60 s"
        sleep 0.05
      done
      ;;
  esac
}

stop_config() {
  local pid=$CURRENT_PID
  CURRENT_PID=""
  stop_pid "$pid" 20
}

# wrk_reload_figures: wrk's output on stdin -> "requests connect read write
# timeout non2xx max_ms".
wrk_reload_figures() {
  awk '
    /requests in/ {req = $1}
    /Socket errors:/ {gsub(",", ""); c = $4; r = $6; w = $8; t = $10}
    /Non-2xx/ {n = $NF}
    $1 == "Latency" {
      v = $4
      if (v ~ /us$/) {sub(/us$/, "", v); v /= 1000}
      else if (v ~ /ms$/) {sub(/ms$/, "", v)}
      else if (v ~ /m$/) {sub(/m$/, "", v); v *= 60000}
      else if (v ~ /s$/) {sub(/s$/, "", v); v *= 1000}
      max = v
    }
    END {printf "%d %d %d %d %d %d %s\n", req, c, r, w, t, n, max + 0}'
}

RESULTS=$OUT/reload.tsv
printf 'round\tconfig\tapp\trequests\tfailed\tconnect\tread\twrite\ttimeout\tnon2xx\tmax_ms\tpids_changed\treload_s\tload1\n' >"$RESULTS"
SETUP="$NAMESPACE, tcp_migrate_req=$MIGRATE"
log "corefit $COREFIT (repository at $(git -C "$ROOT" rev-parse --short HEAD)), node $NODE_VERSION, wrk -t1 -c$CONNECTIONS -d${DURATION}s (slow: ${SLOW_DURATION}s), reload at ${RELOAD_AT}s, $ROUNDS round(s), $SETUP"
started=$SECONDS
for round in $(seq 1 "$ROUNDS"); do
  if [ "$round" = 1 ]; then
    wait_quiet "${QUIET_WAIT:-1500}"
  else
    wait_quiet "${QUIET_WAIT_ROUND:-120}"
  fi
  log "round $round starts, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  for app in $APPS; do
    duration=$DURATION
    [ "$app" = slow ] && duration=$SLOW_DURATION
    for config in $CONFIGS; do
      applies "$config" "$app" || continue
      port=$(free_port)
      load=$(load1)
      start_config "$config" "$app" "$port"
      before=$(worker_pids "$port")
      wrk -t1 -c"$CONNECTIONS" -d"$duration"s --timeout 10s "http://127.0.0.1:$port/" >"$WORK/wrk.out" 2>&1 &
      wrk_pid=$!
      sleep "$RELOAD_AT"
      t0=$(date +%s.%N)
      reload_config "$config" "$port"
      t1=$(date +%s.%N)
      kill -0 "$wrk_pid" 2>/dev/null || log "warning: $config/$app: the reload ended after the load"
      wait "$wrk_pid" || true
      after=$(worker_pids "$port")
      read -r requests connect read write timeout non2xx max_ms < <(wrk_reload_figures <"$WORK/wrk.out")
      failed=$((connect + read + write + timeout + non2xx))
      changed=0
      for p in $before; do
        case " $after " in *" $p "*) ;; *) changed=$((changed + 1)) ;; esac
      done
      [ "$changed" = 2 ] || log "warning: $config/$app: $changed of 2 worker pids changed"
      reload_s=$(python3 -c "print(round($t1 - $t0, 2))")
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$config" "$app" "$requests" "$failed" \
        "$connect" "$read" "$write" "$timeout" "$non2xx" "$max_ms" "$changed" "$reload_s" "$load" >>"$RESULTS"
      log "round $round $config/$app: $requests requests, $failed failed (connect $connect, read $read, write $write, timeout $timeout, non-2xx $non2xx), max latency ${max_ms} ms, $changed of 2 pids changed, reload took ${reload_s}s, load $load at start"
      stop_config
    done
  done
done
log "$ROUNDS round(s) in $((SECONDS - started)) s (waits for a quiet machine included)"

python3 - "$RESULTS" "$SETUP" <<'PY' | tee "$OUT/reload-summary.md"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
LABEL = {"proxy": "corefit proxy", "shared": "corefit shared", "inject": "corefit inject",
         "pm2": "PM2 (`pm2 reload`)", "cluster": "Node cluster (rolling)"}

def med(xs):
    return statistics.median(xs) if xs else None

def ratio(a, b):
    if a is None or b is None:
        return "-"
    if b == 0:
        return "=" if a == 0 else "inf"
    return f"{a / b:.2f}x"

def num(x):
    return "-" if x is None else f"{x:g}"

def versus(f, config, by_fig):
    """'0 vs 10 (PM2) / 11 (Node cluster)': median failed against theirs."""
    theirs = [f"{num(by_fig(c, 'failed'))} ({name})" for c, name in (("pm2", "PM2"), ("cluster", "Node cluster"))
              if by_fig(c, "failed") is not None and c != config]
    return f"{num(f)} vs {' / '.join(theirs)}" if theirs else num(f)

print(f"{sys.argv[2]}; medians over the runs, compared with PM2's and Node cluster's from the same run")
print()
print("| app | configuration | failed per run | kinds (connect/read/write/timeout/non-2xx) | median failed vs PM2 / Node cluster | max latency ms per run | median max ms | vs PM2 / vs cluster | pids changed | reload s | load1 at start |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
apps = list(dict.fromkeys(r["app"] for r in rows))
for app in apps:
    by = {}
    for r in rows:
        if r["app"] == app:
            by.setdefault(r["config"], []).append(r)
    def fig(config, col):
        rs = by.get(config)
        return med([float(r[col]) for r in rs]) if rs else None
    for config, rs in by.items():
        failed = [int(r["failed"]) for r in rs]
        kinds = "/".join(str(sum(int(r[k]) for r in rs)) for k in ("connect", "read", "write", "timeout", "non2xx"))
        maxes = [float(r["max_ms"]) for r in rs]
        f, m = med(failed), med(maxes)
        vs_max = f"{ratio(m, fig('pm2', 'max_ms'))} / {ratio(m, fig('cluster', 'max_ms'))}"
        changed = ", ".join(r["pids_changed"] + "/2" for r in rs)
        reload_s = ", ".join(r["reload_s"] for r in rs)
        loads = ", ".join(r.get("load1", "?") for r in rs)
        print(f"| {app} | {LABEL.get(config, config)} | {', '.join(map(str, failed))} | {kinds} | {versus(f, config, fig)} | "
              f"{', '.join(f'{x:g}' for x in maxes)} | {m:g} | {vs_max} | {changed} | {reload_s} | {loads} |")
PY
