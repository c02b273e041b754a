#!/usr/bin/env bash
# The cgroup v2 tier: corefit on a real unified hierarchy, in a QEMU guest
# (TCG: KVM is not usable on these machines) booting Debian's cloud kernel.
#
#   tests/cgroup-v2/run.sh        (as root; after `cargo build -p corefit`)
#
# Builds an initramfs (static busybox, target/debug/corefit, node and
# util-linux's unshare with their ldd closures, tests/apps/server.js and
# tests/cgroup-v2/client.js, the
# scenarios in tests/cgroup-v2/guest.sh), boots the guest once under a hard
# timeout and relays its `PASS name` / `FAIL name: why` lines; exits 0 when
# the guest's scenarios all passed. Prints the guest's boot time (to the
# first command) and the tier's time.
#
# COREFIT_BIN: the corefit binary (default target/debug/corefit);
# COREFIT_CGROUP_V2_TIMEOUT: the guest's hard timeout in seconds (default 600).
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "cgroup-v2: $*"; }

cache=$(tests/cgroup-v2/setup.sh)
corefit=${COREFIT_BIN:-target/debug/corefit}
[ -x "$corefit" ] || { log "no corefit binary at $corefit (cargo build -p corefit)"; exit 1; }
node=$(readlink -f "$(command -v node)")

work=$(mktemp -d /tmp/corefit-cgroup-v2.XXXXXX)
qemu_pid=
cleanup() {
  [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The initramfs: every file at its host path, plus its ldd closure.
root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,app}
add() { # add FILE AS: FILE at AS in the guest, with the libraries it needs
  install -D -m 0755 "$1" "$root$2"
  local lib
  for lib in $( (ldd "$1" 2>/dev/null || true) | grep -o '/[^ ]*' || true); do
    [ -e "$root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
  done
}
add /bin/busybox /bin/busybox
add "$corefit" /usr/bin/corefit
add "$node" /usr/bin/node
add "$cache/unshare/bin/unshare" /usr/bin/unshare
install -m 0644 tests/apps/server.js tests/cgroup-v2/client.js "$root/app/"
install -m 0755 tests/cgroup-v2/guest.sh "$root/guest.sh"
cat > "$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "+cpu +memory +cpuset +pids" > /sys/fs/cgroup/cgroup.subtree_control
ip link set lo up
echo "COREFIT-GUEST-READY $(cut -d' ' -f1 /proc/uptime) s after the kernel started ($(uname -r), cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers))"
sh /guest.sh
echo "COREFIT-GUEST-EXIT $?"
poweroff -f
EOF
chmod 0755 "$root/init"
(cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null) > "$work/initrd"
log "initramfs $(( $(stat -c %s "$work/initrd") / 1048576 )) MiB built in $(elapsed "$started") s"

# Boot once; the guest's console is this script's output.
out=$work/console
booted=$(date +%s.%N)
timeout -k 5 "${COREFIT_CGROUP_V2_TIMEOUT:-600}" qemu-system-x86_64 \
  -accel tcg,thread=multi -cpu max -M pc -smp 2 -m 1536 -nographic -no-reboot -nic none \
  -kernel "$cache/kernel/vmlinux" -initrd "$work/initrd" \
  -append "console=ttyS0 rdinit=/init panic=-1 quiet loglevel=3 mitigations=off" \
  < /dev/null > "$out" 2>&1 &
qemu_pid=$!
ready=
while kill -0 "$qemu_pid" 2>/dev/null; do
  if [ -z "$ready" ] && grep -q COREFIT-GUEST-READY "$out"; then
    ready=$(elapsed "$booted")
  fi
  sleep 0.2
done
rc=0
wait "$qemu_pid" || rc=$?
qemu_pid=
# The console from the guest's first line on (all of it if it never got there).
if grep -q COREFIT-GUEST-READY "$out"; then
  tr -d '\r' < "$out" | sed -n '/COREFIT-GUEST-READY/,$p' | sed 's/^.*\(COREFIT-GUEST-READY\)/\1/'
else
  tr -d '\r' < "$out"
fi
[ -n "$ready" ] || ready=$(tr -d '\r' < "$out" | grep -q COREFIT-GUEST-READY && echo "?" || echo never)
guest_rc=$(tr -d '\r' < "$out" | sed -n 's/^COREFIT-GUEST-EXIT \([0-9]*\)$/\1/p' | tail -1)
log "guest: first command $ready s after QEMU started; tier $(elapsed "$started") s in all"
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
  log "FAIL: the guest did not finish within ${COREFIT_CGROUP_V2_TIMEOUT:-600} s"
  exit 1
fi
if [ -z "$guest_rc" ]; then
  log "FAIL: the guest stopped without an exit code (QEMU exit $rc)"
  exit 1
fi
if [ "$guest_rc" != 0 ]; then
  log "FAIL: $guest_rc scenario(s) failed"
  exit 1
fi
log "all scenarios passed"
