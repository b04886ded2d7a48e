//! A point-in-time view of a running host: what the `trellis dev` progress line shows and what
//! tests wait on. Plain data, cheap to build: counts the manager already keeps.

use std::fmt;

/// Where a plugin is in its life (see `manager` for the transitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginPhase {
    /// Its watches are listing; no worker runs yet.
    Syncing,
    /// Workers are reconciling.
    Running,
    /// Caches warm, workers idle: another replica holds the lease.
    Standby,
    /// Every call has failed for `degradedAfterSeconds`; still retried with backoff.
    Degraded,
    /// A watch never synced or was rejected; its workers never started.
    Failed,
    /// Shut down.
    Stopped,
}

impl PluginPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginPhase::Syncing => "syncing",
            PluginPhase::Running => "running",
            PluginPhase::Standby => "standby",
            PluginPhase::Degraded => "degraded",
            PluginPhase::Failed => "failed",
            PluginPhase::Stopped => "stopped",
        }
    }
}

impl fmt::Display for PluginPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One plugin's numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginStats {
    pub name: String,
    pub phase: PluginPhase,
    /// Objects in the caches the plugin reads (its primary and secondary watches).
    pub objects: usize,
    /// Reconciles finished, whatever their result.
    pub reconciles: u64,
    /// Reconciles that ended in an error (guest error, trap, fuel, deadline, memory).
    pub errors: u64,
    /// Keys ready to run (not counting keys waiting for a requeue-after or a backoff).
    pub queued: usize,
    /// Keys being reconciled now.
    pub in_flight: usize,
}

/// Every plugin's numbers, in config order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub plugins: Vec<PluginStats>,
}

impl Stats {
    pub fn plugin(&self, name: &str) -> Option<&PluginStats> {
        self.plugins.iter().find(|p| p.name == name)
    }

    pub fn reconciles(&self) -> u64 {
        self.plugins.iter().map(|p| p.reconciles).sum()
    }
}

/// Reconcile counts per plugin, read from the worker pools' controller-runtime counters in the
/// host's registry (the same numbers /metrics shows).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Counts {
    /// plugin -> (reconciles, errors)
    by_plugin: std::collections::HashMap<String, (u64, u64)>,
}

impl Counts {
    pub fn read(registry: &prometheus_client::registry::Registry) -> Self {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, registry).is_err() {
            return Self::default();
        }
        Self::parse(&text)
    }

    fn parse(text: &str) -> Self {
        let mut counts = Self::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Some((metric, labels)) = series.split_once('{') else {
                continue;
            };
            let slot = match metric {
                "controller_runtime_reconcile_total" => 0,
                "controller_runtime_reconcile_errors_total" => 1,
                _ => continue,
            };
            let Some(controller) = labels
                .trim_end_matches('}')
                .split(',')
                .find_map(|pair| pair.strip_prefix("controller=\""))
                .map(|v| v.trim_end_matches('"'))
            else {
                continue;
            };
            let value = value.parse::<f64>().unwrap_or(0.0) as u64;
            let entry = counts.by_plugin.entry(controller.to_string()).or_default();
            if slot == 0 {
                entry.0 += value;
            } else {
                entry.1 += value;
            }
        }
        counts
    }

    /// (reconciles, errors) of `plugin`.
    pub fn of(&self, plugin: &str) -> (u64, u64) {
        self.by_plugin.get(plugin).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sum_results_per_controller() {
        let text = "# TYPE controller_runtime_reconcile counter\n\
            controller_runtime_reconcile_total{controller=\"a\",result=\"success\"} 7\n\
            controller_runtime_reconcile_total{controller=\"a\",result=\"error\"} 2\n\
            controller_runtime_reconcile_total{result=\"success\",controller=\"b\"} 1\n\
            controller_runtime_reconcile_errors_total{controller=\"a\"} 2\n\
            controller_runtime_reconcile_time_seconds_count{controller=\"a\"} 9\n";
        let counts = Counts::parse(text);
        assert_eq!(counts.of("a"), (9, 2));
        assert_eq!(counts.of("b"), (1, 0));
        assert_eq!(counts.of("c"), (0, 0));
    }
}
