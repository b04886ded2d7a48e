//! Turning a plugin file into a ready-to-instantiate [`PluginPre`], or a [`LoadError`] that
//! names the file and the offending import or export.
//!
//! Checks run cheapest and most specific first, so the error says what is actually wrong:
//! the magic bytes (garbage, or a core module instead of a component), compilation (an invalid
//! component, or one using a wasm feature the engine has off), every import against what the
//! host provides (a component of another world usually fails here, naming its first foreign
//! import), then the `reconcile` export and its type.

use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker};

use super::artifacts::{ArtifactCache, Source};
use super::bindings::PluginPre;
use super::call::CallState;
use super::config::ConfigError;

/// The world's only export.
pub const EXPORT: &str = "reconcile";

/// Import namespaces the host provides: WASI (deny-all) and the Trellis contract.
const PROVIDED_NAMESPACES: [&str; 2] = ["wasi:", "trellis:"];

/// Why a plugin could not be loaded. Every variant names the plugin and its file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("plugin `{plugin}`: cannot read {}: {source}", path.display())]
    Read {
        plugin: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "plugin `{plugin}`: {} is not a WebAssembly component (no wasm magic bytes at its start)",
        path.display()
    )]
    NotWasm { plugin: String, path: PathBuf },
    #[error(
        "plugin `{plugin}`: {} is a core WebAssembly module, not a component; build the plugin \
         with `cargo build --target wasm32-wasip2`",
        path.display()
    )]
    CoreModule { plugin: String, path: PathBuf },
    #[error("plugin `{plugin}`: {} is not a valid component: {detail}", path.display())]
    Invalid {
        plugin: String,
        path: PathBuf,
        detail: String,
    },
    #[error(
        "plugin `{plugin}`: {} does not export `{export}` (its exports: {found}); it was not \
         built for the world trellis:plugin/plugin@0.1.0",
        path.display()
    )]
    MissingExport {
        plugin: String,
        path: PathBuf,
        export: &'static str,
        found: String,
    },
    #[error(
        "plugin `{plugin}`: {} exports `{export}` with a type other than \
         trellis:plugin/plugin@0.1.0's: {detail}",
        path.display()
    )]
    ExportMismatch {
        plugin: String,
        path: PathBuf,
        export: &'static str,
        detail: String,
    },
    #[error(
        "plugin `{plugin}`: {} imports `{import}`, which the host does not provide: {detail}",
        path.display()
    )]
    UnsupportedImport {
        plugin: String,
        path: PathBuf,
        import: String,
        detail: String,
    },
    #[error("plugin `{plugin}` ({}): {source}", path.display())]
    Config {
        plugin: String,
        path: PathBuf,
        source: ConfigError,
    },
}

/// A plugin file, checked and ready to instantiate.
pub struct Loaded {
    pub pre: PluginPre<CallState>,
    pub source: Source,
}

/// What kind of binary the first 8 bytes announce.
#[derive(Debug, PartialEq, Eq)]
enum Header {
    Component,
    CoreModule,
    NotWasm,
}

fn header(bytes: &[u8]) -> Header {
    // Both start with "\0asm" then a 4-byte version; a component's has layer 1 in its upper half.
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', _, _, 0, 0]) => Header::CoreModule,
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => Header::Component,
        _ => Header::NotWasm,
    }
}

/// Checks and compiles `bytes` (read from `path`) for plugin `plugin`.
pub fn load(
    engine: &Engine,
    linker: &Linker<CallState>,
    cache: &ArtifactCache,
    plugin: &str,
    path: &Path,
    bytes: &[u8],
) -> Result<Loaded, LoadError> {
    let plugin_owned = || plugin.to_string();
    let path_owned = || path.to_path_buf();
    match header(bytes) {
        Header::Component => {}
        Header::CoreModule => {
            return Err(LoadError::CoreModule {
                plugin: plugin_owned(),
                path: path_owned(),
            });
        }
        Header::NotWasm => {
            return Err(LoadError::NotWasm {
                plugin: plugin_owned(),
                path: path_owned(),
            });
        }
    }

    let (component, source) =
        cache
            .component(engine, bytes)
            .map_err(|error| LoadError::Invalid {
                plugin: plugin_owned(),
                path: path_owned(),
                detail: chain(&error),
            })?;

    let unsupported = |import: String, detail: String| LoadError::UnsupportedImport {
        plugin: plugin_owned(),
        path: path_owned(),
        import,
        detail,
    };
    for (name, _) in component.component_type().imports(engine) {
        if !PROVIDED_NAMESPACES.iter().any(|ns| name.starts_with(ns)) {
            return Err(unsupported(
                name.to_string(),
                "the host provides only WASI 0.2 (deny-all) and trellis:plugin@0.1.0".into(),
            ));
        }
    }
    let instance_pre = linker.instantiate_pre(&component).map_err(|error| {
        let import = offending_import(&error).unwrap_or_else(|| "(unknown)".to_string());
        unsupported(import, chain(&error))
    })?;
    check_export(engine, &component).map_err(|(found, mismatch)| match mismatch {
        None => LoadError::MissingExport {
            plugin: plugin_owned(),
            path: path_owned(),
            export: EXPORT,
            found,
        },
        Some(detail) => LoadError::ExportMismatch {
            plugin: plugin_owned(),
            path: path_owned(),
            export: EXPORT,
            detail,
        },
    })?;

    let pre = PluginPre::new(instance_pre).map_err(|error| LoadError::ExportMismatch {
        plugin: plugin_owned(),
        path: path_owned(),
        export: EXPORT,
        detail: chain(&error),
    })?;
    Ok(Loaded { pre, source })
}

/// `Err((exports found, None))` when `reconcile` is missing, `Err((_, Some(why)))` when it is
/// not a function.
fn check_export(engine: &Engine, component: &Component) -> Result<(), (String, Option<String>)> {
    let ty = component.component_type();
    match ty.get_export(engine, EXPORT) {
        Some(export) if matches!(export.ty, ComponentItem::ComponentFunc(_)) => Ok(()),
        Some(_) => Err((String::new(), Some(format!("`{EXPORT}` is not a function")))),
        None => {
            let names: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
            let found = if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            };
            Err((found, None))
        }
    }
}

/// wasmtime's linker names the import it could not satisfy in its context message
/// ("component imports instance `x`, but a matching implementation was not found ..."); the
/// cause below it says what did not match.
fn offending_import(error: &wasmtime::Error) -> Option<String> {
    error.chain().find_map(|cause| {
        let text = cause.to_string();
        let rest = text.strip_prefix("component imports ")?;
        let start = rest.find('`')? + 1;
        let len = rest[start..].find('`')?;
        Some(rest[start..start + len].to_string())
    })
}

/// The error and all its causes on one line.
fn chain(error: &wasmtime::Error) -> String {
    error
        .chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_tell_components_from_modules_and_garbage() {
        assert_eq!(header(b"\0asm\x01\0\0\0rest"), Header::CoreModule);
        assert_eq!(header(b"\0asm\x0d\0\x01\0rest"), Header::Component);
        assert_eq!(header(b"\x7fELF\x02\x01\x01\0"), Header::NotWasm);
        assert_eq!(header(b"\0asm"), Header::NotWasm);
        assert_eq!(header(b""), Header::NotWasm);
    }

    #[test]
    fn the_offending_import_is_read_from_the_linker_context() {
        let e = wasmtime::Error::msg("instance export `get` has the wrong type").context(
            "component imports instance `trellis:plugin/cache@0.1.0`, but a matching \
             implementation was not found in the linker",
        );
        assert_eq!(
            offending_import(&e).as_deref(),
            Some("trellis:plugin/cache@0.1.0")
        );
        assert_eq!(offending_import(&wasmtime::Error::msg("other")), None);
    }
}
