//! Loading: bad files and components of the wrong shape fail with errors that name the plugin,
//! the file and the offending import or export; the compiled-component cache; and what needs
//! a component of our own (a certain stack overflow, pool exhaustion).

#[path = "sandbox_support/fake_host.rs"]
mod fake_host;
#[path = "sandbox_support/wat_components.rs"]
mod wat_components;

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use fake_host::FakeHost;
use trellis_host::sandbox::{
    Action, Budgets, EngineConfig, Gvk, LoadError, ObjectKey, Outcome, Plugin, PluginHost,
    ReconcileRequest, Sandbox, Source,
};

static SANDBOX: LazyLock<Sandbox> =
    LazyLock::new(|| Sandbox::new(EngineConfig::default()).expect("the default sandbox starts"));

fn load(bytes: &[u8]) -> Result<trellis_host::sandbox::Plugin, LoadError> {
    SANDBOX.load_bytes(
        "fixture",
        Path::new("/plugins/fixture.wasm"),
        bytes,
        Budgets::default(),
    )
}

fn load_err(bytes: &[u8]) -> LoadError {
    match load(bytes) {
        Ok(_) => panic!("the fixture loaded"),
        Err(e) => e,
    }
}

/// Every load error names the plugin and its file.
fn assert_names_file(error: &LoadError) -> String {
    let text = error.to_string();
    assert!(text.contains("plugin `fixture`"), "{text}");
    assert!(text.contains("/plugins/fixture.wasm"), "{text}");
    text
}

fn request() -> ReconcileRequest {
    ReconcileRequest {
        kind: Gvk {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
        },
        key: ObjectKey {
            namespace: Some("t".into()),
            name: "web".into(),
        },
        object: Some(r#"{"kind":"Deployment"}"#.into()),
    }
}

fn host() -> Arc<dyn PluginHost> {
    Arc::new(FakeHost::new())
}

#[test]
fn a_missing_file_is_a_read_error_naming_it() {
    let err = SANDBOX
        .load_file(
            "fixture",
            Path::new("/plugins/fixture.wasm"),
            Budgets::default(),
        )
        .err()
        .unwrap();
    assert!(matches!(err, LoadError::Read { .. }), "{err:?}");
    assert!(assert_names_file(&err).contains("No such file"));
}

#[test]
fn garbage_bytes_are_not_wasm() {
    for bytes in [&b""[..], b"\x7fELF\x02\x01\x01\0\0\0", b"\0as"] {
        let err = load_err(bytes);
        assert!(matches!(err, LoadError::NotWasm { .. }), "{err:?}");
        assert_names_file(&err);
    }
}

#[test]
fn a_core_module_is_told_to_be_a_component() {
    let err = load_err(&wat_components::core_module());
    assert!(matches!(err, LoadError::CoreModule { .. }), "{err:?}");
    assert!(assert_names_file(&err).contains("wasm32-wasip2"));
}

#[test]
fn a_truncated_component_is_invalid() {
    let bytes = trellis_plugin_bundle::MISBEHAVE.wasm;
    let err = load_err(&bytes[..bytes.len() / 2]);
    assert!(matches!(err, LoadError::Invalid { .. }), "{err:?}");
    assert_names_file(&err);
}

#[test]
fn a_component_of_another_world_names_the_missing_export_and_what_it_has() {
    let err = load_err(&wat_components::other_world());
    match &err {
        LoadError::MissingExport { export, found, .. } => {
            assert_eq!(*export, "reconcile");
            assert_eq!(found, "run");
        }
        other => panic!("{other:?}"),
    }
    assert!(assert_names_file(&err).contains("trellis:plugin/plugin@0.1.0"));
}

#[test]
fn a_reconcile_of_the_wrong_type_is_an_export_mismatch() {
    let err = load_err(&wat_components::wrong_reconcile_type());
    assert!(
        matches!(
            &err,
            LoadError::ExportMismatch {
                export: "reconcile",
                ..
            }
        ),
        "{err:?}"
    );
    assert_names_file(&err);
}

#[test]
fn a_foreign_import_is_named() {
    let err = load_err(&wat_components::with_import(
        r#"(import "evil:net/socket" (instance))"#,
    ));
    match &err {
        LoadError::UnsupportedImport { import, .. } => assert_eq!(import, "evil:net/socket"),
        other => panic!("{other:?}"),
    }
    assert!(assert_names_file(&err).contains("`evil:net/socket`"));
}

/// (An import of an instance with no functions needs nothing from the linker and loads.)
#[test]
fn an_unknown_wasi_interface_or_contract_version_is_named() {
    for import in [
        "wasi:nope/thing@0.2.0",
        "trellis:plugin/cache@0.2.0",
        "trellis:plugin/secrets@0.1.0",
    ] {
        let err = load_err(&wat_components::with_import(&format!(
            r#"(import "{import}" (instance (export "f" (func))))"#
        )));
        match &err {
            LoadError::UnsupportedImport { import: named, .. } => assert_eq!(named, import),
            other => panic!("{import}: {other:?}"),
        }
        assert_names_file(&err);
    }
}

#[test]
fn a_contract_import_of_the_wrong_type_is_named() {
    let err = load_err(&wat_components::with_import(
        r#"(import "trellis:plugin/cache@0.1.0" (instance (export "get" (func))))"#,
    ));
    match &err {
        LoadError::UnsupportedImport { import, detail, .. } => {
            assert_eq!(import, "trellis:plugin/cache@0.1.0");
            assert!(detail.contains("get"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn budgets_that_do_not_fit_the_engine_are_refused_by_field() {
    let budgets = Budgets {
        memory_bytes: SANDBOX.config().max_memory_bytes + 1,
        ..Budgets::default()
    };
    let err = SANDBOX
        .load_bytes(
            "fixture",
            Path::new("/plugins/fixture.wasm"),
            &wat_components::noop(),
            budgets,
        )
        .err()
        .unwrap();
    match &err {
        LoadError::Config { source, .. } => assert_eq!(source.field, "budgets.memoryBytes"),
        other => panic!("{other:?}"),
    }
    assert_names_file(&err);
    let plugin = load(&wat_components::noop()).unwrap();
    let bad = Budgets {
        fuel: 0,
        ..Budgets::default()
    };
    assert_eq!(
        plugin.with_budgets(bad).err().unwrap().field,
        "budgets.fuel"
    );
}

#[test]
fn a_bad_engine_config_is_refused_by_field() {
    let err = Sandbox::new(EngineConfig {
        epoch_tick_ms: 0,
        ..EngineConfig::default()
    })
    .err()
    .unwrap();
    assert!(err.to_string().contains("engine.epochTickMs"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_written_component_of_the_right_world_runs() {
    let plugin = load(&wat_components::noop()).unwrap();
    let report = plugin.reconcile(host(), &request()).await;
    assert_eq!(report.outcome, Outcome::Ok(Action::Done), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_recursion_is_a_stack_overflow_and_the_next_call_works() {
    let overflow = load(&wat_components::stack_overflow()).unwrap();
    let report = overflow.reconcile(host(), &request()).await;
    assert_eq!(report.outcome, Outcome::StackOverflow, "{report:?}");
    assert!(
        report.fuel_used < overflow.budgets().fuel,
        "the stack cap, not fuel, stopped it"
    );
    let report = overflow.reconcile(host(), &request()).await;
    assert_eq!(report.outcome, Outcome::StackOverflow);
    let noop = load(&wat_components::noop()).unwrap();
    assert_eq!(
        noop.reconcile(host(), &request()).await.outcome,
        Outcome::Ok(Action::Done)
    );
}

const SPIN_PATH: &str = "/plugins/spin.wasm";

/// A sandbox of one instance slot, and a plugin on it whose every call spins until its
/// deadline (`deadline_ms`; fuel never runs out first).
fn one_slot_and_a_spinner(deadline_ms: u64) -> (Sandbox, Plugin) {
    let sandbox = Sandbox::new(EngineConfig {
        max_instances: 1,
        ..EngineConfig::default()
    })
    .unwrap();
    let budgets = Budgets {
        fuel: u64::MAX / 2,
        deadline_ms,
        ..Budgets::default()
    };
    let spin = wat_components::reconcile_component("", "(loop br 0)");
    let spin = sandbox
        .load_bytes("spin", Path::new(SPIN_PATH), &spin, budgets)
        .unwrap();
    (sandbox, spin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_is_a_host_fault_and_the_slot_comes_back() {
    let (sandbox, spin) = one_slot_and_a_spinner(5_000);
    // Both spin until their deadline; whichever starts second finds the only slot taken.
    let request = request();
    let (a, b) = tokio::join!(
        spin.reconcile(host(), &request),
        spin.reconcile(host(), &request)
    );
    let mut outcomes = [a.outcome.name(), b.outcome.name()];
    outcomes.sort();
    assert_eq!(outcomes, ["deadline", "host_fault"], "{a:?} {b:?}");
    let fault = if a.outcome.name() == "host_fault" {
        &a
    } else {
        &b
    };
    match &fault.outcome {
        Outcome::HostFault { message } => assert!(message.contains("concurrent"), "{message}"),
        other => panic!("{other:?}"),
    }
    let noop = sandbox
        .load_bytes(
            "noop",
            Path::new(SPIN_PATH),
            &wat_components::noop(),
            Budgets::default(),
        )
        .unwrap();
    assert_eq!(
        noop.reconcile(host(), &request).await.outcome,
        Outcome::Ok(Action::Done)
    );
}

fn only_entry(dir: &Path) -> PathBuf {
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_components_are_cached_on_disk_and_damaged_entries_are_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let config = EngineConfig {
        max_instances: 2,
        cache_dir: Some(cache_dir.clone()),
        ..EngineConfig::default()
    };
    let bytes = wat_components::noop();
    let path = Path::new("/plugins/noop.wasm");
    let budgets = Budgets::default;

    let sandbox = Sandbox::new(config.clone()).unwrap();
    let first = sandbox.load_bytes("noop", path, &bytes, budgets()).unwrap();
    assert_eq!(first.source(), Source::Compiled);
    let entry = only_entry(&cache_dir);

    // A restart (a new engine with the same config) takes it from the cache.
    drop((first, sandbox));
    let sandbox = Sandbox::new(config.clone()).unwrap();
    let cached = sandbox.load_bytes("noop", path, &bytes, budgets()).unwrap();
    assert_eq!(cached.source(), Source::Cached);
    assert_eq!(
        cached.reconcile(host(), &request()).await.outcome,
        Outcome::Ok(Action::Done)
    );

    // A damaged entry is detected, recompiled and rewritten.
    let mut data = std::fs::read(&entry).unwrap();
    let middle = data.len() / 2;
    data[middle] ^= 0xff;
    std::fs::write(&entry, &data).unwrap();
    let again = sandbox.load_bytes("noop", path, &bytes, budgets()).unwrap();
    assert_eq!(again.source(), Source::Compiled);
    assert_eq!(
        again.reconcile(host(), &request()).await.outcome,
        Outcome::Ok(Action::Done)
    );
    assert_eq!(
        sandbox
            .load_bytes("noop", path, &bytes, budgets())
            .unwrap()
            .source(),
        Source::Cached
    );

    // Other bytes are another entry.
    sandbox
        .load_bytes("other", path, &wat_components::stack_overflow(), budgets())
        .unwrap();
    assert_eq!(std::fs::read_dir(&cache_dir).unwrap().count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_cache_dir_is_bypassed() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, b"").unwrap();
    let sandbox = Sandbox::new(EngineConfig {
        max_instances: 1,
        cache_dir: Some(not_a_dir.join("cache")),
        ..EngineConfig::default()
    })
    .unwrap();
    let plugin = sandbox
        .load_bytes(
            "noop",
            Path::new("/plugins/noop.wasm"),
            &wat_components::noop(),
            Budgets::default(),
        )
        .unwrap();
    assert_eq!(plugin.source(), Source::Compiled);
    assert_eq!(
        plugin.reconcile(host(), &request()).await.outcome,
        Outcome::Ok(Action::Done)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ticker_outlives_the_sandbox_handle_while_plugins_remain() {
    let (sandbox, spin) = one_slot_and_a_spinner(200);
    drop(sandbox);
    // Without epochs a spinning guest never yields and no deadline could stop it; the call
    // runs on its own task so this one (on the other worker) can notice.
    let call = tokio::spawn(async move { spin.reconcile(host(), &request()).await });
    let report = tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("the call ended")
        .unwrap();
    assert_eq!(report.outcome, Outcome::Deadline);
}
