//! What every plugin of a host shares: one sandbox (engine, compiled components, epoch
//! ticker), one informer registry (watches shared between plugins with equal specs), one
//! discovery table, one client, and the metric families every plugin's series live in.

use kube::Client;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::hostcalls::{DEFAULT_REQUEST_TIMEOUT, HostCallMetrics, Kinds};
use crate::informer::{InformerOptions, Informers};
use crate::ops::health::Health;
use crate::queue::QueueMetrics;
use crate::sandbox::Sandbox;
use crate::worker::{GuestExecutor, WorkerMetrics};

pub(crate) struct Services {
    pub sandbox: Sandbox,
    pub informers: Informers,
    pub client: Client,
    pub kinds: Kinds,
    pub host_call_metrics: HostCallMetrics,
    pub queue_metrics: QueueMetrics,
    pub worker_metrics: WorkerMetrics,
    pub executor: GuestExecutor,
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
    /// Registers every family into `registry` (once per host).
    pub fn new(
        sandbox: Sandbox,
        client: Client,
        registry: &mut Registry,
        informer_options: InformerOptions,
        executor: GuestExecutor,
        identity: String,
        health: Option<Health>,
    ) -> Self {
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "trellis_plugin_reloads",
            "Hot reloads of a plugin, by result (rejected: the running version was kept)",
            reloads.clone(),
        );
        Self {
            reloads,
            informers: Informers::new(client.clone(), registry, informer_options),
            kinds: Kinds::new(client.clone(), DEFAULT_REQUEST_TIMEOUT),
            host_call_metrics: HostCallMetrics::register(registry),
            queue_metrics: QueueMetrics::register(registry),
            worker_metrics: WorkerMetrics::register(registry),
            sandbox,
            client,
            executor,
            identity,
            health,
        }
    }
}
