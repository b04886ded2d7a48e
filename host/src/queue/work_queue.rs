//! The work queue's public face: sync adds, async takes.
//!
//! Contract:
//! * Adds (`add`, `add_low`, `add_after`, `add_rate_limited`) are synchronous and never block or
//!   await: they take a short lock, change a few pointers and return (DESIGN invariant 1: the
//!   event path never waits on the queue). There is no capacity limit to block on; memory is
//!   bounded by the number of distinct keys, because duplicates merge.
//! * `next().await` hands out the next ready key as a [`Guard`], waiting as long as needed; it
//!   returns `None` once the queue is shut down. It is cancellation-safe: a key is taken and
//!   wrapped in its guard without an await in between, so dropping the future never loses one.
//! * Idle workers sleep until a key is added or the earliest delay, retry token or overall-limit
//!   token is due; there is no background task and no polling.
//!
//! Wake-ups use one `Notify`: an add that makes a key ready (or a deadline earlier) wakes one
//! waiter, and a worker that takes a key while more are pending passes the wake-up on, the way
//! client-go chains `cond.Signal`. So a single idle worker is woken per event, not all of them.
//! The invariant is "some waiter's timer covers the next deadline, or a wake-up is pending":
//! a woken waiter recomputes its deadline, a taker with more pending passes a wake-up on, and a
//! waiter cancelled mid-wait passes one on from its destructor.
//!
//! Only *sleepers* need wake-ups: waiters that looked at the queue, found nothing to take, and
//! are about to wait. A waiter registers as one in the same lock section as that last look, and
//! unregisters when it looks again (or is cancelled), so the state counts them exactly where
//! adds and takes decide whether to wake (`QueueState::sleepers`). With nobody asleep (a busy
//! queue: workers are reconciling, not waiting) an add or take sends no wake-up at all; any
//! waiter that starts later looks at the queue before it sleeps.

use super::clock::Now;
use super::config::{QueueConfig, QueueError};
use super::delaying::due_after;
use super::entry::Request;
use super::guard::Guard;
use super::in_flight::InFlightStats;
use super::key::QueueKey;
use super::metrics::{InFlightProbe, QueueMetrics, Recorder};
use super::priority::Priority;
use super::state::{AddOutcome, Added, Outcome, QueueState, QueueStats, Take, Ticket};
use parking_lot::Mutex;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// State shared by a queue's handles and its guards.
pub(crate) struct Shared<K: QueueKey> {
    pub(crate) state: Mutex<QueueState<K>>,
    /// Wakes workers waiting in `next`.
    pub(crate) wake: Notify,
    /// Wakes `shutdown` when the last in-flight key finishes after close.
    pub(crate) drained: Notify,
    recorder: Recorder,
    pub(crate) plugin: String,
}

impl<K: QueueKey> Shared<K> {
    /// Finishes the hold of a guard.
    pub(crate) fn finish(&self, ticket: Ticket, outcome: Outcome) {
        let finished = {
            let mut state = self.state.lock();
            state.finish(ticket, outcome, &mut Now::lazy())
        };
        if let Some(worked) = finished.worked {
            self.recorder.worked_for(worked);
        }
        if finished.wake {
            self.wake.notify_one();
        }
        if finished.drained {
            self.drained.notify_waiters();
        }
    }
}

impl<K: QueueKey> InFlightProbe for Shared<K> {
    fn in_flight(&self) -> InFlightStats {
        self.state.lock().in_flight_stats(Instant::now())
    }
}

/// A registered sleeper, while `next` waits. Woken normally, it is defused and the next look
/// unregisters it; dropped (the waiting future was cancelled), it unregisters and wakes another
/// waiter: only one waiter is woken per event and per deadline, so without this a cancelled
/// waiter could take the only timer for a due key with it.
struct Asleep<'a, K: QueueKey>(&'a Shared<K>);

impl<K: QueueKey> Drop for Asleep<'_, K> {
    fn drop(&mut self) {
        self.0.state.lock().woke();
        self.0.wake.notify_one();
    }
}

/// How a look at the queue relates to sleeping.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Look {
    /// Just look (`try_next`, or the first look of `next`).
    Plain,
    /// The look before sleeping: if nothing can be taken, register as a sleeper.
    BeforeSleep,
    /// The first look after sleeping: unregister, then look.
    AfterSleep,
}

/// Why a take found nothing.
enum Empty {
    Closed,
    /// Nothing before this instant; `None`: nothing until an add.
    Until(Option<Instant>),
}

/// One plugin's work queue. Cheap to clone; clones share the queue.
pub struct WorkQueue<K: QueueKey> {
    pub(crate) shared: Arc<Shared<K>>,
}

impl<K: QueueKey> Clone for WorkQueue<K> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<K: QueueKey> std::fmt::Debug for WorkQueue<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkQueue")
            .field("plugin", &self.shared.plugin)
            .field("stats", &self.stats())
            .finish()
    }
}

impl<K: QueueKey> WorkQueue<K> {
    /// A queue without metrics. Fails if the config is invalid, naming the field.
    pub fn new(config: QueueConfig) -> Result<Self, QueueError> {
        Self::build(&config, Recorder::default())
    }

    /// A queue reporting into `metrics`. Fails if the config is invalid, or if a live queue
    /// already reports under the same `plugin` and `name`.
    pub fn with_metrics(config: QueueConfig, metrics: &QueueMetrics) -> Result<Self, QueueError> {
        config.validate()?;
        let recorder = metrics.recorder_for(&config)?;
        let queue = Self::build(&config, recorder.clone())?;
        let probe: Weak<dyn InFlightProbe> = Arc::downgrade(&queue.shared) as _;
        recorder.attach_probe(probe);
        Ok(queue)
    }

    fn build(config: &QueueConfig, recorder: Recorder) -> Result<Self, QueueError> {
        let state = QueueState::new(config, recorder.clone(), Instant::now())?;
        Ok(Self {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                wake: Notify::new(),
                drained: Notify::new(),
                recorder,
                plugin: config.plugin.clone(),
            }),
        })
    }

    fn apply(&self, op: impl FnOnce(&mut QueueState<K>, &mut Now) -> Added) -> AddOutcome {
        let added = {
            let mut state = self.shared.state.lock();
            // The clock is read (if at all) under the lock, so the state sees time move
            // forward only.
            op(&mut state, &mut Now::lazy())
        };
        if added.wake {
            self.shared.wake.notify_one();
        }
        added.outcome
    }

    /// Queues `key` at normal priority: a real change.
    pub fn add(&self, key: K) -> AddOutcome {
        self.add_with_priority(key, Priority::Normal)
    }

    /// Queues `key` at low priority: an initial-list, relist or resync event.
    pub fn add_low(&self, key: K) -> AddOutcome {
        self.add_with_priority(key, Priority::Low)
    }

    /// Queues `key` at `priority`.
    pub fn add_with_priority(&self, key: K, priority: Priority) -> AddOutcome {
        self.apply(|s, now| s.add(key, Request::Now(priority), now))
    }

    /// Makes `key` due after `delay` (at most [`super::MAX_DELAY`]); a zero delay is
    /// [`WorkQueue::add`]. An earlier pending due time wins; a later one is never postponed.
    pub fn add_after(&self, key: K, delay: Duration) -> AddOutcome {
        if delay.is_zero() {
            return self.add(key);
        }
        self.apply(|s, now| {
            let due = due_after(now.get(), delay);
            s.add(key, Request::At { due, retry: false }, now)
        })
    }

    /// Records a failure of `key` and retries it after its backoff, through the retry bucket.
    pub fn add_rate_limited(&self, key: K) -> AddOutcome {
        self.apply(|s, now| s.add_rate_limited(key, now))
    }

    /// Resets `key`'s failure count, so its next failure backs off from the base again.
    pub fn forget(&self, key: &K) {
        self.shared.state.lock().forget(key);
    }

    /// Consecutive failures recorded for `key`.
    pub fn num_requeues(&self, key: &K) -> u32 {
        self.shared.state.lock().failures(key)
    }

    /// Counts by phase.
    pub fn stats(&self) -> QueueStats {
        self.shared.state.lock().stats()
    }

    fn try_take(&self, look: Look) -> Result<Guard<K>, Empty> {
        let take = {
            let mut state = self.shared.state.lock();
            if look == Look::AfterSleep {
                state.woke();
            }
            let take = state.take(&mut Now::lazy());
            if look == Look::BeforeSleep && matches!(take, Take::Wait(_)) {
                state.sleep();
            }
            take
        };
        match take {
            Take::Got(taken) => {
                if taken.more {
                    self.shared.wake.notify_one();
                }
                if let Some(queued_for) = taken.queued_for {
                    self.shared.recorder.queued_for(queued_for);
                }
                Ok(Guard::new(
                    self.shared.clone(),
                    taken.key,
                    taken.ticket,
                    taken.priority,
                    taken.requeues,
                ))
            }
            Take::Wait(until) => Err(Empty::Until(until)),
            Take::Closed => Err(Empty::Closed),
        }
    }

    /// Takes the next ready key without waiting; `None` if none is ready or the queue is shut
    /// down.
    pub fn try_next(&self) -> Option<Guard<K>> {
        self.try_take(Look::Plain).ok()
    }

    /// Waits for the next ready key; `None` once the queue is shut down.
    pub async fn next(&self) -> Option<Guard<K>> {
        let mut look = Look::Plain;
        loop {
            match self.try_take(look) {
                Ok(guard) => return Some(guard),
                Err(Empty::Closed) => return None,
                Err(Empty::Until(_)) => {}
            }
            // Register before looking again, so a wake-up between the two looks is not lost.
            let notified = self.shared.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let until = match self.try_take(Look::BeforeSleep) {
                Ok(guard) => return Some(guard),
                Err(Empty::Closed) => return None,
                Err(Empty::Until(until)) => until,
            };
            // This waiter may be the one whose timer covers the next deadline; if it is
            // cancelled while waiting, another waiter must take over that timer.
            let asleep = Asleep(&self.shared);
            match until {
                Some(deadline) => {
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep_until(deadline) => {}
                    }
                }
                None => notified.await,
            }
            std::mem::forget(asleep);
            look = Look::AfterSleep;
        }
    }

    /// Stops intake (adds are refused) and hand-out (`next` returns `None`), without waiting.
    /// Keys held by workers can still be finished. See also `shutdown`.
    pub fn close(&self) {
        self.shared.state.lock().close();
        self.shared.wake.notify_waiters();
    }

    /// True once the queue is shut down.
    pub fn is_closed(&self) -> bool {
        self.shared.state.lock().is_closed()
    }
}
