//! Informer metrics, registered once into the host's registry and labelled per informer.
//!
//! Labels: `kind` (`apps/v1/Deployment`) and `watch` (a short stable hash of the normalized
//! watch spec, logged with the full spec when the informer starts), so two informers of one
//! kind with different selectors stay apart. When an informer stops, its series are removed:
//! a freed informer leaves nothing behind, in memory or on /metrics.

use std::hash::{Hash, Hasher};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::config::WatchSpec;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct InformerLabels {
    pub kind: String,
    pub watch: String,
}

impl InformerLabels {
    pub(crate) fn for_spec(spec: &WatchSpec) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        spec.hash(&mut hasher);
        let kind = &spec.kind;
        Self {
            kind: format!("{}/{}", kind.api_version(), kind.kind),
            watch: format!("{:08x}", hasher.finish() as u32),
        }
    }
}

/// Watch event types as counted: `initial` for objects of a (re)list, then the server's types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub(crate) enum EventType {
    Initial,
    Added,
    Modified,
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EventLabels {
    kind: String,
    watch: String,
    r#type: EventType,
}

type HistogramFamily = Family<InformerLabels, Histogram, fn() -> Histogram>;

/// The metric families, shared by every informer of a registry.
#[derive(Clone)]
pub struct InformerMetrics {
    objects: Family<InformerLabels, Gauge>,
    bytes: Family<InformerLabels, Gauge>,
    events: Family<EventLabels, Counter>,
    relists: Family<InformerLabels, Counter>,
    restarts: Family<InformerLabels, Counter>,
    sync_duration: HistogramFamily,
    event_handling: HistogramFamily,
    subscribers: Family<InformerLabels, Gauge>,
}

impl std::fmt::Debug for InformerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InformerMetrics")
    }
}

/// 1 µs .. ~0.5 s: handling one event is microseconds; the tail shows a slow sink or lock.
fn event_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1e-6, 2.0, 20))
}

fn sync_histogram() -> Histogram {
    // 10 ms .. ~5 min.
    Histogram::new(exponential_buckets(0.01, 2.0, 15))
}

impl InformerMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            objects: Family::default(),
            bytes: Family::default(),
            events: Family::default(),
            relists: Family::default(),
            restarts: Family::default(),
            sync_duration: Family::new_with_constructor(sync_histogram),
            event_handling: Family::new_with_constructor(event_histogram),
            subscribers: Family::default(),
        };
        registry.register(
            "trellis_informer_cache_objects",
            "Objects held by an informer's cache",
            metrics.objects.clone(),
        );
        registry.register(
            "trellis_informer_cache_bytes",
            "Approximate bytes held by an informer's cache (JSON plus parsed fields)",
            metrics.bytes.clone(),
        );
        registry.register(
            "trellis_informer_watch_events",
            "Watch events applied to the cache, by type (initial: listed by a sync or relist)",
            metrics.events.clone(),
        );
        registry.register(
            "trellis_informer_relists",
            "Lists after the first sync (watch history expired: 410 Gone)",
            metrics.relists.clone(),
        );
        registry.register(
            "trellis_informer_watch_restarts",
            "Watch or list failures after which the watch was restarted (with backoff)",
            metrics.restarts.clone(),
        );
        registry.register(
            "trellis_informer_sync_duration_seconds",
            "Time from an informer's start to its first complete sync",
            metrics.sync_duration.clone(),
        );
        registry.register(
            "trellis_informer_event_handling_seconds",
            "Time to apply one watch event to the cache and hand its keys to every subscriber",
            metrics.event_handling.clone(),
        );
        registry.register(
            "trellis_informer_subscribers",
            "Plugin subscriptions sharing an informer",
            metrics.subscribers.clone(),
        );
        metrics
    }

    /// The series of one informer, looked up once so the event path does not hash labels.
    pub(crate) fn series(&self, labels: &InformerLabels) -> InformerSeries {
        let event = |r#type| {
            self.events
                .get_or_create(&EventLabels {
                    kind: labels.kind.clone(),
                    watch: labels.watch.clone(),
                    r#type,
                })
                .clone()
        };
        InformerSeries {
            objects: self.objects.get_or_create(labels).clone(),
            bytes: self.bytes.get_or_create(labels).clone(),
            initial: event(EventType::Initial),
            added: event(EventType::Added),
            modified: event(EventType::Modified),
            deleted: event(EventType::Deleted),
            relists: self.relists.get_or_create(labels).clone(),
            restarts: self.restarts.get_or_create(labels).clone(),
            sync_duration: self.sync_duration.get_or_create(labels).clone(),
            event_handling: self.event_handling.get_or_create(labels).clone(),
            subscribers: self.subscribers.get_or_create(labels).clone(),
        }
    }

    /// Drops an informer's series from the registry.
    pub(crate) fn remove(&self, labels: &InformerLabels) {
        self.objects.remove(labels);
        self.bytes.remove(labels);
        for r#type in [
            EventType::Initial,
            EventType::Added,
            EventType::Modified,
            EventType::Deleted,
        ] {
            self.events.remove(&EventLabels {
                kind: labels.kind.clone(),
                watch: labels.watch.clone(),
                r#type,
            });
        }
        self.relists.remove(labels);
        self.restarts.remove(labels);
        self.sync_duration.remove(labels);
        self.event_handling.remove(labels);
        self.subscribers.remove(labels);
    }
}

/// One informer's handles into the families.
#[derive(Clone, Debug)]
pub(crate) struct InformerSeries {
    pub objects: Gauge,
    pub bytes: Gauge,
    pub initial: Counter,
    pub added: Counter,
    pub modified: Counter,
    pub deleted: Counter,
    pub relists: Counter,
    pub restarts: Counter,
    pub sync_duration: Histogram,
    pub event_handling: Histogram,
    pub subscribers: Gauge,
}

impl InformerSeries {
    pub(crate) fn event(&self, r#type: EventType) {
        match r#type {
            EventType::Initial => self.initial.inc(),
            EventType::Added => self.added.inc(),
            EventType::Modified => self.modified.inc(),
            EventType::Deleted => self.deleted.inc(),
        };
    }

    pub(crate) fn cache_size(&self, objects: usize, bytes: usize) {
        self.objects.set(i64::try_from(objects).unwrap_or(i64::MAX));
        self.bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}
