//! The Trellis side: the real host parts running the status-bench component from
//! `trellis-plugin-bundle`, configured by a config file loaded with `ops::config::load`
//! exactly as `trellis run` loads one.
//!
//! Until the host's manager lands (issue 6), the parts are assembled here the way the manager
//! documents it: the sandbox compiles the component; the plugin's queue gets a `QueueSink`
//! that every watch of the plugin (the Deployments as primary, the ConfigMaps as secondary,
//! mapped by the `bench.trellis.dev/deployment` label) subscribes through; once every watch is
//! synced, `HostCalls` is built over those caches and the worker `Pool` starts on the default
//! guest executor. Reconcile counts come from the pool's controller-runtime counters in the
//! registry, as /metrics would show them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use trellis_devcluster::DevCluster;
use trellis_host::hostcalls::{
    DEFAULT_REQUEST_TIMEOUT, HostCallMetrics, HostCalls, HostCallsConfig, Kinds, ReadableCaches,
};
use trellis_host::informer::{InformerOptions, Informers, Subscription};
use trellis_host::queue::{QueueMetrics, WorkQueue};
use trellis_host::sandbox::Sandbox;
use trellis_host::worker::{
    GuestExecutor, Pool, PoolConfig, PoolSpec, QueueSink, Target, WorkerMetrics,
};

use crate::workload::OWNER_LABEL;

/// The plugin's name in the config (its field manager is `trellis-status-bench`).
pub const PLUGIN: &str = "status-bench";

/// A running Trellis host (one plugin).
pub struct Trellis {
    pool: Pool,
    registry: Registry,
    // Kept alive for as long as the pool runs: dropping them stops the informers.
    _subscriptions: Vec<Subscription>,
    _informers: Informers,
    _sandbox: Sandbox,
}

fn config(namespace: &str, workers: u16) -> String {
    let component = trellis_plugin_bundle::STATUS_BENCH.path;
    format!(
        r#"host:
  metricsAddress: ""
plugins:
  - name: {PLUGIN}
    component: {component}
    watch:
      apiVersion: apps/v1
      kind: Deployment
      namespaces: [{namespace}]
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

impl Trellis {
    /// Loads the config, compiles the component, subscribes and syncs the watches and starts
    /// the workers, on the current runtime.
    pub async fn start(
        cluster: &DevCluster,
        namespace: &str,
        workers: u16,
        dir: &Path,
    ) -> Result<Self, String> {
        let path = dir.join("trellis-e2e.yaml");
        std::fs::write(&path, config(namespace, workers))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        let config = trellis_host::ops::config::load(&path).map_err(|e| e.to_string())?;
        let plugin = config.plugins.first().ok_or("the config has no plugin")?;
        let client = cluster.client().map_err(|e| e.to_string())?;

        let mut registry = Registry::default();
        let informers = Informers::new(
            client.clone(),
            &mut registry,
            InformerOptions {
                sync_timeout: config.host.cache_sync_timeout,
                ..InformerOptions::default()
            },
        );
        let worker_metrics = WorkerMetrics::register(&mut registry);
        let queue_metrics = QueueMetrics::register(&mut registry);
        let host_metrics = HostCallMetrics::register(&mut registry);

        let sandbox = Sandbox::new(config.host.engine.clone()).map_err(|e| e.to_string())?;
        let component = sandbox
            .load_file(&plugin.name, &plugin.component, plugin.budgets.clone())
            .map_err(|e| e.to_string())?;
        let queue = WorkQueue::with_metrics(plugin.queue.clone(), &queue_metrics)
            .map_err(|e| e.to_string())?;
        let sink = Arc::new(QueueSink::new(queue.clone(), plugin.kind()));
        let mut subscriptions = Vec::new();
        for (watch, role) in plugin.subscriptions() {
            subscriptions.push(
                informers
                    .subscribe(&plugin.name, watch, role, sink.clone())
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        let mut caches = ReadableCaches::new();
        for subscription in &subscriptions {
            subscription
                .wait_synced()
                .await
                .map_err(|e| e.to_string())?;
            caches
                .add_subscription(subscription)
                .map_err(|e| e.to_string())?;
        }
        let mut calls = HostCallsConfig::new(&plugin.name, plugin.permissions.clone(), "e2e-bench");
        calls.field_manager = plugin.field_manager.clone();
        let host = HostCalls::new(
            calls,
            caches,
            client.clone(),
            Kinds::new(client, DEFAULT_REQUEST_TIMEOUT),
            &host_metrics,
        );
        let pool = Pool::start(
            PoolSpec {
                target: Target {
                    plugin: component,
                    host: Arc::new(host),
                },
                queue,
                primary: subscriptions[0].cache().clone(),
                config: PoolConfig {
                    workers: plugin.workers as usize,
                    degraded_after: plugin.degraded_after,
                },
            },
            &worker_metrics,
            &GuestExecutor::default(),
        )
        .map_err(|e| e.to_string())?;
        Ok(Self {
            pool,
            registry,
            _subscriptions: subscriptions,
            _informers: informers,
            _sandbox: sandbox,
        })
    }

    /// `controller_runtime_reconcile_total` of the plugin, summed over results, and the
    /// `error` result alone, as /metrics shows them.
    fn counts(&self) -> (u64, u64) {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            return (0, 0);
        }
        let (mut all, mut errors) = (0, 0);
        let controller = format!("controller=\"{PLUGIN}\"");
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("controller_runtime_reconcile_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.split_once("} ") else {
                continue;
            };
            if !labels.contains(&controller) {
                continue;
            }
            let value: u64 = value.trim().parse::<f64>().unwrap_or(0.0) as u64;
            all += value;
            if labels.contains("result=\"error\"") {
                errors += value;
            }
        }
        (all, errors)
    }

    pub fn reconciles(&self) -> Option<u64> {
        Some(self.counts().0)
    }

    pub fn errors(&self) -> Option<u64> {
        Some(self.counts().1)
    }

    pub async fn stop(self) {
        let report = self.pool.shutdown(Duration::from_secs(30)).await;
        if !report.drained() {
            eprintln!("trellis: shutdown left work behind: {report:?}");
        }
    }
}
