#!/usr/bin/env bash
# Restart after a crash (issue 14): 2 workers of tests/apps/server.js serve
# `GET /` on 127.0.0.1; the older worker gets SIGKILL, and restart_probe.py
# times the kill -> the first answer from a new pid (a request on a new
# connection every 2 ms). KILLS kills a round, each SETTLE seconds after the
# previous replacement answered; the older worker is the other worker id
# each time, so with SETTLE=6 each id crashes at most once in corefit's
# window (10 x --min-uptime = 10 s): every kill is the first crash in a row
# of a stable worker (a second one within the window waits the backoff,
# 100 ms, by design: README "Crashes"). Reported per
# configuration: the median and spread of those times, the ratio against
# Node's cluster module in the same run, where corefit's part of it went
# (from its JSON log: the kill -> corefit reaped the worker -> spawned its
# successor -> counted it ready), requests that got no answer meanwhile,
# and the slowest request that got one.
#
# Configurations, interleaved each round (cluster proxy shared pm2 ...):
#   cluster    Node's own `cluster` module (bench/launcher/cluster.js: the
#              primary forks a new worker as soon as one exits), the baseline
#   pm2        PM2 cluster mode, `pm2-runtime` with instances: max (2 here),
#              pmx: false
#   proxy      corefit --workers 2 --socket proxy (routes to a worker once
#              its port answers)
#   shared     corefit --workers 2 --socket shared (the app listens on fd 3)
#   reuseport  corefit --workers 2 --socket reuseport (REUSE_PORT=1)
#
# Usage: bench/launcher/restart.sh           3 rounds x 4 kills (~6 min)
#        QUICK=1 bench/launcher/restart.sh   1 round x 2 kills
# Knobs: ROUNDS, KILLS, SETTLE (s, default 6), CONFIGS, COREFIT (a binary to
#        measure instead of building release), COREFIT_BENCH_CACHE, OUT.
# Needs: python3, curl, npm (PM2 and Node 22 into the cache), cargo.
set -euo pipefail
BENCH_NAME=restart-bench
# shellcheck source=bench/launcher/common.sh
source "$(dirname "$0")/common.sh"

ROUNDS=${ROUNDS:-3}
KILLS=${KILLS:-4}
if [ "${QUICK:-0}" = 1 ]; then
  ROUNDS=1
  KILLS=2
fi
SETTLE=${SETTLE:-6}
CONFIGS=${CONFIGS:-"cluster proxy shared pm2"}
APP=$ROOT/tests/apps/server.js
PROBE=$ROOT/bench/launcher/restart_probe.py
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)

pm2_and_node
if [ -z "${COREFIT:-}" ]; then
  build_corefit
fi
[ -x "$COREFIT" ] || die "no corefit binary at $COREFIT"
NODE_VERSION=$("$NODE_BIN_DIR/node" --version)

scratch "$NODE_BIN_DIR"

# worker_pids PORT: the distinct pids answering 40 requests, comma-separated.
worker_pids() {
  local i
  for i in $(seq 1 40); do
    curl -fsS "http://127.0.0.1:$1/" 2>/dev/null | sed -E 's/.*"pid":([0-9]+).*/\1/' || true
    echo
  done | grep -E '^[0-9]+$' | sort -un | paste -sd, -
}

# wait_workers PORT: until 2 distinct pids answer (30 s at most).
wait_workers() {
  local port=$1 deadline=$((SECONDS + 30)) pids
  while :; do
    pids=$(worker_pids "$port")
    [ "$(tr ',' '\n' <<<"$pids" | grep -c .)" -ge 2 ] && break
    kill -0 "$CURRENT_PID" 2>/dev/null || { cat "$WORK/$CURRENT_NAME-$port.log" >&2; die "$CURRENT_NAME exited"; }
    [ $SECONDS -lt $deadline ] || { cat "$WORK/$CURRENT_NAME-$port.log" >&2; die "$CURRENT_NAME: 2 workers not answering after 30 s"; }
    sleep 0.1
  done
  echo "$pids"
}

# start_config NAME PORT
start_config() {
  local name=$1 port=$2 cmd
  local corefit=("$COREFIT" --mode cluster --workers 2 --host 127.0.0.1 --port "$port" --grace-period 5s --log-format json)
  case $name in
    cluster) cmd=("${CLEAN_ENV[@]}" PORT="$port" WORKERS=2 node "$ROOT/bench/launcher/cluster.js") ;;
    pm2) cmd=("${CLEAN_ENV[@]}" PM2_HOME="$WORK/pm2-$port" BENCH_APP="$APP" BENCH_PORT="$port"
      "$PM2_RUNTIME" start "$ROOT/bench/launcher/pm2.config.js") ;;
    proxy | shared) cmd=("${CLEAN_ENV[@]}" "${corefit[@]}" --socket "$name" -- node "$APP") ;;
    reuseport) cmd=("${CLEAN_ENV[@]}" REUSE_PORT=1 "${corefit[@]}" --socket reuseport -- node "$APP") ;;
    *) die "unknown configuration $name" ;;
  esac
  CURRENT_NAME=$name
  "${cmd[@]}" >"$WORK/$name-$port.log" 2>&1 &
  CURRENT_PID=$!
}

# phases LOG VICTIM KILL_EPOCH: where corefit's time went after the kill,
# from its JSON log: "reaped_ms spawned_ms ready_ms" after the kill (the
# victim's `restarting` notice, its successor's `started` and `ready`), or
# "- - -" for the other launchers.
phases() {
  "$PY" - "$@" <<'PY'
import json, sys
log, victim, kill = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
events = []
for line in open(log, errors="replace"):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if isinstance(e, dict) and "event" in e:
        events.append(e)
out = ["-", "-", "-"]
for i, e in enumerate(events):
    if e["event"] == "restarting" and e.get("pid") == victim:
        out[0] = f"{(e['ts'] - kill) * 1000:.0f}"
        worker = e["worker"]
        new = None
        for f in events[i + 1:]:
            if f["event"] == "started" and f.get("worker") == worker and new is None:
                new = f["pid"]
                out[1] = f"{(f['ts'] - kill) * 1000:.0f}"
            elif f["event"] == "ready" and new is not None and f.get("pid") == new:
                out[2] = f"{(f['ts'] - kill) * 1000:.0f}"
                break
        break
print(" ".join(out))
PY
}

stop_config() {
  local pid=$CURRENT_PID
  CURRENT_PID=""
  stop_pid "$pid" 20
}

RESULTS=$OUT/restart.tsv
mkdir -p "$OUT"
printf 'round\tconfig\tkill\tms\trequests\tfailed\tslowest_ms\treaped_ms\tspawned_ms\tready_ms\n' >"$RESULTS"
log "node $NODE_VERSION, $ROUNDS round(s) x $KILLS kill(s), $SETTLE s between kills, configs: $CONFIGS"
# kills ROUND CONFIG PORT: KILLS times, SIGKILL the older worker of the
# configuration serving on PORT and time its replacement.
kills() {
  local round=$1 config=$2 port=$3 pids kill victim line
  local ms requests failed slowest kill_epoch reaped spawned ready
  pids=$(wait_workers "$port")
  for kill in $(seq 1 "$KILLS"); do
    sleep "$SETTLE"
    victim=${pids%%,*}
    if ! line=$("$PY" "$PROBE" "$port" "$victim" "$pids" 10); then
      cat "$WORK/$config-$port.log" >&2
      die "$config: no new worker answered within 10 s of SIGKILL ($line)"
    fi
    read -r ms requests failed slowest kill_epoch <<<"$line"
    pids=$(wait_workers "$port")
    read -r reaped spawned ready <<<"$(phases "$WORK/$config-$port.log" "$victim" "$kill_epoch")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$config" "$kill" "$ms" "$requests" "$failed" "$slowest" \
      "$reaped" "$spawned" "$ready" >>"$RESULTS"
    log "round $round $config kill $kill: new pid answering after $ms ms ($requests requests, $failed failed, slowest $slowest ms; corefit: reaped +$reaped, spawned +$spawned, ready +$ready ms)"
  done
}
interleaved kills

"$PY" - "$RESULTS" <<'PY' | tee "$OUT/restart-summary.md"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
configs = []
for r in rows:
    if r["config"] not in configs:
        configs.append(r["config"])
def ms(c):
    return [float(r["ms"]) for r in rows if r["config"] == c]
base = statistics.median(ms("cluster")) if ms("cluster") else None
def phase(rs, k):
    v = [float(r[k]) for r in rs if r[k] != "-"]
    return f"{statistics.median(v):.0f}" if v else "-"
print("| configuration | kills | SIGKILL -> new pid answering, median ms (min-max) | x Node cluster | corefit reaped / spawned / ready, median ms after the kill | requests without an answer meanwhile | slowest request meanwhile, ms |")
print("|---|---|---|---|---|---|---|")
for c in configs:
    v = ms(c)
    rs = [r for r in rows if r["config"] == c]
    med = statistics.median(v)
    ratio = f"{med / base:.2f}" if base else "-"
    failed = sum(int(r["failed"]) for r in rs)
    slowest = max(float(r["slowest_ms"]) for r in rs)
    phases = " / ".join(phase(rs, k) for k in ("reaped_ms", "spawned_ms", "ready_ms"))
    print(f"| {c} | {len(v)} | {med:.0f} ({min(v):.0f}-{max(v):.0f}) | {ratio} | {phases} | {failed} | {slowest:.0f} |")
PY
