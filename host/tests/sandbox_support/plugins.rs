//! The real components from `trellis-plugin-bundle`, compiled once per test binary (a debug
//! host compiles slowly), and helpers to build requests for them.

#![allow(dead_code)] // each test binary uses a different part of it

use std::sync::{Arc, LazyLock};

use serde_json::{Value, json};
use trellis_host::sandbox::{
    Budgets, CallReport, Gvk, ObjectKey, Plugin, PluginHost, ReconcileRequest,
};

use super::fake_host::FakeHost;

#[path = "../support/components.rs"]
mod components;
pub use components::{SANDBOX, load_on};

/// The misbehave plugin under default budgets; tests derive other budgets with
/// `Plugin::with_budgets`, which does not recompile.
pub static MISBEHAVE: LazyLock<Plugin> = LazyLock::new(|| load(&trellis_plugin_bundle::MISBEHAVE));

pub fn load(component: &trellis_plugin_bundle::BuiltComponent) -> Plugin {
    load_on(&SANDBOX, component)
}

/// `misbehave` under budgets changed by `f`.
pub fn misbehave_with(f: impl FnOnce(&mut Budgets)) -> Plugin {
    let mut budgets = Budgets::default();
    f(&mut budgets);
    MISBEHAVE.with_budgets(budgets).expect("valid test budgets")
}

pub fn configmap_kind() -> Gvk {
    Gvk {
        group: String::new(),
        version: "v1".into(),
        kind: "ConfigMap".into(),
    }
}

/// A ConfigMap `t/<name>` with `data`.
pub fn configmap(name: &str, data: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"namespace": "t", "name": name, "uid": format!("uid-{name}")},
        "data": data,
    })
}

/// A request reconciling `object` (a ConfigMap in namespace `t`).
pub fn request_for(object: &Value) -> ReconcileRequest {
    ReconcileRequest {
        kind: configmap_kind(),
        key: ObjectKey {
            namespace: Some("t".into()),
            name: object["metadata"]["name"].as_str().unwrap().into(),
        },
        object: Some(object.to_string()),
    }
}

/// Seeds a ConfigMap asking for `mode` with extra `params`, and returns its request.
pub fn mode_request(host: &FakeHost, mode: &str, params: Value) -> ReconcileRequest {
    let mut data = params;
    data["mode"] = Value::String(mode.into());
    let object = configmap(mode, data);
    host.seed(&object);
    request_for(&object)
}

pub async fn call(plugin: &Plugin, host: &Arc<FakeHost>, request: &ReconcileRequest) -> CallReport {
    let host: Arc<dyn PluginHost> = host.clone();
    plugin.reconcile(host, request).await
}
