//! The life of one plugin in a running host, as one task per plugin.
//!
//! ```text
//!            every watch synced          leading (or no election)
//! Syncing ───────────────────▶ Standby ─────────────────────────▶ Running ◀─▶ Degraded
//!    │ stalled: error logged,      ▲  not leading: caches stay warm    │  (pool health, polled)
//!    │ /readyz says why; waits on  │                                   │ leadership lost
//!    │ rejected by the server      │                                   ▼
//!    ▼                                                         Stopped (the manager is told)
//! Failed (final: its workers never start)
//! ```
//!
//! A stop request (host shutdown) ends the task from any state; the manager then shuts the
//! pool down. Losing leadership stops this plugin's pool at once — a replica that is no longer
//! leader must not reconcile (the elector gives up before the lease can expire for others) —
//! and tells the manager, which reports it to whoever runs it (`trellis run` exits, like
//! client-go's leader election, and comes back as a warm standby).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::plugin::Runner;
use super::services::Services;
use super::stats::PluginPhase;
use crate::informer::{SyncError, SyncFailure, SyncStatus};
use crate::ops::leader::Leadership;

/// How often a running plugin's health is looked at for /readyz.
const HEALTH_EVERY: Duration = Duration::from_secs(1);

/// Grace for held keys when leadership is lost: short, the lease is going to someone else.
const LOST_LEADERSHIP_GRACE: Duration = Duration::from_secs(2);

pub(crate) struct Supervision {
    pub services: Arc<Services>,
    pub leadership: Option<watch::Receiver<Leadership>>,
    pub stop: CancellationToken,
    /// Cancelled when this replica lost leadership while running.
    pub lost: CancellationToken,
}

pub(crate) async fn supervise(runner: Arc<Runner>, mut supervision: Supervision) {
    match synced(&runner, &supervision.stop).await {
        Ok(()) => {}
        Err(None) => return,
        Err(Some(failure)) => {
            error!(plugin = %runner.name, error = %failure, "plugin failed: its workers will not start");
            runner.set_phase(PluginPhase::Failed, false, failure.to_string());
            return;
        }
    }
    if !leading(&runner, &mut supervision).await {
        return;
    }
    if let Err(failure) = runner.start_pool(&supervision.services) {
        error!(plugin = %runner.name, error = %failure, "cannot start the worker pool");
        runner.set_phase(PluginPhase::Failed, false, failure.to_string());
        return;
    }
    runner.set_phase(PluginPhase::Running, true, "running");
    run(&runner, supervision).await;
}

/// Waits until every watch of the plugin is synced. `Err(None)`: stop requested.
async fn synced(runner: &Runner, stop: &CancellationToken) -> Result<(), Option<SyncError>> {
    let parts = runner.parts();
    for subscription in parts.subscriptions.iter() {
        let watch = subscription.spec().to_string();
        let mut status = subscription.status_updates();
        let mut stalled_reported = false;
        loop {
            let current = status.borrow_and_update().clone();
            match current {
                SyncStatus::Synced { took } => {
                    info!(plugin = %runner.name, %watch, took_ms = took.as_millis() as u64, "watch synced");
                    break;
                }
                SyncStatus::Failed { message } => {
                    return Err(Some(SyncError {
                        plugin: runner.name.clone(),
                        watch,
                        reason: SyncFailure::Rejected { message },
                    }));
                }
                SyncStatus::Stalled { waited, last_error } => {
                    let failure = SyncError {
                        plugin: runner.name.clone(),
                        watch: watch.clone(),
                        reason: SyncFailure::TimedOut { waited, last_error },
                    };
                    if !stalled_reported {
                        error!(plugin = %runner.name, error = %failure, "cache sync timed out; still retrying");
                        stalled_reported = true;
                    }
                    runner.set_phase(PluginPhase::Syncing, false, failure.to_string());
                }
                SyncStatus::Syncing { last_error } => {
                    let detail = match last_error {
                        Some(error) => format!("syncing watch {watch}; last error: {error}"),
                        None => format!("syncing watch {watch}"),
                    };
                    runner.set_phase(PluginPhase::Syncing, false, detail);
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return Err(None),
                changed = status.changed() => if changed.is_err() {
                    return Err(Some(SyncError {
                        plugin: runner.name.clone(),
                        watch,
                        reason: SyncFailure::Stopped,
                    }));
                }
            }
        }
    }
    Ok(())
}

/// Waits until this replica leads (at once without election). False: stop requested.
async fn leading(runner: &Runner, supervision: &mut Supervision) -> bool {
    let Some(leadership) = supervision.leadership.as_mut() else {
        return true;
    };
    loop {
        let current = leadership.borrow_and_update().clone();
        match current {
            Leadership::Leading => return true,
            Leadership::Following { holder } => {
                let detail = match holder {
                    Some(holder) => format!("standby: caches warm, {holder} leads"),
                    None => "standby: caches warm, waiting for the lease".to_string(),
                };
                runner.set_phase(PluginPhase::Standby, true, detail);
            }
        }
        tokio::select! {
            _ = supervision.stop.cancelled() => return false,
            changed = leadership.changed() => if changed.is_err() {
                // The elector is gone (host shutting down).
                return false;
            }
        }
    }
}

/// Running: keeps /readyz in step with the pool's health until stop or lost leadership.
async fn run(runner: &Runner, supervision: Supervision) {
    let Supervision {
        mut leadership,
        stop,
        lost,
        ..
    } = supervision;
    let mut ticks = tokio::time::interval(HEALTH_EVERY);
    let mut degraded = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = lost_leadership(leadership.as_mut()) => {
                warn!(plugin = %runner.name, "leadership lost: stopping the workers");
                if let Some(pool) = runner.pool() {
                    let report = pool.shutdown(LOST_LEADERSHIP_GRACE).await;
                    if !report.drained() {
                        warn!(
                            plugin = %runner.name,
                            cancelled = report.cancelled.len(),
                            "calls cancelled at leadership loss"
                        );
                    }
                }
                runner.set_phase(PluginPhase::Stopped, false, "stopped: leadership lost");
                lost.cancel();
                return;
            }
            _ = ticks.tick() => {
                let Some(pool) = runner.pool() else { continue };
                let health = pool.health();
                if health.is_degraded() != degraded {
                    degraded = health.is_degraded();
                    if degraded {
                        runner.set_phase(PluginPhase::Running, false, health.to_string());
                    } else {
                        runner.set_phase(PluginPhase::Running, true, "running");
                    }
                }
            }
        }
    }
}

/// Resolves when this replica stops leading; never without an election (or once the elector
/// is gone, which only happens at shutdown).
async fn lost_leadership(leadership: Option<&mut watch::Receiver<Leadership>>) {
    let Some(leadership) = leadership else {
        return std::future::pending().await;
    };
    loop {
        if !leadership.borrow_and_update().is_leading() {
            return;
        }
        if leadership.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}
