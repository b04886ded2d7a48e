//! The guard a worker holds while it reconciles a key.
//!
//! Contract: every key handed out is finished exactly once. A worker reports how the reconcile
//! ended with [`Guard::done`], [`Guard::retry`] or [`Guard::requeue_after`]; if the guard is
//! dropped without that (the worker returned early, panicked, its future was cancelled by a
//! timeout or by shutdown), `Drop` finishes the key as a failure: it is marked done and retried
//! with backoff. So no path strands a key in the in-flight set, and no path loses it either: the
//! key was not reconciled, so it runs again (DESIGN invariants 2 and 6).
//!
//! Dropping runs on unwinding too, which is why the host profile keeps `panic = unwind`.
//! Finishing takes the queue lock briefly and never awaits, so it is safe in `Drop`, in a
//! cancelled future and outside a runtime.

use super::key::QueueKey;
use super::priority::Priority;
use super::state::{Outcome, Ticket};
use super::work_queue::Shared;
use std::sync::Arc;
use std::time::Duration;

struct Held<K> {
    key: K,
    ticket: Ticket,
    priority: Priority,
    requeues: u32,
}

/// A key held by a worker; see the module docs for the contract.
#[must_use = "dropping a guard without an outcome retries the key with backoff"]
pub struct Guard<K: QueueKey> {
    shared: Arc<Shared<K>>,
    /// Always `Some` while the guard can be observed: only the consuming methods and `Drop`
    /// take it.
    held: Option<Held<K>>,
}

impl<K: QueueKey> Guard<K> {
    pub(crate) fn new(
        shared: Arc<Shared<K>>,
        key: K,
        ticket: Ticket,
        priority: Priority,
        requeues: u32,
    ) -> Self {
        Self {
            shared,
            held: Some(Held {
                key,
                ticket,
                priority,
                requeues,
            }),
        }
    }

    fn held(&self) -> &Held<K> {
        match &self.held {
            Some(held) => held,
            None => unreachable!("a guard is only emptied by consuming or dropping it"),
        }
    }

    /// The key to reconcile.
    pub fn key(&self) -> &K {
        &self.held().key
    }

    /// The priority the key was taken at.
    pub fn priority(&self) -> Priority {
        self.held().priority
    }

    /// Consecutive failures before this attempt (0 on a first attempt or after a success).
    pub fn requeues(&self) -> u32 {
        self.held().requeues
    }

    /// Finishes the key with `outcome`.
    pub fn finish(mut self, outcome: super::Outcome) {
        if let Some(held) = self.held.take() {
            self.shared.finish(held.ticket, outcome);
        }
    }

    /// Reconciled successfully: the failure count resets.
    pub fn done(self) {
        self.finish(Outcome::Success);
    }

    /// Failed: retry after the key's backoff, through the retry bucket.
    pub fn retry(self) {
        self.finish(Outcome::Retry);
    }

    /// Reconciled; look again after `delay` (zero: as soon as possible).
    pub fn requeue_after(self, delay: Duration) {
        self.finish(Outcome::RequeueAfter(delay));
    }
}

impl<K: QueueKey> Drop for Guard<K> {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            tracing::warn!(
                plugin = %self.shared.plugin,
                key = ?held.key,
                panicking = std::thread::panicking(),
                "work queue guard dropped without an outcome; retrying the key with backoff"
            );
            self.shared.finish(held.ticket, Outcome::Retry);
        }
    }
}

impl<K: QueueKey> std::fmt::Debug for Guard<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("key", &self.held.as_ref().map(|h| &h.key))
            .finish_non_exhaustive()
    }
}
