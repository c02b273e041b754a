#!/usr/bin/env bash
# Installs everything corefit's tests, sample app and benchmarks need on a
# fresh Debian 12 machine (run as root). Idempotent: a warm machine pays a
# few seconds. Slow builds are cached outside the repo (~/.cache/corefit).
#
#   scripts/setup.sh             everything (the test command's set-up)
#   scripts/setup.sh --app       only what the sample app under corefit needs
#                                (Node.js, curl): the main job waits for nothing else
#   scripts/setup.sh --operator  what `scripts/demo.sh operator` needs: the
#                                above, the Kubernetes 1.20.2 binaries, etcd,
#                                containerd, runc, the CNI plugins (build-k8s.sh)
#                                and podman for the node's images (tests/container)
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

PART=all
case "${1:-}" in
  "") ;;
  --app) PART=app ;;
  --operator) PART=operator ;;
  *) echo "usage: $0 [--app | --operator]" >&2; exit 2 ;;
esac

if [ "$PART" = app ]; then
  APT=(curl ca-certificates procps)
elif [ "$PART" = operator ]; then
  APT=(curl ca-certificates procps gcc libc6-dev)   # gcc: the node's static pause program
else
  APT=(wrk curl ca-certificates procps iproute2 python3-venv busybox-static golang-go gcc libc6-dev ruby ruby-webrick)
  command -v npm >/dev/null 2>&1 || APT+=(npm)
  command -v kubectl >/dev/null 2>&1 || APT+=(kubernetes-client)
  # launcher/tests/worker_shares.rs runs a real JVM (`java File.java`: the
  # source launcher needs the JDK's compiler, not only a JRE).
  command -v javac >/dev/null 2>&1 || APT+=(default-jdk-headless)
fi
command -v node >/dev/null 2>&1 || APT+=(nodejs)
missing=()
for p in "${APT[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: apt-get install ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "$PART" = app ]; then
  echo "setup: ok (app)"
  exit 0
fi
if [ "$PART" = operator ]; then
  tests/k8s/build-k8s.sh   # kubelet, kubectl, the control plane; containerd, runc, CNI, socat
  tests/container/setup.sh # podman and the musl target: the node's images are built here
  echo "setup: ok (operator)"
  exit 0
fi

# Rust formatting and lints are part of the test command.
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done

# Kubernetes 1.20.2 control-plane binaries (built once, cached) and etcd.
tests/k8s/build-k8s.sh

# gunicorn, uvicorn and FastAPI (pinned, in a venv under ~/.cache/corefit)
# for the proxy tests and the framework reload tests.
tests/apps/setup-python-apps.sh >/dev/null

# Third-party apps the launcher's tests run under corefit: Express, Fastify,
# socket.io and ws from npm; uvicorn/FastAPI from PyPI (the venv above); a
# Go net/http app built dynamic and static with Debian's Go.
tests/apps/setup-node-apps.sh >/dev/null
tests/apps/setup-go-apps.sh >/dev/null
tests/container/setup.sh   # the container tier: podman + runc, the musl target, base-image stand-ins
tests/cgroup-v2/setup.sh >/dev/null   # the cgroup v2 tier: qemu, Debian's cloud kernel (docs/cgroup-v2.md)

echo "setup: ok"
