#!/usr/bin/env bash
# Run every test of the workspace: unit, property, conformance (kube client and kubectl against
# devcluster), sandbox (real components built from plugins/) and end-to-end.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/prereqs.sh
ensure_wasm_target
ensure_kubectl
cargo fmt --all -- --check
cargo test --workspace "$@"
