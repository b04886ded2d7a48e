//! Reconcile metrics: controller-runtime's names (for the dashboards users already have) and
//! ours for what only a sandbox knows.
//!
//! | metric                                          | type      | labels              |
//! |-------------------------------------------------|-----------|---------------------|
//! | `controller_runtime_reconcile_total`            | counter   | controller, result  |
//! | `controller_runtime_reconcile_errors_total`     | counter   | controller          |
//! | `controller_runtime_reconcile_panics_total`     | counter   | controller          |
//! | `controller_runtime_reconcile_time_seconds`     | histogram | controller          |
//! | `controller_runtime_max_concurrent_reconciles`  | gauge     | controller          |
//! | `controller_runtime_active_workers`             | gauge     | controller          |
//! | `trellis_guest_outcomes_total`                  | counter   | plugin, outcome     |
//! | `trellis_guest_fuel_used`                       | histogram | plugin              |
//! | `trellis_guest_duration_seconds`                | histogram | plugin              |
//! | `trellis_plugin_degraded`                       | gauge     | plugin              |
//!
//! `controller` is the plugin name. `result` is `success`, `error` or `requeue_after`
//! (controller-runtime also has `requeue`, which a plugin cannot ask for). Every `result` and
//! `outcome` series exists from the pool's start, at zero, so rate() and alerts work before the
//! first failure. `reconcile_time_seconds` uses controller-runtime's buckets and covers the
//! whole reconcile (cache read, guest call); `guest_duration_seconds` is the guest call alone.
//!
//! Families are registered once per registry ([`WorkerMetrics::register`]) and shared by every
//! pool; each pool resolves its series once, so recording a call is a few atomic adds and two
//! histogram observations. A pool's series are removed when the pool is dropped, so a plugin
//! that is unloaded leaves no stale series.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::config::PoolError;
use super::verdict::{OutcomeClass, ReconcileResult, Verdict};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    controller: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    plugin: String,
    outcome: &'static str,
}

/// controller-runtime's `reconcile_time_seconds` buckets.
const RECONCILE_TIME_BUCKETS: [f64; 40] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9,
    1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 15.0, 20.0,
    25.0, 30.0, 40.0, 50.0, 60.0,
];

fn reconcile_time_histogram() -> Histogram {
    Histogram::new(RECONCILE_TIME_BUCKETS)
}

/// 1e4 .. 4e9 instructions-ish: the default budget is 1e9.
fn fuel_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1e4, 4.0, 12))
}

/// 25 µs .. 13 s: a cheap call is ~100 µs, the default deadline 5 s.
fn guest_duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(2.5e-5, 2.0, 20))
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

struct Families {
    reconcile_total: Family<ResultLabels, Counter>,
    reconcile_errors: Family<ControllerLabels, Counter>,
    reconcile_panics: Family<ControllerLabels, Counter>,
    reconcile_time: HistogramFamily<ControllerLabels>,
    max_concurrent: Family<ControllerLabels, Gauge>,
    active_workers: Family<ControllerLabels, Gauge>,
    outcomes: Family<OutcomeLabels, Counter>,
    fuel_used: HistogramFamily<PluginLabels>,
    guest_duration: HistogramFamily<PluginLabels>,
    degraded: Family<PluginLabels, Gauge>,
    /// Plugins with a live pool: one pool per plugin per registry.
    live: Mutex<HashSet<String>>,
}

/// The worker metric families of one registry, shared by every pool. Cheap to clone.
#[derive(Clone)]
pub struct WorkerMetrics {
    families: Arc<Families>,
}

impl std::fmt::Debug for WorkerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerMetrics")
            .field("pools", &self.families.live.lock().len())
            .finish()
    }
}

impl WorkerMetrics {
    /// Creates the families and registers them in `registry`. Call once per registry.
    pub fn register(registry: &mut Registry) -> Self {
        let f = Families {
            reconcile_total: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_panics: Family::default(),
            reconcile_time: Family::new_with_constructor(reconcile_time_histogram),
            max_concurrent: Family::default(),
            active_workers: Family::default(),
            outcomes: Family::default(),
            fuel_used: Family::new_with_constructor(fuel_histogram),
            guest_duration: Family::new_with_constructor(guest_duration_histogram),
            degraded: Family::default(),
            live: Mutex::new(HashSet::new()),
        };
        // Counters are registered without `_total`; the encoder appends it.
        registry.register(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            f.reconcile_total.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            f.reconcile_errors.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_panics",
            "Total number of reconciliation panics per controller",
            f.reconcile_panics.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            f.reconcile_time.clone(),
        );
        registry.register(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller",
            f.max_concurrent.clone(),
        );
        registry.register(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            f.active_workers.clone(),
        );
        registry.register(
            "trellis_guest_outcomes",
            "Guest calls by how they ended (done, requeue_after, guest_error, out_of_fuel, ...)",
            f.outcomes.clone(),
        );
        registry.register(
            "trellis_guest_fuel_used",
            "Fuel consumed per guest call, instantiation included",
            f.fuel_used.clone(),
        );
        registry.register(
            "trellis_guest_duration_seconds",
            "Wall time per guest call, from instantiation to the end of the call",
            f.guest_duration.clone(),
        );
        registry.register(
            "trellis_plugin_degraded",
            "1 while every call of the plugin has failed for at least degradedAfterSeconds",
            f.degraded.clone(),
        );
        Self {
            families: Arc::new(f),
        }
    }

    /// Resolves one pool's series. Fails if a live pool already reports for `plugin`.
    pub(crate) fn pool(&self, plugin: &str, workers: usize) -> Result<PoolMetrics, PoolError> {
        if !self.families.live.lock().insert(plugin.to_string()) {
            return Err(PoolError::DuplicateMetrics {
                plugin: plugin.to_string(),
            });
        }
        let f = &self.families;
        let controller = ControllerLabels {
            controller: plugin.to_string(),
        };
        let labels = PluginLabels {
            plugin: plugin.to_string(),
        };
        let result = |r: ReconcileResult| {
            f.reconcile_total.get_or_create_owned(&ResultLabels {
                controller: plugin.to_string(),
                result: r.label(),
            })
        };
        let outcome = |c: OutcomeClass| {
            f.outcomes.get_or_create_owned(&OutcomeLabels {
                plugin: plugin.to_string(),
                outcome: c.label(),
            })
        };
        let max_concurrent = f.max_concurrent.get_or_create_owned(&controller);
        max_concurrent.set(workers as i64);
        let degraded = f.degraded.get_or_create_owned(&labels);
        degraded.set(0);
        Ok(PoolMetrics {
            results: ReconcileResult::ALL.map(result),
            outcomes: OutcomeClass::ALL.map(outcome),
            errors: f.reconcile_errors.get_or_create_owned(&controller),
            panics: f.reconcile_panics.get_or_create_owned(&controller),
            reconcile_time: f.reconcile_time.get_or_create_owned(&controller),
            active_workers: f.active_workers.get_or_create_owned(&controller),
            fuel_used: f.fuel_used.get_or_create_owned(&labels),
            guest_duration: f.guest_duration.get_or_create_owned(&labels),
            degraded,
            _max_concurrent: max_concurrent,
            families: f.clone(),
            controller,
            labels,
        })
    }
}

/// One pool's series, resolved once.
pub(crate) struct PoolMetrics {
    results: [Counter; 3],
    outcomes: [Counter; 12],
    errors: Counter,
    panics: Counter,
    reconcile_time: Histogram,
    active_workers: Gauge,
    fuel_used: Histogram,
    guest_duration: Histogram,
    degraded: Gauge,
    _max_concurrent: Gauge,
    families: Arc<Families>,
    controller: ControllerLabels,
    labels: PluginLabels,
}

/// What the guest call reported, when there was one (not after a panic in host code).
pub(crate) struct GuestUsage {
    pub fuel: u64,
    pub wall_time: Duration,
}

impl PoolMetrics {
    /// Counts one finished reconcile.
    pub(crate) fn reconciled(
        &self,
        verdict: &Verdict,
        elapsed: Duration,
        guest: Option<GuestUsage>,
    ) {
        let result = ReconcileResult::ALL
            .iter()
            .position(|r| *r == verdict.result)
            .unwrap_or_default();
        self.results[result].inc();
        self.outcomes[verdict.class.index()].inc();
        if verdict.result == ReconcileResult::Error {
            self.errors.inc();
        }
        if verdict.class == OutcomeClass::HostPanic {
            self.panics.inc();
        }
        self.reconcile_time.observe(elapsed.as_secs_f64());
        if let Some(guest) = guest {
            self.fuel_used.observe(guest.fuel as f64);
            self.guest_duration.observe(guest.wall_time.as_secs_f64());
        }
    }

    /// Marks one worker busy until the returned guard drops (also on cancellation and panic).
    pub(crate) fn busy(&self) -> Busy {
        self.active_workers.inc();
        Busy(self.active_workers.clone())
    }

    pub(crate) fn set_degraded(&self, degraded: bool) {
        self.degraded.set(i64::from(degraded));
    }
}

/// One busy worker; see [`PoolMetrics::busy`].
pub(crate) struct Busy(Gauge);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Drop for PoolMetrics {
    fn drop(&mut self) {
        let f = &self.families;
        for r in ReconcileResult::ALL {
            f.reconcile_total.remove(&ResultLabels {
                controller: self.controller.controller.clone(),
                result: r.label(),
            });
        }
        for c in OutcomeClass::ALL {
            f.outcomes.remove(&OutcomeLabels {
                plugin: self.labels.plugin.clone(),
                outcome: c.label(),
            });
        }
        f.reconcile_errors.remove(&self.controller);
        f.reconcile_panics.remove(&self.controller);
        f.reconcile_time.remove(&self.controller);
        f.max_concurrent.remove(&self.controller);
        f.active_workers.remove(&self.controller);
        f.fuel_used.remove(&self.labels);
        f.guest_duration.remove(&self.labels);
        f.degraded.remove(&self.labels);
        // Last, so a pool re-registering this plugin cannot see its series removed.
        f.live.lock().remove(&self.labels.plugin);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::{Action, Outcome};
    use prometheus_client::encoding::text::encode;

    fn scrape(registry: &Registry) -> String {
        let mut text = String::new();
        encode(&mut text, registry).unwrap();
        text
    }

    #[test]
    fn series_exist_at_zero_and_count_by_result_and_outcome() {
        let mut registry = Registry::default();
        let metrics = WorkerMetrics::register(&mut registry);
        let pool = metrics.pool("web", 3).unwrap();
        let text = scrape(&registry);
        for line in [
            "controller_runtime_reconcile_total{controller=\"web\",result=\"success\"} 0",
            "controller_runtime_reconcile_total{controller=\"web\",result=\"requeue_after\"} 0",
            "trellis_guest_outcomes_total{plugin=\"web\",outcome=\"host_panic\"} 0",
            "controller_runtime_max_concurrent_reconciles{controller=\"web\"} 3",
            "controller_runtime_active_workers{controller=\"web\"} 0",
            "trellis_plugin_degraded{plugin=\"web\"} 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        pool.reconciled(
            &Verdict::of(&Outcome::Deadline),
            Duration::from_millis(30),
            Some(GuestUsage {
                fuel: 5000,
                wall_time: Duration::from_millis(29),
            }),
        );
        pool.reconciled(&Verdict::host_panic("boom"), Duration::from_millis(1), None);
        pool.reconciled(
            &Verdict::of(&Outcome::Ok(Action::Done)),
            Duration::from_millis(1),
            None,
        );
        let busy = pool.busy();
        pool.set_degraded(true);
        let text = scrape(&registry);
        for line in [
            "controller_runtime_reconcile_total{controller=\"web\",result=\"error\"} 2",
            "controller_runtime_reconcile_total{controller=\"web\",result=\"success\"} 1",
            "controller_runtime_reconcile_errors_total{controller=\"web\"} 2",
            "controller_runtime_reconcile_panics_total{controller=\"web\"} 1",
            "trellis_guest_outcomes_total{plugin=\"web\",outcome=\"deadline\"} 1",
            "trellis_guest_outcomes_total{plugin=\"web\",outcome=\"host_panic\"} 1",
            "trellis_guest_fuel_used_count{plugin=\"web\"} 1",
            "trellis_guest_duration_seconds_count{plugin=\"web\"} 1",
            "controller_runtime_reconcile_time_seconds_count{controller=\"web\"} 3",
            "controller_runtime_active_workers{controller=\"web\"} 1",
            "trellis_plugin_degraded{plugin=\"web\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        drop(busy);
        assert!(
            scrape(&registry).contains("controller_runtime_active_workers{controller=\"web\"} 0")
        );
    }

    #[test]
    fn one_pool_per_plugin_and_series_go_with_the_pool() {
        let mut registry = Registry::default();
        let metrics = WorkerMetrics::register(&mut registry);
        let pool = metrics.pool("web", 1).unwrap();
        assert_eq!(
            metrics.pool("web", 1).err(),
            Some(PoolError::DuplicateMetrics {
                plugin: "web".into()
            })
        );
        let other = metrics.pool("db", 1).unwrap();
        drop(pool);
        let text = scrape(&registry);
        assert!(!text.contains("\"web\""), "{text}");
        assert!(text.contains("\"db\""), "{text}");
        drop(other);
        assert!(metrics.pool("web", 1).is_ok(), "the name is free again");
    }
}
