//! What the worker tests share: the real sandbox with the real misbehave component (compiled
//! once per test binary), a real informer `Cache` of ConfigMaps filled through the cache API,
//! a small `PluginHost` that reads that cache (with two hooks: a gated get and a panicking
//! get), and a reader for the Prometheus text encoding.
//!
//! The cache is filled directly rather than through an informer and the devcluster: what is
//! under test is the pool (queue -> cache -> sandbox -> outcome); the informer's own tests
//! cover the watch side, and `QueueSink` is the only seam between them.

#![allow(dead_code)] // not every test uses every helper

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use prometheus_client::registry::Registry;
use serde_json::Value;
use tokio::sync::{Notify, Semaphore};
use trellis_host::cache::{self, Cache};
use trellis_host::queue::{self, QueueConfig, QueueMetrics, WorkQueue};
use trellis_host::sandbox::{self, Budgets, HostError, Plugin, async_trait};
use trellis_host::worker::{GuestExecutor, Pool, PoolConfig, PoolSpec, Target, WorkerMetrics};

#[path = "../support/components.rs"]
mod components;
#[path = "../support/configmap_cache.rs"]
mod configmap_cache;
#[path = "../support/read_only_host.rs"]
mod read_only_host;
pub use components::{SANDBOX, load_as, load_on};
pub use configmap_cache::{cached_json, configmap_cache, put_configmap};
pub use read_only_host::{ReadOnly, Reads};

static MISBEHAVE: LazyLock<Plugin> =
    LazyLock::new(|| load_on(&SANDBOX, &trellis_plugin_bundle::MISBEHAVE));

/// The misbehave component, named `name` (the pool's plugin name), under budgets changed by
/// `f`. Another name compiles the component again (a pool's plugin name is its metrics label).
pub fn misbehave(name: &str, f: impl FnOnce(&mut Budgets)) -> Plugin {
    let mut budgets = Budgets::default();
    f(&mut budgets);
    let component = &trellis_plugin_bundle::MISBEHAVE;
    if name == component.name {
        return MISBEHAVE.with_budgets(budgets).expect("valid test budgets");
    }
    load_as(&SANDBOX, name, component, budgets)
}

/// A loop that only the deadline stops, and a deadline no test waits for.
pub fn endless(b: &mut Budgets) {
    b.fuel = u64::MAX / 2;
    b.deadline_ms = 600_000;
}

/// The queue key of ConfigMap `t/<name>`.
pub fn key(name: &str) -> queue::ObjectKey {
    queue::ObjectKey::namespaced("ConfigMap", "t", name)
}

/// Stores ConfigMap `t/<name>` with `data` (a misbehave mode and its parameters).
pub fn put(cache: &Cache, name: &str, data: Value) {
    put_configmap(cache, "t", name, data);
}

pub fn remove(cache: &Cache, name: &str) {
    cache.remove(&cache::ObjectKey::namespaced("t", name));
}

/// The reads of a `PluginHost` over the test's cache (the host is `ReadOnly<CacheHost>`). `get`
/// of the object named [`GATE`] waits until the test opens the gate (counting arrivals); `get`
/// of [`BOOM`] panics.
pub struct CacheHost {
    cache: Arc<Cache>,
    gate: Semaphore,
    pub gate_arrivals: AtomicU64,
    arrived: Notify,
}

pub const GATE: &str = "gate";
pub const BOOM: &str = "boom";

impl CacheHost {
    pub fn new(cache: Arc<Cache>) -> Arc<ReadOnly<Self>> {
        Arc::new(ReadOnly(Self {
            cache,
            gate: Semaphore::new(0),
            gate_arrivals: AtomicU64::new(0),
            arrived: Notify::new(),
        }))
    }

    /// Lets `n` gated gets through.
    pub fn open_gate(&self, n: usize) {
        self.gate.add_permits(n);
    }

    /// Waits until `n` gets have arrived at the gate in total.
    pub async fn wait_at_gate(&self, n: u64) {
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if self.gate_arrivals.load(Ordering::SeqCst) >= n {
                return;
            }
            arrived.await;
        }
    }
}

/// Reads from the cache; writes and events are refused (no test plugin here writes).
#[async_trait]
impl Reads for CacheHost {
    const REFUSAL: &'static str = "the worker tests' host serves reads only";

    async fn get(
        &self,
        _kind: &sandbox::Gvk,
        key: &sandbox::ObjectKey,
    ) -> Result<Option<String>, HostError> {
        if key.name == BOOM {
            panic!("the test host panics on a get of {BOOM:?}");
        }
        if key.name == GATE {
            self.gate_arrivals.fetch_add(1, Ordering::SeqCst);
            self.arrived.notify_waiters();
            self.gate
                .acquire()
                .await
                .expect("the gate is never closed")
                .forget();
        }
        Ok(cached_json(&self.cache, key))
    }
}

/// One test's world: a registry with worker and queue metrics, a ConfigMap cache and a host.
pub struct World {
    pub registry: Registry,
    pub metrics: WorkerMetrics,
    pub queue_metrics: QueueMetrics,
    pub cache: Arc<Cache>,
    pub host: Arc<ReadOnly<CacheHost>>,
}

impl World {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let metrics = WorkerMetrics::register(&mut registry);
        let queue_metrics = QueueMetrics::register(&mut registry);
        let cache = Arc::new(configmap_cache());
        let host = CacheHost::new(cache.clone());
        Self {
            registry,
            metrics,
            queue_metrics,
            cache,
            host,
        }
    }

    /// Stores ConfigMap `t/<name>` with `data` and enqueues its key on `pool`, as an informer
    /// does on a change.
    pub fn submit(&self, pool: &Pool, name: &str, data: Value) {
        put(&self.cache, name, data);
        pool.queue().add(key(name));
    }

    /// A queue for `plugin` whose retries are quick and unthrottled, so tests see several.
    pub fn quick_queue(&self, plugin: &str) -> WorkQueue<queue::ObjectKey> {
        let mut config = QueueConfig::new(plugin);
        config.backoff.base = Duration::from_millis(1);
        config.backoff.cap = Duration::from_millis(20);
        config.retry_limit = None;
        WorkQueue::with_metrics(config, &self.queue_metrics).unwrap()
    }

    /// Starts a pool for `plugin` on `queue`.
    pub fn pool_on(
        &self,
        plugin: Plugin,
        queue: WorkQueue<queue::ObjectKey>,
        config: PoolConfig,
        executor: &GuestExecutor,
    ) -> Pool {
        let spec = PoolSpec {
            target: Target {
                plugin,
                host: self.host.clone(),
            },
            queue,
            primary: self.cache.clone(),
            config,
        };
        Pool::start(spec, &self.metrics, executor).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A pool of `workers` for `plugin` with a quick queue, on the default executor (a
    /// runtime of its own).
    pub fn pool(&self, plugin: Plugin, workers: usize) -> Pool {
        let queue = self.quick_queue(plugin.name());
        let config = PoolConfig {
            workers,
            ..PoolConfig::default()
        };
        self.pool_on(plugin, queue, config, &GuestExecutor::default())
    }

    pub fn scrape(&self) -> Scrape {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        Scrape(text)
    }

    /// `trellis_guest_outcomes_total{plugin, outcome}`.
    pub fn outcomes(&self, plugin: &str, outcome: &str) -> f64 {
        self.scrape().value(
            "trellis_guest_outcomes_total",
            &[("plugin", plugin), ("outcome", outcome)],
        )
    }
}

/// One scrape of the registry in the Prometheus text format.
pub struct Scrape(pub String);

impl Scrape {
    /// The samples of `metric`, each with its labels.
    pub fn samples(&self, metric: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        self.0
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (name, labels) = match series.split_once('{') {
                    Some((name, rest)) => (name, rest.strip_suffix('}')?),
                    None => (series, ""),
                };
                if name != metric {
                    return None;
                }
                let labels = labels
                    .split(',')
                    .filter(|pair| !pair.is_empty())
                    .filter_map(|pair| {
                        let (k, v) = pair.split_once('=')?;
                        Some((k.to_string(), v.trim_matches('"').to_string()))
                    })
                    .collect();
                Some((labels, value.parse().ok()?))
            })
            .collect()
    }

    /// The value of the one sample of `metric` whose labels include `labels`; panics naming
    /// the series when there is none or more than one.
    pub fn value(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<f64> = self
            .samples(metric)
            .into_iter()
            .filter(|(have, _)| {
                labels
                    .iter()
                    .all(|(k, v)| have.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, value)| value)
            .collect();
        match found.as_slice() {
            [value] => *value,
            _ => panic!(
                "expected one sample of {metric}{labels:?}, found {}:\n{}",
                found.len(),
                self.0
            ),
        }
    }
}

/// Polls `check` (every 5 ms of tokio time) until it holds. The bound is generous: it proves
/// "happens", not "happens fast", on a loaded 2-core machine.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    const BOUND: Duration = Duration::from_secs(120);
    let deadline = tokio::time::Instant::now() + BOUND;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {BOUND:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs `future` with a generous bound, failing with `what`.
pub async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), future)
        .await
        .unwrap_or_else(|_| panic!("not within 120 s: {what}"))
}
