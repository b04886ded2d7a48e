//! The parts of build.rs worth testing: where the guests are built, which environment the
//! nested cargo must not inherit, and the check for the wasm32-wasip2 target. Included by
//! build.rs and, for its tests, by lib.rs.

#![allow(dead_code)] // lib.rs (tests) and build.rs each use a different part.

use std::path::{Path, PathBuf};

/// The plugin packages the bundle builds, in the order `ALL` lists them.
pub const PLUGINS: [&str; 4] = [
    "namespace-defaults",
    "deployment-summary",
    "misbehave",
    "status-bench",
];

/// The Rust target and cargo profile of the guests.
pub const TARGET: &str = "wasm32-wasip2";
pub const PROFILE: &str = "guest";

/// Where the nested cargo builds: `<outer target dir>/guests`, found as the nearest ancestor
/// of `OUT_DIR` holding cargo's `CACHEDIR.TAG`. It must differ from the outer target dir (the
/// outer cargo holds that lock while build scripts run: sharing it deadlocks) and is shared by
/// every profile of the outer build (dev, test, release, bench) so guests are built once.
/// Without a `CACHEDIR.TAG` above `OUT_DIR` (an unusual layout), `OUT_DIR/guests`: correct,
/// just not shared.
pub fn guest_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .skip(1)
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .unwrap_or(out_dir)
        .join("guests")
}

/// The file cargo writes for a cdylib package built for wasm32-wasip2.
pub fn artifact_file(package: &str) -> String {
    format!("{}.wasm", package.replace('-', "_"))
}

/// Environment the nested cargo must not inherit from the outer build.
///
/// - Flags meant for the outer (native) build: `RUSTFLAGS`, `CARGO_ENCODED_RUSTFLAGS` (set by
///   cargo for build scripts, e.g. `-C instrument-coverage` under cargo-llvm-cov),
///   `CARGO_BUILD_RUSTFLAGS`, `CARGO_TARGET_<triple>_*`, `CARGO_PROFILE_*`.
/// - Wrappers: `RUSTC_WORKSPACE_WRAPPER` (clippy-driver under `cargo clippy`, cargo's fix
///   driver under `cargo fix`) with `CLIPPY_*` and cargo's private `__CARGO_*`.
/// - Locations: `CARGO_TARGET_DIR`, `CARGO_BUILD_TARGET_DIR`, `CARGO_BUILD_BUILD_DIR` (the
///   guests get their own), `CARGO_BUILD_TARGET`, `CARGO_BUILD_DEP_INFO_BASEDIR`.
/// - The jobserver (`CARGO_MAKEFLAGS`, `MAKEFLAGS`, `MFLAGS`): the nested cargo gets `-j`
///   from `NUM_JOBS` instead of sharing the outer build's token pipe.
/// - What cargo sets for this build script only: `CARGO_PKG_*`, `CARGO_CFG_*`,
///   `CARGO_FEATURE_*`, `CARGO_MANIFEST_*`, `CARGO_CRATE_NAME`, `CARGO_PRIMARY_PACKAGE`,
///   `OUT_DIR`, `TARGET`, `HOST`, `NUM_JOBS`, `OPT_LEVEL`, `DEBUG`, `PROFILE`, `RUSTC_LINKER`,
///   `RUSTDOC`, `CARGO`.
///
/// Kept: `RUSTC` (the same compiler as the outer build), `RUSTUP_*`, `CARGO_HOME`,
/// `CARGO_NET_*`, `CARGO_HTTP_*`, `CARGO_REGISTRIES_*`, `CARGO_TERM_*`, `PATH` and the rest.
pub fn is_leaky(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_ENCODED_RUSTDOCFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_RUSTDOCFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_BUILD_BUILD_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_DEP_INFO_BASEDIR",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
        "CARGO_CRATE_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "OUT_DIR",
        "TARGET",
        "HOST",
        "NUM_JOBS",
        "OPT_LEVEL",
        "DEBUG",
        "PROFILE",
        "RUSTC_LINKER",
        "RUSTDOC",
        "CARGO",
    ];
    const PREFIXES: &[&str] = &[
        "CARGO_TARGET_",
        "CARGO_PROFILE_",
        "CARGO_PKG_",
        "CARGO_CFG_",
        "CARGO_FEATURE_",
        "CARGO_MANIFEST_",
        "CLIPPY_",
        "__CARGO",
    ];
    EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Whether the toolchain with this sysroot has the standard library for wasm32-wasip2.
pub fn check_wasm_target(sysroot: &Path) -> Result<(), String> {
    let dir = sysroot.join("lib").join("rustlib").join(TARGET);
    if dir.join("lib").is_dir() {
        Ok(())
    } else {
        Err(format!(
            "the {TARGET} Rust target is not installed for the toolchain at {} (no {}): run \
             `rustup target add {TARGET}` (scripts/test.sh and scripts/dev.sh do this for you)",
            sysroot.display(),
            dir.display()
        ))
    }
}
