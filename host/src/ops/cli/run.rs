//! `trellis run`: the host against a real cluster, as an operator deploys it.
//!
//! Order of a run, each step's failure ending it with that step's error:
//! 1. load the config (every mistake reported at once; exit 2);
//! 2. connect like kubectl (`--kubeconfig`/`--context`, the config's `host.kubeconfig`/
//!    `context`, else `$KUBECONFIG`, in-cluster, `~/.kube/config`);
//! 3. signals: the first SIGTERM/SIGINT starts a graceful stop, a second exits at once;
//! 4. leader election when configured (`host.leaderElection`);
//! 5. the manager (every plugin prepared before any reconciles; exit 2 for config faults);
//! 6. /metrics, /healthz, /readyz, /debug/pprof on `host.metricsAddress`;
//! 7. reload a plugin whose config entry or component file changes (`manager::FileWatch`);
//! 8. run until a signal (or lost leadership), then: stop intake, finish held keys within
//!    `shutdownTimeoutSeconds`, release the lease, stop the server, exit 0 (1 when leadership
//!    was lost: the orchestrator restarts the replica, which comes back as a warm standby).

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::CliError;
use crate::manager::{FileWatch, Manager, ManagerOptions, POLL_EVERY};
use crate::ops::config::{self, Config, HostSettings};
use crate::ops::health::Health;
use crate::ops::http::OpsServer;
use crate::ops::leader::{self, LeaderConfig, LeaderElector, LeaderMetrics};
use crate::ops::signals;

/// `trellis run` with its arguments resolved.
pub struct RunOptions {
    pub config: PathBuf,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

pub async fn run(options: RunOptions) -> Result<(), CliError> {
    let config = config::load(&options.config)?;
    let client = connect(
        &config.host,
        options.kubeconfig.as_deref(),
        options.context.as_deref(),
    )
    .await?;
    let shutdown = CancellationToken::new();
    let _signals = signals::install(shutdown.clone()).map_err(CliError::Signals)?;
    serve(&config, client, shutdown).await
}

/// Steps 4 to 7, against `client`, until `shutdown` (shared with `trellis dev`'s tests).
pub async fn serve(
    config: &Config,
    client: kube::Client,
    shutdown: CancellationToken,
) -> Result<(), CliError> {
    let identity = leader::default_identity().unwrap_or_else(|| "trellis".to_string());
    let health = Health::default();
    let mut options = ManagerOptions::new(identity.clone());
    let elector = match &config.host.leader_election {
        Some(election) => {
            let metrics = LeaderMetrics::register(&mut options.registry);
            let mut settings = LeaderConfig::new(
                election.lease_name.clone(),
                election.lease_namespace_or(std::env::var("POD_NAMESPACE").ok().as_deref()),
                election
                    .identity
                    .clone()
                    .unwrap_or_else(|| identity.clone()),
            );
            settings.lease_duration = election.lease_duration;
            settings.renew_deadline = election.renew_deadline;
            settings.retry_period = election.retry_period;
            let (elector, leadership) = LeaderElector::start(client.clone(), settings, &metrics)
                .map_err(|e| CliError::Invalid(e.to_string()))?;
            options.leadership = Some(leadership);
            Some(elector)
        }
        None => None,
    };
    options.health = Some(health.clone());
    let manager = Manager::start(config, client, options).await?;
    let server = match config.host.metrics_address {
        Some(address) => {
            Some(OpsServer::start(address, manager.registry(), health, &shutdown).await?)
        }
        None => None,
    };

    let files = FileWatch::new(config.clone());
    let lost = tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = manager.leadership_lost() => true,
        () = files.run(&manager, POLL_EVERY) => false,
    };
    let report = manager.shutdown(config.host.shutdown_timeout).await;
    for plugin in &report.plugins {
        if !plugin.drained() {
            warn!(
                plugin = %plugin.plugin,
                cancelled = plugin.cancelled.len(),
                "keys still held at the shutdown deadline were cancelled; the next leader retries them"
            );
        }
    }
    if let Some(elector) = elector
        && let Err(error) = elector.release().await
    {
        warn!(%error, "could not release the lease; the next leader waits for it to expire");
    }
    if let Some(server) = server
        && let Err(error) = server.stop().await
    {
        warn!(%error, "the metrics server did not stop cleanly");
    }
    if lost {
        return Err(CliError::LeadershipLost);
    }
    info!("stopped");
    Ok(())
}

/// A kube client found like kubectl finds one; the command line wins over the config file.
pub async fn connect(
    host: &HostSettings,
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<kube::Client, CliError> {
    let kubeconfig = kubeconfig.or(host.kubeconfig.as_deref());
    let context = context.map(str::to_string).or_else(|| host.context.clone());
    let options = KubeConfigOptions {
        context,
        ..KubeConfigOptions::default()
    };
    let failed = |e: &dyn std::fmt::Display| {
        CliError::Cluster(format!("cannot configure the cluster connection: {e}"))
    };
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path).map_err(|e| {
                CliError::Cluster(format!(
                    "cannot read the kubeconfig {}: {e}",
                    path.display()
                ))
            })?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| failed(&e))?
        }
        None if options.context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| failed(&e))?,
        None => kube::Config::infer().await.map_err(|e| failed(&e))?,
    };
    kube::Client::try_from(config)
        .map_err(|e| CliError::Cluster(format!("cannot build the kube client: {e}")))
}
