//! A host (the real `manager::Manager`) running a config against a test cluster, the way
//! `trellis dev` runs one.

use std::path::PathBuf;
use std::time::Duration;

use prometheus_client::registry::Registry;
use trellis_host::manager::{
    Manager, ManagerOptions, ManagerShutdown, PluginPhase, StartError, Stats,
};
use trellis_host::ops::config::{self, Config};
use trellis_host::ops::leader::{LeaderConfig, LeaderElector, LeaderMetrics};

use crate::cluster::Cluster;
use crate::metrics;
use crate::wait::{PATIENCE, until};

/// A running host and the directory holding its config and components.
pub struct Host {
    pub manager: Manager,
    pub config: Config,
    pub dir: tempfile::TempDir,
}

/// Lease timings for tests: short, so a takeover after a crash takes seconds; valid by
/// client-go's rules (renew deadline below the lease, above 1.2 retry periods).
pub const LEASE_DURATION: Duration = Duration::from_secs(3);
pub const RENEW_DEADLINE: Duration = Duration::from_secs(2);
pub const RETRY_PERIOD: Duration = Duration::from_millis(300);

/// Leader election on Lease `default/trellis` for replica `identity`, with the test timings,
/// and manager options that follow it (leader metrics registered in their registry), as
/// `trellis run` sets them up.
pub fn elected(client: &kube::Client, identity: &str) -> (LeaderElector, ManagerOptions) {
    let mut registry = Registry::default();
    let metrics = LeaderMetrics::register(&mut registry);
    let mut config = LeaderConfig::new("trellis", "default", identity);
    config.lease_duration = LEASE_DURATION;
    config.renew_deadline = RENEW_DEADLINE;
    config.retry_period = RETRY_PERIOD;
    let (elector, leadership) =
        LeaderElector::start(client.clone(), config, &metrics).expect("leader config");
    let mut options = ManagerOptions::new(identity);
    options.registry = registry;
    options.leadership = Some(leadership);
    (elector, options)
}

/// Writes `yaml` as `trellis.yaml` next to every bundled component (`namespace-defaults.wasm`,
/// `deployment-summary.wasm`, `misbehave.wasm`) and loads it like `trellis run -c` does.
pub fn write_config(yaml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    for component in trellis_plugin_bundle::ALL {
        std::fs::write(
            dir.path().join(format!("{}.wasm", component.name)),
            component.wasm,
        )
        .expect("writing a component");
    }
    let path = dir.path().join("trellis.yaml");
    std::fs::write(&path, yaml).expect("writing the config");
    (dir, path)
}

/// Where most tests start: logging on, a devcluster seeded with `trellis dev`'s fixtures, and
/// a host running the dev config against it, every plugin running.
pub async fn dev_host() -> (Cluster, Host) {
    crate::init_logging();
    let cluster = Cluster::with_dev_fixtures().await;
    let host = Host::start(&cluster, trellis_host::ops::dev::DEV_CONFIG).await;
    (cluster, host)
}

impl Host {
    /// Starts `yaml` against `cluster` and waits until every plugin runs.
    pub async fn start(cluster: &Cluster, yaml: &str) -> Host {
        let host = Self::start_with(cluster, yaml, ManagerOptions::new("e2e")).await;
        host.running().await;
        host
    }

    /// Starts `yaml` with `options`; does not wait.
    pub async fn start_with(cluster: &Cluster, yaml: &str, options: ManagerOptions) -> Host {
        Self::try_start(cluster, yaml, options)
            .await
            .unwrap_or_else(|e| panic!("starting the host: {e}"))
    }

    /// Starts `yaml` with `options`, or says why the host did not start.
    pub async fn try_start(
        cluster: &Cluster,
        yaml: &str,
        options: ManagerOptions,
    ) -> Result<Host, StartError> {
        Self::try_start_on(cluster.client.clone(), yaml, options).await
    }

    /// Starts `yaml` with `options` against `client` (e.g. [`Cluster::client_as`]); does not
    /// wait.
    pub async fn start_on(client: kube::Client, yaml: &str, options: ManagerOptions) -> Host {
        Self::try_start_on(client, yaml, options)
            .await
            .unwrap_or_else(|e| panic!("starting the host: {e}"))
    }

    async fn try_start_on(
        client: kube::Client,
        yaml: &str,
        options: ManagerOptions,
    ) -> Result<Host, StartError> {
        let (dir, path) = write_config(yaml);
        let config = config::load(&path).unwrap_or_else(|e| panic!("config: {e}"));
        let manager = Manager::start(&config, client, options).await?;
        Ok(Host {
            manager,
            config,
            dir,
        })
    }

    /// Waits until every plugin's workers run.
    pub async fn running(&self) {
        until("every plugin running", PATIENCE, || async {
            let stats = self.manager.stats();
            stats
                .plugins
                .iter()
                .all(|p| p.phase == PluginPhase::Running)
                .then_some(())
        })
        .await
    }

    pub fn stats(&self) -> Stats {
        self.manager.stats()
    }

    /// The host's metrics in the text exposition format.
    pub fn metrics(&self) -> String {
        metrics::encode(&self.manager.registry())
    }

    /// Waits until `plugin` has finished at least `reconciles` reconciles and holds no key.
    pub async fn settled(&self, plugin: &str, reconciles: u64) {
        until(
            &format!("{plugin}: {reconciles} reconciles and an idle queue"),
            PATIENCE,
            || async {
                let stats = self.manager.stats();
                let p = stats.plugin(plugin)?;
                (p.reconciles >= reconciles && p.queued == 0 && p.in_flight == 0).then_some(())
            },
        )
        .await
    }

    pub async fn shutdown(self) -> ManagerShutdown {
        self.manager.shutdown(Duration::from_secs(10)).await
    }
}
