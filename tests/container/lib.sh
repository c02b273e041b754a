# shellcheck shell=bash
# The container tier's shared set-up, sourced by tests/container/setup.sh and
# tests/container/run.sh: where podman keeps its state (all of it under
# ~/.cache/corefit/containers, never /etc/containers or /var/lib/containers),
# the `pod` wrapper every podman call goes through, and small helpers.
#
# Podman 4.3 from Debian 12 with runc (crun 1.8 refuses this machine's
# hybrid cgroup layout), cgroupfs (no systemd), overlay storage, events in
# a file (no journald), no network but a loopback of the container's own,
# and ulimits within the session's hard limits (root here lacks
# CAP_SYS_RESOURCE, so podman's default nofile=1048576 fails).

CT_DIR="${COREFIT_CONTAINERS_DIR:-$HOME/.cache/corefit/containers}"
export CONTAINERS_STORAGE_CONF="$CT_DIR/storage.conf"
export CONTAINERS_CONF="$CT_DIR/containers.conf"
export CONTAINERS_REGISTRIES_CONF="$CT_DIR/registries.conf"

# The stand-ins for the base images the project's Dockerfiles name in FROM:
# no registry is reachable, so they are assembled here and tagged with the
# names the FROM lines resolve to.
CT_BUSYBOX=docker.io/library/busybox:1.37-musl
CT_NODE=docker.io/library/node:22-bookworm-slim

ct_log() { printf 'container: %s\n' "$*" >&2; }
ct_die() { printf 'container: error: %s\n' "$*" >&2; exit 1; }

# Writes podman's configuration files (idempotent; only under $CT_DIR).
ct_configure() {
  mkdir -p "$CT_DIR/graph" "$CT_DIR/run" "$CT_DIR/tmp" "$CT_DIR/networks" "$CT_DIR/build"
  local want
  want=$(cat <<EOF
[storage]
driver = "overlay"
graphroot = "$CT_DIR/graph"
runroot = "$CT_DIR/run"
EOF
)
  [ "$(cat "$CONTAINERS_STORAGE_CONF" 2>/dev/null)" = "$want" ] || printf '%s\n' "$want" > "$CONTAINERS_STORAGE_CONF"
  want=$(cat <<EOF
[containers]
netns = "none"
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$CT_DIR/tmp"
volume_path = "$CT_DIR/volumes"

[network]
network_config_dir = "$CT_DIR/networks"
EOF
)
  [ "$(cat "$CONTAINERS_CONF" 2>/dev/null)" = "$want" ] || printf '%s\n' "$want" > "$CONTAINERS_CONF"
  want='unqualified-search-registries = []
short-name-mode = "disabled"'
  [ "$(cat "$CONTAINERS_REGISTRIES_CONF" 2>/dev/null)" = "$want" ] || printf '%s\n' "$want" > "$CONTAINERS_REGISTRIES_CONF"
}

# What podman leaves on the host whatever its configuration says: 4.3
# creates /run/containers/networks for root, and the cgroupfs manager puts
# containers under /libpod_parent (conmon under /libpod_parent/conmon) in
# every hierarchy. ct_host_before notes which of them existed;
# ct_host_after removes, once no container of ours runs, the ones this run
# created (empty directories and cgroups only: rmdir refuses anything else).
ct_host_before() {
  CT_CREATED=()
  local d
  [ -e /run/containers ] || CT_CREATED+=(/run/containers)
  for d in /sys/fs/cgroup/*/; do
    [ -e "${d}libpod_parent" ] || CT_CREATED+=("${d}libpod_parent")
  done
}
ct_host_after() {
  local d left deadline=$(($(date +%s) + 10))
  # A removed container's conmon leaves its cgroup a moment later: retry
  # (deadline 10 s) until every directory this run created is gone.
  while :; do
    left=0
    for d in "${CT_CREATED[@]}"; do
      case $d in
        /run/containers) rmdir /run/containers/networks /run/containers 2>/dev/null ;;
        *) [ -d "$d/conmon" ] && rmdir "$d/conmon" 2>/dev/null; [ -d "$d" ] && rmdir "$d" 2>/dev/null ;;
      esac
      [ -e "$d" ] && left=$((left + 1))
    done
    [ "$left" = 0 ] || [ "$(date +%s)" -ge "$deadline" ] && break
    sleep 0.1
  done
  [ "$left" = 0 ] || ct_log "left behind (busy): $(for d in "${CT_CREATED[@]}"; do [ -e "$d" ] && printf '%s ' "$d"; done)"
  return 0
}

pod() { podman "$@"; }

# Copies a dynamically linked program's `ldd` closure (and its ELF
# interpreter) into a root filesystem directory, at the same paths.
ct_closure() {
  local bin=$1 root=$2 lib
  for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
    mkdir -p "$root$(dirname "$lib")"
    [ -e "$root$lib" ] || cp -L "$lib" "$root$lib"
  done
}

# A content hash of files (by content) and strings, for image tags.
ct_hash() {
  local arg
  for arg in "$@"; do
    if [ -f "$arg" ]; then sha256sum < "$arg"; else printf '%s\n' "$arg"; fi
  done | sha256sum | cut -c1-16
}

# --- images -----------------------------------------------------------------
# Each image carries the content hash of what went into it (the files, and
# the text of the function that assembled it) as the label corefit.tier.hash;
# a build is skipped when the tagged image already carries the hash.

ct_image_fresh() { # TAG HASH
  [ "$(pod image inspect --format '{{index .Labels "corefit.tier.hash"}}' "$1" 2>/dev/null)" = "$2" ]
}
ct_image_id() { pod image inspect --format '{{.Id}}' "$1"; }
ct_image_size() { pod image inspect --format '{{.Size}}' "$1" | awk '{printf "%.1f MB", $1 / 1e6}'; }

ct_build() { # TAG HASH CONTEXT [podman build args...]
  local tag=$1 hash=$2 ctx=$3
  shift 3
  ct_log "building $tag"
  pod build --pull=never --network none -q --label "corefit.tier.hash=$hash" -t "$tag" "$@" "$ctx" >/dev/null
  # The image this tag named before, now untagged, is of no further use;
  # nor is the context, a copy of what the image holds.
  pod image prune -f >/dev/null
  rm -rf "$ctx"
}

# Stand-in for busybox:1.37-musl: Debian's static busybox (1.35, glibc-static
# rather than musl: what matters to the images built on it is a static
# busybox with no libc beside it), every applet a hard link in /bin.
ct_build_busybox() {
  local h dir a
  h=$(ct_hash /usr/bin/busybox "$(declare -f ct_build_busybox)")
  ct_image_fresh "$CT_BUSYBOX" "$h" && return 0
  dir="$CT_DIR/build/busybox"
  rm -rf "$dir" && mkdir -p "$dir/rootfs/bin" "$dir/rootfs/etc" "$dir/rootfs/root" "$dir/rootfs/home" "$dir/rootfs/tmp"
  chmod 1777 "$dir/rootfs/tmp"
  cp /usr/bin/busybox "$dir/rootfs/bin/busybox"
  for a in $(/usr/bin/busybox --list); do
    [ "$a" = busybox ] || ln "$dir/rootfs/bin/busybox" "$dir/rootfs/bin/$a"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' > "$dir/rootfs/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' > "$dir/rootfs/etc/group"
  printf 'FROM scratch\nCOPY rootfs/ /\nCMD ["sh"]\n' > "$dir/Containerfile"
  ct_build "$CT_BUSYBOX" "$h" "$dir"
}

# Stand-in for node:22-bookworm-slim: Debian's node (whatever version the
# machine has) at /usr/local/bin/node with its `ldd` closure, the image's
# `node` user (1000:1000), and static busybox for /bin/sh and the usual tools.
ct_build_node() {
  local h dir a node
  node=$(readlink -f "$(command -v node)")
  h=$(ct_hash "$node" /usr/bin/busybox "$(ldd "$node" | awk '{print $1, $3}')" "$(declare -f ct_build_node ct_closure)")
  ct_image_fresh "$CT_NODE" "$h" && return 0
  dir="$CT_DIR/build/node"
  rm -rf "$dir" && mkdir -p "$dir/rootfs/usr/local/bin" "$dir/rootfs/bin" "$dir/rootfs/etc" \
    "$dir/rootfs/root" "$dir/rootfs/home/node" "$dir/rootfs/tmp"
  chmod 1777 "$dir/rootfs/tmp"
  chown 1000:1000 "$dir/rootfs/home/node"
  cp "$node" "$dir/rootfs/usr/local/bin/node"
  ct_closure "$node" "$dir/rootfs"
  cp /usr/bin/busybox "$dir/rootfs/bin/busybox"
  for a in $(/usr/bin/busybox --list); do
    [ "$a" = busybox ] || ln "$dir/rootfs/bin/busybox" "$dir/rootfs/bin/$a"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$dir/rootfs/etc/passwd"
  printf 'root:x:0:\nnode:x:1000:\nnogroup:x:65534:\n' > "$dir/rootfs/etc/group"
  printf 'FROM scratch\nCOPY rootfs/ /\nENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin NODE_VERSION=%s\nCMD ["node"]\n' \
    "$("$node" --version)" > "$dir/Containerfile"
  ct_build "$CT_NODE" "$h" "$dir"
}

# The tier's own image: the node stand-in plus the corefit under test (the
# workspace's build, with its `ldd` closure) as ENTRYPOINT, and the test
# apps in /app. Prints its tag.
ct_build_test_image() { # COREFIT
  local corefit=$1 h dir tag
  h=$(ct_hash "$corefit" tests/apps/server.js tests/apps/orphans.js "$(ct_image_id "$CT_NODE")" \
    "$(declare -f ct_build_test_image ct_closure)")
  tag="localhost/corefit-tier/test:$h"
  if ! ct_image_fresh "$tag" "$h"; then
    dir="$CT_DIR/build/test"
    rm -rf "$dir" && mkdir -p "$dir/rootfs/usr/local/bin" "$dir/rootfs/app"
    cp "$corefit" "$dir/rootfs/usr/local/bin/corefit"
    ct_closure "$corefit" "$dir/rootfs"
    cp tests/apps/server.js tests/apps/orphans.js "$dir/rootfs/app/"
    chmod 0644 "$dir/rootfs/app/"*.js
    printf 'FROM %s\nCOPY rootfs/ /\nWORKDIR /app\nENTRYPOINT ["corefit"]\n' "$CT_NODE" > "$dir/Containerfile"
    ct_build "$tag" "$h" "$dir"
    # Older builds of the tier's image are of no further use.
    pod images --format '{{.Repository}}:{{.Tag}}' | grep '^localhost/corefit-tier/test:' \
      | grep -v ":$h\$" | xargs -r podman rmi -f >/dev/null 2>&1 || true
  fi
  printf '%s\n' "$tag"
}

# The tag examples/node-app/Dockerfile copies corefit from (its ARG default).
ct_launcher_tag() {
  sed -n 's/^ARG COREFIT_IMAGE=//p' examples/node-app/Dockerfile
}

# launcher/Dockerfile's final stage, verbatim, on a corefit built here: its
# build stage needs rust:bookworm (not fetchable), so it is replaced by a
# `FROM scratch AS build` stage holding the given static corefit at the path
# the final stage copies from (/out/corefit). The binary is stripped, as a
# release build's would be.
ct_build_launcher() { # STATIC_COREFIT
  local corefit=$1 h dir tag
  tag=$(ct_launcher_tag)
  h=$(ct_hash "$corefit" launcher/Dockerfile "$(ct_image_id "$CT_BUSYBOX")" "$(declare -f ct_build_launcher)")
  ct_image_fresh "$tag" "$h" && return 0
  dir="$CT_DIR/build/launcher"
  rm -rf "$dir" && mkdir -p "$dir"
  strip -o "$dir/corefit" "$corefit"
  {
    printf 'FROM scratch AS build\nCOPY corefit /out/corefit\n'
    awk '/^FROM /{stage=""} {stage = stage $0 "\n"} END{printf "%s", stage}' launcher/Dockerfile
  } > "$dir/Containerfile"
  ct_build "$tag" "$h" "$dir"
}

# examples/node-app/Dockerfile as shipped, verbatim, with its directory as
# the build context (as its own header says: `docker build ... examples/node-app`).
ct_build_example() {
  local h dir tag=corefit/node-app:0.1.0
  h=$(ct_hash examples/node-app/Dockerfile examples/node-app/server.js "$(ct_image_id "$(ct_launcher_tag)")" \
    "$(ct_image_id "$CT_NODE")" "$(declare -f ct_build_example)")
  ct_image_fresh "$tag" "$h" && return 0
  dir="$CT_DIR/build/node-app"
  rm -rf "$dir" && cp -r examples/node-app "$dir"
  ct_build "$tag" "$h" "$dir"
}

# Stand-in for gcr.io/distroless/static-debian12:nonroot (operator/Dockerfile's
# final FROM): FROM scratch with what that image gives a static binary:
# /etc/passwd and /etc/group with root, nobody and nonroot (65532), the
# nonroot home, a world-writable /tmp, the host's CA certificates (when
# present) at Debian's path, and the image's USER 65532, WORKDIR and
# SSL_CERT_FILE. No shell, no libc.
CT_DISTROLESS=gcr.io/distroless/static-debian12:nonroot
ct_build_distroless() {
  local h dir ca=/etc/ssl/certs/ca-certificates.crt
  [ -f "$ca" ] || ca=
  h=$(ct_hash ${ca:+"$ca"} "$(declare -f ct_build_distroless)")
  ct_image_fresh "$CT_DISTROLESS" "$h" && return 0
  dir="$CT_DIR/build/distroless"
  rm -rf "$dir" && mkdir -p "$dir/rootfs/etc/ssl/certs" "$dir/rootfs/tmp" "$dir/rootfs/home/nonroot" "$dir/rootfs/root"
  chmod 1777 "$dir/rootfs/tmp"
  chmod 0700 "$dir/rootfs/root"
  chown 65532:65532 "$dir/rootfs/home/nonroot"
  [ -n "$ca" ] && cp "$ca" "$dir/rootfs/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
    > "$dir/rootfs/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n' > "$dir/rootfs/etc/group"
  printf 'FROM scratch\nCOPY rootfs/ /\nENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt\nUSER 65532\nWORKDIR /home/nonroot\n' \
    > "$dir/Containerfile"
  ct_build "$CT_DISTROLESS" "$h" "$dir"
}

# The tag operator/Dockerfile's header builds (`docker build ... -t TAG`).
ct_operator_tag() {
  sed -n 's/^#.*docker build .* -t \([^ ]*\) .*/\1/p' operator/Dockerfile | head -1
}

# operator/Dockerfile's final stage, verbatim, on a corefit-operator built
# here, as ct_build_launcher does: the build stage (rust:alpine, apk) is
# replaced by a `FROM scratch AS build` stage holding the given static
# binary, stripped, at /out/corefit-operator; the final stage builds on the
# distroless stand-in (ct_build_distroless).
ct_build_operator() { # STATIC_OPERATOR
  local bin=$1 h dir tag
  tag=$(ct_operator_tag)
  [ -n "$tag" ] || ct_die "operator/Dockerfile names no image tag (its 'docker build ... -t TAG' line)"
  h=$(ct_hash "$bin" operator/Dockerfile "$(ct_image_id "$CT_DISTROLESS")" "$(declare -f ct_build_operator)")
  ct_image_fresh "$tag" "$h" && return 0
  dir="$CT_DIR/build/operator"
  rm -rf "$dir" && mkdir -p "$dir"
  strip -o "$dir/corefit-operator" "$bin"
  {
    printf 'FROM scratch AS build\nCOPY corefit-operator /out/corefit-operator\n'
    awk '/^FROM /{stage=""} {stage = stage $0 "\n"} END{printf "%s", stage}' operator/Dockerfile
  } > "$dir/Containerfile"
  ct_build "$tag" "$h" "$dir"
}
