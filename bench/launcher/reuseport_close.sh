#!/usr/bin/env bash
# What a closing listener costs under `--socket reuseport` (issue 14): 2
# gunicorn masters (each its own SO_REUSEPORT listener, `--reuse-port`)
# under corefit serve `GET /` to `wrk -t2 -c8 -dD` (gunicorn's sync
# workers close each connection, so every request is a new connection);
# RELOAD_AT seconds in, corefit gets SIGHUP (a rolling reload: each old
# master is told to stop and closes its listener). Reported per run: wrk's
# failed requests (socket errors: connect, read, write, timeout; plus
# non-2xx) and requests served.
#
# Each run is in a network namespace of its own (`unshare -n`, loopback
# only), so net.ipv4.tcp_migrate_req can be set there without touching the
# host's. Variants, interleaved each round:
#   plain         --ready auto (none for reuseport: a replacement counts as
#                 ready at once), tcp_migrate_req=0
#   notify        --ready notify (gunicorn sends READY=1 once it listens),
#                 tcp_migrate_req=0
#   notify-migrate --ready notify, tcp_migrate_req=1 (the kernel moves
#                 connections queued on a closing listener to another one
#                 of the group instead of resetting them)
#
# Usage: bench/launcher/reuseport_close.sh          3 rounds (~1 min)
# Knobs: ROUNDS, DURATION (s, default 4), RELOAD_AT (s, default 1),
#        VARIANTS, COREFIT (a binary instead of building release), OUT.
# Needs: root (or unprivileged user namespaces), wrk, curl, python3, cargo;
# gunicorn from tests/apps/setup-python-apps.sh.
set -euo pipefail
BENCH_NAME=reuseport-close
# shellcheck source=bench/launcher/common.sh
source "$(dirname "$0")/common.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-4}
RELOAD_AT=${RELOAD_AT:-1}
VARIANTS=${VARIANTS:-"plain notify notify-migrate"}
for tool in wrk curl unshare ip; do
  command -v "$tool" >/dev/null || die "$tool not found"
done
if [ -z "${COREFIT:-}" ]; then
  build_corefit
fi
VENV=$("$ROOT/tests/apps/setup-python-apps.sh")
GUNICORN=$VENV/bin/gunicorn
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cat >"$WORK/app.py" <<'PY'
import os


def app(environ, start_response):
    body = b"%d\n" % os.getpid()
    start_response("200 OK", [("content-type", "text/plain"), ("content-length", str(len(body)))])
    return [body]
PY

NS=(unshare -n)
[ "$(id -u)" = 0 ] || NS=(unshare -rn)

# one_run VARIANT: runs inside a new network namespace; prints
# "requests failed connect read write timeout" (wrk's socket errors by kind;
# failed adds non-2xx answers).
one_run() {
  local variant=$1 migrate=0 ready=auto
  case $variant in
    plain) ;;
    notify) ready=notify ;;
    notify-migrate) ready=notify migrate=1 ;;
    *) die "unknown variant $variant" ;;
  esac
  "${NS[@]}" env WORK="$WORK" COREFIT="$COREFIT" GUNICORN="$GUNICORN" READY="$ready" \
    MIGRATE="$migrate" DURATION="$DURATION" RELOAD_AT="$RELOAD_AT" bash -euo pipefail -c '
    ip link set lo up
    echo "$MIGRATE" >/proc/sys/net/ipv4/tcp_migrate_req
    port=8000
    cd "$WORK"
    "$COREFIT" --mode cluster --workers 2 --socket reuseport --ready "$READY" \
      --host 127.0.0.1 --port "$port" --grace-period 10s --control-socket "$WORK/ctl-$$.sock" \
      -- "$GUNICORN" --reuse-port --bind "127.0.0.1:$port" app:app >"$WORK/corefit.log" 2>&1 &
    cf=$!
    deadline=$((SECONDS + 30))
    until curl -fsS "http://127.0.0.1:$port/" >/dev/null 2>&1; do
      [ $SECONDS -lt $deadline ] || { cat "$WORK/corefit.log" >&2; exit 1; }
      sleep 0.1
    done
    sleep 1
    wrk -t2 -c8 -d"${DURATION}s" "http://127.0.0.1:$port/" >"$WORK/wrk.out" 2>&1 &
    w=$!
    sleep "$RELOAD_AT"
    kill -HUP "$cf"
    wait "$w" || true
    kill -TERM "$cf"
    wait "$cf" || true
    awk "/requests in/ {r=\$1} /Socket errors:/ {gsub(\",\",\"\"); c=\$4; rd=\$6; wr=\$8; t=\$10} /Non-2xx/ {n=\$NF} END {print r+0, c+rd+wr+t+n, c+0, rd+0, wr+0, t+0}" "$WORK/wrk.out"
  '
}

RESULTS=$OUT/reuseport-close.tsv
printf 'round\tvariant\trequests\tfailed\tconnect\tread\twrite\ttimeout\n' >"$RESULTS"
log "gunicorn --reuse-port, 2 masters, wrk -t2 -c8 -d${DURATION}s, SIGHUP at ${RELOAD_AT}s, $ROUNDS round(s)"
for round in $(seq 1 "$ROUNDS"); do
  for variant in $VARIANTS; do
    read -r requests failed connect read write timeout <<<"$(one_run "$variant")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$variant" "$requests" "$failed" "$connect" "$read" "$write" "$timeout" >>"$RESULTS"
    log "round $round $variant: $failed failed of $requests requests (connect $connect, read $read, write $write, timeout $timeout)"
  done
done

python3 - "$RESULTS" <<'PY' | tee "$OUT/reuseport-close-summary.md"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
variants = []
for r in rows:
    if r["variant"] not in variants:
        variants.append(r["variant"])
print("| variant | failed requests per run (one reload each) | failed / requests | of which connect / read / write / timeout |")
print("|---|---|---|---|")
for v in variants:
    rs = [r for r in rows if r["variant"] == v]
    failed = [int(r["failed"]) for r in rs]
    kinds = " / ".join(str(sum(int(r[k]) for r in rs)) for k in ("connect", "read", "write", "timeout"))
    print(f"| {v} | {', '.join(map(str, failed))} | {sum(failed)} / {sum(int(r['requests']) for r in rs)} | {kinds} |")
PY
