//! Queue metrics under controller-runtime's names, so existing dashboards and alerts work.
//!
//! | metric                                        | type      | labels                              |
//! |-----------------------------------------------|-----------|-------------------------------------|
//! | `workqueue_depth`                             | gauge     | name, controller, plugin, priority  |
//! | `workqueue_adds_total`                        | counter   | name, controller, plugin            |
//! | `workqueue_queue_duration_seconds`            | histogram | name, controller, plugin            |
//! | `workqueue_work_duration_seconds`             | histogram | name, controller, plugin            |
//! | `workqueue_unfinished_work_seconds`           | gauge     | name, controller, plugin            |
//! | `workqueue_longest_running_processor_seconds` | gauge     | name, controller, plugin            |
//! | `workqueue_retries_total`                     | counter   | name, controller, plugin            |
//!
//! `name` and `controller` both carry the controller name (controller-runtime sets both);
//! `plugin` is ours. `priority` is `"0"` or `"-100"`, controller-runtime's values. Histogram
//! buckets are controller-runtime's (`1e-8 * 10^i`, 12 buckets). Depth counts ready keys only,
//! as controller-runtime's priority queue does: keys waiting on a delay are not "in the queue".
//! `adds_total` counts each time a key enters a ready FIFO (a duplicate add of a queued key
//! does not count; a raise from low to normal priority does not count).
//!
//! The families are created once per registry ([`QueueMetrics::register`]) and shared by every
//! plugin's queue; each queue resolves its label set once, so the hot path is an atomic add per
//! counter or gauge and one short lock per histogram observation, taken outside the queue's own
//! lock. In-flight gauges are computed at scrape time by a collector. A queue's series disappear
//! when the queue is dropped (a plugin unloaded), so reloads do not leave stale series.

use super::config::{QueueConfig, QueueError};
use super::in_flight::InFlightStats;
use super::priority::Priority;
use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The labels of every per-queue series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct QueueLabels {
    name: String,
    controller: String,
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DepthLabels {
    name: String,
    controller: String,
    plugin: String,
    priority: String,
}

/// Something that can report its in-flight work at scrape time (a queue).
pub(crate) trait InFlightProbe: Send + Sync {
    fn in_flight(&self) -> InFlightStats;
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1e-8, 10.0, 12))
}

type HistogramFamily = Family<QueueLabels, Histogram, fn() -> Histogram>;

struct Families {
    depth: Family<DepthLabels, Gauge>,
    adds: Family<QueueLabels, Counter>,
    retries: Family<QueueLabels, Counter>,
    queue_duration: HistogramFamily,
    work_duration: HistogramFamily,
    /// Live queues by label set, from `recorder_for` until their handles drop: the duplicate
    /// check, and the in-flight collector's sources once the queue attached its probe.
    queues: Mutex<HashMap<QueueLabels, Option<Weak<dyn InFlightProbe>>>>,
}

impl std::fmt::Debug for Families {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Families")
            .field("queues", &self.queues.lock().len())
            .finish_non_exhaustive()
    }
}

/// The queue metric families of one registry, shared by all queues.
#[derive(Clone, Debug)]
pub struct QueueMetrics {
    families: Arc<Families>,
}

impl QueueMetrics {
    /// Creates the families and registers them (and the in-flight collector) in `registry`.
    /// Call once per registry; pass the result to every queue.
    pub fn register(registry: &mut Registry) -> Self {
        let families = Arc::new(Families {
            depth: Family::default(),
            adds: Family::default(),
            retries: Family::default(),
            queue_duration: Family::new_with_constructor(duration_histogram),
            work_duration: Family::new_with_constructor(duration_histogram),
            queues: Mutex::new(HashMap::new()),
        });
        // Counters are registered without `_total`; the encoder appends it.
        registry.register(
            "workqueue_depth",
            "Current depth of workqueue by workqueue and priority",
            families.depth.clone(),
        );
        registry.register(
            "workqueue_adds",
            "Total number of adds handled by workqueue",
            families.adds.clone(),
        );
        registry.register(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            families.queue_duration.clone(),
        );
        registry.register(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes.",
            families.work_duration.clone(),
        );
        registry.register(
            "workqueue_retries",
            "Total number of retries handled by workqueue",
            families.retries.clone(),
        );
        registry.register_collector(Box::new(InFlightCollector {
            families: families.clone(),
        }));
        Self { families }
    }

    /// Resolves one queue's series. Fails if a live queue already uses the same labels.
    pub(crate) fn recorder_for(&self, config: &QueueConfig) -> Result<Recorder, QueueError> {
        let labels = QueueLabels {
            name: config.name.clone(),
            controller: config.name.clone(),
            plugin: config.plugin.clone(),
        };
        {
            let mut queues = self.families.queues.lock();
            if queues.contains_key(&labels) {
                return Err(QueueError::DuplicateMetrics {
                    plugin: config.plugin.clone(),
                    name: config.name.clone(),
                });
            }
            queues.insert(labels.clone(), None);
        }
        let f = &self.families;
        let depth = |p: Priority| f.depth.get_or_create_owned(&depth_labels(&labels, p));
        Ok(Recorder(Some(Arc::new(Handles {
            depth_normal: depth(Priority::Normal),
            depth_low: depth(Priority::Low),
            adds: f.adds.get_or_create_owned(&labels),
            retries: f.retries.get_or_create_owned(&labels),
            queue_duration: f.queue_duration.get_or_create_owned(&labels),
            work_duration: f.work_duration.get_or_create_owned(&labels),
            families: f.clone(),
            labels,
        }))))
    }
}

fn depth_labels(labels: &QueueLabels, p: Priority) -> DepthLabels {
    DepthLabels {
        name: labels.name.clone(),
        controller: labels.controller.clone(),
        plugin: labels.plugin.clone(),
        priority: p.label().to_owned(),
    }
}

struct Handles {
    depth_normal: Gauge,
    depth_low: Gauge,
    adds: Counter,
    retries: Counter,
    queue_duration: Histogram,
    work_duration: Histogram,
    families: Arc<Families>,
    labels: QueueLabels,
}

impl Drop for Handles {
    fn drop(&mut self) {
        let f = &self.families;
        for p in [Priority::Normal, Priority::Low] {
            f.depth.remove(&depth_labels(&self.labels, p));
        }
        f.adds.remove(&self.labels);
        f.retries.remove(&self.labels);
        f.queue_duration.remove(&self.labels);
        f.work_duration.remove(&self.labels);
        // Last, so a queue re-registering these labels cannot see its series removed.
        f.queues.lock().remove(&self.labels);
    }
}

/// One queue's metric handles; a no-op when the queue has no metrics.
#[derive(Clone, Default)]
pub(crate) struct Recorder(Option<Arc<Handles>>);

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Recorder")
            .field(&self.0.as_ref().map(|h| &h.labels))
            .finish()
    }
}

impl Recorder {
    /// Lets the in-flight collector read `probe` at scrape time.
    pub(crate) fn attach_probe(&self, probe: Weak<dyn InFlightProbe>) {
        if let Some(h) = &self.0 {
            h.families
                .queues
                .lock()
                .insert(h.labels.clone(), Some(probe));
        }
    }

    /// A key entered the ready FIFO of `p`; `new_add` is false for a priority raise.
    pub(crate) fn entered(&self, p: Priority, new_add: bool) {
        if let Some(h) = &self.0 {
            h.depth(p).inc();
            if new_add {
                h.adds.inc();
            }
        }
    }

    /// A key left the ready FIFO of `p` (taken or moved).
    pub(crate) fn left(&self, p: Priority) {
        if let Some(h) = &self.0 {
            h.depth(p).dec();
        }
    }

    pub(crate) fn retried(&self) {
        if let Some(h) = &self.0 {
            h.retries.inc();
        }
    }

    /// Whether metrics are recorded at all (the queue then skips the clock reads that only
    /// feed them).
    pub(crate) fn is_enabled(&self) -> bool {
        self.0.is_some()
    }

    pub(crate) fn queued_for(&self, d: Duration) {
        if let Some(h) = &self.0 {
            h.queue_duration.observe(d.as_secs_f64());
        }
    }

    pub(crate) fn worked_for(&self, d: Duration) {
        if let Some(h) = &self.0 {
            h.work_duration.observe(d.as_secs_f64());
        }
    }
}

impl Handles {
    fn depth(&self, p: Priority) -> &Gauge {
        match p {
            Priority::Normal => &self.depth_normal,
            Priority::Low => &self.depth_low,
        }
    }
}

/// Name, help, and how to read one in-flight gauge from a queue's stats.
type InFlightGauge = (&'static str, &'static str, fn(&InFlightStats) -> f64);

/// Computes the in-flight gauges of every live queue at scrape time.
#[derive(Debug)]
struct InFlightCollector {
    families: Arc<Families>,
}

impl Collector for InFlightCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let samples: Vec<(QueueLabels, InFlightStats)> = {
            let queues = self.families.queues.lock();
            queues
                .iter()
                .filter_map(|(labels, probe)| Some((labels.clone(), probe.as_ref()?.upgrade()?)))
                .collect::<Vec<_>>()
        }
        .into_iter()
        // Probes lock their queue; do that outside the registry-wide lock.
        .map(|(labels, probe)| (labels, probe.in_flight()))
        .collect();
        let gauges: [InFlightGauge; 2] = [
            (
                "workqueue_unfinished_work_seconds",
                "How many seconds of work has done that is in progress and hasn't been observed by work_duration. Large values indicate stuck threads. One can deduce the number of stuck threads by observing the rate at which this increases.",
                |s| s.unfinished_seconds,
            ),
            (
                "workqueue_longest_running_processor_seconds",
                "How many seconds has the longest running processor for workqueue been running.",
                |s| s.longest_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            let proto = ConstGauge::new(0.0f64);
            let mut metric = encoder.encode_descriptor(name, help, None, proto.metric_type())?;
            for (labels, stats) in &samples {
                ConstGauge::new(value(stats)).encode(metric.encode_family(labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    fn scrape(registry: &Registry) -> String {
        let mut out = String::new();
        encode(&mut out, registry).unwrap();
        out
    }

    struct Fixed(InFlightStats);
    impl InFlightProbe for Fixed {
        fn in_flight(&self) -> InFlightStats {
            self.0
        }
    }

    #[test]
    fn names_labels_and_values_follow_controller_runtime() {
        let mut registry = Registry::default();
        let metrics = QueueMetrics::register(&mut registry);
        let rec = metrics
            .recorder_for(&QueueConfig::new("cert-sync"))
            .unwrap();
        let probe: Arc<dyn InFlightProbe> = Arc::new(Fixed(InFlightStats {
            count: 2,
            unfinished_seconds: 3.5,
            longest_seconds: 2.0,
        }));
        rec.attach_probe(Arc::downgrade(&probe));
        rec.entered(Priority::Normal, true);
        rec.entered(Priority::Low, true);
        rec.entered(Priority::Low, false);
        rec.left(Priority::Low);
        rec.retried();
        rec.queued_for(Duration::from_millis(3));
        rec.worked_for(Duration::from_millis(4));
        let text = scrape(&registry);
        let labels = r#"name="cert-sync",controller="cert-sync",plugin="cert-sync""#;
        for line in [
            format!(r#"workqueue_depth{{{labels},priority="0"}} 1"#),
            format!(r#"workqueue_depth{{{labels},priority="-100"}} 1"#),
            format!("workqueue_adds_total{{{labels}}} 2"),
            format!("workqueue_retries_total{{{labels}}} 1"),
            format!("workqueue_queue_duration_seconds_count{{{labels}}} 1"),
            format!("workqueue_work_duration_seconds_count{{{labels}}} 1"),
            format!(r#"workqueue_work_duration_seconds_bucket{{le="0.01",{labels}}} 1"#),
            format!("workqueue_unfinished_work_seconds{{{labels}}} 3.5"),
            format!("workqueue_longest_running_processor_seconds{{{labels}}} 2.0"),
        ] {
            assert!(text.contains(&line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn duplicate_labels_are_refused_until_the_first_queue_is_gone() {
        let mut registry = Registry::default();
        let metrics = QueueMetrics::register(&mut registry);
        let cfg = QueueConfig::new("p");
        let first = metrics.recorder_for(&cfg).unwrap();
        let err = metrics.recorder_for(&cfg).unwrap_err();
        assert_eq!(
            err,
            QueueError::DuplicateMetrics {
                plugin: "p".into(),
                name: "p".into()
            }
        );
        drop(first);
        metrics.recorder_for(&cfg).unwrap();
    }

    #[test]
    fn dropped_queue_series_disappear() {
        let mut registry = Registry::default();
        let metrics = QueueMetrics::register(&mut registry);
        let rec = metrics.recorder_for(&QueueConfig::new("gone")).unwrap();
        rec.entered(Priority::Normal, true);
        assert!(scrape(&registry).contains(r#"plugin="gone""#));
        drop(rec);
        assert!(!scrape(&registry).contains(r#"plugin="gone""#));
    }

    #[test]
    fn no_metrics_recorder_is_a_no_op() {
        let rec = Recorder::default();
        assert!(!rec.is_enabled());
        rec.entered(Priority::Normal, true);
        rec.left(Priority::Normal);
        rec.retried();
        rec.queued_for(Duration::from_secs(1));
        rec.worked_for(Duration::from_secs(1));
        let probe: Arc<dyn InFlightProbe> = Arc::new(Fixed(InFlightStats::default()));
        rec.attach_probe(Arc::downgrade(&probe));
    }
}
