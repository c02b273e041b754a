#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and kube-scheduler 1.20.2 from
# Debian's `kubernetes` source package (with the reflect2 fix, see
# ../shared/K8S.md) and installs etcd. Cached outside the repo, keyed by
# version: only a new machine pays for the ~5 minute build.
set -euo pipefail

K8S_VERSION=1.20.2
CACHE="${COREFIT_CACHE:-$HOME/.cache/corefit}"
OUT="$CACHE/k8s-$K8S_VERSION"
BINS=(kube-apiserver kube-controller-manager kube-scheduler)

need_apt=()
# curl, openssl and iproute2 (ss) are used by control-plane.sh.
for p in golang-go etcd-server rsync jq golang-github-modern-go-reflect2-dev dpkg-dev curl openssl iproute2; do
  dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done

have_all=1
for b in "${BINS[@]}"; do [ -x "$OUT/$b" ] || have_all=0; done
if [ "$have_all" = 1 ] && [ "${#need_apt[@]}" = 0 ]; then
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
fi
[ "$have_all" = 1 ] && exit 0

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
GOPATH=$PWD/.go CGO_ENABLED=0 \
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler" >/dev/null
mkdir -p "$OUT"
for b in "${BINS[@]}"; do cp "_output/local/bin/linux/amd64/$b" "$OUT/"; done
cd /; rm -rf "$WORK"
echo "built k8s $K8S_VERSION into $OUT"
