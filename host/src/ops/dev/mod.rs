//! `trellis dev`: the whole host on a laptop, with no cluster.
//!
//! It starts the embedded API server (trellis-devcluster) on 127.0.0.1, prepares the state
//! directory (kubeconfig, config, components, fixtures: see [`state`]), seeds the fixtures
//! (see [`fixtures`]), prints how to point kubectl at it, runs the plugins against it, and
//! shows a live progress line until Ctrl-C, then stops gracefully.
//!
//! States of a run, in order; a failure in any stops the run with the error of that step:
//! `preparing` (state directory) -> `starting` (devcluster listening) -> `seeding` ->
//! `running` (plugins, progress) -> `stopping` (Ctrl-C: plugins finish held keys, then the
//! devcluster stops).

mod fixtures;
mod progress;
mod state;
mod terminal;

use std::io::Write as _;
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;
use trellis_devcluster::{DevCluster, DevClusterOptions, KUBERNETES_VERSION};

pub use fixtures::{
    DEFAULT_FIXTURES, FixtureError, Seeded, seed as seed_fixtures,
    write_defaults as write_default_fixtures,
};
pub use progress::{Progress, ProgressMode, report};
pub use state::{DEV_CONFIG, StateError, StatePaths};
pub use terminal::Terminal;

use tracing::warn;

use crate::manager::{FileWatch, Manager, ManagerOptions, POLL_EVERY, StartError};
use crate::ops::config::{self, ConfigErrors};
use crate::ops::health::Health;
use crate::ops::http::OpsServer;
use crate::ops::signals;

/// What `trellis dev` was asked to do.
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// A config to run instead of the built-in one.
    pub config: Option<PathBuf>,
    /// Fixtures to seed instead of the built-in ones.
    pub fixtures: Option<PathBuf>,
    /// Port of the devcluster; `None` = a free one.
    pub port: Option<u16>,
    pub state_dir: PathBuf,
    pub progress: ProgressMode,
}

/// Why `trellis dev` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("cannot start the devcluster: {0}")]
    Cluster(#[from] trellis_devcluster::Error),
    #[error("cannot seed the fixtures: {0}")]
    Fixtures(#[from] FixtureError),
    #[error("{0}")]
    Start(#[from] StartError),
    #[error("cannot handle Ctrl-C: {0}")]
    Signal(#[source] std::io::Error),
}

impl DevError {
    /// Whether the user's input (a path, the config, a fixture file) is at fault: exit code 2.
    pub fn is_usage(&self) -> bool {
        match self {
            DevError::State(error) => error.is_usage(),
            DevError::Config(_) => true,
            DevError::Start(error) => error.is_config(),
            DevError::Fixtures(FixtureError::Status { .. }) => false,
            DevError::Fixtures(_) => true,
            DevError::Cluster(_) | DevError::Signal(_) => false,
        }
    }
}

/// Runs the dev loop until Ctrl-C.
pub async fn run(options: DevOptions, terminal: Terminal) -> Result<(), DevError> {
    // Everything that can be wrong with the user's input is checked before anything starts.
    let paths = state::prepare(
        &options.state_dir,
        options.config.as_deref(),
        options.fixtures.as_deref(),
    )?;
    let config = config::load(&paths.config)?;

    let cluster = DevCluster::start(DevClusterOptions {
        port: options.port,
        kubeconfig: Some(paths.kubeconfig.clone()),
        ..DevClusterOptions::default()
    })
    .await?;
    let client = cluster.client()?;
    let seeded = fixtures::seed(&cluster, &client, &paths.fixtures).await?;

    let shutdown = CancellationToken::new();
    let _signals = signals::install(shutdown.clone()).map_err(DevError::Signal)?;
    let health = Health::default();
    let mut manager_options = ManagerOptions::new("trellis-dev");
    manager_options.health = Some(health.clone());
    let manager = Manager::start(&config, client, manager_options).await?;
    // Metrics are a convenience here: a taken port is a warning, not a reason to stop.
    let server = match config.host.metrics_address {
        Some(address) => {
            match OpsServer::start(address, manager.registry(), health, &shutdown).await {
                Ok(server) => Some(server),
                Err(error) => {
                    warn!(%error, "not serving /metrics and /readyz");
                    None
                }
            }
        }
        None => None,
    };
    print_banner(
        &cluster,
        &paths,
        seeded,
        server.as_ref().map(OpsServer::local_addr),
    );

    // Until Ctrl-C: the progress line, and reloads when the config or a component changes.
    tokio::select! {
        () = report(terminal.clone(), options.progress, || manager.stats(), shutdown.clone()) => {}
        () = FileWatch::new(config.clone()).run(&manager, POLL_EVERY) => {}
    }
    terminal.write_lines(b"stopping: finishing held keys (Ctrl-C again exits at once)");
    let stats = manager.stats();
    let left = manager.shutdown(config.host.shutdown_timeout).await;
    if let Some(server) = server {
        let _ = server.stop().await;
    }
    cluster.stop().await;
    let mut summary = String::from("stopped:");
    for plugin in &stats.plugins {
        summary.push_str(&format!(
            " {} {} reconciles, {} errors;",
            plugin.name, plugin.reconciles, plugin.errors
        ));
    }
    if !left.drained() {
        summary.push_str(" some calls were cancelled at the deadline;");
    }
    terminal.write_lines(summary.trim_end_matches(';').as_bytes());
    Ok(())
}

/// What the user needs to start poking at the cluster, on stdout.
fn print_banner(
    cluster: &DevCluster,
    paths: &StatePaths,
    seeded: Seeded,
    metrics: Option<std::net::SocketAddr>,
) {
    let config = if paths.builtin_config {
        format!(
            "{} (built-in: namespace-defaults, deployment-summary)",
            paths.config.display()
        )
    } else {
        paths.config.display().to_string()
    };
    let fixtures = format!(
        "{}{} ({} objects, {} statuses)",
        paths.fixtures.display(),
        if paths.builtin_fixtures {
            " (built-in)"
        } else {
            ""
        },
        seeded.objects,
        seeded.statuses
    );
    let kubeconfig = paths.kubeconfig.display();
    let metrics = match metrics {
        Some(address) => format!("\n  metrics:   http://{address}/metrics (and /readyz)"),
        None => String::new(),
    };
    let text = format!(
        "trellis dev: devcluster (Kubernetes {KUBERNETES_VERSION}) listening on {url}
  state dir: {dir}
  config:    {config}
  fixtures:  {fixtures}{metrics}

Point kubectl at it (dev only: plain HTTP, no authentication):
  export KUBECONFIG={kubeconfig}
  kubectl get namespaces -L trellis.dev/defaults
  kubectl get networkpolicies,resourcequotas -A
  kubectl get deployments -A -o custom-columns='NAMESPACE:.metadata.namespace,NAME:.metadata.name,PODS:.metadata.annotations.trellis\\.dev/pod-summary'
  kubectl label namespace sandbox trellis.dev/defaults=enabled
  kubectl get events -A -o wide

Ctrl-C stops.
",
        url = cluster.url(),
        dir = paths.dir.display(),
    );
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
