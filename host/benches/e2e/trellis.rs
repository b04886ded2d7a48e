//! The Trellis side: the real host, `trellis_host::manager::Manager` (what `trellis run`
//! starts), running the status-bench component from `trellis-plugin-bundle` with a config file
//! loaded by `ops::config::load` exactly as `trellis run` loads one. Reconcile counts are the
//! manager's stats, read from the controller-runtime counters /metrics shows.

use std::path::{Path, PathBuf};
use std::time::Duration;

use trellis_devcluster::DevCluster;
use trellis_host::manager::{Manager, ManagerOptions, PluginPhase};
use trellis_host::ops::config::Config;

use crate::workload::OWNER_LABEL;

/// The plugin's name in the config (its field manager is `trellis-status-bench`).
pub const PLUGIN: &str = "status-bench";

/// A running Trellis host (one plugin).
pub struct Trellis {
    manager: Manager,
}

/// What the benchmark varies in the host's config file.
#[derive(Debug, Clone)]
pub struct HostSetup {
    pub namespace: &'static str,
    pub workers: u16,
    /// `host.guests.nice`; `None`: the host's default (10).
    pub guest_nice: Option<u8>,
    /// `host.guests.threads`; `None`: the host's default (half the cores).
    pub guest_threads: Option<u16>,
    /// `host.engine.cacheDir`, as deploy/ sets it (`/var/cache/trellis`); `None`: every start
    /// compiles the component.
    pub artifact_cache: Option<PathBuf>,
    /// The primary watch's `predicates: [generation, annotations]`: status-only updates (the
    /// echo of the plugin's own writes) do not enqueue.
    pub predicates: bool,
}

impl HostSetup {
    fn config(&self) -> String {
        let component = trellis_plugin_bundle::STATUS_BENCH.path;
        let Self {
            namespace, workers, ..
        } = self;
        let guests: Vec<String> = [
            self.guest_nice.map(|nice| format!("nice: {nice}")),
            self.guest_threads
                .map(|threads| format!("threads: {threads}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        let guests = if guests.is_empty() {
            String::new()
        } else {
            format!("  guests: {{{}}}\n", guests.join(", "))
        };
        let predicates = if self.predicates {
            "\n      predicates: [generation, annotations]"
        } else {
            ""
        };
        let engine = self
            .artifact_cache
            .as_ref()
            .map(|dir| format!("  engine: {{cacheDir: {}}}\n", dir.display()))
            .unwrap_or_default();
        format!(
            r#"host:
  metricsAddress: ""
{guests}{engine}plugins:
  - name: {PLUGIN}
    component: {component}
    watch:
      apiVersion: apps/v1
      kind: Deployment
      namespaces: [{namespace}]{predicates}
    secondary:
      - apiVersion: v1
        kind: ConfigMap
        namespaces: [{namespace}]
        mapping: {{label: {OWNER_LABEL}}}
    workers: {workers}
    permissions:
      read:
        - {{apiVersion: apps/v1, kind: Deployment, namespaces: [{namespace}]}}
        - {{apiVersion: v1, kind: ConfigMap, namespaces: [{namespace}]}}
      write:
        - {{apiVersion: apps/v1, kind: Deployment, namespaces: [{namespace}], verbs: [patchStatus]}}
      events: false
"#
        )
    }

    /// Writes the config file into `dir` and loads it exactly as `trellis run` does.
    fn load(&self, dir: &Path) -> Result<(PathBuf, Config), String> {
        let path = dir.join("trellis-e2e.yaml");
        std::fs::write(&path, self.config())
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        let config = trellis_host::ops::config::load(&path).map_err(|e| e.to_string())?;
        Ok((path, config))
    }

    /// Fills the artifact cache as `trellis check` does (deploy/'s pods keep it in an
    /// emptyDir, so a restarted host finds it), and says how long the compile took: the part
    /// of a first-ever start the cold rounds then leave out.
    pub fn warm_artifact_cache(&self, dir: &Path) -> Result<Duration, String> {
        let (path, config) = self.load(dir)?;
        let began = std::time::Instant::now();
        let report = trellis_host::ops::check::check_config(&path, &config);
        if !report.is_ok() {
            return Err(format!("trellis check failed: {:?}", report.errors));
        }
        Ok(began.elapsed())
    }
}

impl Trellis {
    /// Loads the config and starts the host on the current runtime; returns once the plugin's
    /// caches are synced and its workers run.
    pub async fn start(
        cluster: &DevCluster,
        setup: &HostSetup,
        dir: &Path,
    ) -> Result<Self, String> {
        let (_, config) = setup.load(dir)?;
        let client = cluster.client().map_err(|e| e.to_string())?;
        let began = tokio::time::Instant::now();
        let manager = Manager::start(&config, client, ManagerOptions::new("e2e-bench"))
            .await
            .map_err(|e| e.to_string())?;
        let deadline = began + config.host.cache_sync_timeout * 2;
        loop {
            let phase = manager.stats().plugin(PLUGIN).map(|p| p.phase);
            match phase {
                Some(PluginPhase::Running) => break,
                Some(PluginPhase::Syncing) | Some(PluginPhase::Standby) => {}
                other => return Err(format!("the plugin did not start: {other:?}")),
            }
            if tokio::time::Instant::now() > deadline {
                return Err("the plugin's caches did not sync in time".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Where a cold start's time goes: until here both caches are listing (and the
        // component compiling or loading from the artifact cache); no worker runs before.
        eprintln!(
            "  trellis: component ready, both caches synced, workers started {:.2} s after the start",
            (tokio::time::Instant::now() - began).as_secs_f64()
        );
        Ok(Self { manager })
    }

    fn counts(&self) -> (u64, u64) {
        self.manager
            .stats()
            .plugin(PLUGIN)
            .map(|p| (p.reconciles, p.errors))
            .unwrap_or_default()
    }

    pub fn reconciles(&self) -> u64 {
        self.counts().0
    }

    pub fn errors(&self) -> u64 {
        self.counts().1
    }

    pub async fn stop(self) {
        let report = self.manager.shutdown(Duration::from_secs(30)).await;
        if !report.drained() {
            eprintln!("trellis: shutdown left work behind: {report:?}");
        }
    }
}
