#!/usr/bin/env bash
# The node's own mount namespace, started by tests/k8s/node.sh as
#   nsenter --net=/run/netns/NETNS unshare --mount --propagation private inside.sh STATE
# so it runs in the node's network namespace, in a mount namespace of its
# own whose mounts the host never sees. Here:
#
# - files holding the values the kubelet wants are bound over the
#   /proc/sys entries it would otherwise rewrite on the host
#   (vm.overcommit_memory, kernel.panic, ...);
# - the paths the kubelet, containerd and the CNI plugins hard-code
#   (/run/containerd, /var/run/netns, /var/lib/kubelet/device-plugins,
#   /var/lib/cni, /var/log/pods) live under the state directory: /run,
#   /var/lib and /var/log are bound from there (nothing running here needs
#   the host's copies);
# - socat joins the apiserver's and the kubelet's ports on this
#   namespace's 127.0.0.1 to Unix sockets in the state directory (node.sh
#   joins those to the host's 127.0.0.1);
# - containerd, then the kubelet, run in the foreground of this script,
#   which waits for either to exit (node.sh stop ends them by PID).
set -euo pipefail
STATE=$1
# shellcheck source=/dev/null
source "$STATE/node.env"

# The kubelet's kernel settings (pkg/kubelet/cm setupKernelTunables), as
# files it reads back already right.
for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
          kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
  k=${kv%%=*}; v=${kv#*=}
  f="$STATE/sysctl/${k//\//.}"
  echo "$v" > "$f"
  mount --bind "$f" "/proc/sys/$k"
done
mkdir -p "$STATE/mnt/run" "$STATE/mnt/var-lib" "$STATE/mnt/var-log"
mount --bind "$STATE/mnt/run" /run
mount --bind "$STATE/mnt/var-lib" /var/lib
mount --bind "$STATE/mnt/var-log" /var/log
mkdir -p /run/netns /run/containerd /var/lib/cni /var/lib/kubelet/device-plugins /var/log/pods

ip link set lo up
socat "TCP-LISTEN:$API_PORT,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$STATE/api.sock" \
  </dev/null >>"$STATE/logs/socat-api-inside.log" 2>&1 &
echo $! > "$STATE/socat-api-inside.pid"
socat "UNIX-LISTEN:$STATE/kubelet.sock,fork,unlink-early" "TCP:127.0.0.1:$KUBELET_PORT" \
  </dev/null >>"$STATE/logs/socat-kubelet-inside.log" 2>&1 &
echo $! > "$STATE/socat-kubelet-inside.pid"

containerd --config "$STATE/containerd.toml" </dev/null >>"$STATE/logs/containerd.log" 2>&1 &
echo $! > "$STATE/containerd.pid"
deadline=$((SECONDS + 30))
until ctr -a "$STATE/containerd.sock" version >/dev/null 2>&1; do
  kill -0 "$(cat "$STATE/containerd.pid")" 2>/dev/null || { echo "containerd exited" >&2; exit 1; }
  [ "$SECONDS" -lt "$deadline" ] || { echo "containerd not up after 30s" >&2; exit 1; }
  sleep 0.1
done
touch "$STATE/containerd.up"

# node.sh imports the images meanwhile; the kubelet starts once it has.
deadline=$((SECONDS + 600))
until [ -e "$STATE/images.ok" ]; do
  [ -e "$STATE/images.failed" ] && exit 1
  [ "$SECONDS" -lt "$deadline" ] || { echo "images not imported after 600s" >&2; exit 1; }
  sleep 0.1
done

# No cloud: the AWS credential provider would otherwise call out at start.
AWS_EC2_METADATA_DISABLED=true "$KUBELET" \
  --kubeconfig="$STATE/kubelet.kubeconfig" \
  --hostname-override="$NODE_NAME" \
  --container-runtime=remote \
  --container-runtime-endpoint="unix://$STATE/containerd.sock" \
  --image-service-endpoint="unix://$STATE/containerd.sock" \
  --runtime-request-timeout=5m \
  --root-dir="$STATE/kubelet" --cert-dir="$STATE/kubelet/pki" \
  --volume-plugin-dir="$STATE/kubelet/volume-plugins" \
  --cgroup-driver=cgroupfs --cgroup-root="/$CGROUP_ROOT" \
  --address=127.0.0.1 --port="$KUBELET_PORT" --read-only-port=0 \
  --healthz-bind-address=127.0.0.1 --healthz-port=10248 \
  --resolv-conf="$STATE/resolv.conf" \
  --fail-swap-on=false \
  --eviction-hard='memory.available<100Mi,nodefs.available<1%,imagefs.available<1%,nodefs.inodesFree<1%' \
  --image-gc-high-threshold=100 --image-gc-low-threshold=99 \
  --pod-infra-container-image="$PAUSE_IMAGE" \
  --serialize-image-pulls=false \
  --node-labels="corefit.dev/real-node=true" \
  --register-with-taints="corefit.dev/real-node=true:NoSchedule" \
  --node-status-update-frequency=4s \
  --max-pods=40 \
  --v=1 </dev/null >>"$STATE/logs/kubelet.log" 2>&1 &
echo $! > "$STATE/kubelet.pid"
wait -n
