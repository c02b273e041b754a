#!/usr/bin/env bash
# A real Kubernetes 1.20.2 control plane on 127.0.0.1 for the operator tests:
# etcd, kube-apiserver, kube-controller-manager and kube-scheduler.
#
#   eval "$(tests/k8s/control-plane.sh start)"   # exports COREFIT_TEST_KUBECONFIG
#   tests/k8s/control-plane.sh status
#   tests/k8s/control-plane.sh stop
#   tests/k8s/control-plane.sh stop-component kube-apiserver [--kill]
#   tests/k8s/control-plane.sh start-component kube-apiserver
#
# `start` is idempotent: when the control plane it started is still up and
# ready, it prints the same exports again. Only the export lines go to
# stdout; progress and errors go to stderr. Every process it starts has its
# PID recorded in the state directory, and `stop` kills exactly those PIDs
# (after checking each still runs the binary it started), then removes the
# state directory. Nothing listens anywhere but 127.0.0.1.
#
# `stop-component NAME` stops one component (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler) with SIGTERM, or SIGKILL with
# `--kill`, and leaves the rest running; `start-component NAME` starts it
# again with the same ports, arguments and data directory (the ports are
# kept in the state directory), appends to the same log, and returns once
# it is ready (etcd healthy, the apiserver's /readyz ok). The fault tests
# (operator/tests/faults.rs) use them to stop the apiserver or restart etcd
# under a running operator.
#
# The apiserver admits PodNodeSelector and PodTolerationRestriction, which
# act only on namespaces annotated for them: the real node's tests
# (tests/k8s/node.sh) pin their namespaces' pods to that node that way,
# while every other test's pods stay off it (it is tainted).
#
# Binaries come from tests/k8s/build-k8s.sh (cached under
# ~/.cache/corefit/k8s-1.20.2) and Debian's etcd-server package.
set -euo pipefail

K8S_VERSION=1.20.2
CACHE="${COREFIT_CACHE:-$HOME/.cache/corefit}"
BIN="${COREFIT_K8S_BIN:-$CACHE/k8s-$K8S_VERSION}"
STATE="${COREFIT_K8S_STATE:-${TMPDIR:-/tmp}/corefit-k8s-$(id -u)}"
READY_DEADLINE="${COREFIT_K8S_READY_DEADLINE:-90}"
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler)

log() { echo "control-plane: $*" >&2; }
die() { log "error: $*"; exit 1; }

# A TCP port on 127.0.0.1 no socket uses (and we have not handed out),
# below the kernel's ephemeral range: a port inside it can be taken by any
# outgoing connection between this check and the component's bind.
free_port() {
  local p tries=0 lo span
  lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  span=$(( lo > 21000 ? lo - 20000 : 10000 ))
  while :; do
    p=$(( 20000 + RANDOM % span ))
    tries=$((tries + 1))
    [ "$tries" -gt 200 ] && die "no free port found on 127.0.0.1"
    grep -qx "$p" "$STATE/ports" 2>/dev/null && continue
    if ! ss -Htan "sport = :$p" 2>/dev/null | grep -q .; then
      echo "$p" >> "$STATE/ports"
      echo "$p"
      return
    fi
  done
}

# Is PID alive and still the binary we started?
ours() {
  local name=$1 pidf="$STATE/$1.pid" pid
  [ -f "$pidf" ] || return 1
  pid=$(cat "$pidf")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$name" || return 1
  echo "$pid"
}

exports() {
  echo "export COREFIT_TEST_KUBECONFIG=$STATE/kubeconfig"
  echo "export COREFIT_TEST_K8S_LOGS=$STATE/logs"
}

readyz() {
  local server token
  server=$(cat "$STATE/server")
  token=$(cat "$STATE/token")
  curl -sk --max-time 2 -H "Authorization: Bearer $token" "$server/readyz" 2>/dev/null | grep -qx ok
}

wait_for() { # description deadline-seconds command...
  local what=$1 deadline=$(( SECONDS + $2 )); shift 2
  until "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "$what not ready after $((deadline - SECONDS + $#))s; last log lines:"
      tail -n 20 "$STATE/logs/"*.log >&2 || true
      return 1
    fi
    sleep 0.3
  done
}

spawn() { # name binary args...
  local name=$1; shift
  # Appends: a component started again keeps its earlier lines.
  nohup "$@" </dev/null >>"$STATE/logs/$name.log" 2>&1 &
  echo $! > "$STATE/$name.pid"
}

# The ports chosen at `start`, kept so a component starts again alike.
port() { # etcd | etcd-peer | kube-apiserver
  [ -s "$STATE/$1.port" ] || die "$STATE/$1.port missing: was the control plane started by this script?"
  cat "$STATE/$1.port"
}

# One function per component: the same arguments at `start` and at
# `start-component`.
spawn_etcd() {
  local etcd_port peer_port
  etcd_port=$(port etcd); peer_port=$(port etcd-peer)
  spawn etcd etcd --name default --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "default=http://127.0.0.1:$peer_port" \
    --listen-metrics-urls "" --unsafe-no-fsync
}

etcd_ok() {
  curl -s --max-time 2 "http://127.0.0.1:$(port etcd)/health" 2>/dev/null | grep -q '"health":"true"'
}

spawn_kube_apiserver() {
  spawn kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$(port etcd)" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
    --secure-port="$(port kube-apiserver)" --insecure-port=0 \
    --cert-dir="$STATE/certs" \
    --token-auth-file="$STATE/tokens.csv" \
    --authorization-mode=RBAC \
    --service-account-key-file="$STATE/sa.pub" \
    --service-account-signing-key-file="$STATE/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-cluster-ip-range=10.96.0.0/16 \
    --enable-priority-and-fairness=false \
    --enable-admission-plugins=PodNodeSelector,PodTolerationRestriction \
    --max-requests-inflight=1000 --max-mutating-requests-inflight=500
}

spawn_kube_controller_manager() {
  spawn kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig="$STATE/kubeconfig" --leader-elect=false \
    --bind-address=127.0.0.1 --secure-port=0 --port=0 \
    --service-account-private-key-file="$STATE/sa.key" \
    --use-service-account-credentials=false \
    --kube-api-qps=200 --kube-api-burst=400 \
    --controllers='*,-nodeipam,-nodelifecycle,-attachdetach,-persistentvolume-binder,-persistentvolume-expander,-cloud-node-lifecycle,-route,-service'
}

spawn_kube_scheduler() {
  spawn kube-scheduler "$BIN/kube-scheduler" \
    --kubeconfig="$STATE/kubeconfig" --leader-elect=false \
    --bind-address=127.0.0.1 --secure-port=0 --port=0 \
    --kube-api-qps=200 --kube-api-burst=400
}

# Stops one component we started (SIGTERM, SIGKILL after 15 s; or SIGKILL
# at once), and forgets its PID.
stop_one() { # name TERM|KILL
  local c=$1 sig=$2 pid deadline
  if pid=$(ours "$c"); then
    kill "-$sig" "$pid" 2>/dev/null || true
    deadline=$(( SECONDS + 15 ))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    log "stopped $c (pid $pid)"
  fi
  rm -f "$STATE/$c.pid"
}

all_up() {
  local c
  for c in "${COMPONENTS[@]}"; do ours "$c" >/dev/null || return 1; done
  readyz
}

do_stop() {
  local c
  [ -d "$STATE" ] || { log "nothing to stop ($STATE absent)"; return 0; }
  for c in kube-scheduler kube-controller-manager kube-apiserver etcd; do
    stop_one "$c" TERM
  done
  rm -rf "$STATE"
}

component() { # name: must be one of ours
  local c
  for c in "${COMPONENTS[@]}"; do [ "$c" = "${1:-}" ] && return 0; done
  die "unknown component '${1:-}' (one of: ${COMPONENTS[*]})"
}

do_stop_component() { # name [--kill]
  local c=${1:-} sig=TERM
  component "$c"
  case "${2:-}" in
    "") ;;
    --kill) sig=KILL ;;
    *) die "stop-component $c: unknown option '$2' (only --kill)" ;;
  esac
  [ -f "$STATE/server" ] || die "the control plane is not running ($STATE absent)"
  ours "$c" >/dev/null || { log "$c is not running"; return 0; }
  stop_one "$c" "$sig"
}

do_start_component() { # name
  local c=${1:-} p
  component "$c"
  [ -f "$STATE/server" ] || die "the control plane is not running ($STATE absent): use start"
  if p=$(ours "$c"); then log "$c already running (pid $p)"; return 0; fi
  # Its ports must still be free: nobody else may have taken them meanwhile.
  local ports=()
  case "$c" in
    etcd) ports=("$(port etcd)" "$(port etcd-peer)") ;;
    kube-apiserver) ports=("$(port kube-apiserver)") ;;
  esac
  for p in "${ports[@]}"; do
    [ -n "$p" ] || exit 1
    if ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then
      die "port $p of $c is taken by another process"
    fi
  done
  echo "--- control-plane.sh start-component $c at $(date -u +%FT%TZ)" >> "$STATE/logs/$c.log"
  log "starting $c again"
  case "$c" in
    etcd) spawn_etcd; wait_for etcd 30 etcd_ok ;;
    kube-apiserver) spawn_kube_apiserver; wait_for kube-apiserver "$READY_DEADLINE" readyz ;;
    kube-controller-manager|kube-scheduler)
      "spawn_${c//-/_}"
      sleep 0.5
      ours "$c" >/dev/null || { log "$c exited:"; tail -n 20 "$STATE/logs/$c.log" >&2; return 1; } ;;
  esac
  log "$c running (pid $(cat "$STATE/$c.pid"))"
}

do_start() {
  for b in kube-apiserver kube-controller-manager kube-scheduler; do
    [ -x "$BIN/$b" ] || die "$BIN/$b missing: run tests/k8s/build-k8s.sh first"
  done
  command -v etcd >/dev/null || die "etcd missing: run tests/k8s/build-k8s.sh (installs etcd-server)"
  command -v openssl >/dev/null || die "openssl missing: apt-get install openssl"
  command -v curl >/dev/null || die "curl missing: apt-get install curl"

  if [ -d "$STATE" ] && all_up; then
    log "already running ($STATE)"
    exports
    return 0
  fi
  [ -d "$STATE" ] && { log "stale state in $STATE: stopping it first"; do_stop; }

  mkdir -p "$STATE/logs" "$STATE/etcd" "$STATE/certs"
  chmod 700 "$STATE"
  : > "$STATE/ports"
  local etcd_port peer_port api_port token
  etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port)
  echo "$etcd_port" > "$STATE/etcd.port"
  echo "$peer_port" > "$STATE/etcd-peer.port"
  echo "$api_port" > "$STATE/kube-apiserver.port"
  token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  echo "$token" > "$STATE/token"
  echo "$token,admin,admin,system:masters" > "$STATE/tokens.csv"
  # The real node's kubelet (tests/k8s/node.sh), named 127.0.0.1: its
  # token is known from the start, so the node needs no apiserver restart.
  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$STATE/node-token"
  echo "$(cat "$STATE/node-token"),system:node:127.0.0.1,system:node:127.0.0.1,system:nodes" >> "$STATE/tokens.csv"
  echo "https://127.0.0.1:$api_port" > "$STATE/server"
  openssl genrsa -out "$STATE/sa.key" 2048 2>/dev/null
  openssl rsa -in "$STATE/sa.key" -pubout -out "$STATE/sa.pub" 2>/dev/null

  cat > "$STATE/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: corefit-test
  cluster:
    server: https://127.0.0.1:$api_port
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: $token
contexts:
- name: corefit-test
  context:
    cluster: corefit-test
    user: admin
    namespace: default
current-context: corefit-test
EOF
  chmod 600 "$STATE/kubeconfig"

  log "starting etcd on 127.0.0.1:$etcd_port"
  spawn_etcd
  wait_for etcd 30 etcd_ok || { do_stop; exit 1; }

  log "starting kube-apiserver on 127.0.0.1:$api_port"
  spawn_kube_apiserver
  wait_for kube-apiserver "$READY_DEADLINE" readyz || { do_stop; exit 1; }

  log "starting kube-controller-manager and kube-scheduler"
  spawn_kube_controller_manager
  spawn_kube_scheduler
  # Each must still run 0.5 s on: a component that exits at once is an
  # error. Until its forked shell has exec'd (slow on a loaded machine) its
  # cmdline is not yet the component's: wait for that, up to 10 s, rather
  # than take it for an exit.
  sleep 0.5
  for c in kube-controller-manager kube-scheduler; do
    started_by=$((SECONDS + 10))
    until ours "$c" >/dev/null; do
      if [ ! -d "/proc/$(cat "$STATE/$c.pid")" ] || [ "$SECONDS" -ge "$started_by" ]; then
        log "$c exited:"; tail -n 20 "$STATE/logs/$c.log" >&2; do_stop; exit 1
      fi
      sleep 0.1
    done
  done
  # The default ServiceAccount must exist before pods can be admitted.
  sa_ok() {
    curl -sk --max-time 2 -H "Authorization: Bearer $token" \
      "https://127.0.0.1:$api_port/api/v1/namespaces/default/serviceaccounts/default" 2>/dev/null \
      | grep -q '"name": "default"'
  }
  wait_for "default ServiceAccount" 60 sa_ok || { do_stop; exit 1; }
  log "ready: kubeconfig $STATE/kubeconfig"
  exports
}

case "${1:-}" in
  start) do_start ;;
  stop) do_stop ;;
  status)
    if [ -d "$STATE" ] && all_up; then log "running"; exports; else log "not running"; exit 1; fi ;;
  env) exports ;;
  stop-component) shift; do_stop_component "$@" ;;
  start-component) shift; do_start_component "$@" ;;
  *) echo "usage: $0 start|stop|status|env|stop-component NAME [--kill]|start-component NAME" >&2; exit 2 ;;
esac
