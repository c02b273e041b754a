#!/bin/sh
# The cgroup v2 tier's scenarios, run by the QEMU guest's /init (busybox sh)
# on the guest's real unified hierarchy at /sys/fs/cgroup. Each makes child
# cgroups, writes their limits, moves a shell into one and runs corefit
# there, then checks what corefit said or did with busybox tools. Prints
# `PASS name` or `FAIL name: why` per scenario; exits with the count of
# failures (0: all passed).
set -u
CG=/sys/fs/cgroup
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export COREFIT_CONTROL_SOCKET=/tmp/corefit.sock
failed=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
now() { cut -d. -f1 /proc/uptime; }

# mkcg PATH FILE=VALUE...: a child cgroup with these files written.
mkcg() {
  d=$CG/$1
  shift
  mkdir -p "$d" || return 1
  for kv in "$@"; do
    echo "${kv#*=}" > "$d/${kv%%=*}" || { echo "cannot write ${kv#*=} to $d/${kv%%=*}"; return 1; }
  done
}
# subtree PATH: PATH's children get the cpu, memory, cpuset and pids controllers.
subtree() { echo "+cpu +memory +cpuset +pids" > "$CG/$1/cgroup.subtree_control"; }
# incg PATH CMD...: CMD run by a shell that first moved itself into PATH.
incg() {
  d=$CG/$1
  shift
  sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$d" "$@"
}
# expect NAME FILE PATTERN...: FILE (JSON, white space removed) holds every
# PATTERN; PASS, else FAIL naming the first missing one and the decision.
expect() {
  name=$1 file=$2
  shift 2
  flat=$(tr -d ' \n\t' < "$file")
  for p in "$@"; do
    case $flat in
      *"$p"*) ;;
      *)
        fail "$name" "no $p in corefit plan --json: ${flat#*\"decision\":} (stderr: $(head -c 400 "$file.err"))"
        return 1
        ;;
    esac
  done
  pass "$name"
}

# 1. Nested limits, the parent smaller: its 1 CPU and 512 MiB win.
mkcg n1 cpu.max="100000 100000" memory.max=536870912 && subtree n1 &&
  mkcg n1/leaf cpu.max="150000 100000" memory.max=1073741824 &&
  incg n1/leaf corefit plan --json > /tmp/n1.json 2> /tmp/n1.json.err
expect nested-parent-smaller /tmp/n1.json \
  '"quota_us":100000,"period_us":100000,"source":{"cgroup":"v2","file":"/sys/fs/cgroup/n1/cpu.max"}' \
  '"limit":{"bytes":536870912,"source":{"cgroup":"v2","file":"/sys/fs/cgroup/n1/memory.max"}' \
  '"mode":"single"' '"workers":1,' '"effective_cpus":{"value":1.0,' '"memory":{"value":536870912,'

# 2. Nested limits, the child smaller (as the v1 real-cgroup test: 1.5 CPUs,
#    768 MiB, Kubernetes): the child's win.
mkcg n2 cpu.max="200000 100000" memory.max=2147483648 && subtree n2 &&
  mkcg n2/leaf cpu.max="150000 100000" memory.max=805306368 &&
  KUBERNETES_SERVICE_HOST=10.96.0.1 incg n2/leaf corefit plan --json > /tmp/n2.json 2> /tmp/n2.json.err
expect nested-child-smaller /tmp/n2.json \
  '"quota_us":150000,"period_us":100000,"source":{"cgroup":"v2","file":"/sys/fs/cgroup/n2/leaf/cpu.max"}' \
  '"limit":{"bytes":805306368,"source":{"cgroup":"v2","file":"/sys/fs/cgroup/n2/leaf/memory.max"}' \
  '"mode":"single"' '"workers":1,' '"platform":"kubernetes"' '"effective_cpus":{"value":1.5,' \
  '"memory":{"value":805306368,' '"NODE_OPTIONS":"--max-old-space-size=576"' '"1.5CPUsfromcgroupv2quota150000/100000'

# 3. memory.high below memory.max: the high mark is the memory.
mkcg mh cpu.max="200000 100000" memory.max=1073741824 memory.high=536870912 &&
  incg mh corefit plan --json > /tmp/mh.json 2> /tmp/mh.json.err
expect memory-high-below-max /tmp/mh.json \
  '"high":{"bytes":536870912,"source":{"cgroup":"v2","file":"/sys/fs/cgroup/mh/memory.high"}' \
  '"limit":{"bytes":1073741824,' '"memory":{"value":536870912,' '"memory_limited":true'

# 4. A narrower cpuset (CPU 1 of the guest's 0-1): 1 CPU, single process.
mkcg cs cpuset.cpus=1 && incg cs corefit plan --json > /tmp/cs.json 2> /tmp/cs.json.err
expect narrower-cpuset /tmp/cs.json \
  '"cpuset":{"cpus":1,"list":"1",' '"effective_cpus":{"value":1.0,' '"mode":"single"' '"workers":1,'

# 5. A private cgroup namespace with a fresh cgroup2 mount (in a private
#    mount namespace, over the unmounted old one: the same superblock cannot
#    be mounted on its own mount point): the mount's root is corefit's cgroup.
mkcg ns1 cpu.max="150000 100000" memory.max=805306368 &&
  incg ns1 /usr/bin/unshare -C -m sh -c 'umount /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec corefit plan --json' \
    > /tmp/ns1.json 2> /tmp/ns1.json.err
expect cgroupns-fresh-mount /tmp/ns1.json \
  '"quota_us":150000,' '"limit":{"bytes":805306368,' '"effective_cpus":{"value":1.5,' \
  '"memory":{"value":805306368,' '"warnings":[]},"warnings":[]'

# 6. A private cgroup namespace without a fresh mount (the host's cgroupfs as
#    is: its root reads /.., /proc/self/cgroup says 0::/): corefit must find
#    the limits, or warn; never a silent host-sized plan.
mkcg ns2 cpu.max="150000 100000" memory.max=805306368 &&
  incg ns2 /usr/bin/unshare -C sh -c 'cat /proc/self/cgroup >&2 && grep cgroup2 /proc/self/mountinfo >&2 && exec corefit plan --json' \
    > /tmp/ns2.json 2> /tmp/ns2.json.err
flat=$(tr -d ' \n\t' < /tmp/ns2.json)
if ! grep -q '^0::/$' /tmp/ns2.json.err; then
  fail cgroupns-without-mount "the namespace did not hide the cgroup: $(cat /tmp/ns2.json.err)"
else
  case $flat in
    *'"effective_cpus":{"value":1.5,'*'"memory":{"value":805306368,'*'"warnings":[]},"warnings":[]'*)
      pass cgroupns-without-mount "(found the limits)" ;;
    *'"warnings":["'*) pass cgroupns-without-mount "(warned: ${flat##*\"warnings\":})" ;;
    *) fail cgroupns-without-mount "neither the limits nor a warning: ${flat#*\"decision\":}" ;;
  esac
fi

# 7-8. Supervision and live resize: corefit supervises tests/apps/server.js
#    in a cgroup of 2 CPUs and 1 GiB (cluster, 2 workers), re-reading the
#    limits every 500 ms; under a request load cpu.max then shrinks to 1 CPU
#    and grows back to 2, and memory.max shrinks to 512 MiB (1 worker) and
#    grows back to 1 GiB.
# workers N: the ready workers' pids, when exactly N are ready and each
# carries COREFIT_WORKERS=N (the plan in force's environment).
workers() {
  pids=$(corefit status 2>/dev/null | awk 'NR > 2 && $3 == "ready" { print $2 }')
  [ "$(echo "$pids" | grep -c .)" = "$1" ] || return 1
  for p in $pids; do
    tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "COREFIT_WORKERS=$1" || return 1
  done
  echo $pids
}
# wait_workers N SECONDS: the pids of workers N, waiting at most SECONDS.
wait_workers() {
  end=$(($(now) + $2))
  while [ "$(now)" -lt "$end" ]; do
    workers "$1" && return 0
    sleep 1
  done
  return 1
}
# heap_mib PIDS: the sum of the workers' --max-old-space-size.
heap_mib() {
  sum=0
  for p in "$@"; do
    h=$(tr '\0' '\n' < "/proc/$p/environ" | sed -n 's/^NODE_OPTIONS=.*--max-old-space-size=\([0-9]*\).*/\1/p')
    sum=$((sum + ${h:-999999}))
  done
  echo $sum
}

mkcg app cpu.max="200000 100000" memory.max=1073741824
# (sh -c directly, not incg: $! must be the shell that becomes corefit)
# Its output, each line led by the guest's uptime (the load's clock), goes
# to /tmp/app.log.
mkfifo /tmp/app.fifo
while IFS= read -r line; do echo "$(cut -d' ' -f1 /proc/uptime) $line"; done < /tmp/app.fifo > /tmp/app.log &
sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' $CG/app corefit --port 3000 --resize-interval 500ms --ready-timeout 120s -- node /app/server.js > /tmp/app.fifo 2>&1 &
corefit_pid=$!
started=$(now)
if pids=$(wait_workers 2 150); then
  seen=$(node /app/client.js pids 'http://127.0.0.1:3000/slow?ms=500' 12 2>/tmp/pids.err)
  inside=1
  for p in $seen; do grep -qx "$p" $CG/app/cgroup.procs || inside=0; done
  if [ "$(echo "$seen" | grep -c .)" = 2 ] && [ $inside = 1 ]; then
    pass supervise-2-node-workers "(ready in $(($(now) - started)) s; answers from pids" $seen "in /sys/fs/cgroup/app)"
  else
    fail supervise-2-node-workers "answers from pids [$(echo $seen)] ($(head -c 300 /tmp/pids.err)), workers [$pids], in the cgroup: $(echo $(cat $CG/app/cgroup.procs))"
  fi
else
  fail supervise-2-node-workers "no 2 ready workers within 150 s: $(corefit status 2>&1 | head -5); log: $(tail -20 /tmp/app.log)"
fi

# A request load: 2 keep-alive clients, bounded in count and time.
rm -f /tmp/load.stop /tmp/load.out
node /app/client.js load http://127.0.0.1:3000/hello /tmp/load.stop 400 20000 > /tmp/load.out 2> /tmp/load.err &
load_pid=$!

end=$(($(now) + 60))
while [ ! -e /tmp/load.stop.started ] && [ "$(now)" -lt "$end" ]; do sleep 1; done
[ -e /tmp/load.stop.started ] || fail live-resize-under-load "no answer to the load within 60 s: $(cat /tmp/load.err)"

# resize NAME FILE VALUE N LIMIT_MIB: write FILE, wait for N workers with the
# new environment, check their heap ceilings fit in LIMIT_MIB and, with 2,
# that both answer.
resize() {
  t0=$(now)
  echo "$3" > "$CG/app/$2"
  if pids=$(wait_workers "$4" 150); then
    # shellcheck disable=SC2086
    heap=$(heap_mib $pids)
    seen=$(node /app/client.js pids 'http://127.0.0.1:3000/slow?ms=500' 12 2>/tmp/pids.err)
    if [ "$heap" -gt "$5" ]; then
      fail "$1" "heap ceilings sum to $heap MiB above the $5 MiB limit (pids $pids)"
    elif [ "$(echo "$seen" | grep -c .)" != "$4" ]; then
      fail "$1" "answers from pids [$(echo $seen)], workers [$pids]"
    else
      pass "$1" "($2 $3: $4 worker(s) ready with the new environment in $(($(now) - t0)) s, heap ceilings $heap MiB <= $5, answers from $(echo $seen))"
    fi
  else
    fail "$1" "no $4 ready worker(s) with COREFIT_WORKERS=$4 within 150 s of $2 $3: $(corefit status 2>&1 | head -6); log: $(tail -15 /tmp/app.log)"
  fi
}
resize live-resize-cpu-shrink cpu.max "100000 100000" 1 1024
resize live-resize-cpu-grow cpu.max "200000 100000" 2 1024
resize live-resize-memory-shrink memory.max 536870912 1 512
resize live-resize-memory-grow memory.max 1073741824 2 1024

touch /tmp/load.stop
wait $load_pid
read -r ok bad < /tmp/load.out
if [ "$bad" = 0 ] && [ "$ok" -gt 0 ]; then
  pass live-resize-under-load "($ok requests, 0 failed)"
else
  fail live-resize-under-load "$bad of $((ok + bad)) requests failed: $(cat /tmp/load.err); corefit's log (with times):"
  grep -v 'server.js: pid [0-9]* worker' /tmp/app.log
fi

kill -TERM $corefit_pid
wait $corefit_pid
rc=$?
if [ $rc = 0 ]; then pass graceful-stop; else fail graceful-stop "corefit exited $rc after SIGTERM"; fi
echo "corefit's log (resize lines):"
grep -i 'resiz\|refresh' /tmp/app.log | head -20
exit $failed
