//! The bounded worker pool of each plugin: queue -> cache -> sandbox -> outcome (issue 6).
//!
//! Per plugin, a [`Pool`] of `workers` tasks takes keys from the plugin's work queue, reads the
//! primary object from the informer cache, runs the guest's `reconcile` in the sandbox and
//! turns the call's outcome into the key's next step: done -> forget, requeue-after -> run
//! again later, error / trap / fuel / deadline / memory -> rate-limited retry. Why it is built
//! this way:
//!
//! * The informer side only ever calls [`QueueSink::enqueue`], a synchronous queue add: the
//!   event path never waits for a worker or a guest (DESIGN invariant 1).
//! * Workers hold a queue [`Guard`](crate::queue::Guard) per key and finish it on every path,
//!   panics in host code and cancellation included (invariant 2); each call gets a fresh
//!   instance from the sandbox (invariant 3).
//! * Guests run on an executor chosen by measurement ([`GuestExecutor`]), never on a thread
//!   they can hold for more than an epoch tick.
//! * A plugin failing every call for `degradedAfterSeconds` is reported degraded (gauge, log,
//!   [`Pool::health`]) but keeps its backoff; pools share nothing but the sandbox's instance
//!   pool and the metrics registry, so one plugin never stalls another.
//! * The plugin can be swapped under a running pool ([`Pool::replace_plugin`]) without
//!   cancelling calls in flight.
//!
//! | module     | concept                                                       |
//! |------------|---------------------------------------------------------------|
//! | `config`   | pool settings, defaults, validation, errors                   |
//! | `sink`     | informer keys -> queue keys                                   |
//! | `echoes`   | telling the echoes of the plugin's own writes from news       |
//! | `verdict`  | call outcome -> key disposition, metric labels, health        |
//! | `health`   | the degraded state machine                                    |
//! | `metrics`  | controller-runtime and guest metrics                          |
//! | `slot`     | the swappable plugin                                          |
//! | `executor` | where workers run (host runtime or a dedicated one)           |
//! | `pool`     | the worker loop, the watchdog, shutdown                       |
//!
//! See docs/workers.md.

mod config;
mod echoes;
mod executor;
mod health;
mod metrics;
mod pool;
mod sink;
mod slot;
mod verdict;

pub use config::{DEFAULT_DEGRADED_AFTER, DEFAULT_WORKERS, MAX_WORKERS, PoolConfig, PoolError};
pub use executor::{
    DedicatedRuntime, ExecutorKind, GuestExecutor, GuestSettings, MAX_GUEST_THREADS, Nice,
    NiceError, default_guest_threads,
};
pub use health::{HealthState, PluginHealth};
pub use metrics::WorkerMetrics;
pub use pool::{Pool, PoolSpec, ShutdownReport};
pub use sink::{QueueSink, queue_priority};
pub use slot::Target;
pub use verdict::{Disposition, OutcomeClass, ReconcileResult, Verdict};
