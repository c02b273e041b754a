#!/usr/bin/env bash
# The cgroup v2 tier's set-up (idempotent; a fraction of a second when warm).
# Everything it makes lives under ~/.cache/corefit/cgroup-v2:
#
# - qemu-system-x86, lz4 and busybox-static from Debian's archive, when missing;
# - Debian's cloud kernel (the linux-image-*-cloud-amd64 package that
#   linux-image-cloud-amd64 depends on), fetched with `apt-get download` and
#   unpacked with `dpkg -x`, never installed; its bzImage holds an LZ4
#   stream (magic 02 21 4c 18) that `lz4 -dc` turns into the uncompressed
#   vmlinux ELF, booted through its PVH entry (skips the slow decompressor
#   under TCG);
# - util-linux's `unshare` (busybox's lacks -C), copied (run.sh adds its ldd
#   closure to the initramfs).
#
# Prints the cache directory's path on stdout (run.sh reads it).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
CACHE=${COREFIT_CGROUP_V2_CACHE:-$HOME/.cache/corefit/cgroup-v2}
log() { echo "cgroup-v2 setup: $*" >&2; }

missing=()
for p in qemu-system-x86 lz4 busybox-static util-linux; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
mkdir -p "$CACHE"

# The kernel: the package the meta-package depends on right now, or the one
# cached last time when the archive cannot be asked.
pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
  sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -1 || true)
if [ -z "$pkg" ]; then
  pkg=$(cat "$CACHE/kernel.pkg" 2>/dev/null || true)
  [ -n "$pkg" ] || { log "cannot resolve linux-image-cloud-amd64's kernel package (apt-get update?)"; exit 1; }
fi
kdir=$CACHE/$pkg
if [ ! -s "$kdir/vmlinux" ]; then
  started=$(date +%s)
  tmp=$(mktemp -d "$CACHE/.dl.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  log "apt-get download $pkg"
  (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null 2>&1) || {
    apt-get update -qq
    (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null)
  }
  dpkg -x "$tmp"/"$pkg"_*.deb "$tmp/root"
  bz=$(ls "$tmp"/root/boot/vmlinuz-*)
  # The first LZ4 legacy-frame magic in the bzImage starts the payload.
  off=$(grep -obUaP '\x02\x21\x4c\x18' "$bz" | head -1 | cut -d: -f1)
  [ -n "$off" ] || { log "no LZ4 stream in $bz"; exit 1; }
  mkdir -p "$tmp/k"
  # lz4 reports trailing garbage (the bzImage's tail) after the stream: the
  # ELF check below is what counts.
  tail -c +$((off + 1)) "$bz" | lz4 -dc > "$tmp/k/vmlinux" 2>/dev/null || true
  head -c 4 "$tmp/k/vmlinux" | grep -q $'\x7fELF' || { log "$bz: the LZ4 payload is not an ELF"; exit 1; }
  cp "$tmp"/root/boot/config-* "$tmp/k/" 2>/dev/null || true
  rm -rf "$kdir" && mv "$tmp/k" "$kdir"
  echo "$pkg" > "$CACHE/kernel.pkg"
  log "kernel $pkg: vmlinux $(( $(stat -c %s "$kdir/vmlinux") / 1048576 )) MiB in $(( $(date +%s) - started ))s"
fi
ln -sfn "$pkg" "$CACHE/kernel"

# util-linux's unshare with its library closure (for -C, a cgroup namespace).
if [ ! -x "$CACHE/unshare/bin/unshare" ] || [ /usr/bin/unshare -nt "$CACHE/unshare/bin/unshare" ]; then
  rm -rf "$CACHE/unshare" && mkdir -p "$CACHE/unshare/bin"
  cp /usr/bin/unshare "$CACHE/unshare/bin/"
fi
echo "$CACHE"
