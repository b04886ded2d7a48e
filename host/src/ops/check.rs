//! `trellis check -c FILE`: everything the host would refuse at start, found without starting
//! it (issue 6) — in CI, before a rollout.
//!
//! It loads the config (every mistake at once, see `ops::config`), then compiles every
//! component with the real sandbox and engine settings of the config, so a component of the
//! wrong world, with missing exports or with imports the host does not provide fails here with
//! the plugin and file named. It also warns about what is allowed but probably not meant:
//! a write grant on a kind the plugin cannot read (it cannot see what it wrote), a secondary
//! watch no read grant covers (its objects trigger reconciles but cannot be read), Events on
//! with the primary kind unreadable (Events need a readable object).
//!
//! Compiling uses the engine's `cacheDir` when the config sets one, so a check warms the cache
//! the host will start from.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::ops::config::{self, Config, ConfigError};
use crate::permissions::Scope;
use crate::sandbox::{LoadError, Sandbox, SandboxError, Source};

/// Something that stops the host from starting.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("{0}")]
    Config(ConfigError),
    /// The engine could not be built from `host.engine` (e.g. not enough virtual memory for
    /// the instance pool).
    #[error("{file}: host.engine: {error}", file = .file.display())]
    Engine { file: PathBuf, error: SandboxError },
    /// A component did not load; the error names the plugin and the file.
    #[error("{file}: plugins[{index}] ({plugin}).component: {error}", file = .file.display())]
    Component {
        file: PathBuf,
        index: usize,
        plugin: String,
        error: LoadError,
    },
}

/// Allowed, but probably not what was meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The field it is about, spelled like config errors: `plugins[0] (x).permissions.write[1]`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A plugin whose component loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedPlugin {
    pub name: String,
    pub component: PathBuf,
    /// Compiled now, or taken from the engine's cache directory.
    pub source: Source,
}

/// What `trellis check` found.
#[derive(Debug)]
pub struct CheckReport {
    /// The config file, as given.
    pub file: PathBuf,
    pub errors: Vec<Problem>,
    pub warnings: Vec<Warning>,
    /// Plugins whose components loaded (none when the config itself has errors).
    pub plugins: Vec<CheckedPlugin>,
}

impl CheckReport {
    /// No errors: the host would start with this config (warnings allowed).
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        for error in &self.errors {
            writeln!(f, "error: {error}")?;
        }
        for warning in &self.warnings {
            writeln!(f, "warning: {warning}")?;
        }
        for plugin in &self.plugins {
            let how = match plugin.source {
                Source::Compiled => "compiled",
                Source::Cached => "from the compiled-component cache",
            };
            writeln!(
                f,
                "ok: plugin {}: {} ({how})",
                plugin.name,
                plugin.component.display()
            )?;
        }
        let verdict = if self.is_ok() { "OK" } else { "FAILED" };
        write!(
            f,
            "{}: {verdict}: {}, {}",
            self.file.display(),
            count(self.errors.len(), "error"),
            count(self.warnings.len(), "warning")
        )?;
        if self.is_ok() {
            write!(f, ", {}", count(self.plugins.len(), "plugin"))?;
        }
        Ok(())
    }
}

/// Loads the config at `path`, compiles its components and looks for likely mistakes.
pub fn check(path: impl AsRef<Path>) -> CheckReport {
    let file = path.as_ref().to_path_buf();
    match config::load(&file) {
        Ok(config) => check_config(&file, &config),
        Err(errors) => CheckReport {
            file,
            errors: errors.errors.into_iter().map(Problem::Config).collect(),
            warnings: Vec::new(),
            plugins: Vec::new(),
        },
    }
}

/// Compiles the components of a loaded config and looks for likely mistakes; `file` is how
/// the config file is named in the report.
pub fn check_config(file: &Path, config: &Config) -> CheckReport {
    let mut report = CheckReport {
        file: file.to_path_buf(),
        errors: Vec::new(),
        warnings: warnings(config),
        plugins: Vec::new(),
    };
    let sandbox = match Sandbox::new(config.host.engine.clone()) {
        Ok(sandbox) => sandbox,
        Err(error) => {
            report.errors.push(Problem::Engine {
                file: file.to_path_buf(),
                error,
            });
            return report;
        }
    };
    for (index, plugin) in config.plugins.iter().enumerate() {
        match sandbox.load_file(&plugin.name, &plugin.component, plugin.budgets.clone()) {
            Ok(loaded) => report.plugins.push(CheckedPlugin {
                name: plugin.name.clone(),
                component: plugin.component.clone(),
                source: loaded.source(),
            }),
            Err(error) => report.errors.push(Problem::Component {
                file: file.to_path_buf(),
                index,
                plugin: plugin.name.clone(),
                error,
            }),
        }
    }
    report
}

/// Grants and watches that are valid but do not fit together.
pub fn warnings(config: &Config) -> Vec<Warning> {
    let mut warnings = Vec::new();
    for (index, plugin) in config.plugins.iter().enumerate() {
        let field = |rest: &str| format!("plugins[{index}] ({}).{rest}", plugin.name);
        let permissions = &plugin.permissions;
        let primary = plugin.kind();
        let kind_name = |api_version: &str, kind: &str| format!("{api_version} {kind}");

        for (i, grant) in permissions.write.iter().enumerate() {
            let gvk = grant.gvk();
            if gvk != *primary && permissions.read_scope(&gvk).is_none() {
                warnings.push(Warning {
                    field: field(&format!("permissions.write[{i}]")),
                    message: format!(
                        "writes {} but cannot read it: the plugin cannot see what it wrote, so \
                         it cannot tell when a write is needed (add a watch and a read grant)",
                        kind_name(&grant.api_version, &grant.kind)
                    ),
                });
            }
        }
        for (i, watch) in plugin.secondary.iter().enumerate() {
            let readable = match permissions.read_scope(watch.kind()) {
                None => false,
                Some(Scope::All) => true,
                Some(Scope::Namespaces(granted)) => {
                    !watch.namespaces().is_empty()
                        && watch.namespaces().iter().all(|n| granted.contains(n))
                }
            };
            if !readable {
                warnings.push(Warning {
                    field: field(&format!("secondary[{i}]")),
                    message: format!(
                        "watches {}, which no read grant fully covers: its objects trigger \
                         reconciles, but the plugin cannot read (all of) them",
                        kind_name(&watch.config.api_version, &watch.config.kind)
                    ),
                });
            }
        }
        if permissions.events && permissions.read_scope(primary).is_none() {
            warnings.push(Warning {
                field: field("permissions.events"),
                message: format!(
                    "is true, but no read grant covers the primary kind {}: Events about the \
                     plugin's own objects will be refused (grant reading it, or set events: \
                     false)",
                    kind_name(&plugin.watch.config.api_version, &plugin.watch.config.kind)
                ),
            });
        }
    }
    warnings
}
