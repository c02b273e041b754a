#!/usr/bin/env bash
# A real Kubernetes node for the tests: kubelet 1.20.2, containerd 1.6 and
# runc, joined to the control plane of tests/k8s/control-plane.sh.
#
#   eval "$(tests/k8s/control-plane.sh start)"
#   eval "$(tests/k8s/node.sh start)"   # exports COREFIT_TEST_NODE_*
#   tests/k8s/node.sh status
#   tests/k8s/node.sh stop
#   tests/k8s/node.sh env               # the exports, whether it runs or not
#   tests/k8s/node.sh images            # build the node's images only
#
# What it changes on this machine, and how it leaves none of it behind
# (facts in ../shared/REAL.md):
#
# - a network namespace of its own (`ip netns`, corefit-node-ID, exported
#   as $COREFIT_TEST_NODE_NETNS)
#   holding the kubelet, containerd's pods and a bridge CNI (pods get
#   10.88.x.y there, and no route leads out of it). The apiserver's port and
#   the kubelet's are joined to the host's 127.0.0.1 by socat over Unix
#   sockets. Tests reach the pods with `ip netns exec NETNS client ...`;
# - a mount namespace of its own for containerd, the kubelet and the pods
#   (tests/k8s/node/inside.sh): the /proc/sys entries the kubelet would
#   rewrite on the host, and the paths it and containerd hard-code, are
#   bound from the state directory there only;
# - child cgroups /corefit-node-ID in each hierarchy (the kubelet's
#   --cgroup-root, so every pod's cgroup sits under it);
# - images built with podman (tests/container/lib.sh's store) and imported
#   into containerd (tests/k8s/node/images.sh).
#
# `stop` deletes the Node object, ends every process of the node (the ones
# it started, by PID, and whatever still runs in its cgroups or names its
# state directory: containers and shims), removes the cgroups, the network
# namespace and the state directory, and compares the host (mounts,
# network namespaces and links, sysctls, iptables, cgroups) with what
# `start` saw: any difference is reported and fails the stop.
#
# The node registers as 127.0.0.1 with the taint
# corefit.dev/real-node=true:NoSchedule and the label
# corefit.dev/real-node=true: only pods that tolerate the taint run there.
# A test namespace opts in with two annotations (the apiserver runs the
# PodNodeSelector and PodTolerationRestriction admission plugins, see
# control-plane.sh): `scheduler.alpha.kubernetes.io/node-selector:
# corefit.dev/real-node=true` and `scheduler.alpha.kubernetes.io/
# defaultTolerations` for the taint. So the other tests' pods (the test
# kubelet's, operator/tests/e2e.rs) never land here, and this node's never
# land on the test kubelet's Node.
#
# Only the export lines go to stdout; progress and errors go to stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."

K8S_VERSION=1.20.2
CACHE="${COREFIT_CACHE:-$HOME/.cache/corefit}"
BIN="${COREFIT_K8S_BIN:-$CACHE/k8s-$K8S_VERSION}"
CP_STATE="${COREFIT_K8S_STATE:-${TMPDIR:-/tmp}/corefit-k8s-$(id -u)}"
# One node per control plane: its state, network namespace and cgroups
# are named after the control plane's state directory.
STATE="${COREFIT_NODE_STATE:-$CP_STATE-node}"
NODE_ID=$(printf '%s' "$STATE" | cksum | cut -c1-6)
NETNS="${COREFIT_NODE_NETNS:-corefit-node-$NODE_ID}"
NODE_NAME=127.0.0.1
CGROUP_ROOT=corefit-node-$NODE_ID
READY_DEADLINE="${COREFIT_NODE_READY_DEADLINE:-180}"
KUBECTL="$BIN/kubectl"
SYSCTLS=(vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops
  kernel/keys/root_maxkeys kernel/keys/root_maxbytes net/ipv4/ip_forward)

log() { echo "node: $*" >&2; }
die() { log "error: $*"; exit 1; }

exports() {
  echo "export COREFIT_TEST_NODE_NETNS=$NETNS"
  echo "export COREFIT_TEST_NODE_NAME=$NODE_NAME"
  echo "export COREFIT_TEST_NODE_LOGS=$STATE/logs"
  echo "export COREFIT_TEST_KUBECTL=$KUBECTL"
}

kc() { "$KUBECTL" --kubeconfig "$CP_STATE/kubeconfig" --request-timeout=10s "$@"; }

# Is the PID in file F alive and running a command line containing WORD?
ours() { # file word
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1")
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$2" || return 1
  echo "$pid"
}

# What the node may change on the host, one line per fact. Only what the
# node could have made is listed (other sessions' containers come and go
# meanwhile): mounts at the paths it uses, network namespaces and links of
# the kinds it makes, the sysctls the kubelet and the bridge plugin set,
# the iptables rules, the paths it hard-codes, its cgroups.
host_snapshot() {
  local f d
  echo "## mounts"
  awk '{print $5, $9}' /proc/self/mountinfo | sort |
    grep -E "^($STATE|/run/netns|/var/run/netns|/proc/sys|/run/containerd|/var/lib/(kubelet|cni|containerd)|/var/log|/run |/var/lib )" || true
  echo "## netns"; ls /run/netns 2>/dev/null | grep -E "^(cni-|$NETNS\$)" || true
  echo "## links"; ip -o link show | awk -F': ' '{print $2}' | grep -E '^(cni|veth)' | sort || true
  echo "## sysctl"; for f in "${SYSCTLS[@]}"; do echo "$f=$(cat "/proc/sys/$f")"; done
  echo "## iptables"; iptables-save 2>/dev/null | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]//' || true
  echo "## paths"
  for d in /run/netns /var/lib/kubelet /var/lib/cni /var/log/pods /var/log/containers /run/containerd /var/lib/containerd \
           /etc/cni/net.d /usr/libexec/kubernetes; do
    [ -e "$d" ] && echo "$d"
  done
  echo "## cgroups"; for d in /sys/fs/cgroup/*/; do [ -e "$d$CGROUP_ROOT" ] && echo "$d$CGROUP_ROOT"; done
  true
}

# Every PID still running for the node: a process whose command line
# names the state directory (containerd, its shims' -address, the
# kubelet, socat, inside.sh), or one in a cgroup under the node's cgroup
# root (containers). Not by mount namespace: once the node's is gone, its
# inode number may name another session's.
node_pids() {
  local p cmd
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" = "$$" ] && continue
    cmd=$(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null) || continue
    [[ $cmd == *"$STATE/"* || $cmd == *"$STATE "* ]] || continue
    alive "$p" && echo "$p"
  done
  cgroup_pids
}

# Every PID in a cgroup under the node's cgroup root.
cgroup_pids() {
  local f
  for f in /sys/fs/cgroup/*/"$CGROUP_ROOT"; do
    if [ -d "$f" ]; then find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null || true; fi
  done | while read -r p; do alive "$p" && echo "$p"; done
  true
}

# Running (a zombie waits for its parent, here often this machine's init,
# to reap it: it holds nothing any more).
alive() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
  [ "${st%% *}" != Z ]
}

stop_pid() { # pidfile word [signal]
  local pid deadline
  pid=$(ours "$1" "$2") || { rm -f "$1"; return 0; }
  kill "-${3:-TERM}" "$pid" 2>/dev/null || true
  deadline=$((SECONDS + 10))
  while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$1"
}

rm_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/"$CGROUP_ROOT"; do
    [ -d "$d" ] || continue
    # Deepest first: rmdir refuses a cgroup with children or tasks.
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

do_stop() {
  local pids deadline f left=0 t0=$SECONDS
  [ -d "$STATE" ] || { log "nothing to stop ($STATE absent)"; ip netns del "$NETNS" 2>/dev/null || true; return 0; }
  # The Node object: its pods are then removed by the garbage collector.
  if [ -f "$CP_STATE/kubeconfig" ] && [ -x "$KUBECTL" ]; then
    kc delete node "$NODE_NAME" --wait=false >/dev/null 2>&1 || true
  fi
  stop_pid "$STATE/kubelet.pid" kubelet
  # Containers first (SIGKILL through their cgroups), then containerd: its
  # shims exit once their containers have.
  deadline=$((SECONDS + 15))
  while :; do
    pids=$(cgroup_pids | sort -u)
    [ -z "$pids" ] && break
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    [ "$SECONDS" -lt "$deadline" ] || break
    sleep 0.1
  done
  stop_pid "$STATE/containerd.pid" containerd
  stop_pid "$STATE/inside.pid" inside.sh
  # socat takes about 2 s to act on SIGTERM; a relay has nothing to save.
  for f in api-inside kubelet-inside api-host kubelet-host; do
    stop_pid "$STATE/socat-$f.pid" socat KILL
  done
  # Whatever else still runs for the node (containerd's shims).
  deadline=$((SECONDS + 10))
  while pids=$(node_pids | sort -u) && [ -n "$pids" ]; do
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    [ "$SECONDS" -lt "$deadline" ] || { log "still running: $pids"; left=1; break; }
    sleep 0.1
  done
  rm_cgroups
  ip netns del "$NETNS" 2>/dev/null || true
  # The first `ip netns add` on a machine makes /run/netns and mounts it
  # over itself (shared): undone when this node made it and it is empty.
  if [ -f "$STATE/host-before" ] && ! grep -qx /run/netns "$STATE/host-before" &&
    [ -d /run/netns ] && [ -z "$(ls -A /run/netns)" ]; then
    while awk '$5 == "/run/netns"' /proc/self/mountinfo | grep -q .; do umount /run/netns || break; done
    rmdir /run/netns 2>/dev/null || true
  fi
  if [ -f "$STATE/host-before" ]; then
    host_snapshot > "$STATE/host-after"
    if ! diff -u "$STATE/host-before" "$STATE/host-after" > "$STATE/host-diff"; then
      log "the host differs from before the node started:"
      cat "$STATE/host-diff" >&2
      left=1
    fi
  fi
  if [ "$left" = 0 ]; then
    rm -rf "$STATE"
    log "stopped in $((SECONDS - t0))s; the host is as before"
  else
    log "stopped with leftovers (state kept in $STATE)"
    return 1
  fi
}

node_ready() {
  kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True
}

# The first free TCP port on the host's 127.0.0.1 from a random start,
# below the ephemeral range (as control-plane.sh picks its ports).
free_port() {
  local p lo tries=0
  lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  while :; do
    p=$((20000 + RANDOM % (lo - 20000)))
    tries=$((tries + 1))
    [ "$tries" -gt 200 ] && die "no free port on 127.0.0.1"
    ss -Htan "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return; }
  done
}

write_configs() {
  cat > "$STATE/containerd.toml" <<EOF
version = 2
root = "$STATE/containerd/root"
state = "$STATE/containerd/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "$STATE/containerd.sock"

[ttrpc]
  address = "$STATE/containerd.sock.ttrpc"

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # No CAP_SYS_RESOURCE here: without it runc fails writing oom_score_adj.
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$(command -v runc)"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
EOF
  mkdir -p "$STATE/cni/net.d" "$STATE/cni/ipam"
  cat > "$STATE/cni/net.d/10-corefit-node.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "corefit-node",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$STATE/cni/ipam",
        "ranges": [[{"subnet": "10.88.0.0/16"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
EOF
  cat > "$STATE/kubelet.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: corefit-test
  cluster:
    server: https://127.0.0.1:$API_PORT
    insecure-skip-tls-verify: true
users:
- name: node
  user:
    token: $(cat "$CP_STATE/node-token")
contexts:
- name: node
  context: {cluster: corefit-test, user: node}
current-context: node
EOF
  chmod 600 "$STATE/kubelet.kubeconfig"
  # The pods' resolv.conf: no name server is reachable from the node.
  echo "nameserver 127.0.0.1" > "$STATE/resolv.conf"
  cat > "$STATE/node.env" <<EOF
API_PORT=$API_PORT
KUBELET_PORT=$KUBELET_PORT
KUBELET=$BIN/kubelet
NODE_NAME=$NODE_NAME
CGROUP_ROOT=$CGROUP_ROOT
PAUSE_IMAGE=$PAUSE_IMAGE
EOF
}

do_start() {
  local t0=$SECONDS server pid d i
  for b in kubelet kubectl; do
    [ -x "$BIN/$b" ] || die "$BIN/$b missing: run tests/k8s/build-k8s.sh first"
  done
  for c in containerd ctr runc socat nsenter unshare podman gcc; do
    command -v "$c" >/dev/null || die "$c missing: run tests/k8s/build-k8s.sh (installs containerd runc containernetworking-plugins socat)"
  done
  [ -x /usr/lib/cni/bridge ] || die "/usr/lib/cni/bridge missing: apt-get install containernetworking-plugins"
  [ -f "$CP_STATE/server" ] || die "the control plane is not running ($CP_STATE absent): eval \"\$(tests/k8s/control-plane.sh start)\""
  [ -s "$CP_STATE/node-token" ] || die "$CP_STATE/node-token missing: the control plane was started by an older control-plane.sh; restart it"

  if [ -d "$STATE" ] && ours "$STATE/kubelet.pid" kubelet >/dev/null && node_ready; then
    log "already running ($STATE)"
    exports
    return 0
  fi
  [ -d "$STATE" ] && { log "stale state in $STATE: stopping it first"; do_stop || true; }
  ip netns list 2>/dev/null | grep -qw "^$NETNS" && die "network namespace $NETNS exists but no node of ours runs: remove it (ip netns del $NETNS)"

  server=$(cat "$CP_STATE/server")
  API_PORT=${server##*:}
  KUBELET_PORT=$(free_port)
  mkdir -p "$STATE/logs" "$STATE/sysctl" "$STATE/kubelet"
  chmod 700 "$STATE"
  host_snapshot > "$STATE/host-before"

  # Images (podman's store): a few seconds when warm.
  # shellcheck source=tests/k8s/node/images.sh
  source tests/k8s/node/images.sh
  PAUSE_IMAGE=$NODE_PAUSE_IMAGE
  write_configs
  if [ -z "${COREFIT_NODE_IMAGES_BUILT:-}" ]; then
    ct_host_before
    node_build_images || { ct_host_after; do_stop; die "building the node's images failed"; }
    ct_host_after
    log "images built ($((SECONDS - t0))s)"
  fi

  ip netns add "$NETNS"
  for d in /sys/fs/cgroup/*/; do
    mkdir -p "$d$CGROUP_ROOT"
    # A new v1 cpuset starts empty: it gets its parent's CPUs and nodes.
    if [ -f "${d}cpuset.cpus" ]; then
      cat "${d}cpuset.cpus" > "$d$CGROUP_ROOT/cpuset.cpus"
      cat "${d}cpuset.mems" > "$d$CGROUP_ROOT/cpuset.mems"
    fi
  done
  # The kubelet may act as its node, and nothing more (RBAC's system:node).
  kc create clusterrolebinding corefit-node --clusterrole=system:node \
    --user="system:node:$NODE_NAME" >/dev/null 2>&1 ||
    kc get clusterrolebinding corefit-node >/dev/null || { do_stop; die "cannot bind system:node"; }

  setsid socat "UNIX-LISTEN:$STATE/api.sock,fork,unlink-early" "TCP:127.0.0.1:$API_PORT" \
    </dev/null >>"$STATE/logs/socat-api-host.log" 2>&1 &
  echo $! > "$STATE/socat-api-host.pid"
  setsid nsenter --net="/run/netns/$NETNS" unshare --mount --propagation private \
    tests/k8s/node/inside.sh "$STATE" </dev/null >>"$STATE/logs/inside.log" 2>&1 &
  pid=$!
  echo "$pid" > "$STATE/inside.pid"
  # Its mount namespace, once unshare has made it.
  for i in $(seq 100); do
    d=$(readlink "/proc/$pid/ns/mnt" 2>/dev/null || true)
    [ -n "$d" ] && [ "$d" != "$(readlink /proc/self/ns/mnt)" ] && { echo "$d" > "$STATE/mntns"; break; }
    sleep 0.05
  done
  [ -s "$STATE/mntns" ] || { tail -5 "$STATE/logs/inside.log" >&2; do_stop; die "the node's mount namespace did not appear"; }

  d=$((SECONDS + 30))
  until [ -e "$STATE/containerd.up" ]; do
    if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$d" ]; then
      tail -20 "$STATE/logs/inside.log" "$STATE/logs/containerd.log" >&2 || true
      do_stop; die "containerd did not start"
    fi
    sleep 0.1
  done
  log "containerd up ($((SECONDS - t0))s)"
  if ! node_import_images "$STATE/containerd.sock"; then
    touch "$STATE/images.failed"; do_stop; die "importing images failed"
  fi
  touch "$STATE/images.ok"
  log "images imported ($((SECONDS - t0))s)"
  setsid socat "TCP-LISTEN:$KUBELET_PORT,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$STATE/kubelet.sock" \
    </dev/null >>"$STATE/logs/socat-kubelet-host.log" 2>&1 &
  echo $! > "$STATE/socat-kubelet-host.pid"

  d=$((SECONDS + READY_DEADLINE))
  until node_ready; do
    if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$d" ]; then
      log "Node $NODE_NAME not Ready after $((SECONDS - t0))s; last log lines:"
      tail -n 30 "$STATE/logs/inside.log" "$STATE/logs/kubelet.log" >&2 || true
      do_stop; exit 1
    fi
    sleep 0.3
  done
  # No node-lifecycle controller runs: the not-ready taint the kubelet
  # registered with never lifts by itself.
  kc taint node "$NODE_NAME" node.kubernetes.io/not-ready:NoSchedule- >/dev/null 2>&1 || true
  echo "$((SECONDS - t0))" > "$STATE/start-seconds"
  log "Node $NODE_NAME Ready in $((SECONDS - t0))s (netns $NETNS, logs $STATE/logs)"
  exports
}

do_status() {
  local p
  [ -d "$STATE" ] && node_ready || { log "not running"; return 1; }
  for p in kubelet containerd; do
    if pid=$(ours "$STATE/$p.pid" "$p"); then
      log "$p pid $pid rss $(awk '/^VmRSS/ {printf "%d MiB", $2 / 1024}' "/proc/$pid/status")"
    else
      log "$p not running"; return 1
    fi
  done
  exports
}

# Builds the node's images (podman; the launcher's static corefit with
# cargo) without starting anything: run-operator-tests.sh does this first,
# then starts the node with COREFIT_NODE_IMAGES_BUILT=1 while cargo runs
# the other tests (a second cargo would wait for their lock).
do_images() {
  # shellcheck source=tests/k8s/node/images.sh
  source tests/k8s/node/images.sh
  ct_host_before
  node_build_images || { ct_host_after; die "building the node's images failed"; }
  ct_host_after
}

case "${1:-}" in
  start) do_start ;;
  images) do_images ;;
  stop) do_stop ;;
  status) do_status ;;
  env) exports ;;
  *) echo "usage: $0 start|stop|status|env|images" >&2; exit 2 ;;
esac
