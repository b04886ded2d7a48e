//! Graceful shutdown: stop intake, let held keys finish within a deadline, report the rest.
//!
//! Contract of [`WorkQueue::shutdown`]:
//! 1. Intake stops at once: adds return `Refused` (and are counted), `next` returns `None`, and
//!    idle workers are woken so they see it.
//! 2. Keys held by workers may finish until the grace period ends; their outcomes are recorded,
//!    but a rerun they request cannot happen and is reported as pending instead.
//! 3. The report names every key that was still held at the deadline and every key with work
//!    that did not run (queued, waiting, gated, or requested while held). Nothing is silently
//!    dropped: the host logs the report, and the next leader's initial list covers these keys.
//!
//! The queue does not cancel workers itself: the worker pool owns their tasks and decides
//! whether to abort them after the deadline. A guard finished after the deadline is still
//! accepted.

use super::key::QueueKey;
use super::work_queue::WorkQueue;
use std::time::Duration;
use tokio::time::Instant;

/// What a shutdown left behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShutdownReport<K> {
    /// Keys still held by workers when the grace period ended (unordered).
    pub in_flight: Vec<K>,
    /// Keys with work that will not run in this process (unordered). A key still held and with
    /// a rerun requested is in both lists.
    pub pending: Vec<K>,
    /// Keys held when shutdown began that finished within the grace period.
    pub finished_in_grace: usize,
    /// Adds refused since the queue closed.
    pub refused_adds: u64,
}

impl<K> ShutdownReport<K> {
    /// True when no worker was still holding a key at the deadline.
    pub fn drained(&self) -> bool {
        self.in_flight.is_empty()
    }
}

impl<K: QueueKey> WorkQueue<K> {
    /// Shuts the queue down, waiting up to `grace` for held keys to finish (see the module docs).
    /// Safe to call more than once; each call reports the state at its own deadline.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport<K> {
        let deadline = super::delaying::due_after(Instant::now(), grace);
        let held_at_close = {
            let mut state = self.shared.state.lock();
            state.close();
            state.in_flight_count()
        };
        self.shared.wake.notify_waiters();
        loop {
            let drained = self.shared.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.shared.state.lock().in_flight_count() == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                break;
            }
        }
        let report = {
            let state = self.shared.state.lock();
            let (in_flight, pending) = state.leftovers();
            ShutdownReport {
                finished_in_grace: held_at_close.saturating_sub(in_flight.len()),
                in_flight,
                pending,
                refused_adds: state.refused_adds(),
            }
        };
        if report.drained() {
            tracing::info!(
                plugin = %self.shared.plugin,
                finished_in_grace = report.finished_in_grace,
                pending = report.pending.len(),
                refused_adds = report.refused_adds,
                "work queue shut down"
            );
        } else {
            tracing::warn!(
                plugin = %self.shared.plugin,
                still_in_flight = ?report.in_flight,
                finished_in_grace = report.finished_in_grace,
                pending = report.pending.len(),
                "work queue shut down with keys still held after the grace period"
            );
        }
        report
    }
}
