//! The example plugins as built wasm32-wasip2 components, for the host's tests and for
//! `trellis dev`.
//!
//! build.rs builds them with a nested `cargo build --target wasm32-wasip2 --profile guest` (in
//! `<target dir>/guests`, shared by every profile of the outer build) and this crate embeds
//! the results. Depending on this crate is how a test gets real components built from the
//! current sources: editing the SDK, a plugin or the WIT rebuilds them.
//!
//! ```
//! let misbehave = &trellis_plugin_bundle::MISBEHAVE;
//! assert_eq!(misbehave.name, "misbehave");
//! assert!(std::path::Path::new(misbehave.path).is_file());
//! assert_eq!(std::fs::read(misbehave.path).unwrap(), misbehave.wasm);
//! ```

/// One built plugin component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltComponent {
    /// The plugin's package name, e.g. `namespace-defaults`.
    pub name: &'static str,
    /// Where the component file is (in this crate's OUT_DIR), for code that loads from disk.
    pub path: &'static str,
    /// The component's bytes.
    pub wasm: &'static [u8],
}

macro_rules! component {
    ($name:literal, $file:literal) => {
        BuiltComponent {
            name: $name,
            path: concat!(env!("OUT_DIR"), "/", $file),
            wasm: include_bytes!(concat!(env!("OUT_DIR"), "/", $file)),
        }
    };
}

/// Server-side applies a default-deny NetworkPolicy and a ResourceQuota to labelled
/// Namespaces (see plugins/namespace-defaults/README.md).
pub static NAMESPACE_DEFAULTS: BuiltComponent =
    component!("namespace-defaults", "namespace_defaults.wasm");

/// Summarizes a Deployment's Pods into an annotation (see
/// plugins/deployment-summary/README.md).
pub static DEPLOYMENT_SUMMARY: BuiltComponent =
    component!("deployment-summary", "deployment_summary.wasm");

/// Misbehaves as the reconciled ConfigMap's `data.mode` says (see plugins/misbehave/README.md).
pub static MISBEHAVE: BuiltComponent = component!("misbehave", "misbehave.wasm");

/// Writes a value computed from a Deployment and its same-named ConfigMap into the
/// Deployment's status: the end-to-end benchmark's workload (see plugins/status-bench/README.md).
pub static STATUS_BENCH: BuiltComponent = component!("status-bench", "status_bench.wasm");

/// Every component, in a fixed order.
pub static ALL: [&BuiltComponent; 4] = [
    &NAMESPACE_DEFAULTS,
    &DEPLOYMENT_SUMMARY,
    &MISBEHAVE,
    &STATUS_BENCH,
];

/// The component of the plugin with this package name.
pub fn by_name(name: &str) -> Option<&'static BuiltComponent> {
    ALL.iter().copied().find(|c| c.name == name)
}

#[cfg(test)]
#[path = "../build/nested.rs"]
mod nested;

#[cfg(test)]
mod tests;
