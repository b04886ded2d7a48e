//! One plugin's bounded pool of workers: queue -> cache -> sandbox -> outcome.
//!
//! Each of the `workers` tasks loops: take a key (`queue.next().await`), read the primary
//! object from the primary cache (absent: `object: None`), call the guest in a fresh instance
//! through the current [`Target`], turn the report into a [`Verdict`], count it, feed the
//! degraded tracker, and finish the key's guard with the verdict's disposition. The guard is
//! finished on every path: explicitly after a normal call and after a panic in host code
//! (caught around the call, counted as `host_panic`, retried); by its destructor when the task
//! is cancelled (shutdown past its deadline, pool dropped). Metrics and health are recorded
//! *before* the key is finished, so whoever sees the key finished sees it counted.
//!
//! States of a pool: *running* (from [`Pool::start`]) -> *shutting down* ([`Pool::shutdown`]:
//! the queue is closed, held keys get the grace period) -> *stopped* (workers still holding a
//! key after the grace period are cancelled; the report says which keys). Dropping a pool in
//! any state cancels its tasks the same way.
//!
//! A watchdog task per pool turns a failure streak into "degraded" at the end of the window
//! even when no call happens then (see `health.rs`); it runs on the host runtime and sleeps
//! until the streak's deadline or the next streak start.

use std::any::Any;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use parking_lot::Mutex;
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{Instrument, field};

use super::config::{PoolConfig, PoolError};
use super::executor::{GuestExecutor, Placement};
use super::health::{PluginHealth, Tracker, Transition};
use super::metrics::{GuestUsage, PoolMetrics, WorkerMetrics};
use super::sink::QueueSink;
use super::slot::{Slot, Target};
use super::verdict::{Disposition, Verdict};
use crate::cache::{self, Cache};
use crate::queue::{self, Guard, WorkQueue};
use crate::sandbox::{self, Plugin, PluginHost, ReconcileRequest};

/// How long cancelled workers get to unwind after the grace period, before shutdown stops
/// waiting for them. A cancelled guest stops at its next epoch tick (milliseconds); only a
/// `PluginHost` blocking a thread inside a host call could take longer.
const CANCEL_WAIT: Duration = Duration::from_secs(1);

/// Everything a pool needs.
pub struct PoolSpec {
    /// The plugin and its host services.
    pub target: Target,
    /// The plugin's queue (built by the caller, with its metrics). Its plugin name must be the
    /// plugin's.
    pub queue: WorkQueue<queue::ObjectKey>,
    /// The cache of the primary watch.
    pub primary: Arc<Cache>,
    pub config: PoolConfig,
}

/// What shutting a pool down left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    pub plugin: String,
    /// Keys still held when the grace period ended; their calls were cancelled and the keys
    /// finished as failures (unordered).
    pub cancelled: Vec<queue::ObjectKey>,
    /// Keys with work that did not run (queued, waiting, or re-added while held) (unordered).
    pub pending: Vec<queue::ObjectKey>,
    /// Keys held at shutdown that finished within the grace period.
    pub finished_in_grace: usize,
    /// Adds refused after the queue closed.
    pub refused_adds: u64,
}

impl ShutdownReport {
    /// True when every held key finished within the grace period.
    pub fn drained(&self) -> bool {
        self.cancelled.is_empty()
    }
}

/// What the workers and the watchdog share.
struct Shared {
    plugin: Arc<str>,
    queue: WorkQueue<queue::ObjectKey>,
    primary: Arc<Cache>,
    /// The primary kind as the guest sees it, built once.
    kind: sandbox::Gvk,
    slot: Slot,
    metrics: PoolMetrics,
    health: Mutex<Tracker>,
    /// A failure streak started: the watchdog has a new deadline.
    streak_started: Notify,
}

/// One plugin's worker pool. Dropping it cancels its workers (their keys are retried).
pub struct Pool {
    shared: Arc<Shared>,
    sink: Arc<QueueSink>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    watchdog: JoinHandle<()>,
    /// Where the workers run; keeps a dedicated runtime alive as long as the pool.
    placement: Placement,
    executor: &'static str,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("plugin", &self.shared.plugin)
            .field("executor", &self.executor)
            .field("guest_threads", &self.placement.threads())
            .field("queue", &self.shared.queue)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Validates the config and starts the workers on `executor` (starting the pool's own
    /// runtime for [`GuestExecutor::PerPlugin`]) and the watchdog on the current runtime.
    /// Must be called inside a tokio runtime.
    pub fn start(
        spec: PoolSpec,
        metrics: &WorkerMetrics,
        executor: &GuestExecutor,
    ) -> Result<Pool, PoolError> {
        let plugin: Arc<str> = spec.target.plugin.name().into();
        spec.config.validate(&plugin)?;
        if *spec.queue.shared.plugin != *plugin {
            return Err(PoolError::ForeignQueue {
                plugin: plugin.to_string(),
                queue: spec.queue.shared.plugin.clone(),
            });
        }
        let host = Handle::try_current().map_err(|_| PoolError::NoRuntime {
            plugin: plugin.to_string(),
        })?;
        let metrics = metrics.pool(&plugin, spec.config.workers)?;
        let placement =
            executor
                .place(&plugin, spec.config.workers)
                .map_err(|e| PoolError::Runtime {
                    plugin: plugin.to_string(),
                    message: e.to_string(),
                })?;
        let primary_kind = spec.primary.kind();
        let shared = Arc::new(Shared {
            kind: sandbox::Gvk {
                group: primary_kind.group.to_string(),
                version: primary_kind.version.to_string(),
                kind: primary_kind.kind.to_string(),
            },
            plugin: plugin.clone(),
            queue: spec.queue.clone(),
            primary: spec.primary.clone(),
            slot: Slot::new(spec.target),
            metrics,
            health: Mutex::new(Tracker::new(spec.config.degraded_after)),
            streak_started: Notify::new(),
        });
        let workers = (0..spec.config.workers)
            .map(|_| placement.spawn(&host, work(shared.clone())))
            .collect();
        let watchdog = host.spawn(watch_health(shared.clone()));
        tracing::info!(
            plugin = %plugin,
            workers = spec.config.workers,
            executor = executor.name(),
            guest_threads = placement.threads(),
            "worker pool started"
        );
        Ok(Pool {
            sink: Arc::new(QueueSink::new(spec.queue, primary_kind)),
            shared,
            workers: Mutex::new(workers),
            watchdog,
            placement,
            executor: executor.name(),
        })
    }

    pub fn plugin(&self) -> &str {
        &self.shared.plugin
    }

    /// The plugin's queue.
    pub fn queue(&self) -> &WorkQueue<queue::ObjectKey> {
        &self.shared.queue
    }

    /// The sink to give the plugin's informer subscriptions (primary and secondary).
    pub fn sink(&self) -> Arc<QueueSink> {
        self.sink.clone()
    }

    /// The plugin the next call will use.
    pub fn current_plugin(&self) -> Plugin {
        self.shared.slot.current().plugin.clone()
    }

    /// Hot reload: calls in flight finish on the old plugin, the next call of every worker
    /// uses `plugin`. Host services are kept.
    pub fn replace_plugin(&self, plugin: Plugin) {
        let old = self.shared.slot.replace_plugin(plugin);
        tracing::info!(plugin = %self.shared.plugin, old = %old.plugin.path().display(),
            new = %self.current_plugin().path().display(), "plugin replaced");
    }

    /// Like [`replace_plugin`](Self::replace_plugin), also replacing the host services (a
    /// config reload that changed permissions).
    pub fn replace(&self, plugin: Plugin, host: Arc<dyn PluginHost>) {
        let old = self.shared.slot.replace(Target { plugin, host });
        tracing::info!(plugin = %self.shared.plugin, old = %old.plugin.path().display(),
            new = %self.current_plugin().path().display(), "plugin and host services replaced");
    }

    /// The plugin's health now, for `/readyz` detail.
    pub fn health(&self) -> PluginHealth {
        self.shared
            .health
            .lock()
            .snapshot(&self.shared.plugin, Instant::now())
    }

    /// Stops intake, lets held keys finish within `grace`, cancels the workers still holding a
    /// key after it, and reports what was left. Safe to call more than once.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        let left = self.shared.queue.shutdown(grace).await;
        self.watchdog.abort();
        let workers = std::mem::take(&mut *self.workers.lock());
        // Idle workers are on their way out (`next` returns `None` once closed); the busy
        // ones are exactly those holding the keys the queue reports in flight.
        for worker in &workers {
            worker.abort();
        }
        let stopped = tokio::time::timeout(CANCEL_WAIT, futures::future::join_all(workers)).await;
        if stopped.is_err() {
            tracing::error!(
                plugin = %self.shared.plugin,
                "workers did not stop within {CANCEL_WAIT:?} of being cancelled \
                 (a host call blocking its thread?)"
            );
        }
        let report = ShutdownReport {
            plugin: self.shared.plugin.to_string(),
            cancelled: left.in_flight,
            pending: left.pending,
            finished_in_grace: left.finished_in_grace,
            refused_adds: left.refused_adds,
        };
        if !report.drained() {
            tracing::warn!(
                plugin = %report.plugin,
                cancelled = %KeyList(&report.cancelled),
                "reconciles still running after the shutdown grace period were cancelled"
            );
        }
        report
    }
}

/// Keys as a log field: `kind/namespace/name, ...`, readable in text and JSON logs alike
/// (the Debug form of the keys spells out every struct field and `Arc`).
struct KeyList<'a>(&'a [queue::ObjectKey]);

impl fmt::Display for KeyList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, key) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{key}")?;
        }
        Ok(())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.watchdog.abort();
        for worker in self.workers.get_mut().iter() {
            worker.abort();
        }
    }
}

/// One worker: reconcile keys until the queue shuts down.
async fn work(shared: Arc<Shared>) {
    while let Some(guard) = shared.queue.next().await {
        let _busy = shared.metrics.busy();
        shared.reconcile(guard).await;
    }
}

/// `namespace/name` (or `name`) as kubectl prints keys.
struct KeyText<'a>(&'a queue::ObjectKey);

impl fmt::Display for KeyText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.0.name),
            None => f.write_str(&self.0.name),
        }
    }
}

fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic with a non-text payload".to_string()
    }
}

impl Shared {
    /// The request for `key`: the primary object as cached now, or none when it is gone.
    fn request(&self, key: &queue::ObjectKey) -> ReconcileRequest {
        let cache_key = cache::ObjectKey {
            namespace: key.namespace.clone(),
            name: key.name.clone(),
        };
        let object = self
            .primary
            .get(&cache_key)
            .map(|o| o.json().as_str().to_string());
        ReconcileRequest {
            kind: self.kind.clone(),
            key: sandbox::ObjectKey {
                namespace: key.namespace.as_deref().map(str::to_string),
                name: key.name.to_string(),
            },
            object,
        }
    }

    async fn reconcile(&self, guard: Guard<queue::ObjectKey>) {
        let started = Instant::now();
        let key = guard.key();
        let span = tracing::info_span!(
            "reconcile",
            plugin = %self.plugin,
            kind = %self.kind.kind,
            key = %KeyText(key),
            requeues = guard.requeues(),
            outcome = field::Empty,
            fuel = field::Empty,
            duration_ms = field::Empty,
        );
        let target = self.slot.current();
        let call = async {
            let request = self.request(key);
            target.plugin.reconcile(target.host.clone(), &request).await
        };
        let called = AssertUnwindSafe(call)
            .catch_unwind()
            .instrument(span.clone())
            .await;
        let (verdict, guest) = match called {
            Ok(report) => {
                let usage = GuestUsage {
                    fuel: report.fuel_used,
                    wall_time: report.wall_time,
                };
                span.record("fuel", report.fuel_used);
                (Verdict::of(&report.outcome), Some(usage))
            }
            Err(payload) => {
                let message = panic_text(payload.as_ref());
                tracing::error!(
                    parent: &span,
                    panic = %message,
                    "host code panicked during the reconcile; the key will be retried"
                );
                (Verdict::host_panic(&message), None)
            }
        };
        let elapsed = started.elapsed();
        span.record("outcome", verdict.class.label());
        span.record("duration_ms", elapsed.as_secs_f64() * 1000.0);
        self.metrics.reconciled(&verdict, elapsed, guest);
        self.observe_health(&verdict);
        drop(target);
        match verdict.disposition {
            Disposition::Forget => guard.done(),
            Disposition::RequeueAfter(delay) => guard.requeue_after(delay),
            Disposition::Retry => guard.retry(),
        }
    }

    fn observe_health(&self, verdict: &Verdict) {
        let mut health = self.health.lock();
        let transition = if verdict.healthy {
            health.success()
        } else {
            let had_deadline = health.deadline().is_some();
            let t = health.failure(Instant::now(), verdict.class.label(), &verdict.detail);
            if !had_deadline && health.deadline().is_some() {
                self.streak_started.notify_one();
            }
            t
        };
        // Under the lock, so two workers' transitions reach the gauge in the order they
        // happened.
        self.report(&health, transition);
    }

    fn report(&self, health: &Tracker, transition: Option<Transition>) {
        match transition {
            Some(Transition::Degraded) => {
                self.metrics.set_degraded(true);
                let detail = health.snapshot(&self.plugin, Instant::now());
                tracing::warn!(plugin = %self.plugin, health = %detail, "plugin degraded");
            }
            Some(Transition::Recovered) => {
                self.metrics.set_degraded(false);
                tracing::warn!(plugin = %self.plugin, "plugin recovered: a call succeeded");
            }
            None => {}
        }
    }
}

/// Turns a failure streak into "degraded" at the end of its window.
async fn watch_health(shared: Arc<Shared>) {
    loop {
        let started = shared.streak_started.notified();
        tokio::pin!(started);
        started.as_mut().enable();
        let deadline = shared.health.lock().deadline();
        match deadline {
            Some(deadline) => {
                tokio::select! {
                    () = &mut started => {}
                    () = tokio::time::sleep_until(deadline) => {}
                }
            }
            None => started.await,
        }
        let mut health = shared.health.lock();
        let transition = health.tick(Instant::now());
        shared.report(&health, transition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancelled_keys_are_logged_as_a_readable_list() {
        let keys = [
            queue::ObjectKey::namespaced("Job", "batch", "job-1"),
            queue::ObjectKey::cluster("Namespace", "team-a"),
        ];
        assert_eq!(
            KeyList(&keys).to_string(),
            "Job/batch/job-1, Namespace/team-a"
        );
        assert_eq!(KeyList(&[]).to_string(), "");
    }
}
