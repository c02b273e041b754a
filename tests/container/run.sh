#!/usr/bin/env bash
# The container tier: corefit as the ENTRYPOINT of real containers, run by a
# real OCI runtime (podman 4.3 + runc from Debian 12), limits set through the
# runtime's own flags. No registry is reachable: every image is built here
# (tests/container/lib.sh). docs/containers.md says what each check shows.
#
#   tests/container/run.sh            (after tests/container/setup.sh)
#
# Prints one PASS or FAIL line per check and exits non-zero if any failed.
# Every container it starts carries the label corefit.tier.run=<this pid>
# and is removed on exit; every wait has a deadline.
#
# COREFIT_BIN: the corefit under test (default target/debug/corefit, built
# by `cargo build --workspace --all-targets --locked` as the test command
# does). The launcher image gets a static corefit built here for
# x86_64-unknown-linux-musl (in the background while the first checks run),
# or COREFIT_STATIC_BIN if set; the operator image a static corefit-operator
# built the same way (with musl-gcc for ring's C), or COREFIT_STATIC_OPERATOR.
# COREFIT_SKIP_BUILD=1: use the binaries as they are (no cargo build).
set -uo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/container/lib.sh
source tests/container/lib.sh
started=$(date +%s)

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); printf 'PASS %s\n' "$*"; }
fail() { FAILED=$((FAILED + 1)); printf 'FAIL %s\n' "$*"; }
# Defects this tier found that are reported and not yet fixed, by check id
# (strict, like an xfail: a listed check that passes fails the run, so the
# entry is removed with the fix). docs/containers.md says what each is.
KNOWN_FAIL=" "
known() { [[ $KNOWN_FAIL == *" $1 "* ]]; }
# verdict ID OK? MESSAGE-IF-PASSED MESSAGE-IF-FAILED
verdict() {
  if [ "$2" = 0 ]; then
    if known "$1"; then fail "$3 (listed as a known failure: remove '$1' from KNOWN_FAIL)"; else pass "$3"; fi
  elif known "$1"; then
    KNOWN=$((KNOWN + 1))
    printf 'KNOWN-FAIL %s\n' "$4"
  else
    fail "$4"
  fi
}
KNOWN=0
elapsed() { echo "$(($(date +%s) - started))s"; }

command -v podman >/dev/null || ct_die "podman is missing: run tests/container/setup.sh"
ct_configure
ct_host_before

RUN_ID=$$
LABEL="corefit.tier.run=$RUN_ID"
# Every podman call of the tier has a deadline (a stuck runtime fails the
# run instead of hanging it).
tpod() { timeout -k 5 60 podman "$@"; }
# The runtime's flags every container gets; runc, cgroupfs and the storage
# under ~/.cache come from the configuration in lib.sh.
RUN=(--pull=never --label "$LABEL" --network none
  --ulimit nofile=20000:20000 --ulimit nproc=32768:32768)
MUSL_PID=
OP_PID=
SA_DIR=
cleanup() {
  [ -n "$MUSL_PID" ] && kill "$MUSL_PID" 2>/dev/null
  [ -n "$OP_PID" ] && kill "$OP_PID" 2>/dev/null
  [ -n "$SA_DIR" ] && rm -rf "$SA_DIR" "${STOP_OUT:-}"
  local ids
  ids=$(podman ps -aq --filter "label=$LABEL")
  [ -n "$ids" ] && podman rm -f -t 0 $ids >/dev/null 2>&1
  ct_host_after
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Containers of an earlier run of the tier that was killed before its trap
# ran (its pid is gone): this store holds only the tier's containers.
for c in $(podman ps -aq --filter label=corefit.tier.run); do
  owner=$(podman inspect -f '{{index .Config.Labels "corefit.tier.run"}}' "$c" 2>/dev/null)
  kill -0 "$owner" 2>/dev/null || podman rm -f -t 0 "$c" >/dev/null 2>&1
done

# --- the binaries and images -------------------------------------------------
COREFIT_BIN=${COREFIT_BIN:-target/debug/corefit}
if [ -z "${COREFIT_SKIP_BUILD:-}" ]; then
  cargo build --workspace --all-targets --locked -q || ct_die "cargo build failed"
fi
[ -x "$COREFIT_BIN" ] || ct_die "$COREFIT_BIN is missing (cargo build -p corefit)"
MUSL_LOG=$(mktemp /tmp/corefit-container-musl.XXXXXX)
if [ -n "${COREFIT_STATIC_BIN:-}" ]; then
  MUSL_BIN=$COREFIT_STATIC_BIN
  true &
else
  # A target directory of its own under the cache: a warm machine (whose
  # target/ may be cold) recompiles only corefit's own crates.
  MUSL_BIN="$CT_DIR/musl-target/x86_64-unknown-linux-musl/debug/corefit"
  cargo build --locked -q -p corefit --bin corefit --target x86_64-unknown-linux-musl \
    --target-dir "$CT_DIR/musl-target" >"$MUSL_LOG" 2>&1 &
fi
MUSL_PID=$!

tests/container/setup.sh >/dev/null 2>&1 || ct_die "tests/container/setup.sh failed"
# The static operator (after setup.sh, which installs musl-gcc): same target
# directory, so it waits for corefit's build to release cargo's lock, and
# shares nothing else with it.
OP_LOG=$(mktemp /tmp/corefit-container-operator.XXXXXX)
if [ -n "${COREFIT_STATIC_OPERATOR:-}" ]; then
  OPERATOR_BIN=$COREFIT_STATIC_OPERATOR
  true &
else
  OPERATOR_BIN="$CT_DIR/musl-target/x86_64-unknown-linux-musl/debug/corefit-operator"
  CC_x86_64_unknown_linux_musl=musl-gcc cargo build --locked -q -p corefit-operator --bin corefit-operator \
    --target x86_64-unknown-linux-musl --target-dir "$CT_DIR/musl-target" >"$OP_LOG" 2>&1 &
fi
OP_PID=$!
IMAGE=$(ct_build_test_image "$COREFIT_BIN") || ct_die "building the test image failed"
CLIENT=$(cat tests/container/client.js)
echo "container tier: $(podman --version), $(runc --version | head -1); image $IMAGE ($(elapsed))"

# --- helpers -------------------------------------------------------------------
NAMES=()
start() { # NAME podman-run-args... : a detached container
  local name="corefit-tier-$RUN_ID-$1"
  shift
  NAMES+=("$name")
  tpod run -d --name "$name" "${RUN[@]}" "$@" >/dev/null
}
cname() { echo "corefit-tier-$RUN_ID-$1"; }

# serve NAME WANT PORT: waits (deadline 30 s) until WANT distinct worker pids
# answered GET / on PORT inside the container; prints the client's JSON.
serve() {
  tpod exec -e "URL=http://127.0.0.1:$3/" -e "WANT=$2" -e DEADLINE_S=30 "$(cname "$1")" node -e "$CLIENT"
}

# plan_json podman-run-args... : `corefit plan --json` in a fresh container.
plan_json() { tpod run --rm "${RUN[@]}" "$@" plan --json 2>/dev/null; }

# check NAME JSON JQ-EXPRESSION [what to show on failure]
check() {
  if jq -e "$3" >/dev/null 2>&1 <<<"$2"; then
    pass "$1"
  else
    fail "$1: $(jq -c "${4:-.}" <<<"$2" 2>/dev/null || echo "${2:0:400}")"
  fi
}

# stop_code NAME: podman stop with a 20 s timeout (well past corefit's grace
# in these checks), then the container's exit code.
stop_code() {
  tpod stop -t 20 "$(cname "$1")" >/dev/null
  tpod inspect -f '{{.State.ExitCode}}' "$(cname "$1")"
}

# wait_log NAME PATTERN: the container's log holds PATTERN (deadline 20 s).
wait_log() {
  local deadline=$(($(date +%s) + 20))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    grep -q -- "$2" <<<"$(tpod logs "$(cname "$1")" 2>&1)" && return 0
    sleep 0.2
  done
  return 1
}

K8S=(-e KUBERNETES_SERVICE_HOST=10.96.0.1 -e KUBERNETES_SERVICE_PORT=443)
SHOW='{decision: {mode: .decision.mode, workers: .decision.workers, cpus: .decision.effective_cpus, memory: .decision.memory}, warnings: (.warnings + .decision.warnings)}'

# --- 2 (started first: the workers boot while the plan checks run) -----------
for s in proxy shared inject; do
  start "k8s-$s" --cpus 2 --memory 3g "${K8S[@]}" -e PORT=8080 "$IMAGE" --socket "$s" -- node server.js ||
    fail "cluster $s: the container did not start"
done
# --- 5 (long-lived ones) ---------------------------------------------------------
start stop --cpus 2 "$IMAGE" -- node server.js || fail "PID 1 stop: the container did not start"
start ignore --cpus 1 -e IGNORE_SIGTERM=1 "$IMAGE" --grace-period 2s -- node server.js ||
  fail "PID 1 ignore: the container did not start"
start orphan --cpus 1 -e ORPHAN_SLEEP=1 "$IMAGE" -- node orphans.js || fail "PID 1 orphan: the container did not start"

# --- 1. --cpus 1.5 --memory 768m -------------------------------------------------
j=$(plan_json --cpus 1.5 --memory 768m "$IMAGE")
check "plan --cpus 1.5 --memory 768m: 1.5 CPUs, 768 MiB, single mode" "$j" \
  '.decision.effective_cpus.value == 1.5 and .decision.memory.value == 805306368 and .decision.mode == "single" and .decision.workers == 1' "$SHOW"

# --- 2. --cpus 2 --memory 3g in Kubernetes: the plan -----------------------------
j=$(plan_json --cpus 2 --memory 3g "${K8S[@]}" "$IMAGE")
check "plan --cpus 2 --memory 3g, Kubernetes: cluster mode, 2 workers" "$j" \
  '.inputs.platform.kind == "kubernetes" and .decision.effective_cpus.value == 2 and .decision.memory.value == 3221225472 and .decision.mode == "cluster" and .decision.workers == 2' "$SHOW"

# --- 3. --cpuset-cpus 0 ------------------------------------------------------------
j=$(plan_json --cpuset-cpus 0 "$IMAGE")
check "plan --cpuset-cpus 0: 1 CPU, single mode" "$j" \
  '.decision.effective_cpus.value == 1 and .decision.mode == "single"' "$SHOW"

# --- 4. private cgroup namespace ---------------------------------------------------
j=$(plan_json --cgroupns private --cpus 1.5 --memory 768m "$IMAGE")
check "plan --cgroupns private (fresh cgroup mount): limits found" "$j" \
  '.decision.effective_cpus.value == 1.5 and .decision.memory.value == 805306368' "$SHOW"
j=$(plan_json --cgroupns private -v /sys/fs/cgroup:/sys/fs/cgroup:ro --cpus 1.5 --memory 768m "$IMAGE")
if jq -e '.decision.effective_cpus.value == 1.5 and .decision.memory.value == 805306368' >/dev/null 2>&1 <<<"$j"; then
  pass "plan --cgroupns private -v /sys/fs/cgroup:ro (host's mount): limits found ($(jq -r '.decision.effective_cpus.source' <<<"$j"))"
elif jq -e '[(.warnings + .decision.warnings)[] | select(test("cgroup"))] | length > 0' >/dev/null 2>&1 <<<"$j"; then
  pass "plan --cgroupns private -v /sys/fs/cgroup:ro (host's mount): limits not found, warned: $(jq -c '[(.warnings + .decision.warnings)[] | select(test("cgroup"))]' <<<"$j")"
else
  fail "plan --cgroupns private -v /sys/fs/cgroup:ro (host's mount): neither the limits nor a warning naming the cgroup files: $(jq -c "$SHOW" <<<"$j" 2>/dev/null || echo "${j:0:400}")"
fi
echo "-- plans done ($(elapsed))"

# --- 2. cluster mode serving from 2 Node workers through one port ----------------
for s in proxy shared inject; do
  out=$(serve "k8s-$s" 2 8080)
  check "cluster --socket $s (--cpus 2 --memory 3g, Kubernetes): 2 Node worker pids answer on :8080" "$out" \
    '.pids | length == 2'
done
echo "-- cluster done ($(elapsed))"

# --- 5. PID 1 ------------------------------------------------------------------
# --cpus 1 where one worker is meant (single mode, no restarts: the app's
# exit is the run's); `stop` runs 2 workers.
c=$(cname stop)
serve stop 1 3000 >/dev/null || fail "PID 1 stop: the app never answered"
pid1=$(tpod exec "$c" cat /proc/1/cmdline | tr '\0' ' ')
case $pid1 in
  corefit*) pass "PID 1 is corefit ($pid1)" ;;
  *) fail "PID 1 is not corefit: $pid1" ;;
esac
code=$(stop_code stop)
if [ "$code" = 0 ] && grep -q 'exiting with code 0' <<<"$(tpod logs "$c" 2>&1)"; then
  pass "podman stop: corefit stops the app gracefully and exits 0"
else
  fail "podman stop: exit code $code; log: $(tpod logs "$c" 2>&1 | tail -3 | tr '\n' '|')"
fi

c=$(cname ignore)
serve ignore 1 3000 >/dev/null || fail "PID 1 ignore: the app never answered"
code=$(stop_code ignore)
log=$(tpod logs "$c" 2>&1)
if [ "$code" = 137 ] && grep -q 'sending SIGKILL' <<<"$log" &&
  grep -q 'exiting with code 137' <<<"$log"; then
  pass "a worker that ignores SIGTERM is killed after --grace-period 2s by corefit: exit 137"
else
  fail "SIGTERM ignored: exit code $code; log: $(tpod logs "$c" 2>&1 | tail -3 | tr '\n' '|')"
fi

c=$(cname orphan)
if wait_log orphan '^orphan [0-9]'; then
  opid=$(tpod logs "$c" 2>&1 | sed -n 's/^orphan \([0-9]*\).*/\1/p' | head -1)
  deadline=$(($(date +%s) + 15))
  state=alive
  while [ "$(date +%s)" -lt "$deadline" ]; do
    # Field 3 of /proc/PID/stat is the state; the file is gone once reaped.
    state=$(tpod exec "$c" sh -c "cat /proc/$opid/stat 2>/dev/null || echo gone" | awk '{print ($1 == "gone") ? "gone" : $3}')
    [ "$state" = gone ] && break
    sleep 0.2
  done
  if [ "$state" = gone ]; then
    pass "an orphan (pid $opid in the container) that exits is reaped by corefit as PID 1"
  else
    fail "the orphan (pid $opid) is still there (state $state) 15 s on"
  fi
else
  fail "orphans.js never printed its orphan's pid"
fi

for want in 0 42; do
  tpod run --rm "${RUN[@]}" --cpus 1 "$IMAGE" -- node -e "process.exit($want)" >/dev/null 2>&1
  code=$?
  [ "$code" = "$want" ] && pass "the app's exit code $want is the container's (--cpus 1: one worker)" || fail "app exit $want: container exited $code"
done
tpod run --rm "${RUN[@]}" --cpus 1 "$IMAGE" -- /app/no-such-command >/dev/null 2>&1
code=$?
[ "$code" = 127 ] && pass "a missing command: 127" || fail "a missing command: container exited $code"
tpod run --rm "${RUN[@]}" --cpus 1 "$IMAGE" -- /app/server.js >/dev/null 2>&1
code=$?
[ "$code" = 126 ] && pass "a non-executable command: 126" || fail "a non-executable command: container exited $code"
echo "-- PID 1 done ($(elapsed))"

# --- 6. the images the project ships ----------------------------------------------
# As the chart runs containers: a non-root uid, a read-only root filesystem
# (without the /tmp podman would add: Kubernetes adds none), no capabilities.
CHART=(--read-only --read-only-tmpfs=false --cap-drop all)
if ! wait "$MUSL_PID"; then
  fail "cargo build --target x86_64-unknown-linux-musl: $(tail -5 "$MUSL_LOG" | tr '\n' '|')"
fi
MUSL_PID=
rm -f "$MUSL_LOG"
if grep -q '=>' <<<"$(ldd "$MUSL_BIN" 2>/dev/null)"; then
  fail "the launcher image's corefit ($MUSL_BIN) is dynamically linked"
fi
# --- 6a. the operator image ------------------------------------------------------
# operator/Dockerfile's final stage on the distroless stand-in, run as the
# chart runs it (deploy/deployment.yaml): uid 65532, read-only, no
# capabilities, its env, and a service account token mounted where
# in-cluster configuration reads it; the apiserver the env names
# (10.96.0.1:443) is unreachable (--network none).
t7=$(date +%s)
if ! wait "$OP_PID"; then
  fail "cargo build -p corefit-operator --target x86_64-unknown-linux-musl: $(tail -5 "$OP_LOG" | tr '\n' '|')"
fi
OP_PID=
rm -f "$OP_LOG"
OPERATOR=$(ct_operator_tag)
if grep -q '=>' <<<"$(ldd "$OPERATOR_BIN" 2>/dev/null)"; then
  fail "the operator image's corefit-operator ($OPERATOR_BIN) is dynamically linked"
elif ct_build_operator "$OPERATOR_BIN"; then
  pass "image built with --pull=never: $OPERATOR ($(ct_image_size "$OPERATOR")) on $CT_DISTROLESS (stand-in, $(ct_image_size "$CT_DISTROLESS")); static corefit-operator"
else
  fail "building $OPERATOR from operator/Dockerfile"
fi
out=$(tpod run --rm "${RUN[@]}" --user 65532:65532 "${CHART[@]}" "$OPERATOR" --version 2>&1)
code=$?
[ "$code" = 0 ] && [[ $out == corefit-operator* ]] && pass "$OPERATOR as uid 65532, read-only, no capabilities: --version ($out)" ||
  fail "$OPERATOR --version: exit $code: ${out:0:300}"

SA_DIR=$(mktemp -d /tmp/corefit-container-sa.XXXXXX)
chmod 0755 "$SA_DIR"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null \
  -out "$SA_DIR/ca.crt" -subj /CN=corefit-tier-ca -days 1 2>/dev/null
printf 'corefit-tier-token' > "$SA_DIR/token"
printf 'corefit-system' > "$SA_DIR/namespace"
chmod 0644 "$SA_DIR"/*
INCLUSTER=(--user 65532:65532 "${CHART[@]}" --memory 256m -v "$SA_DIR:/var/run/secrets/kubernetes.io/serviceaccount:ro"
  "${K8S[@]}" -e COREFIT_OPERATOR_LOG_FORMAT=json -e COREFIT_OPERATOR_LOG=info,kube=warn
  -e POD_NAME=corefit-operator-0 -e POD_NAMESPACE=corefit-system)
# Without leader election (one replica): it keeps retrying; `podman stop`.
start operator "${INCLUSTER[@]}" -e COREFIT_OPERATOR_LEADER_ELECTION=false "$OPERATOR" ||
  fail "$OPERATOR: the container did not start"
# With leader election (the chart's default): it cannot take the Lease, so
# it exits at once, saying why.
out=$(tpod run --rm "${RUN[@]}" "${INCLUSTER[@]}" -e COREFIT_OPERATOR_LEADER_ELECTION=true "$OPERATOR" 2>&1)
code=$?
if [ "$code" != 0 ] && grep -q '^Error: cannot use Lease corefit-system/corefit-operator' <<<"$out" &&
  grep -q 'tcp connect error' <<<"$out"; then
  pass "$OPERATOR in a cluster whose apiserver is unreachable, leader election on: exit $code, \"$(grep -m1 '^Error:' <<<"$out")\" (caused by: $(grep -m1 'connect error\|unreachable' <<<"$out" | sed 's/^ *[0-9]*: //'))"
else
  fail "$OPERATOR, unreachable apiserver, leader election on: exit $code: $(tail -8 <<<"$out" | tr '\n' '|')"
fi
OPLOG_LEADER=$out
c=$(cname operator)
if wait_log operator 'client error (Connect)'; then
  state=$(tpod inspect -f '{{.State.Status}}' "$c")
  [ "$state" = running ] &&
    pass "$OPERATOR, unreachable apiserver, no leader election: keeps running and logs $(tpod logs "$c" 2>&1 | grep -c 'client error (Connect)') connect failures" ||
    fail "$OPERATOR, unreachable apiserver, no leader election: $state; log: $(tpod logs "$c" 2>&1 | tail -3 | tr '\n' '|')"
else
  fail "$OPERATOR, unreachable apiserver, no leader election: no connect failure logged in 20 s: $(tpod logs "$c" 2>&1 | tail -3 | tr '\n' '|')"
fi
# Which apiserver it could not reach: no line names it (kube's own lines say
# "client error (Connect)", the Lease error "tcp connect error").
grep -q '10\.96\.0\.1' <<<"$OPLOG_LEADER$(tpod logs "$c" 2>&1)"
verdict operator-names-apiserver $? \
  "$OPERATOR: a line names the unreachable apiserver (10.96.0.1:443)" \
  "$OPERATOR: no line names the apiserver it could not reach (10.96.0.1:443): only \"client error (Connect)\" and \"tcp connect error: Network unreachable\""
# The stop (up to the operator's own 10 s bound: see docs/containers.md)
# runs while the launcher's and the example app's checks do; its verdict
# comes at the end. (First in section 6 for that reason.)
STOP_OUT=$(mktemp /tmp/corefit-container-opstop.XXXXXX)
(
  t=$(date +%s)
  code=$(stop_code operator)
  echo "$code $(($(date +%s) - t))" >"$STOP_OUT"
) &
STOP_PID=$!
echo "-- operator image started in $(($(date +%s) - t7))s ($(elapsed))"

LAUNCHER=$(ct_launcher_tag)
if ct_build_launcher "$MUSL_BIN" && ct_build_example; then
  pass "images built with --pull=never: $LAUNCHER ($(ct_image_size "$LAUNCHER")), corefit/node-app:0.1.0 ($(ct_image_size corefit/node-app:0.1.0)), stand-ins $CT_BUSYBOX ($(ct_image_size "$CT_BUSYBOX")), $CT_NODE ($(ct_image_size "$CT_NODE")), test image ($(ct_image_size "$IMAGE"))"
else
  fail "building the shipped images"
fi

out=$(tpod run --rm "${RUN[@]}" --user 65532:65532 "${CHART[@]}" "$LAUNCHER" 2>&1)
[[ $out == *"Usage: corefit"* ]] && pass "$LAUNCHER as uid 65532, read-only, no capabilities: corefit --help" ||
  fail "$LAUNCHER --help: ${out:0:300}"
j=$(plan_json --user 65532:65532 "${CHART[@]}" --cpus 1.5 --memory 768m "$LAUNCHER")
check "$LAUNCHER (static corefit): plan --cpus 1.5 --memory 768m gives 1.5 CPUs, 768 MiB" "$j" \
  '.decision.effective_cpus.value == 1.5 and .decision.memory.value == 805306368' "$SHOW"

# The operator's InitContainer launcher mode: an emptyDir mounted at the
# directory operator/src/desired.rs names, `cp /corefit <dir>/corefit`, then
# the app's container runs <dir>/corefit.
dir=$(sed -n 's/^const LAUNCHER_DIR: &str = "\(.*\)";/\1/p' operator/src/desired.rs)
vol=$(mktemp -d /tmp/corefit-container-launcher.XXXXXX)
chmod 0777 "$vol"
out=$(tpod run --rm "${RUN[@]}" --user 65532:65532 "${CHART[@]}" -v "$vol:$dir" --entrypoint cp "$LAUNCHER" /corefit "$dir/corefit" 2>&1)
code=$?
if [ "$code" = 0 ] && [ -x "$vol/corefit" ]; then
  out=$(tpod run --rm "${RUN[@]}" --user 1000:1000 "${CHART[@]}" -v "$vol:$dir:ro" --entrypoint "$dir/corefit" \
    --cpus 1.5 --memory 768m "$CT_NODE" plan --json 2>/dev/null)
  jq -e '.decision.effective_cpus.value == 1.5' >/dev/null 2>&1 <<<"$out"
  code=$?
fi
verdict initcontainer-mount "$code" \
  "InitContainer mode: cp /corefit $dir/corefit from $LAUNCHER into an emptyDir at $dir, run from the app's image" \
  "InitContainer mode: \`cp /corefit $dir/corefit\` in $LAUNCHER with a volume at $dir (operator/src/desired.rs): exit $code: ${out:0:240}"
rm -rf "$vol"

APP=corefit/node-app:0.1.0
start app --user 1000:1000 "${CHART[@]}" --cpus 2 --memory 1g "${K8S[@]}" "$APP" ||
  fail "$APP: the container did not start"
start app-inject --user 1000:1000 "${CHART[@]}" --cpus 2 --memory 1g "${K8S[@]}" "$APP" --socket inject -- node server.js ||
  fail "$APP --socket inject: the container did not start"
out=$(serve app 2 8080)
check "$APP as uid 1000, read-only, no capabilities, --cpus 2 in Kubernetes: 2 workers answer on :8080" "$out" '.pids | length == 2'
out=$(serve app-inject 2 8080)
check "$APP --socket inject (the launcher image's static corefit, its embedded shim in glibc Node): 2 workers answer on :8080" "$out" '.pids | length == 2'
for n in app app-inject; do
  code=$(stop_code "$n")
  [ "$code" = 0 ] && pass "podman stop $APP ($n): exit 0" ||
    fail "podman stop $APP ($n): exit $code; log: $(tpod logs "$(cname "$n")" 2>&1 | tail -3 | tr '\n' '|')"
done

# --- 6a (end). podman stop of the operator ------------------------------------
if [ -n "${STOP_PID:-}" ]; then
  t=$(date +%s)
  wait "$STOP_PID"
  echo "-- waited $(($(date +%s) - t))s for the operator's stop"
  read -r code took <"$STOP_OUT"
  c=$(cname operator)
  if [ "$code" = 0 ] && grep -q 'shutdown requested' <<<"$(tpod logs "$c" 2>&1)"; then
    pass "podman stop $OPERATOR (PID 1, SIGTERM): exit 0 in ${took}s (podman's SIGKILL at 20 s, the chart's grace 30 s)"
  else
    fail "podman stop $OPERATOR: exit $code in ${took}s; log: $(tpod logs "$c" 2>&1 | tail -3 | tr '\n' '|')"
  fi
  rm -f "$STOP_OUT"
fi
rm -rf "$SA_DIR"
SA_DIR=
echo
echo "container tier: $PASSED passed, $FAILED failed, $KNOWN known failures (reported) in $(elapsed)"
[ "$FAILED" = 0 ]
