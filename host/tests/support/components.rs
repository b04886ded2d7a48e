//! The real components of `trellis-plugin-bundle`, compiled by the real sandbox. A debug host
//! compiles slowly, so a test binary compiles each component once on [`SANDBOX`] and derives
//! other budgets with `Plugin::with_budgets`; only another plugin name (a pool's metrics
//! label) needs [`load_as`] to compile again.

#![allow(dead_code)] // each test binary uses a different part of it

use std::path::Path;
use std::sync::LazyLock;

use trellis_host::sandbox::{Budgets, EngineConfig, Plugin, Sandbox};
use trellis_plugin_bundle::BuiltComponent;

/// The default sandbox, shared by a test binary.
pub static SANDBOX: LazyLock<Sandbox> =
    LazyLock::new(|| Sandbox::new(EngineConfig::default()).expect("the default sandbox starts"));

/// `component` on `sandbox`, under its own name and the default budgets.
pub fn load_on(sandbox: &Sandbox, component: &BuiltComponent) -> Plugin {
    sandbox
        .load_file(
            component.name,
            Path::new(component.path),
            Budgets::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `component` on `sandbox` under the plugin name `name` and `budgets`.
pub fn load_as(
    sandbox: &Sandbox,
    name: &str,
    component: &BuiltComponent,
    budgets: Budgets,
) -> Plugin {
    sandbox
        .load_bytes(name, Path::new(component.path), component.wasm, budgets)
        .unwrap_or_else(|e| panic!("{e}"))
}
