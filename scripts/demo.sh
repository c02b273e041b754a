#!/usr/bin/env bash
# The main jobs, on a fresh Debian machine (as root).
#
#   scripts/demo.sh                      # the launcher: build corefit, show its decision
#   scripts/demo.sh --socket inject      #   for this machine, run the sample app under it
#   scripts/demo.sh operator             # the operator: a ClusterApp on a real node
#
# The launcher (default): installs only Node.js and curl (scripts/setup.sh
# --app), builds corefit, prints its plan, then runs the sample Node.js app
# (tests/apps/server.js, plain `http`) under the launcher on PORT (default
# 3000), in the foreground. Extra arguments go to corefit. Try
# `curl http://127.0.0.1:3000/` from another shell; stop with Ctrl-C
# (corefit shuts the workers down gracefully).
#
# `operator`: installs what the node needs (scripts/setup.sh --operator; a
# fresh machine builds Kubernetes 1.20.2 once, ~5 minutes), then brings up
# a control plane on 127.0.0.1 (tests/k8s/control-plane.sh), a real node
# (tests/k8s/node.sh: kubelet, containerd and runc, the launcher and example
# images built here, pods in a network namespace of their own), the
# operator (built from this checkout), and examples/web-horizontal.yaml on
# the example app's image. It prints `kubectl get clusterapps,pods`, the
# app answering from each pod (curl inside the node's network namespace:
# no pod traffic reaches the host's network), and what `corefit plan` says
# inside a pod, then waits. Ctrl-C (or any failure) stops the operator, the
# node and the control plane, and the node's stop checks that the host is
# as before. The first start takes a few minutes (images); later ones about
# a minute (the node is Ready ~50 s after start).
set -euo pipefail
cd "$(dirname "$0")/.."

launcher() {
  scripts/setup.sh --app >/dev/null
  cargo build --release -q -p corefit
  export PORT=${PORT:-3000}
  target/release/corefit plan -- node tests/apps/server.js
  echo
  echo "== corefit $* -- node tests/apps/server.js  (http://127.0.0.1:$PORT/)"
  exec target/release/corefit "$@" -- node tests/apps/server.js
}

# ---- operator ----

NS=corefit-demo
APP=web
APP_IMAGE=corefit/node-app:0.1.0
LAUNCHER_IMAGE=corefit/corefit:0.1.0
# A control plane of the demo's own (its own state directory and ports),
# so a test run's control plane is never reused nor stopped by the demo.
export COREFIT_K8S_STATE="${COREFIT_DEMO_K8S_STATE:-${TMPDIR:-/tmp}/corefit-demo-k8s-$(id -u)}"
KUBECTL="${COREFIT_CACHE:-$HOME/.cache/corefit}/k8s-1.20.2/kubectl"

say() { printf '\n== %s\n' "$*"; }
kc() { "$KUBECTL" --kubeconfig "$COREFIT_K8S_STATE/kubeconfig" --request-timeout=30s "$@"; }

OPERATOR_PID=
NODE_STARTED=0
CP_STARTED=0
stopping=0
stop_all() {
  [ "$stopping" = 1 ] && return
  stopping=1
  trap '' INT TERM
  say "stopping"
  if [ -n "$OPERATOR_PID" ] && kill -0 "$OPERATOR_PID" 2>/dev/null; then
    kill -TERM "$OPERATOR_PID" 2>/dev/null || true
    wait "$OPERATOR_PID" 2>/dev/null || true
  fi
  [ "$NODE_STARTED" = 1 ] && { tests/k8s/node.sh stop || true; }
  [ "$CP_STARTED" = 1 ] && { tests/k8s/control-plane.sh stop || true; }
  rm -f "${OPERATOR_LOG:-}"
}

operator() {
  [ "$(id -u)" = 0 ] || { echo "demo.sh operator: run as root (the node makes a network namespace and cgroups)" >&2; exit 1; }
  # The node's netns, cgroups and state are named after the demo's own
  # control-plane state (COREFIT_K8S_STATE), so a test run's node is left
  # alone; a demo already running is not started twice.
  if tests/k8s/node.sh status >/dev/null 2>&1; then
    echo "demo.sh operator: the demo's node already runs (another demo?); stop it first: COREFIT_K8S_STATE=$COREFIT_K8S_STATE tests/k8s/node.sh stop" >&2
    exit 1
  fi

  say "set-up (scripts/setup.sh --operator)"
  scripts/setup.sh --operator >/dev/null
  # The debug build the operator's tests share (target/debug): warm after a
  # test run.
  cargo build -q -p corefit-operator
  trap 'stop_all' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  say "control plane (tests/k8s/control-plane.sh start)"
  CP_STARTED=1
  local exports
  exports=$(tests/k8s/control-plane.sh start)
  eval "$exports"

  say "real node (tests/k8s/node.sh start: builds and imports the images, then waits for Ready)"
  NODE_STARTED=1
  exports=$(tests/k8s/node.sh start)
  eval "$exports"
  KUBECTL=${COREFIT_TEST_KUBECTL:-$KUBECTL}

  say "the ClusterApp CRD, and namespace $NS pinned to the node"
  kc apply -f deploy/crds/clusterapp.yaml >/dev/null
  kc wait --for=condition=Established crd/clusterapps.corefit.dev --timeout=60s >/dev/null
  kc create namespace "$NS" >/dev/null
  # The node is tainted and labelled; the apiserver's PodNodeSelector and
  # PodTolerationRestriction give this namespace's pods both.
  kc annotate namespace "$NS" >/dev/null \
    scheduler.alpha.kubernetes.io/node-selector=corefit.dev/real-node=true \
    'scheduler.alpha.kubernetes.io/defaultTolerations=[{"key":"corefit.dev/real-node","operator":"Exists","effect":"NoSchedule"}]'

  say "corefit-operator (watching $NS)"
  OPERATOR_LOG=$(mktemp "${TMPDIR:-/tmp}/corefit-demo-operator.XXXXXX")
  KUBECONFIG="$COREFIT_K8S_STATE/kubeconfig" \
    COREFIT_OPERATOR_NAMESPACE="$NS" \
    COREFIT_OPERATOR_METRICS_ADDR=127.0.0.1:0 \
    COREFIT_OPERATOR_LAUNCHER_IMAGE="$LAUNCHER_IMAGE" \
    COREFIT_OPERATOR_NODE_CPUS="$(nproc)" \
    target/debug/corefit-operator >"$OPERATOR_LOG" 2>&1 &
  OPERATOR_PID=$!
  echo "pid $OPERATOR_PID, log $OPERATOR_LOG"

  say "kubectl apply: examples/web-horizontal.yaml on $APP_IMAGE"
  sed -e "s|^  image: .*|  image: $APP_IMAGE|" \
      -e 's|^  command: .*|  command: ["node", "server.js"]|' \
      examples/web-horizontal.yaml | kc -n "$NS" apply -f -
  local t0=$SECONDS
  if ! kc -n "$NS" wait --for=condition=Ready "clusterapp/$APP" --timeout=180s >/dev/null; then
    kc -n "$NS" get clusterapps,pods -o wide || true
    tail -n 20 "$OPERATOR_LOG" >&2
    echo "demo.sh operator: $APP did not become Ready in 180 s" >&2
    exit 1
  fi
  say "Ready $((SECONDS - t0)) s after apply: kubectl get clusterapps,pods"
  kc -n "$NS" get clusterapps,pods -o wide
  echo
  kc -n "$NS" get clusterapp "$APP" \
    -o jsonpath='status: {.status.mode} mode, {.status.workersPerPod} worker(s) per pod, {.status.scaling} scaling{"\n"}'

  # No kube-proxy runs here: the Service's endpoints are the pods'
  # addresses, reached from inside the node's network namespace.
  local port ips ip
  port=$(kc -n "$NS" get service "$APP" -o jsonpath='{.spec.ports[0].port}')
  ips=$(kc -n "$NS" get endpoints "$APP" -o jsonpath='{.subsets[*].addresses[*].ip}')
  say "the app answering (curl from the node's network namespace $COREFIT_TEST_NODE_NETNS)"
  for ip in $ips; do
    printf '%s:%s  ' "$ip" "$port"
    ip netns exec "$COREFIT_TEST_NODE_NETNS" curl -s --max-time 5 "http://$ip:$port/" || echo "(no answer)"
  done

  local pod
  pod=$(kc -n "$NS" get pods -l "corefit.dev/app=$APP" -o jsonpath='{.items[0].metadata.name}')
  say "inside $pod: corefit plan (the kubelet's limits, the operator's decision)"
  kc -n "$NS" exec "$pod" -c app -- corefit plan | sed -n '/^Decision/,/^Reasons/p'

  say "running. Try (another shell):"
  echo "  $KUBECTL --kubeconfig $COREFIT_K8S_STATE/kubeconfig -n $NS get clusterapps,pods"
  echo "  $KUBECTL --kubeconfig $COREFIT_K8S_STATE/kubeconfig -n $NS scale clusterapp/$APP --replicas=1"
  echo "  ip netns exec $COREFIT_TEST_NODE_NETNS curl http://${ips%% *}:$port/"
  echo "Ctrl-C stops the operator, the node and the control plane."
  while kill -0 "$OPERATOR_PID" 2>/dev/null; do sleep 1; done
  tail -n 20 "$OPERATOR_LOG" >&2
  echo "demo.sh operator: the operator exited" >&2
  exit 1
}

case "${1:-}" in
  operator) shift; operator "$@" ;;
  *) launcher "$@" ;;
esac
