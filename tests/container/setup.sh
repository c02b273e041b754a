#!/usr/bin/env bash
# The container tier's set-up (called by scripts/setup.sh; idempotent, a few
# seconds when warm):
#
# - podman and runc from Debian's archive, when missing;
# - the Rust target x86_64-unknown-linux-musl, for the static corefit the
#   launcher image carries and the static corefit-operator the operator
#   image carries (tests/container/run.sh builds them), and Debian's
#   musl-tools: musl-gcc, the C compiler ring (rustls' crypto) needs for it;
# - podman's configuration, all of it under ~/.cache/corefit/containers
#   (tests/container/lib.sh; the machine's /etc/containers is not touched);
# - the local stand-ins for the base images the project's Dockerfiles name
#   (busybox:1.37-musl, node:22-bookworm-slim,
#   gcr.io/distroless/static-debian12:nonroot): no registry is reachable.
#
# The images holding corefit itself are built by run.sh, from the binary the
# test command just built.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DEBIAN_FRONTEND=noninteractive
# shellcheck source=tests/container/lib.sh
source tests/container/lib.sh

missing=()
for p in podman runc busybox-static binutils jq musl-tools openssl ca-certificates; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  ct_log "apt-get install ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
  ct_log "rustup target add x86_64-unknown-linux-musl"
  rustup target add x86_64-unknown-linux-musl
fi

ct_configure
ct_host_before
trap ct_host_after EXIT
ct_build_busybox
ct_build_node
ct_build_distroless
ct_log "set-up ok ($(podman --version), $(runc --version | head -1))"
