#!/usr/bin/env bash
# Run Trellis locally on its embedded default: an in-process API server (devcluster) seeded
# with fixtures, and the example plugins reconciling them. Extra arguments go to `trellis dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/prereqs.sh
ensure_wasm_target
exec cargo run --release -p trellis-host --bin trellis -- dev "$@"
