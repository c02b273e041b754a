# shellcheck shell=bash
# The node's images, sourced by tests/k8s/node.sh: built locally with
# podman (tests/container/lib.sh's functions and store: no registry is
# reachable here), saved, and imported into the node's containerd
# (`ctr -n k8s.io images import`), the namespace the kubelet's CRI reads.
#
# - the sandbox ("pause") image: tests/k8s/node/pause.c, static, FROM scratch;
# - the launcher image, corefit/corefit:0.1.0 (launcher/Dockerfile's final
#   stage on a static corefit built for x86_64-unknown-linux-musl);
# - the example app, corefit/node-app:0.1.0 (examples/node-app/Dockerfile);
# - the Node base image's stand-in, node:22-bookworm-slim: an app image
#   with no corefit in it (launcher.mode: InitContainer).
#
# Every tag is versioned (never :latest: the kubelet would pull it). An
# image is imported only when containerd lacks it or holds another build of
# it (the podman image id is kept as a containerd label).

# shellcheck source=tests/container/lib.sh
source tests/container/lib.sh

NODE_PAUSE_IMAGE=localhost/corefit-node/pause:1
NODE_LAUNCHER_IMAGE=corefit/corefit:0.1.0
NODE_APP_IMAGE=corefit/node-app:0.1.0

# The static pause program and its image.
node_build_pause() {
  local h dir
  h=$(ct_hash tests/k8s/node/pause.c "$(declare -f node_build_pause)")
  ct_image_fresh "$NODE_PAUSE_IMAGE" "$h" && return 0
  dir="$CT_DIR/build/pause"
  rm -rf "$dir" && mkdir -p "$dir"
  gcc -static -Os -s -o "$dir/pause" tests/k8s/node/pause.c
  printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' > "$dir/Containerfile"
  ct_build "$NODE_PAUSE_IMAGE" "$h" "$dir"
}

# The static corefit the launcher image carries, built as the container
# tier builds it (its own target directory under the cache).
node_static_corefit() {
  if [ -n "${COREFIT_STATIC_BIN:-}" ]; then
    printf '%s\n' "$COREFIT_STATIC_BIN"
    return 0
  fi
  if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
    rustup target add x86_64-unknown-linux-musl >&2
  fi
  cargo build --locked -q -p corefit --bin corefit --target x86_64-unknown-linux-musl \
    --target-dir "$CT_DIR/musl-target" >&2 || return 1
  printf '%s\n' "$CT_DIR/musl-target/x86_64-unknown-linux-musl/debug/corefit"
}

# Builds (when stale) every image the node runs.
node_build_images() {
  local musl
  ct_configure
  ct_build_busybox
  ct_build_node
  musl=$(node_static_corefit) || { ct_log "the static corefit did not build"; return 1; }
  ct_build_launcher "$musl"
  ct_build_example
  node_build_pause
}

# podman's name for a tag (it qualifies short names with localhost/).
node_podman_name() {
  case $1 in
    */*/*|localhost/*) printf '%s\n' "$1" ;;
    *) printf 'localhost/%s\n' "$1" ;;
  esac
}

# The reference the kubelet asks the CRI for: short names are docker.io's.
node_cri_name() {
  case $1 in
    localhost/*|*.*/*|*:*/*) printf '%s\n' "$1" ;;
    */*) printf 'docker.io/%s\n' "$1" ;;
    *) printf 'docker.io/library/%s\n' "$1" ;;
  esac
}

# Imports one podman image into containerd under the name the CRI looks up.
node_import() { # CTR_ADDRESS TAG
  local addr=$1 tag=$2 src want id have tmp
  src=$(node_podman_name "$tag")
  want=$(node_cri_name "$tag")
  id=$(ct_image_id "$src") || return 1
  have=$(ctr -a "$addr" -n k8s.io images ls "name==$want" 2>/dev/null | awk 'NR > 1 {print $NF}' | tr ',' '\n' |
    sed -n 's/^corefit.podman-id=//p')
  [ "$have" = "$id" ] && return 0
  tmp=$(mktemp "${TMPDIR:-/tmp}/corefit-node-image.XXXXXX")
  podman save --format docker-archive -o "$tmp" "$src" >/dev/null 2>&1 || { rm -f "$tmp"; return 1; }
  ctr -a "$addr" -n k8s.io images import "$tmp" >/dev/null || { rm -f "$tmp"; return 1; }
  rm -f "$tmp"
  if [ "$src" != "$want" ]; then
    ctr -a "$addr" -n k8s.io images rm "$want" >/dev/null 2>&1 || true
    ctr -a "$addr" -n k8s.io images tag "$src" "$want" >/dev/null || return 1
  fi
  ctr -a "$addr" -n k8s.io images label "$want" "corefit.podman-id=$id" >/dev/null
}

node_import_images() { # CTR_ADDRESS
  local t
  for t in "$NODE_PAUSE_IMAGE" "$NODE_LAUNCHER_IMAGE" "$NODE_APP_IMAGE" "$CT_NODE"; do
    node_import "$1" "$t" || { ct_log "importing $t into the node's containerd failed"; return 1; }
  done
}
