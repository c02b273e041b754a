#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and
# kubectl 1.20.2 from Debian's `kubernetes` source package (with the
# reflect2 fix, see ../shared/K8S.md) and installs etcd, and for the real
# node (tests/k8s/node.sh) containerd, runc, the CNI plugins and socat.
# Cached outside the repo, keyed by version: only a new machine pays for the
# ~5 minute build, and only the binaries missing from the cache are built
# (adding one never invalidates the others).
set -euo pipefail

K8S_VERSION=1.20.2
CACHE="${COREFIT_CACHE:-$HOME/.cache/corefit}"
OUT="$CACHE/k8s-$K8S_VERSION"
BINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)

need_apt=()
# curl, openssl and iproute2 (ss) are used by control-plane.sh; containerd,
# runc, containernetworking-plugins and socat by node.sh.
for p in golang-go etcd-server rsync jq golang-github-modern-go-reflect2-dev dpkg-dev curl openssl iproute2 \
         containerd runc containernetworking-plugins socat; do
  dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done

missing=()
for b in "${BINS[@]}"; do [ -x "$OUT/$b" ] || missing+=("$b"); done
if [ "${#missing[@]}" = 0 ] && [ "${#need_apt[@]}" = 0 ]; then
  echo "k8s $K8S_VERSION binaries cached in $OUT"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# Source packages: derive a deb-src list from the machine's own list (no
# mirror host name is written into the repo).
SRC_LIST=/etc/apt/sources.list.d/corefit-src.sources
if [ ! -f "$SRC_LIST" ]; then
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > "$SRC_LIST"
  apt-get update -qq
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
  # containerd's package starts a system service where there is an init
  # system; node.sh runs its own containerd with its own root and socket.
fi
[ "${#missing[@]}" = 0 ] && exit 0

what=()
for b in "${missing[@]}"; do what+=("cmd/$b"); done
echo "building ${missing[*]} $K8S_VERSION (a few minutes)" >&2
WORK="$CACHE/k8s-build"
rm -rf "$WORK"; mkdir -p "$WORK"; cd "$WORK"
apt-get source --download-only kubernetes >/dev/null
tar xzf kubernetes_*.orig.tar.gz
SRC=$(find . -maxdepth 1 -mindepth 1 -type d -name 'kubernetes*' | head -n1)
cd "$SRC"
# Required fix: reflect2 v1.0.1 crashes under Go >= 1.18.
rm -rf vendor/github.com/modern-go/reflect2
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 vendor/github.com/modern-go/reflect2
mkdir -p .go/src/k8s.io
ln -sfn ../../.. .go/src/k8s.io/kubernetes
GOPATH=$PWD/.go CGO_ENABLED=0 make WHAT="${what[*]}" >/dev/null
mkdir -p "$OUT"
for b in "${missing[@]}"; do
  cp "_output/local/bin/linux/amd64/$b" "$OUT/$b.tmp" && mv "$OUT/$b.tmp" "$OUT/$b"
done
cd /; rm -rf "$WORK"
echo "built ${missing[*]} $K8S_VERSION into $OUT"
