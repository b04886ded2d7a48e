use std::path::Path;

use wasmparser::{Parser, Payload, Validator, WasmFeatures};

use super::*;

/// The names of the instances and functions a component imports and of what it exports, at
/// its top level (not those of the core modules and nested components inside it). Type imports
/// (`use types.{reconcile-request}` in the world) are left out: they are equalities to types
/// of the imported instances, which any host satisfies.
fn top_level_names(wasm: &[u8]) -> (Vec<String>, Vec<String>) {
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.expect("the component parses") {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                imports.extend(
                    reader
                        .into_iter()
                        .map(|i| i.unwrap())
                        .filter(|i| !matches!(i.ty, wasmparser::ComponentTypeRef::Type(_)))
                        .map(|i| i.name.name.to_owned()),
                );
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                exports.extend(reader.into_iter().map(|e| e.unwrap().name.name.to_owned()));
            }
            _ => {}
        }
    }
    (imports, exports)
}

#[test]
fn every_component_is_a_valid_component_exporting_reconcile() {
    for component in ALL {
        // `\0asm`, then the component-model version and layer (a core module has layer 0).
        assert_eq!(
            &component.wasm[..8],
            b"\0asm\x0d\x00\x01\x00",
            "{} is not a component",
            component.name
        );
        Validator::new_with_features(WasmFeatures::all())
            .validate_all(component.wasm)
            .unwrap_or_else(|e| panic!("{} does not validate: {e}", component.name));
        let (imports, exports) = top_level_names(component.wasm);
        assert_eq!(exports, ["reconcile"], "{}", component.name);
        for import in &imports {
            assert!(
                import.starts_with("trellis:plugin/") || import.starts_with("wasi:"),
                "{} imports {import}, which the host does not provide",
                component.name
            );
        }
        assert!(
            imports.iter().any(|i| i == "trellis:plugin/types@0.1.0"),
            "{} must import the contract: {imports:?}",
            component.name
        );
    }
}

#[test]
fn every_component_names_its_plugin_and_file() {
    let names: Vec<_> = ALL.iter().map(|c| c.name).collect();
    assert_eq!(names, nested::PLUGINS);
    for component in ALL {
        let path = Path::new(component.path);
        assert_eq!(
            path.file_name().unwrap().to_str().unwrap(),
            nested::artifact_file(component.name),
            "{}",
            component.name
        );
        assert_eq!(
            std::fs::read(path).unwrap(),
            component.wasm,
            "{} on disk differs",
            component.name
        );
        assert_eq!(by_name(component.name), Some(component));
    }
    assert_eq!(by_name("nope"), None);
    assert_ne!(NAMESPACE_DEFAULTS.wasm, MISBEHAVE.wasm);
    assert_ne!(DEPLOYMENT_SUMMARY.wasm, MISBEHAVE.wasm);
}

#[test]
fn misbehave_imports_every_contract_interface() {
    let (imports, _) = top_level_names(MISBEHAVE.wasm);
    for interface in ["cache", "writes", "events", "log"] {
        let name = format!("trellis:plugin/{interface}@0.1.0");
        assert!(
            imports.contains(&name),
            "misbehave must import {name}: {imports:?}"
        );
    }
    // wasi-escape reaches for files and sockets, so the host's deny-all WASI must still
    // link these interfaces (answering every call with an error), or instantiation fails.
    for interface in [
        "wasi:filesystem/preopens",
        "wasi:sockets/tcp",
        "wasi:cli/environment",
    ] {
        assert!(
            imports.iter().any(|i| i.starts_with(interface)),
            "misbehave must import {interface}: {imports:?}"
        );
    }
}

#[test]
fn guests_build_beside_the_outer_target_dir() {
    let root = std::env::temp_dir().join(format!("bundle-test-{}", std::process::id()));
    let out = root.join("debug/build/trellis-plugin-bundle-0123/out");
    std::fs::create_dir_all(&out).unwrap();
    assert_eq!(
        nested::guest_target_dir(&out),
        out.join("guests"),
        "no CACHEDIR.TAG: stay in OUT_DIR"
    );
    std::fs::write(
        root.join("CACHEDIR.TAG"),
        "Signature: 8a477f597d28d172789f06886806bc55",
    )
    .unwrap();
    assert_eq!(nested::guest_target_dir(&out), root.join("guests"));
    // With an explicit --target the profile directory is one level deeper; same answer.
    let cross = root.join("x86_64-unknown-linux-gnu/release/build/trellis-plugin-bundle-4567/out");
    assert_eq!(nested::guest_target_dir(&cross), root.join("guests"));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn the_outer_builds_flags_wrappers_and_locations_do_not_leak() {
    for leaky in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "CARGO_TARGET_DIR",
        "CARGO_MAKEFLAGS",
        "CARGO_PKG_NAME",
        "CARGO_CFG_TARGET_ARCH",
        "CARGO_FEATURE_DEFAULT",
        "CARGO_PROFILE_GUEST_OPT_LEVEL",
        "CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS",
        "__CARGO_FIX_PLZ",
        "OUT_DIR",
        "TARGET",
        "CARGO",
    ] {
        assert!(nested::is_leaky(leaky), "{leaky} must be removed");
    }
    for kept in [
        "PATH",
        "HOME",
        "RUSTC",
        "RUSTUP_TOOLCHAIN",
        "CARGO_HOME",
        "CARGO_NET_OFFLINE",
        "CARGO_TERM_COLOR",
    ] {
        assert!(!nested::is_leaky(kept), "{kept} must be kept");
    }
}

#[test]
fn a_missing_wasm_target_names_the_fix() {
    let sysroot = std::env::temp_dir().join(format!("bundle-sysroot-{}", std::process::id()));
    std::fs::create_dir_all(sysroot.join("lib/rustlib/x86_64-unknown-linux-gnu/lib")).unwrap();
    let err = nested::check_wasm_target(&sysroot).unwrap_err();
    assert!(err.contains("rustup target add wasm32-wasip2"), "{err}");
    assert!(err.contains(&sysroot.display().to_string()), "{err}");
    std::fs::create_dir_all(sysroot.join("lib/rustlib/wasm32-wasip2/lib")).unwrap();
    nested::check_wasm_target(&sysroot).unwrap();
    std::fs::remove_dir_all(&sysroot).unwrap();
}
