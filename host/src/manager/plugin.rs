//! One plugin in a running host: the parts built for it, and the pool that runs it.
//!
//! Preparing a plugin ([`Runner::prepare`]) does everything that can fail because of the
//! config — build the queue, compile the component while subscribing every watch (discovery
//! resolves each kind), build the host calls over the subscriptions' caches — and starts nothing that
//! reconciles: the manager prepares every plugin before it starts any worker, so a mistake in
//! the last plugin stops the host before the first reconciles anything. Keys arrive in the
//! queue from the moment a watch is subscribed; they wait there until the pool starts.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::error::{PluginField, StartError};
use super::services::Services;
use super::stats::{PluginPhase, PluginStats};
use crate::hostcalls::{HostCalls, HostCallsConfig, ReadableCaches};
use crate::informer::Subscription;
use crate::ops::config::PluginConfig;
use crate::ops::health::Check;
use crate::queue::{ObjectKey, WorkQueue};
use crate::sandbox::{self, LoadError};
use crate::worker::{Pool, PoolConfig, PoolError, PoolSpec, QueueSink, Target};

/// What a plugin runs with; replaced as a whole by a reload.
pub(crate) struct Parts {
    pub config: PluginConfig,
    pub plugin: sandbox::Plugin,
    pub host: Arc<HostCalls>,
    /// The primary watch's subscription first, then the secondaries in config order.
    /// Shared with the next version when a reload keeps the watches.
    pub subscriptions: Arc<Vec<Subscription>>,
}

/// One plugin of a manager.
pub(crate) struct Runner {
    pub name: String,
    pub index: usize,
    pub queue: WorkQueue<ObjectKey>,
    pub sink: Arc<QueueSink>,
    pub parts: Mutex<Arc<Parts>>,
    /// Set once the pool started (caches synced, leading).
    pub pool: Mutex<Option<Arc<Pool>>>,
    pub phase: watch::Sender<PluginPhase>,
    /// `plugin:<name>` on /readyz.
    pub check: Option<Check>,
}

impl Runner {
    /// Builds everything `config` needs; starts no worker.
    pub async fn prepare(
        services: &Services,
        file: &Path,
        index: usize,
        config: &PluginConfig,
    ) -> Result<Runner, StartError> {
        let at = |field: &str| PluginField {
            file: file.to_path_buf(),
            index,
            plugin: config.name.clone(),
            field: field.to_string(),
        };
        let queue = WorkQueue::with_metrics(config.queue.clone(), &services.queue_metrics)
            .map_err(|source| StartError::Queue {
                at: at("queue"),
                source,
            })?;
        let sink = Arc::new(QueueSink::new(queue.clone(), config.kind()));
        // Compiling the component (CPU, on a blocking thread) and the initial lists (I/O) do
        // not depend on each other: overlapping them takes the compile off a cold start's
        // critical path. Keys wait in the queue either way. On a compile error the
        // subscriptions are dropped here, which stops their watches.
        let (plugin, subscriptions) = tokio::join!(
            load(services, config),
            subscribe(services, config, &sink, &at)
        );
        let plugin = plugin.map_err(|source| StartError::Component {
            at: at("component"),
            source,
        })?;
        let subscriptions = subscriptions?;
        let host =
            host_calls(services, config, &subscriptions, &sink).map_err(|(field, source)| {
                StartError::Caches {
                    at: at(&field),
                    source,
                }
            })?;
        let check = services.health.as_ref().and_then(|health| {
            health
                .register(
                    format!("plugin:{}", config.name),
                    crate::ops::health::Status::not_ready("syncing: waiting for its watches"),
                )
                .ok()
        });
        Ok(Runner {
            name: config.name.clone(),
            index,
            queue,
            sink,
            parts: Mutex::new(Arc::new(Parts {
                config: config.clone(),
                plugin,
                host,
                subscriptions: Arc::new(subscriptions),
            })),
            pool: Mutex::new(None),
            phase: watch::channel(PluginPhase::Syncing).0,
            check,
        })
    }

    pub fn parts(&self) -> Arc<Parts> {
        self.parts.lock().clone()
    }

    pub fn pool(&self) -> Option<Arc<Pool>> {
        self.pool.lock().clone()
    }

    /// Starts the workers. Idempotent: a running pool is kept.
    pub fn start_pool(&self, services: &Services) -> Result<(), PoolError> {
        let mut slot = self.pool.lock();
        if slot.is_some() {
            return Ok(());
        }
        let parts = self.parts();
        let spec = PoolSpec {
            target: Target {
                plugin: parts.plugin.clone(),
                host: parts.host.clone(),
            },
            queue: self.queue.clone(),
            primary: parts.subscriptions[0].cache().clone(),
            config: PoolConfig {
                workers: parts.config.workers as usize,
                degraded_after: parts.config.degraded_after,
            },
        };
        *slot = Some(Arc::new(Pool::start(
            spec,
            &services.worker_metrics,
            &services.executor,
        )?));
        Ok(())
    }

    /// Enqueues every object of the primary cache at low priority: after a reload, so every
    /// object is reconciled by the new version (keys taken during the switch may have run on
    /// the old one).
    pub fn requeue_all(&self) {
        use crate::informer::{KeySink, Priority};
        let parts = self.parts();
        for key in parts.subscriptions[0].cache().keys() {
            self.sink.enqueue(key, Priority::Low);
        }
    }

    pub fn set_phase(&self, phase: PluginPhase, ready: bool, detail: impl Into<String>) {
        self.phase.send_replace(phase);
        if let Some(check) = &self.check {
            let detail = detail.into();
            if ready {
                check.set_ready(detail);
            } else {
                check.set_not_ready(detail);
            }
        }
    }

    /// This plugin's numbers now.
    pub fn stats(&self, counts: &super::stats::Counts) -> PluginStats {
        let parts = self.parts();
        let mut phase = *self.phase.borrow();
        if phase == PluginPhase::Running
            && self.pool().is_some_and(|pool| pool.health().is_degraded())
        {
            phase = PluginPhase::Degraded;
        }
        let queue = self.queue.stats();
        let (reconciles, errors) = counts.of(&self.name);
        PluginStats {
            name: self.name.clone(),
            phase,
            objects: parts.subscriptions.iter().map(|s| s.cache().len()).sum(),
            reconciles,
            errors,
            queued: queue.ready_normal + queue.ready_low + queue.gated,
            in_flight: queue.in_flight,
        }
    }
}

/// Compiles the component off the async threads (a first compile takes a while).
pub(crate) async fn load(
    services: &Services,
    config: &PluginConfig,
) -> Result<sandbox::Plugin, LoadError> {
    let sandbox = services.sandbox.clone();
    let name = config.name.clone();
    let path = config.component.clone();
    let budgets = config.budgets.clone();
    match tokio::task::spawn_blocking(move || sandbox.load_file(&name, &path, budgets)).await {
        Ok(loaded) => loaded,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}

/// Subscribes the primary watch, then the secondaries; every key goes to `sink`.
async fn subscribe(
    services: &Services,
    config: &PluginConfig,
    sink: &Arc<QueueSink>,
    at: &impl Fn(&str) -> PluginField,
) -> Result<Vec<Subscription>, StartError> {
    let mut subscriptions = Vec::new();
    for (position, (watch, role)) in config.subscriptions().enumerate() {
        let field = watch_field(position);
        let subscription = services
            .informers
            .subscribe(&config.name, watch, role, sink.clone())
            .await
            .map_err(|source| StartError::Watch {
                at: at(&field),
                source,
            })?;
        subscriptions.push(subscription);
    }
    Ok(subscriptions)
}

/// `watch` for the primary (position 0), `secondary[i]` for the others.
pub(crate) fn watch_field(position: usize) -> String {
    match position {
        0 => "watch".to_string(),
        n => format!("secondary[{}]", n - 1),
    }
}

/// The plugin's host calls over the caches of its subscriptions; its writes are told to `sink`
/// (so their echoes are not news, `worker/echoes.rs`).
pub(crate) fn host_calls(
    services: &Services,
    config: &PluginConfig,
    subscriptions: &[Subscription],
    sink: &Arc<QueueSink>,
) -> Result<Arc<HostCalls>, (String, crate::hostcalls::CachesError)> {
    let mut caches = ReadableCaches::new();
    for (position, subscription) in subscriptions.iter().enumerate() {
        caches
            .add_subscription(subscription)
            .map_err(|e| (watch_field(position), e))?;
    }
    let mut calls =
        HostCallsConfig::new(&config.name, config.permissions.clone(), &services.identity);
    calls.field_manager = config.field_manager.clone();
    calls.own_writes = Some(sink.clone());
    Ok(Arc::new(HostCalls::new(
        calls,
        caches,
        services.client.clone(),
        services.kinds.clone(),
        &services.host_call_metrics,
        services.io.clone(),
    )))
}
