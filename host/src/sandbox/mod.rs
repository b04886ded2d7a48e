//! The Wasm sandbox: runs a plugin's `reconcile` in a fresh, limited instance per call.
//!
//! Why it looks like this (DESIGN "host/ — sandbox", invariants 3 and 4):
//!
//! - One [`Sandbox`] per process owns the wasmtime engine (fuel, epochs, pooling allocator),
//!   the linker that provides the guest's imports, the on-disk cache of compiled components,
//!   and the epoch ticker. Plugins are compiled once ([`Sandbox::load_file`]) into a
//!   [`Plugin`], which holds an `InstancePre` and can be cloned and called from many tasks.
//! - Every [`Plugin::reconcile`] gets a new store and instance (nothing survives between calls)
//!   with a fuel budget, a wall-clock deadline that also covers host calls, a memory cap, the
//!   engine's wasm stack cap and deny-all WASI; it returns a [`CallReport`] whose [`Outcome`]
//!   is classified by root cause. No guest behaviour makes it panic or return an error.
//! - The guest's imports reach a [`PluginHost`] supplied per call (the `hostcalls` module, or a
//!   test double) only through the budget [`Meter`](budget::Meter), so every implementation is
//!   charged the same way.
//!
//! Module map: `config` (settings), `engine` (the wasmtime config), `ticker` (epochs),
//! `artifacts` (compiled-component cache), `loader` (file -> checked `InstancePre`), `call`
//! (one call), `imports` + `budget` (the guest's imports), `limits` (memory cap), `stdio`
//! (captured output), `outcome` (classification), `host` (the trait). Only the types a caller
//! needs are public; see docs/sandbox.md.

mod artifacts;
mod bindings;
pub mod budget;
mod call;
pub mod config;
mod engine;
pub mod host;
mod imports;
mod limits;
mod loader;
pub mod outcome;
mod stdio;
mod ticker;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

pub use artifacts::Source;
pub use budget::Usage;
pub use call::ReusedInstance;
pub use config::{Budgets, ConfigError, EngineConfig};
pub use host::{
    Action, ErrorCode, EventType, Gvk, HostError, Level, LogRecord, ObjectKey, PluginHost,
    ReconcileError, ReconcileRequest, async_trait,
};
pub use loader::LoadError;
pub use outcome::{CallReport, Outcome};

use call::{CallSetup, CallState};

/// The sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "cannot create the wasmtime engine (is there enough virtual memory for the pool?): {0}"
    )]
    Engine(String),
    #[error("cannot register the guest's imports with the linker: {0}")]
    Linker(String),
    #[error("cannot start the epoch ticker thread: {0}")]
    Ticker(#[source] std::io::Error),
}

/// What every plugin shares; kept alive by the sandbox and by every plugin, so the ticker runs
/// as long as anything can still call a guest.
struct Shared {
    config: EngineConfig,
    engine: Engine,
    linker: Linker<CallState>,
    cache: artifacts::ArtifactCache,
    _ticker: ticker::EpochTicker,
}

/// The process's one sandbox. Cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    shared: Arc<Shared>,
}

impl Sandbox {
    /// Validates `config`, builds the engine and linker and starts the epoch ticker.
    pub fn new(config: EngineConfig) -> Result<Self, SandboxError> {
        config.validate()?;
        let engine = engine::build(&config).map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::<CallState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| SandboxError::Linker(format!("{e:#}")))?;
        bindings::Plugin::add_to_linker::<CallState, HasSelf<imports::GuestImports>>(
            &mut linker,
            |state| &mut state.imports,
        )
        .map_err(|e| SandboxError::Linker(format!("{e:#}")))?;
        let ticker = ticker::EpochTicker::start(engine.clone(), config.epoch_tick())
            .map_err(SandboxError::Ticker)?;
        let cache = artifacts::ArtifactCache::new(config.cache_dir.clone());
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                engine,
                linker,
                cache,
                _ticker: ticker,
            }),
        })
    }

    /// The engine configuration in force.
    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// Reads, checks and compiles the plugin at `path` (or takes it from the cache).
    pub fn load_file(
        &self,
        name: &str,
        path: &Path,
        budgets: Budgets,
    ) -> Result<Plugin, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            plugin: name.to_string(),
            path: path.to_path_buf(),
            source,
        })?;
        self.load_bytes(name, path, &bytes, budgets)
    }

    /// Like [`load_file`](Self::load_file) for bytes already in memory; `path` is where they
    /// came from, for error messages.
    pub fn load_bytes(
        &self,
        name: &str,
        path: &Path,
        bytes: &[u8],
        budgets: Budgets,
    ) -> Result<Plugin, LoadError> {
        budgets
            .validate(&self.shared.config)
            .map_err(|source| LoadError::Config {
                plugin: name.to_string(),
                path: path.to_path_buf(),
                source,
            })?;
        let started = std::time::Instant::now();
        let loaded = loader::load(
            &self.shared.engine,
            &self.shared.linker,
            &self.shared.cache,
            name,
            path,
            bytes,
        )?;
        tracing::info!(
            plugin = name,
            path = %path.display(),
            source = ?loaded.source,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "plugin loaded"
        );
        Ok(Plugin {
            inner: Arc::new(PluginInner {
                shared: self.shared.clone(),
                name: name.into(),
                path: path.to_path_buf(),
                pre: loaded.pre,
                source: loaded.source,
                budgets,
            }),
        })
    }
}

struct PluginInner {
    shared: Arc<Shared>,
    name: Arc<str>,
    path: PathBuf,
    pre: bindings::PluginPre<CallState>,
    source: Source,
    budgets: Budgets,
}

/// A loaded plugin. Cheap to clone; calls may run concurrently.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

impl Plugin {
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Whether loading compiled it or took it from the on-disk cache.
    pub fn source(&self) -> Source {
        self.inner.source
    }

    pub fn budgets(&self) -> &Budgets {
        &self.inner.budgets
    }

    /// The same compiled plugin under other budgets (a config reload), without recompiling.
    pub fn with_budgets(&self, budgets: Budgets) -> Result<Plugin, ConfigError> {
        budgets.validate(&self.inner.shared.config)?;
        Ok(Plugin {
            inner: Arc::new(PluginInner {
                shared: self.inner.shared.clone(),
                name: self.inner.name.clone(),
                path: self.inner.path.clone(),
                pre: self.inner.pre.clone(),
                source: self.inner.source,
                budgets,
            }),
        })
    }

    fn setup(&self) -> CallSetup<'_> {
        CallSetup {
            engine: &self.inner.shared.engine,
            pre: &self.inner.pre,
            plugin: &self.inner.name,
            budgets: &self.inner.budgets,
            table_elements: self.inner.shared.config.max_table_elements,
        }
    }

    /// Runs `reconcile(request)` in a fresh instance, with `host` behind its imports. Must be
    /// called inside a tokio runtime (the deadline uses its timer). Always returns a report.
    pub async fn reconcile(
        &self,
        host: Arc<dyn PluginHost>,
        request: &ReconcileRequest,
    ) -> CallReport {
        self.setup().run(host, request).await
    }

    /// An instance reused across calls, for benchmarks only: it breaks invariant 3.
    #[doc(hidden)]
    pub async fn reused_instance_for_benchmarks(
        &self,
        host: Arc<dyn PluginHost>,
    ) -> wasmtime::Result<ReusedInstance> {
        self.setup().reused(host).await
    }
}
