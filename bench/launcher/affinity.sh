#!/usr/bin/env bash
# What --affinity costs the proxy: tests/apps/server.js (/hello) under
# `corefit --workers 2 --socket proxy --affinity A` for A in none (the
# baseline), client-ip and cookie, loaded by `wrk -t1 -cC -dD` on
# 127.0.0.1, keep-alive and with `Connection: close` (a new connection, so
# a new affinity decision, per request); configurations interleaved
# (none client-ip cookie none ...), ROUNDS rounds; prints the median
# requests/s of each and its ratio against `none` from this same run.
#
# Usage: bench/launcher/affinity.sh          (3 rounds x 10 s)
#        QUICK=1 bench/launcher/affinity.sh  (1 round x 2 s)
# Knobs: ROUNDS, DURATION (s), CONNECTIONS (16). Needs wrk, node, cargo.
set -euo pipefail
BENCH_NAME=affinity
# shellcheck source=bench/launcher/common.sh
source "$(dirname "$0")/common.sh"

quick_or_full
CONNECTIONS=${CONNECTIONS:-16}
command -v wrk >/dev/null || die "wrk not found (apt-get install -y wrk)"
build_corefit
APP=$ROOT/tests/apps/server.js
scratch "$(dirname "$(command -v node)")"
stop_config() { stop_pid "$CURRENT_PID"; CURRENT_PID=""; }

declare -A RPS
for round in $(seq 1 "$ROUNDS"); do
  for affinity in none client-ip cookie; do
    port=$(free_port)
    "${CLEAN_ENV[@]}" "$COREFIT" --mode cluster --workers 2 --allow-oversubscribe --host 127.0.0.1 \
      --port "$port" --grace-period 5s --socket proxy --affinity "$affinity" \
      --control-socket "$WORK/c.sock" -- node "$APP" >"$WORK/$affinity.log" 2>&1 &
    CURRENT_PID=$!
    deadline=$((SECONDS + 30))
    until curl -fsS -o /dev/null "http://127.0.0.1:$port/hello" 2>/dev/null; do
      kill -0 "$CURRENT_PID" 2>/dev/null || { cat "$WORK/$affinity.log" >&2; die "$affinity exited at start"; }
      [ $SECONDS -lt $deadline ] || die "$affinity not answering after 30 s"
      sleep 0.1
    done
    for conn in keepalive close; do
      headers=()
      [ "$conn" = close ] && headers=(-H "Connection: close")
      read -r rps _ _ errors < <(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "${headers[@]}" \
        "http://127.0.0.1:$port/hello" | wrk_figures)
      log "round $round $affinity $conn: $rps req/s ($errors errors)"
      RPS[$affinity.$conn]="${RPS[$affinity.$conn]:-} $rps"
    done
    stop_config
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
printf '| connections | affinity | req/s (median of %s) | vs none |\n|---|---|---|---|\n' "$ROUNDS"
for conn in keepalive close; do
  base=$(median <<<"${RPS[none.$conn]}")
  for affinity in none client-ip cookie; do
    m=$(median <<<"${RPS[$affinity.$conn]}")
    printf '| %s | %s | %.0f | %.2fx |\n' "$conn" "$affinity" "$m" "$(awk -v a="$m" -v b="$base" 'BEGIN {print (b > 0) ? a / b : 0}')"
  done
done
