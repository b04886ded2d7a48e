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

use crate::manager::Stats;

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
    #[error("cannot start the devcluster: {0}")]
    Cluster(#[from] trellis_devcluster::Error),
    #[error("cannot seed the fixtures: {0}")]
    Fixtures(#[from] FixtureError),
    #[error("cannot wait for Ctrl-C: {0}")]
    Signal(#[source] std::io::Error),
}

impl DevError {
    /// Whether the user's input (a path, a fixture file) is at fault: exit code 2.
    pub fn is_usage(&self) -> bool {
        match self {
            DevError::State(error) => error.is_usage(),
            DevError::Fixtures(FixtureError::Status { .. }) => false,
            DevError::Fixtures(_) => true,
            DevError::Cluster(_) | DevError::Signal(_) => false,
        }
    }
}

/// Runs the dev loop until Ctrl-C.
pub async fn run(options: DevOptions, terminal: Terminal) -> Result<(), DevError> {
    let paths = state::prepare(
        &options.state_dir,
        options.config.as_deref(),
        options.fixtures.as_deref(),
    )?;
    let cluster = DevCluster::start(DevClusterOptions {
        port: options.port,
        kubeconfig: Some(paths.kubeconfig.clone()),
        ..DevClusterOptions::default()
    })
    .await?;
    let client = cluster.client()?;
    let seeded = fixtures::seed(&cluster, &client, &paths.fixtures).await?;
    print_banner(&cluster, &paths, seeded);

    let stop = CancellationToken::new();
    let reporter = tokio::spawn(report(
        terminal.clone(),
        options.progress,
        Stats::default,
        stop.clone(),
    ));
    let interrupted = tokio::signal::ctrl_c().await.map_err(DevError::Signal);
    stop.cancel();
    let _ = reporter.await;
    terminal.write_lines(b"stopping: Ctrl-C received");
    cluster.stop().await;
    interrupted
}

/// What the user needs to start poking at the cluster, on stdout.
fn print_banner(cluster: &DevCluster, paths: &StatePaths, seeded: Seeded) {
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
    let text = format!(
        "trellis dev: devcluster (Kubernetes {KUBERNETES_VERSION}) listening on {url}
  state dir: {dir}
  config:    {config}
  fixtures:  {fixtures}

Point kubectl at it (dev only: plain HTTP, no authentication):
  export KUBECONFIG={kubeconfig}
  kubectl get namespaces -L trellis.dev/defaults
  kubectl get networkpolicies,resourcequotas -A
  kubectl get deployments -A -o custom-columns='NAMESPACE:.metadata.namespace,NAME:.metadata.name,PODS:.metadata.annotations.trellis\\.dev/pod-summary'
  kubectl label namespace sandbox trellis.dev/defaults=enabled

Ctrl-C stops.
",
        url = cluster.url(),
        dir = paths.dir.display(),
    );
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
