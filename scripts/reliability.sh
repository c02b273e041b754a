#!/usr/bin/env bash
# Regenerates docs/reliability.md, the table of faults and results.
#
#   scripts/reliability.sh            # fuzz 60 s per target
#   FUZZ_SECONDS=20 scripts/reliability.sh
#
# Runs, with COREFIT_RELIABILITY_OUT set so every scenario appends its
# figures as one JSON line: the fuzz targets (fuzz/run.sh), the launcher's
# chaos and security tests (real corefit, real Node workers, real cgroups),
# and the operator's fault and hostile-spec tests (real kube-apiserver,
# real operator binary). Each of those tests asserts its outcome: a failure
# stops the run and leaves docs/reliability.md as it was. Then
# scripts/render_reliability.py turns the lines into the page.
# The same tests run in CI (scripts/test.sh), with shorter fuzzing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >&2

results=$(mktemp /tmp/corefit-reliability.XXXXXX)
trap 'rm -f "$results"' EXIT
export COREFIT_RELIABILITY_OUT=$results

fuzz/run.sh "${FUZZ_SECONDS:-60}"
cargo test -p corefit --locked --test chaos --test security --test proxy_differential
tests/k8s/run-operator-tests.sh --locked --test faults --test hostile

python3 scripts/render_reliability.py "$results" \
  --require launcher --require operator --require "hostile specs" \
  --require security --require fuzzing > docs/reliability.md.new
mv docs/reliability.md.new docs/reliability.md
echo "reliability: wrote docs/reliability.md ($(wc -l < "$results") scenarios)"
