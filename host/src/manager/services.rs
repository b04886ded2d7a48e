//! What every plugin of a host shares: one sandbox (engine, compiled components, epoch
//! ticker), one informer registry (watches shared between plugins with equal specs), one
//! discovery table, one client, and the metric families every plugin's series live in.

use kube::Client;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::hostcalls::{DEFAULT_REQUEST_TIMEOUT, HostCallMetrics, HostIo, Kinds};
use crate::informer::{InformerOptions, Informers};
use crate::ops::health::Health;
use crate::queue::QueueMetrics;
use crate::sandbox::Sandbox;
use crate::worker::{DedicatedRuntime, GuestExecutor, WorkerMetrics};

pub(crate) struct Services {
    pub sandbox: Sandbox,
    pub informers: Informers,
    pub client: Client,
    pub kinds: Kinds,
    pub host_call_metrics: HostCallMetrics,
    pub queue_metrics: QueueMetrics,
    pub worker_metrics: WorkerMetrics,
    pub executor: GuestExecutor,
    /// Where every plugin's host calls send their API requests.
    pub io: HostIo,
    /// Keeps `io`'s runtime running when it has one of its own.
    _io_runtime: Option<DedicatedRuntime>,
    /// The `reportingInstance` of Events.
    pub identity: String,
    pub health: Option<Health>,
    /// `trellis_plugin_reloads_total{plugin, result}`.
    pub reloads: Family<ReloadLabels, Counter>,
}

/// Labels of the reload counter: `result` is `ok` or `rejected`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ReloadLabels {
    pub plugin: String,
    pub result: &'static str,
}

impl Services {
    /// Registers every family into `registry` (once per host). Starts the host calls' I/O
    /// runtime (see [`host_io`]); fails only when it cannot start.
    pub fn new(
        sandbox: Sandbox,
        client: Client,
        registry: &mut Registry,
        informer_options: InformerOptions,
        executor: GuestExecutor,
        identity: String,
        health: Option<Health>,
    ) -> std::io::Result<Self> {
        let (io, io_runtime) = host_io(&executor)?;
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "trellis_plugin_reloads",
            "Hot reloads of a plugin, by result (rejected: the running version was kept)",
            reloads.clone(),
        );
        Ok(Self {
            reloads,
            informers: Informers::new(client.clone(), registry, informer_options),
            kinds: Kinds::new(client.clone(), DEFAULT_REQUEST_TIMEOUT, io.clone()),
            host_call_metrics: HostCallMetrics::register(registry),
            queue_metrics: QueueMetrics::register(registry),
            worker_metrics: WorkerMetrics::register(registry),
            sandbox,
            client,
            executor,
            io,
            _io_runtime: io_runtime,
            identity,
            health,
        })
    }
}

/// Where host calls send their API requests (`hostcalls/io.rs` says why not from the guests'
/// threads): with guests on runtimes of their own, a runtime of its own too, one thread named
/// `trellis-io` at the guests' nice value, so that requests yield to the event path as the
/// guests that made them do; with guests on the host runtime, the host runtime.
fn host_io(executor: &GuestExecutor) -> std::io::Result<(HostIo, Option<DedicatedRuntime>)> {
    match executor.nice() {
        None => Ok((HostIo::on(tokio::runtime::Handle::current()), None)),
        Some(nice) => {
            let runtime = DedicatedRuntime::named("trellis-io", 1, nice)?;
            Ok((HostIo::on(runtime.handle().clone()), Some(runtime)))
        }
    }
}
