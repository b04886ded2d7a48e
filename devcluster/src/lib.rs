//! An embedded, in-memory Kubernetes API server for development and tests.
//!
//! The devcluster speaks the real Kubernetes HTTP API on loopback, so the unmodified kube
//! client and kubectl work against it: discovery, get/list (pagination, resourceVersion
//! semantics), watch (history window, 410 Gone, bookmarks, streaming lists), label and field
//! selectors, create/update/patch/server-side apply/delete with managedFields, the status
//! subresource, generation, finalizers, namespaces and CRDs. On top it offers what tests need
//! and a real server does not: fault injection, per-request accounting, a write log, and bulk
//! seeding. It is dev-only: plain HTTP, no authentication, no authorization.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use trellis_devcluster::{DevCluster, DevClusterOptions};
//! let cluster = DevCluster::start(DevClusterOptions::default()).await?;
//! let client = cluster.client()?; // a kube::Client
//! println!("export KUBECONFIG={}", cluster.kubeconfig_path().display());
//! # Ok(()) }
//! ```
//!
//! What differs from a real API server is listed in docs/devcluster.md.

mod accounting;
mod admin;
mod apply;
mod builtin;
mod cluster;
mod conversion;
mod crd;
mod defaults;
mod discovery;
mod faults;
mod fields;
mod fixtures;
mod http;
mod kubeconfig;
mod listtype;
mod managed;
mod names;
mod object;
mod openapi;
mod patch;
mod protobuf;
mod query;
mod read;
mod registry;
mod render;
mod scale;
mod schema;
mod seed;
mod services;
mod status;
mod store;
mod table;
mod watch;
mod write;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use accounting::{Served, Snapshot, WriteRecord};
pub use discovery::KUBERNETES_VERSION;
pub use faults::{FaultAction, FaultRule};
pub use fixtures::{FixtureError, FixtureObject, is_fixture_file, read_fixtures};
pub use status::ApiError;

use cluster::Cluster;

/// How to start a devcluster.
#[derive(Debug, Clone)]
pub struct DevClusterOptions {
    /// Port on 127.0.0.1; `None` picks a free one.
    pub port: Option<u16>,
    /// Where to write the kubeconfig; `None` writes it in a temporary directory removed when
    /// the devcluster stops.
    pub kubeconfig: Option<PathBuf>,
    /// Watch history kept per resource, in events: watches from older resourceVersions (and
    /// continue tokens from older snapshots) get 410.
    pub history: usize,
    /// How often an idle watch that allows bookmarks gets one.
    pub bookmark_interval: Duration,
    /// Namespaces created at start (a real cluster has these four).
    pub namespaces: Vec<String>,
    /// Fixture files or folders loaded at start, in order.
    pub fixtures: Vec<PathBuf>,
}

impl Default for DevClusterOptions {
    fn default() -> Self {
        Self {
            port: None,
            kubeconfig: None,
            history: 10_000,
            bookmark_interval: Duration::from_secs(5),
            namespaces: ["default", "kube-system", "kube-public", "kube-node-lease"]
                .map(str::to_string)
                .to_vec(),
            fixtures: Vec::new(),
        }
    }
}

/// Why a devcluster could not start or do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot write the kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Fixture(#[from] FixtureError),
    #[error("cannot build a kube client: {0}")]
    Client(#[from] kube::Error),
    #[error("invalid fault rule: {0}")]
    Fault(String),
    #[error("{0}")]
    Api(#[from] ApiError),
}

/// A running devcluster. Stops (ending every watch and connection) when dropped.
pub struct DevCluster {
    cluster: Arc<Cluster>,
    url: String,
    kubeconfig: PathBuf,
    _tempdir: Option<tempfile::TempDir>,
    shutdown: CancellationToken,
    server: Option<JoinHandle<()>>,
}

impl DevCluster {
    /// Starts a devcluster on the current tokio runtime.
    pub async fn start(options: DevClusterOptions) -> Result<Self, Error> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, options.port.unwrap_or(0)));
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| Error::Bind { address, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| Error::Bind { address, source })?;
        let url = format!("http://{bound}");

        let (kubeconfig, tempdir) = match options.kubeconfig {
            Some(path) => (path, None),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("devcluster-")
                    .tempdir()
                    .map_err(|source| Error::Kubeconfig {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                (dir.path().join("kubeconfig"), Some(dir))
            }
        };
        kubeconfig::write(&kubeconfig, &url).map_err(|source| Error::Kubeconfig {
            path: kubeconfig.clone(),
            source,
        })?;

        let cluster = Arc::new(Cluster::new(options.history));
        for namespace in &options.namespaces {
            cluster.ensure_namespace(namespace)?;
        }
        for fixture in &options.fixtures {
            cluster.load_fixtures(fixture)?;
        }

        let server = Arc::new(http::Server {
            cluster: cluster.clone(),
            bookmark_interval: options.bookmark_interval,
            address: bound.to_string(),
        });
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        let app = http::router(server);
        let task = tokio::spawn(async move {
            use axum::serve::ListenerExt;
            // TCP_NODELAY, as Go's net package (and so the real API server) sets by default:
            // without it a small watch event written while the previous one is unacknowledged
            // waits for the client's delayed ACK (measured: +20 ms median, +40 ms p99 on every
            // event-to-reconcile latency, docs/benchmarks/e2e.md).
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { signal.cancelled().await })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "devcluster server failed");
            }
        });
        tracing::info!(%url, kubeconfig = %kubeconfig.display(), "devcluster started");
        Ok(Self {
            cluster,
            url,
            kubeconfig,
            _tempdir: tempdir,
            shutdown,
            server: Some(task),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kube client for this devcluster.
    pub fn client(&self) -> Result<kube::Client, Error> {
        let uri: axum::http::Uri = self.url.parse().map_err(|e: axum::http::uri::InvalidUri| {
            Error::Api(ApiError::internal(e.to_string()))
        })?;
        let mut config = kube::Config::new(uri);
        config.default_namespace = "default".to_string();
        Ok(kube::Client::try_from(config)?)
    }

    /// The latest resourceVersion issued.
    pub fn resource_version(&self) -> u64 {
        self.cluster.store.current_rv()
    }

    /// How many objects of `resource` (`pods`, `deployments.apps`) are stored.
    pub fn count(&self, resource: &str) -> usize {
        self.cluster.store.len(resource)
    }

    /// Requests, objects and bytes served so far (see `Snapshot`).
    pub fn accounting(&self) -> Snapshot {
        self.cluster.accounting.snapshot()
    }

    /// Every write request so far, in arrival order.
    pub fn writes(&self) -> Vec<WriteRecord> {
        self.cluster.accounting.writes()
    }

    /// Zeroes the counters and empties the write log.
    pub fn reset_accounting(&self) {
        self.cluster.accounting.reset();
    }

    /// Arms a fault rule.
    pub fn add_fault(&self, rule: FaultRule) -> Result<(), Error> {
        self.cluster.faults.add(rule).map_err(Error::Fault)
    }

    /// Disarms every fault rule.
    pub fn clear_faults(&self) {
        self.cluster.faults.clear();
    }

    /// Ends open watches on `resource` (`pods`, `deployments.apps`), or all of them.
    pub fn close_watches(&self, resource: Option<&str>) {
        self.cluster.store.close_watches(resource);
    }

    /// Drops the watch history of `resource` (or all): watches and continue tokens from any
    /// resourceVersion issued so far get 410 Gone.
    pub fn expire_history(&self, resource: Option<&str>) {
        self.cluster.store.expire_history(resource);
    }

    /// Stores `count` realistic Pods (about 5 KB each) in `namespace`; returns the
    /// resourceVersion after the last.
    pub fn seed_pods(&self, namespace: &str, count: usize) -> Result<u64, Error> {
        Ok(self.cluster.seed_pods(namespace, count)?)
    }

    /// Loads fixture YAML from a file or folder.
    pub fn load_fixtures(&self, path: &Path) -> Result<usize, Error> {
        Ok(self.cluster.load_fixtures(path)?)
    }

    /// Applies fixture objects already read with [`read_fixtures`].
    pub fn apply_fixtures(&self, objects: Vec<FixtureObject>) -> Result<usize, Error> {
        Ok(self.cluster.apply_fixtures(objects)?)
    }

    /// Stops serving and waits for the server task to end.
    pub async fn stop(mut self) {
        self.signal_stop();
        if let Some(task) = self.server.take() {
            let _ = task.await;
        }
    }

    fn signal_stop(&self) {
        self.shutdown.cancel();
        // Watches would hold their connections open past a graceful shutdown.
        self.cluster.store.close_watches(None);
        self.cluster.store.shut_down();
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        self.signal_stop();
        if let Some(task) = self.server.take() {
            // Connections the server spawned end with their watches; the accept loop ends
            // with the shutdown signal. Aborting makes sure nothing outlives the handle.
            task.abort();
        }
    }
}
