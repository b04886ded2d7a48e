//! The manager: one running host built from a config.
//!
//! ```text
//! Config ─▶ Manager::start
//!             ├─ Services: one Sandbox, one Informers, discovery, metric families
//!             └─ per plugin (in config order), all prepared before any worker starts:
//!                  WorkQueue ─▶ component compiled ∥ watches subscribed (QueueSink)
//!                  ─▶ HostCalls over their caches ─▶ supervisor task:
//!                     caches synced ─▶ (leading) ─▶ worker Pool
//! ```
//!
//! Why it is shaped this way:
//! - **Nothing reconciles half-configured.** Every plugin is prepared — component compiled,
//!   every watch subscribed (discovery resolves each kind, so an unknown kind or a kind that
//!   cannot be watched fails here), host calls built — before any worker starts; the first
//!   error names the file, the plugin and the field, and stops the host.
//! - **Workers start only on complete caches.** A plugin's pool starts once every watch it
//!   reads is synced; a watch that does not sync within `cacheSyncTimeoutSeconds` is an error
//!   in the logs and on /readyz (and keeps retrying); one the server rejects fails the plugin.
//!   Plugins do not wait for each other.
//! - **Standbys keep caches warm.** Without the lease, watches and queues run, workers do not.
//! - **Shutdown drains.** [`Manager::shutdown`] stops intake, lets held keys finish within the
//!   grace period, then stops the watches.
//! - **Reload is per plugin.** [`Manager::reload`] swaps one plugin's component and host
//!   services under its running pool (calls in flight finish on the old ones) and keeps the
//!   informers whose specs did not change.
//!
//! Module map: `services` (shared parts), `plugin` (one plugin's parts and pool), `supervisor`
//! (its lifecycle state machine), `reload` (one plugin), `files` (reload when files change),
//! `stats` (the progress snapshot), `error`.

mod error;
mod files;
mod plugin;
mod reload;
mod services;
mod stats;
mod supervisor;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use error::{PluginField, StartError};
pub use files::{FileReload, FileWatch, POLL_EVERY};
pub use reload::{ReloadError, Reloaded};
pub use stats::{PluginPhase, PluginStats, Stats};

use crate::informer::{InformerOptions, Informers};
use crate::ops::config::Config;
use crate::ops::health::Health;
use crate::ops::leader::Leadership;
use crate::sandbox::Sandbox;
use crate::worker::{GuestExecutor, Nice, ShutdownReport};
use plugin::Runner;
use services::Services;
use supervisor::{Supervision, supervise};

/// What a manager runs with besides the config and the client.
pub struct ManagerOptions {
    /// Every metric family is registered here; the manager keeps it and hands it out
    /// ([`Manager::registry`]) for /metrics. Register other families (leader election) before.
    pub registry: Registry,
    /// The `reportingInstance` of Events (the pod name in a cluster).
    pub identity: String,
    /// `None`: no election, this replica always leads.
    pub leadership: Option<watch::Receiver<Leadership>>,
    /// Readiness checks (`plugin:<name>`) are registered here when given.
    pub health: Option<Health>,
    /// Where guests run; `None`: as the config's `host.guests` says (whose defaults are the
    /// worker module's measured choice). Tests set it to pin a placement.
    pub executor: Option<GuestExecutor>,
    /// Server-side timeout of each watch request (tests shorten it); `None`: kube's default.
    pub watch_timeout_seconds: Option<u32>,
}

impl ManagerOptions {
    pub fn new(identity: impl Into<String>) -> Self {
        Self {
            registry: Registry::default(),
            identity: identity.into(),
            leadership: None,
            health: None,
            executor: None,
            watch_timeout_seconds: None,
        }
    }
}

/// A running host.
pub struct Manager {
    file: PathBuf,
    services: Arc<Services>,
    registry: Arc<Registry>,
    runners: Vec<Arc<Runner>>,
    tasks: Vec<JoinHandle<()>>,
    leadership: Option<watch::Receiver<Leadership>>,
    stop: CancellationToken,
    lost: CancellationToken,
    /// Serializes reloads.
    reloading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("config", &self.file)
            .field(
                "plugins",
                &self
                    .runners
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What shutting down left behind, per plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerShutdown {
    pub plugins: Vec<ShutdownReport>,
}

impl ManagerShutdown {
    /// Every held key finished within the grace period.
    pub fn drained(&self) -> bool {
        self.plugins.iter().all(ShutdownReport::drained)
    }
}

impl Manager {
    /// Prepares every plugin of `config` against `client`, then starts each plugin's
    /// supervisor. Must run inside a tokio runtime.
    pub async fn start(
        config: &Config,
        client: Client,
        options: ManagerOptions,
    ) -> Result<Manager, StartError> {
        let ManagerOptions {
            mut registry,
            identity,
            leadership,
            health,
            executor,
            watch_timeout_seconds,
        } = options;
        let file = config.path.clone();
        let settings = &config.host;
        let sandbox =
            Sandbox::new(settings.engine.clone()).map_err(|source| StartError::Sandbox {
                file: file.clone(),
                source,
            })?;
        let informer_options = InformerOptions {
            sync_timeout: settings.cache_sync_timeout,
            watch_timeout_seconds,
        };
        let executor = guest_executor(executor, config).map_err(|source| StartError::Guests {
            file: file.clone(),
            source,
        })?;
        let services = Services::new(
            sandbox,
            client,
            &mut registry,
            informer_options,
            executor,
            identity,
            health,
        )
        .map_err(|source| StartError::IoRuntime { source })?;
        let services = Arc::new(services);
        let mut runners = Vec::with_capacity(config.plugins.len());
        for (index, plugin) in config.plugins.iter().enumerate() {
            runners.push(Arc::new(
                Runner::prepare(&services, &file, index, plugin).await?,
            ));
        }
        let mut manager = Manager {
            file,
            services,
            registry: Arc::new(registry),
            runners,
            tasks: Vec::new(),
            leadership,
            stop: CancellationToken::new(),
            lost: CancellationToken::new(),
            reloading: tokio::sync::Mutex::new(()),
        };
        for runner in &manager.runners {
            manager.tasks.push(manager.supervise(runner.clone()));
        }
        info!(
            config = %manager.file.display(),
            plugins = manager.runners.len(),
            "host started"
        );
        Ok(manager)
    }

    fn supervise(&self, runner: Arc<Runner>) -> JoinHandle<()> {
        tokio::spawn(supervise(
            runner,
            Supervision {
                services: self.services.clone(),
                leadership: self.leadership.clone(),
                stop: self.stop.clone(),
                lost: self.lost.clone(),
            },
        ))
    }

    /// The registry of every metric of this host, for /metrics.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// The host's informers, e.g. to watch what the plugins watch (diagnostics, tests): a
    /// subscription with an equal spec shares the running informer.
    pub fn informers(&self) -> &Informers {
        &self.services.informers
    }

    /// Where this host's guests run.
    pub fn guest_executor(&self) -> &GuestExecutor {
        &self.services.executor
    }

    /// The config file this manager runs.
    pub fn config_path(&self) -> &std::path::Path {
        &self.file
    }

    /// Plugin names, in config order.
    pub fn plugins(&self) -> Vec<String> {
        self.runners.iter().map(|r| r.name.clone()).collect()
    }

    /// Every plugin's numbers now.
    pub fn stats(&self) -> Stats {
        let counts = stats::Counts::read(&self.registry);
        Stats {
            plugins: self.runners.iter().map(|r| r.stats(&counts)).collect(),
        }
    }

    /// Resolves when this replica lost leadership while reconciling, once every plugin's
    /// workers are stopped. Never resolves without leader election.
    pub async fn leadership_lost(&self) {
        self.lost.cancelled().await;
        // Every plugin sees the loss on its own; resolve once none of them runs workers.
        for runner in &self.runners {
            let mut phase = runner.phase.subscribe();
            let _ = phase.wait_for(|p| *p != PluginPhase::Running).await;
        }
    }

    /// Stops intake, lets held keys finish within `grace`, stops the watches.
    pub async fn shutdown(mut self, grace: Duration) -> ManagerShutdown {
        self.stop.cancel();
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        let drains = self.runners.iter().map(|runner| async move {
            let report = match runner.pool() {
                Some(pool) => pool.shutdown(grace).await,
                None => {
                    // Never started (syncing, standby, failed): nothing is held.
                    let left = runner.queue.shutdown(Duration::ZERO).await;
                    ShutdownReport {
                        plugin: runner.name.clone(),
                        cancelled: left.in_flight,
                        pending: left.pending,
                        finished_in_grace: left.finished_in_grace,
                        refused_adds: left.refused_adds,
                    }
                }
            };
            runner.set_phase(PluginPhase::Stopped, false, "stopped");
            report
        });
        let plugins = futures::future::join_all(drains).await;
        // Dropping the runners drops their subscriptions: the informers stop.
        self.runners.clear();
        info!(config = %self.file.display(), "host stopped");
        ManagerShutdown { plugins }
    }
}

/// The executor of [`ManagerOptions::executor`] when given, else the one `host.guests` of the
/// config describes (a shared runtime starts here). Logged once: where guests run decides how
/// they compete with the host and with other processes for the CPU.
/// Fails only when the shared runtime cannot start.
fn guest_executor(
    explicit: Option<GuestExecutor>,
    config: &Config,
) -> std::io::Result<GuestExecutor> {
    let (executor, from) = match explicit {
        Some(executor) => (executor, "manager options"),
        None => (config.host.guests.start()?, "host.guests"),
    };
    info!(
        executor = executor.name(),
        threads = executor.threads(),
        nice = executor.nice().map(Nice::get),
        from,
        "guest placement"
    );
    Ok(executor)
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.stop.cancel();
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::config;

    /// A valid config whose `host` section is `host`.
    fn config_with(host: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.wasm"), b"not read here").unwrap();
        let text = format!(
            "{host}plugins:\n  - name: a\n    component: a.wasm\n    watch: {{apiVersion: v1, \
             kind: ConfigMap}}\n"
        );
        config::parse(dir.path().join("trellis.yaml"), &text).unwrap()
    }

    #[tokio::test]
    async fn without_an_explicit_executor_the_configs_guests_section_decides() {
        let shared = config_with("host: {guests: {executor: shared, threads: 1, nice: 7}}\n");
        let executor = guest_executor(None, &shared).unwrap();
        assert_eq!(executor.name(), "shared");
        assert_eq!(executor.threads(), Some(1));
        assert_eq!(executor.nice(), Nice::new(7).ok());

        let per_plugin = config_with("host: {guests: {threads: 3, nice: 0}}\n");
        let executor = guest_executor(None, &per_plugin).unwrap();
        assert!(
            matches!(executor, GuestExecutor::PerPlugin { threads: 3, nice } if nice == Nice::HOST),
            "{executor:?}"
        );

        let defaults = guest_executor(None, &config_with("")).unwrap();
        let GuestExecutor::PerPlugin { threads, nice } = GuestExecutor::default() else {
            unreachable!("the default is per plugin")
        };
        assert_eq!(defaults.threads(), Some(threads));
        assert_eq!(defaults.nice(), Some(nice));
    }

    #[tokio::test]
    async fn an_explicit_executor_wins_over_the_config() {
        let shared = config_with("host: {guests: {executor: shared, threads: 1, nice: 7}}\n");
        let executor = guest_executor(Some(GuestExecutor::Host), &shared).unwrap();
        assert_eq!(executor.name(), "host");
        assert_eq!(executor.nice(), None);
    }
}
