//! Leader election metrics under client-go's names, so dashboards and alerts written for Go
//! controllers work unchanged.
//!
//! | metric                            | type    | labels | meaning                          |
//! |-----------------------------------|---------|--------|----------------------------------|
//! | `leader_election_master_status`   | gauge   | name   | 1 while leading, else 0          |
//! | `trellis_leader_transitions_total`| counter | name   | times this replica became leader |
//! | `trellis_leader_renew_failures_total` | counter | name | failed renewal attempts        |
//!
//! `name` is the Lease's name, as in client-go. One elector per lease per process, so the
//! label set is unique within a registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LeaseLabels {
    name: String,
}

/// The metric families; register once per registry and pass to every elector.
#[derive(Clone, Default)]
pub struct LeaderMetrics {
    status: Family<LeaseLabels, Gauge>,
    transitions: Family<LeaseLabels, Counter>,
    renew_failures: Family<LeaseLabels, Counter>,
}

impl std::fmt::Debug for LeaderMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaderMetrics")
    }
}

impl LeaderMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "leader_election_master_status",
            "Whether this replica holds the lease (1) or not (0)",
            metrics.status.clone(),
        );
        registry.register(
            "trellis_leader_transitions",
            "Times this replica became the leader",
            metrics.transitions.clone(),
        );
        registry.register(
            "trellis_leader_renew_failures",
            "Failed attempts to renew a held lease (the leader steps down when they last past the renew deadline)",
            metrics.renew_failures.clone(),
        );
        metrics
    }

    /// The series of one lease.
    pub(super) fn for_lease(&self, name: &str) -> LeaseMetrics {
        let labels = LeaseLabels {
            name: name.to_string(),
        };
        let metrics = LeaseMetrics {
            status: self.status.get_or_create(&labels).clone(),
            transitions: self.transitions.get_or_create(&labels).clone(),
            renew_failures: self.renew_failures.get_or_create(&labels).clone(),
        };
        metrics.status.set(0);
        metrics
    }
}

/// One lease's series, resolved once.
#[derive(Clone)]
pub(super) struct LeaseMetrics {
    status: Gauge,
    transitions: Counter,
    renew_failures: Counter,
}

impl LeaseMetrics {
    pub(super) fn leading(&self, leading: bool) {
        if leading {
            self.transitions.inc();
        }
        self.status.set(i64::from(leading));
    }

    pub(super) fn renew_failed(&self) {
        self.renew_failures.inc();
    }
}
