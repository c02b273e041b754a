#!/usr/bin/env bash
# The main job: on a fresh Debian machine, build corefit and show what it
# decides for this machine (`corefit plan`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
cargo build --release -q -p corefit
exec target/release/corefit plan "$@"
