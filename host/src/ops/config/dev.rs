//! The config `trellis dev` runs (dev.yaml, embedded): the two example plugins, each granted
//! exactly what its README says it reads and writes.
//!
//! `trellis dev` writes each component of [`DEV_COMPONENTS`] into a directory and parses
//! [`DEV_CONFIG`] as if it were a file there (`parse(dir.join("dev.yaml"), DEV_CONFIG)`), so the
//! relative component paths resolve to the files it wrote.

/// The dev config's text.
pub const DEV_CONFIG: &str = include_str!("dev.yaml");

/// `(plugin name, component file name)` for each plugin of [`DEV_CONFIG`]; the plugin names
/// are also the names of `trellis_plugin_bundle`'s components.
pub const DEV_COMPONENTS: [(&str, &str); 2] = [
    ("namespace-defaults", "namespace-defaults.wasm"),
    ("deployment-summary", "deployment-summary.wasm"),
];
