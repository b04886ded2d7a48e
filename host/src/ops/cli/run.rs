//! `trellis run`: the host against a real cluster, as an operator deploys it.
//!
//! Order of a run, each step's failure ending it with that step's error:
//! 1. load the config (every mistake reported at once; exit 2);
//! 2. connect like kubectl (`--kubeconfig`/`--context`, the config's `host.kubeconfig`/
//!    `context`, else `$KUBECONFIG`, in-cluster, `~/.kube/config`), every request carrying
//!    the User-Agent `trellis/<version> (<identity>)` so the API server's audit log (and
//!    devcluster's write log) tells the replicas apart;
//! 3. signals: the first SIGTERM/SIGINT starts a graceful stop, a second exits at once;
//! 4. leader election when configured (`host.leaderElection`);
//! 5. the manager (every plugin prepared before any reconciles; exit 2 for config faults);
//! 6. /metrics, /healthz, /readyz, /debug/pprof on `host.metricsAddress`;
//! 7. reload a plugin whose config entry or component file changes (`manager::FileWatch`);
//! 8. run until a signal (or lost leadership), then: stop intake, finish held keys within
//!    `shutdownTimeoutSeconds`, release the lease, stop the server, exit 0 (1 when leadership
//!    was lost: the orchestrator restarts the replica, which comes back as a warm standby).

use std::path::{Path, PathBuf};

use http::HeaderValue;
use http::header::USER_AGENT;
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
        &replica_identity(&config),
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
    let identity = process_identity();
    let health = Health::default();
    let mut options = ManagerOptions::new(identity.clone());
    let elector = match &config.host.leader_election {
        Some(election) => {
            let metrics = LeaderMetrics::register(&mut options.registry);
            let mut settings = LeaderConfig::new(
                election.lease_name.clone(),
                election.lease_namespace_or(std::env::var("POD_NAMESPACE").ok().as_deref()),
                replica_identity(config),
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

/// The name of this process in Events (`reportingInstance`): `$POD_NAME`, else the host
/// name, else `trellis`.
fn process_identity() -> String {
    leader::default_identity().unwrap_or_else(|| "trellis".to_string())
}

/// The identity this replica holds the lease under (`leaderElection.identity`, else
/// [`process_identity`]); also what its User-Agent names.
fn replica_identity(config: &Config) -> String {
    config
        .host
        .leader_election
        .as_ref()
        .and_then(|election| election.identity.clone())
        .unwrap_or_else(process_identity)
}

/// `trellis/<version> (<identity>)`: kubectl's shape (`product/version (details)`), so the
/// API server derives the default field manager `trellis` from it and audit logs, API
/// priority and fairness, and devcluster's write log can tell one replica from another.
/// Characters a header cannot carry are replaced by `_`.
pub fn user_agent(identity: &str) -> HeaderValue {
    let identity: String = identity
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let text = format!(
        "trellis/{} ({})",
        env!("CARGO_PKG_VERSION"),
        identity.trim()
    );
    // Only visible ASCII and spaces are left, which a header value always accepts.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("trellis"))
}

/// Makes every request of clients built from `config` carry [`user_agent`]`(identity)`.
pub fn identify(config: &mut kube::Config, identity: &str) {
    config.headers.retain(|(name, _)| name != USER_AGENT);
    config.headers.push((USER_AGENT, user_agent(identity)));
}

/// A kube client found like kubectl finds one; the command line wins over the config file.
/// Its requests carry [`user_agent`]`(identity)`.
pub async fn connect(
    host: &HostSettings,
    kubeconfig: Option<&Path>,
    context: Option<&str>,
    identity: &str,
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
    // A kubeconfig or context the user named that cannot be used is their mistake (exit 2),
    // like a config mistake; only finding nothing to connect with on our own is a runtime
    // error.
    let mut config = match kubeconfig {
        Some(path) => {
            let named = |e: &dyn std::fmt::Display| {
                CliError::Invalid(format!("the kubeconfig {}: {e}", path.display()))
            };
            let file = Kubeconfig::read_from(path).map_err(|e| named(&e))?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| named(&e))?
        }
        None if options.context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| CliError::Invalid(format!("the kubeconfig context: {e}")))?,
        None => kube::Config::infer().await.map_err(|e| failed(&e))?,
    };
    identify(&mut config, identity);
    kube::Client::try_from(config)
        .map_err(|e| CliError::Cluster(format!("cannot build the kube client: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_agent_names_the_version_and_the_replica() {
        let agent = user_agent("trellis-7d9f-abcde");
        assert_eq!(
            agent.to_str().unwrap(),
            format!("trellis/{} (trellis-7d9f-abcde)", env!("CARGO_PKG_VERSION"))
        );
        // What the API server derives the default field manager from: the product.
        assert!(agent.to_str().unwrap().starts_with("trellis/"));
    }

    #[test]
    fn characters_a_header_cannot_carry_are_replaced() {
        let agent = user_agent("pod\nX\u{e9}\u{0}");
        assert_eq!(
            agent.to_str().unwrap(),
            format!("trellis/{} (pod_X__)", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn identify_replaces_any_user_agent_and_keeps_other_headers() {
        let mut config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        config
            .headers
            .push((USER_AGENT, HeaderValue::from_static("other/1")));
        let custom = http::HeaderName::from_static("x-custom");
        config
            .headers
            .push((custom.clone(), HeaderValue::from_static("kept")));
        identify(&mut config, "a");
        identify(&mut config, "b");
        let agents: Vec<_> = config
            .headers
            .iter()
            .filter(|(name, _)| name == USER_AGENT)
            .map(|(_, value)| value.to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            agents,
            vec![format!("trellis/{} (b)", env!("CARGO_PKG_VERSION"))]
        );
        assert!(config.headers.iter().any(|(name, _)| *name == custom));
    }
}
