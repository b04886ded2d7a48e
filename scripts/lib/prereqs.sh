# Prerequisites shared by scripts/dev.sh and scripts/test.sh. Sourced, not run.
# Each function installs what is missing and says so; nothing here is needed twice.

ensure_wasm_target() {
    if ! rustup target list --installed | grep -qx 'wasm32-wasip2'; then
        echo "==> installing the wasm32-wasip2 target (guest plugins build for it)" >&2
        rustup target add wasm32-wasip2
    fi
}

# kubectl is used by the devcluster conformance tests. These machines ship v1.32; Debian's
# kubernetes-client is the fallback on a machine without it.
ensure_kubectl() {
    if command -v kubectl >/dev/null 2>&1; then
        return
    fi
    echo "==> installing kubectl (Debian's kubernetes-client)" >&2
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq kubernetes-client >/dev/null
}
