//! Informers: watches of the API server turned into a local cache and into keys on plugin
//! queues.
//!
//! ```text
//! config ─validate─▶ WatchSpec ─(registry: one informer per spec)─▶ task per informer
//!   kube-runtime watcher per scope ─▶ RawObject (raw JSON + metadata) ─transform─▶ Cache
//!                                                       └─ change ─▶ Delivery per plugin ─▶ KeySink
//! ```
//!
//! * [`config`](WatchConfig): what a plugin's config says about a watch, validated into the
//!   shared [`WatchSpec`] and the per-plugin [`DeliveryConfig`].
//! * `raw`: the watcher's object type — JSON text captured as it arrives, metadata parsed once.
//! * `transform`: what of each object is kept (managedFields stripped by default).
//! * `watch`: kube-runtime's watcher per scope, with the streaming-list fallback.
//! * `running`: the informer task and the state its subscriptions share.
//! * `delivery`: predicates, mapping to primary keys, priorities, the [`KeySink`] contract.
//! * `sync`: the synced / stalled / failed state machine behind readiness.
//! * `registry`: sharing, reference counting and freeing ([`Informers`], [`Subscription`]).
//! * `metrics`: per-informer series, removed with the informer.
//!
//! See docs/informers.md for the choices made and why.

mod config;
mod delivery;
mod metrics;
mod raw;
mod registry;
mod running;
mod sync;
mod transform;
mod watch;

pub use config::{
    ConfigError, DEFAULT_PAGE_SIZE, DeliveryConfig, IndexConfig, InitialList, MappingConfig,
    Predicate, TransformConfig, ValidWatch, WatchConfig, WatchSpec,
};
pub use delivery::{KeySink, Priority, Role};
pub use metrics::InformerMetrics;
pub use registry::{InformerOptions, Informers, InformersStats, SubscribeError, Subscription};
pub use sync::{SyncError, SyncFailure, SyncStatus};
pub use transform::{IDENTITY_PATHS, Transform, TransformSpec};
