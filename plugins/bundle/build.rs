//! Builds the example plugins as wasm32-wasip2 components, for the host's tests and for
//! `trellis dev`, by running a nested `cargo build --target wasm32-wasip2 --profile guest` in
//! its own target directory with a sanitized environment (see build/nested.rs for why each
//! choice), then copies the components into OUT_DIR where lib.rs embeds them.

#[path = "build/nested.rs"]
mod nested;

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

fn fail(message: &str) -> ExitCode {
    eprintln!("error: trellis-plugin-bundle: {message}");
    ExitCode::FAILURE
}

fn sysroot(rustc: &str) -> Result<PathBuf, String> {
    let output = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run `{rustc} --print sysroot`: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{rustc} --print sysroot` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}

fn build(workspace: &Path, out_dir: &Path) -> Result<(), String> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    nested::check_wasm_target(&sysroot(&rustc)?)?;

    let target_dir = nested::guest_target_dir(out_dir);
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(&cargo);
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .args(["--target", nested::TARGET, "--profile", nested::PROFILE])
        .arg("--target-dir")
        .arg(&target_dir);
    for package in nested::PLUGINS {
        command.args(["-p", package]);
    }
    if let Ok(jobs) = env::var("NUM_JOBS") {
        command.args(["-j", &jobs]);
    }
    for (name, _) in env::vars_os() {
        if name.to_str().is_some_and(nested::is_leaky) {
            command.env_remove(&name);
        }
    }
    // Build-script stdout is cargo's instruction channel: send the nested build's output to
    // stderr, which cargo shows when the build fails.
    command
        .stdout(Stdio::from(std::io::stderr()))
        .stderr(Stdio::inherit());
    let status = command
        .status()
        .map_err(|e| format!("cannot run `{cargo} build` for the plugins: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the plugins ({}) for {} failed ({status}); the nested cargo's output is above",
            nested::PLUGINS.join(", "),
            nested::TARGET
        ));
    }

    let artifacts = target_dir.join(nested::TARGET).join(nested::PROFILE);
    for package in nested::PLUGINS {
        let file = nested::artifact_file(package);
        std::fs::copy(artifacts.join(&file), out_dir.join(&file)).map_err(|e| {
            format!(
                "cannot copy {} to OUT_DIR: {e}",
                artifacts.join(&file).display()
            )
        })?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let workspace = manifest_dir.join("../..");

    // What the components are built from. Directories are scanned recursively by cargo.
    for path in ["guest-sdk", "wit", "Cargo.lock", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", workspace.join(path).display());
    }
    for package in nested::PLUGINS {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join("plugins").join(package).display()
        );
    }
    println!("cargo:rerun-if-changed=build");

    match build(&workspace, &out_dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}
