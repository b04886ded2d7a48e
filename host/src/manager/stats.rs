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
    /// Keys waiting in its queue (ready or delayed).
    pub queued: usize,
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
