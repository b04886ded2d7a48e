//! The queue's core: every state transition, synchronous, with the current time passed in (as a
//! [`Now`] that reads the clock only if the operation needs it; see `clock.rs`).
//!
//! `queue.rs` wraps this in a mutex and adds waiting; everything that decides *what* happens to
//! a key is here, so it can be read (and tested) without async. Each operation first calls
//! [`QueueState::advance`], which moves keys whose delay has elapsed into the ready FIFOs and
//! admits due retries that have a token. Doing this on every touch, rather than from a timer
//! task, keeps ready order equal to the order keys became due: nothing can be pushed between a
//! key's due time and its promotion without first promoting it.
//!
//! Keys live in the key table (`table.rs`); every other structure holds their ids. So an add
//! hashes its key once, and a take and a finish reach the key's record by id without hashing.

use super::clock::Now;
use super::config::{QueueConfig, QueueError};
use super::delaying::{DelaySet, due_after};
use super::entry::{Entry, Phase, Request};
use super::fairness::Slot;
use super::in_flight::{InFlight, InFlightStats};
use super::key::QueueKey;
use super::limiters::{Backoff, TokenBucket};
use super::metrics::Recorder;
use super::priority::{Levels, Priority};
use super::rate_limiting::RetryGate;
use super::table::{Id, KeyTable, Lookup, Record};
use std::time::Duration;
use tokio::time::Instant;

/// What an add did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddOutcome {
    /// The key had no pending work and now has some (queued, scheduled, or marked to run again
    /// after its current worker finishes).
    Queued,
    /// The key already had pending work; the request was merged into it (dedup).
    Merged,
    /// The queue is shut down (or, impossibly, holds 2^32 keys already); nothing was recorded.
    Refused,
}

/// How a worker's reconcile ended; decides what happens to the key next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Reconciled: the failure count resets; the key runs again only if re-added.
    Success,
    /// Reconciled, and the plugin asked to look again after this long (zero: as soon as
    /// possible). The failure count resets.
    RequeueAfter(Duration),
    /// Failed: the failure count grows and the key is retried after its backoff, through the
    /// retry bucket.
    Retry,
}

/// Counts by phase, for tests, `/debug` endpoints and shutdown logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Ready at normal priority.
    pub ready_normal: usize,
    /// Ready at low priority.
    pub ready_low: usize,
    /// Waiting for a delay (requeue-after or backoff).
    pub waiting: usize,
    /// Due retries waiting for a retry token.
    pub gated: usize,
    /// Held by workers.
    pub in_flight: usize,
    /// Keys the queue holds any state for.
    pub keys: usize,
}

pub(crate) struct Added {
    pub(crate) outcome: AddOutcome,
    /// Waiters should look again: a key became ready or the next deadline moved earlier.
    pub(crate) wake: bool,
}

/// Names one hold of a key: its record and the placement it was taken from. A guard carries it
/// so that finishing reaches the record without a hash lookup, and a mismatch (which no
/// correct caller produces) is refused instead of finishing someone else's hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticket {
    id: Id,
    seq: u64,
}

pub(crate) struct Taken<K> {
    pub(crate) key: K,
    pub(crate) ticket: Ticket,
    pub(crate) priority: Priority,
    pub(crate) requeues: u32,
    /// How long the key was ready (`None` without metrics, which alone read it).
    pub(crate) queued_for: Option<Duration>,
    /// Other keys are pending, so another waiter should look.
    pub(crate) more: bool,
}

pub(crate) enum Take<K> {
    Got(Taken<K>),
    /// Nothing can be taken before this instant (`None`: until something is added).
    Wait(Option<Instant>),
    Closed,
}

#[derive(Default)]
pub(crate) struct Finished {
    pub(crate) worked: Option<Duration>,
    pub(crate) wake: bool,
    /// The queue is closed and no key is in flight any more.
    pub(crate) drained: bool,
}

/// The structures a key's id can be placed in, kept apart from the key table so that a record
/// can be updated while its id is (re)placed.
#[derive(Debug)]
struct Places<K: QueueKey> {
    levels: Levels<K::Group, Id>,
    delayed: DelaySet<Id>,
    gate: RetryGate<Id>,
    next_seq: u64,
    recorder: Recorder,
    /// When the queue was made: the stand-in for timestamps nothing will read (see
    /// `metrics_stamp`).
    created: Instant,
}

impl<K: QueueKey> Places<K> {
    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// A timestamp that only metrics read (when a key was taken, when a normal key became
    /// ready): the real time if the queue has metrics, else the queue's creation time without
    /// reading the clock.
    fn metrics_stamp(&self, now: &mut Now) -> Instant {
        if self.recorder.is_enabled() {
            now.get()
        } else {
            self.created
        }
    }

    /// When a key of `priority` became ready. Aging reads it for low keys, so they always get
    /// the real time; for normal keys only metrics read it.
    fn ready_stamp(&self, now: &mut Now, priority: Priority) -> Instant {
        match priority {
            Priority::Low => now.get(),
            Priority::Normal => self.metrics_stamp(now),
        }
    }

    /// Places `id` (of fairness group `group`) at the back of the ready FIFO of `priority`.
    fn ready(
        &mut self,
        id: Id,
        group: &K::Group,
        priority: Priority,
        since: Instant,
        new_add: bool,
    ) -> Phase {
        let seq = self.seq();
        self.levels.push(priority, group, id, seq, since);
        self.recorder.entered(priority, new_add);
        Phase::Ready {
            priority,
            since,
            seq,
        }
    }

    fn gated(&mut self, id: Id) -> Phase {
        let seq = self.seq();
        self.gate.push(Slot { id, seq });
        Phase::Gated { seq }
    }

    /// Places a key due at `due`: the delay set if it is in the future, otherwise the retry gate
    /// (a retry, when the gate is on) or the normal FIFO.
    fn schedule(
        &mut self,
        id: Id,
        group: &K::Group,
        due: Instant,
        retry: bool,
        now: &mut Now,
    ) -> Phase {
        if due > now.get() {
            let seq = self.seq();
            self.delayed.insert(due, seq, id);
            Phase::Waiting { due, seq, retry }
        } else if retry && self.gate.enabled() {
            self.gated(id)
        } else {
            self.ready(id, group, Priority::Normal, due, true)
        }
    }

    /// Places a key as `request` asks.
    fn place(&mut self, id: Id, group: &K::Group, request: Request, now: &mut Now) -> Phase {
        match request {
            Request::Now(p) => {
                let since = self.ready_stamp(now, p);
                self.ready(id, group, p, since, true)
            }
            Request::At { due, retry } => self.schedule(id, group, due, retry, now),
        }
    }

    /// Takes the key out of the structure `phase` says it is in. The delay set removes its entry
    /// exactly; FIFOs and the gate leave a stale slot behind instead.
    fn unlink(&mut self, phase: Phase) {
        match phase {
            Phase::Ready { priority, seq, .. } => {
                self.levels.unlink(priority, seq);
                self.recorder.left(priority);
            }
            Phase::Waiting { due, seq, .. } => {
                self.delayed.remove(due, seq);
            }
            Phase::Gated { .. } => self.gate.unlink(),
            Phase::InFlight { .. } => {}
        }
    }

    fn next_deadline(&self, now: Instant) -> Option<Instant> {
        match (self.delayed.next_due(), self.gate.next_admission(now)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn has_pending(&self) -> bool {
        self.levels.live(Priority::Normal) > 0
            || self.levels.live(Priority::Low) > 0
            || self.delayed.len() > 0
            || self.gate.live() > 0
    }
}

impl Phase {
    /// The placement id, for phases that sit in a FIFO or the delay set.
    fn placement(&self) -> Option<u64> {
        match *self {
            Phase::Ready { seq, .. } | Phase::Waiting { seq, .. } | Phase::Gated { seq } => {
                Some(seq)
            }
            Phase::InFlight { .. } => None,
        }
    }
}

/// Is `slot` its key's current placement (not a stale copy)?
fn is_live<K: QueueKey>(table: &KeyTable<K>, slot: &Slot<Id>) -> bool {
    table
        .get(slot.id)
        .is_some_and(|r| r.entry.phase.placement() == Some(slot.seq))
}

/// How many takes ahead [`prefetch_ahead`] fetches a key's index line; its record is fetched
/// twice as far ahead, so the record's tag is in cache when the index line is wanted.
const PREFETCH_DISTANCE: usize = 8;

/// With a large backlog the key index is far bigger than the caches, and each finish would wait
/// for a miss on its key's index line. A take knows which keys come next (the FIFO order), so it
/// asks for the lines those keys' finishes will need, and the misses overlap with this work
/// instead of stalling later. Only hints: a stale or wrong slot costs a useless fetch.
fn prefetch_ahead<K: QueueKey>(table: &KeyTable<K>, levels: &Levels<K::Group, Id>, p: Priority) {
    if let Some(slot) = levels.peek(p, PREFETCH_DISTANCE) {
        table.prefetch_removal(slot.id);
    }
    if let Some(slot) = levels.peek(p, 2 * PREFETCH_DISTANCE) {
        table.prefetch_record(slot.id);
    }
}

/// All of one queue's state.
#[derive(Debug)]
pub(crate) struct QueueState<K: QueueKey> {
    table: KeyTable<K>,
    places: Places<K>,
    overall: Option<TokenBucket>,
    backoff: Backoff,
    in_flight: InFlight,
    closed: bool,
    refused_adds: u64,
    /// Keys whose requested rerun was dropped because the queue had shut down.
    dropped_redos: Vec<K>,
    /// Workers waiting for a key (see `work_queue.rs`): wake-ups are sent only while there
    /// are some.
    sleepers: usize,
}

impl<K: QueueKey> QueueState<K> {
    /// A queue for a config; validates it first.
    pub(crate) fn new(
        config: &QueueConfig,
        recorder: Recorder,
        now: Instant,
    ) -> Result<Self, QueueError> {
        config.validate()?;
        let bucket = |limit: &Option<super::config::RateLimit>, field: &'static str| {
            limit
                .as_ref()
                .map(|l| {
                    TokenBucket::new(l, now).ok_or_else(|| QueueError::Invalid {
                        plugin: config.plugin.clone(),
                        field,
                        problem: format!("{l:?} cannot be represented as a token bucket"),
                    })
                })
                .transpose()
        };
        Ok(Self {
            table: KeyTable::default(),
            places: Places {
                levels: Levels::new(config.fairness, config.aging),
                delayed: DelaySet::default(),
                gate: RetryGate::new(bucket(&config.retry_limit, "retry_limit")?),
                next_seq: 0,
                recorder,
                created: now,
            },
            overall: bucket(&config.overall_limit, "overall_limit")?,
            backoff: Backoff::new(&config.backoff),
            in_flight: InFlight::default(),
            closed: false,
            refused_adds: 0,
            dropped_redos: Vec::new(),
            sleepers: 0,
        })
    }

    /// Whether delayed or gated keys may need promoting, which needs the time.
    fn has_timed(&self) -> bool {
        self.places.delayed.len() > 0 || self.places.gate.live() > 0
    }

    /// Moves due keys forward: elapsed delays into the ready FIFOs (or the retry gate), and due
    /// retries through the gate while tokens last.
    pub(crate) fn advance(&mut self, now: &mut Now) {
        if !self.has_timed() {
            return;
        }
        let now = now.get();
        let Self { table, places, .. } = self;
        while let Some((due, seq, id)) = places.delayed.pop_due(now) {
            let Some(record) = table.get_mut(id) else {
                tracing::error!(id, "delay set held an id with no record; dropped");
                continue;
            };
            let retry = match record.entry.phase {
                Phase::Waiting { seq: s, retry, .. } if s == seq => retry,
                phase => {
                    tracing::error!(key = ?record.key, ?phase, "delay set out of step with entry; skipped");
                    continue;
                }
            };
            record.entry.phase = if retry && places.gate.enabled() {
                places.gated(id)
            } else {
                places.ready(id, record.key.group(), Priority::Normal, due, true)
            };
        }
        while let Some(slot) = places.gate.admit_one(now, |s| is_live(table, s)) {
            if let Some(record) = table.get_mut(slot.id) {
                record.entry.phase =
                    places.ready(slot.id, record.key.group(), Priority::Normal, now, true);
            }
        }
    }

    /// Adds `key` with `request` (see `entry.rs` for the merge rules).
    pub(crate) fn add(&mut self, key: K, request: Request, now: &mut Now) -> Added {
        self.add_with(key, now, |_| request)
    }

    /// Records a failure of `key` and schedules its retry after the backoff.
    pub(crate) fn add_rate_limited(&mut self, key: K, now: &mut Now) -> Added {
        let backoff = self.backoff.clone();
        let recorder = self.places.recorder.clone();
        let t = now.get();
        self.add_with(key, now, |failures| {
            *failures = failures.saturating_add(1);
            recorder.retried();
            Request::At {
                due: due_after(t, backoff.delay(*failures)),
                retry: true,
            }
        })
    }

    /// The shared add path; `request` sees (and may bump) the key's failure count.
    fn add_with(
        &mut self,
        key: K,
        now: &mut Now,
        request: impl FnOnce(&mut u32) -> Request,
    ) -> Added {
        if self.closed {
            self.refused_adds += 1;
            tracing::debug!(?key, "queue shut down; add refused");
            return Added {
                outcome: AddOutcome::Refused,
                wake: false,
            };
        }
        self.advance(now);
        let places = &mut self.places;
        let added = match self.table.lookup(key) {
            Lookup::Vacant(vacant) => {
                let mut failures = 0;
                let request = request(&mut failures);
                let inserted = self.table.insert(vacant, |id, key| Entry {
                    phase: places.place(id, key.group(), request, now),
                    failures,
                });
                match inserted {
                    Ok(_) => Added {
                        outcome: AddOutcome::Queued,
                        wake: true,
                    },
                    Err(full) => {
                        tracing::error!(?full, "the queue's key table is full; add refused");
                        Added {
                            outcome: AddOutcome::Refused,
                            wake: false,
                        }
                    }
                }
            }
            Lookup::Found(id) => match self.table.get_mut(id) {
                Some(record) => {
                    let request = request(&mut record.entry.failures);
                    merge(places, id, record, request, now)
                }
                None => {
                    tracing::error!(id, "key table index names a missing record; add dropped");
                    Added {
                        outcome: AddOutcome::Refused,
                        wake: false,
                    }
                }
            },
        };
        self.compact_if_stale();
        Added {
            wake: added.wake && self.sleepers > 0,
            ..added
        }
    }

    /// Resets `key`'s failure count (client-go's `Forget`).
    pub(crate) fn forget(&mut self, key: &K) {
        if let Some(record) = self.table.find(key).and_then(|id| self.table.get_mut(id)) {
            record.entry.failures = 0;
        }
    }

    /// `key`'s failure count (client-go's `NumRequeues`).
    pub(crate) fn failures(&self, key: &K) -> u32 {
        self.table
            .find(key)
            .and_then(|id| self.table.get(id))
            .map_or(0, |r| r.entry.failures)
    }

    /// Hands the next ready key to a worker, or says how long to wait.
    pub(crate) fn take(&mut self, now: &mut Now) -> Take<K> {
        if self.closed {
            return Take::Closed;
        }
        self.advance(now);
        let Some(choice) = self.places.levels.choose(|| now.get()) else {
            return Take::Wait(self.places.next_deadline(now.get()));
        };
        if let Some(limit) = &self.overall
            && let Err(next_token) = limit.try_acquire()
        {
            return Take::Wait(Some(next_token));
        }
        let Self {
            table,
            places,
            in_flight,
            sleepers,
            ..
        } = self;
        prefetch_ahead(table, &places.levels, choice.priority);
        let started = places.metrics_stamp(now);
        let popped = places.levels.pop(choice, |slot| {
            let record = table.get_mut(slot.id)?;
            match record.entry.phase {
                Phase::Ready {
                    seq,
                    since,
                    priority,
                } if seq == slot.seq => {
                    record.entry.phase = Phase::InFlight {
                        slot: in_flight.start(started),
                        taken: seq,
                        redo: None,
                    };
                    Some((since, priority, record.entry.failures, record.key.clone()))
                }
                _ => None,
            }
        });
        let Some((slot, (since, priority, requeues, key))) = popped else {
            tracing::error!(?choice, "ready count said a key was ready but none was");
            return Take::Wait(places.next_deadline(now.get()));
        };
        places.recorder.left(priority);
        let queued_for = places
            .recorder
            .is_enabled()
            .then(|| now.get().saturating_duration_since(since));
        Take::Got(Taken {
            key,
            ticket: Ticket {
                id: slot.id,
                seq: slot.seq,
            },
            priority,
            requeues,
            queued_for,
            more: *sleepers > 0 && places.has_pending(),
        })
    }

    /// A worker finished the hold `ticket` with `outcome`; places whatever was requested
    /// meanwhile.
    pub(crate) fn finish(&mut self, ticket: Ticket, outcome: Outcome, now: &mut Now) -> Finished {
        self.advance(now);
        let Self {
            table,
            places,
            in_flight,
            backoff,
            closed,
            dropped_redos,
            ..
        } = self;
        // No hash lookup: the ticket names the record.
        let Some(record) = table.get_mut(ticket.id) else {
            tracing::error!(?ticket, "finish for a key the queue does not hold; ignored");
            return Finished::default();
        };
        let Phase::InFlight { slot, taken, redo } = record.entry.phase else {
            let (key, phase) = (&record.key, record.entry.phase);
            tracing::error!(?key, ?phase, "finish for a key not in flight; ignored");
            return Finished::default();
        };
        if taken != ticket.seq {
            let key = &record.key;
            tracing::error!(
                ?key,
                ?ticket,
                "finish for another hold of this key; ignored"
            );
            return Finished::default();
        }
        let entry = &mut record.entry;
        let started = in_flight.finish(slot);
        let then =
            |redo: Option<Request>, next: Request| Some(redo.map_or(next, |r| r.merge(next)));
        let redo = match outcome {
            Outcome::Success => {
                entry.failures = 0;
                redo
            }
            Outcome::RequeueAfter(delay) => {
                entry.failures = 0;
                let next = if delay.is_zero() {
                    Request::Now(Priority::Normal)
                } else {
                    Request::At {
                        due: due_after(now.get(), delay),
                        retry: false,
                    }
                };
                then(redo, next)
            }
            Outcome::Retry => {
                entry.failures = entry.failures.saturating_add(1);
                places.recorder.retried();
                let due = due_after(now.get(), backoff.delay(entry.failures));
                then(redo, Request::At { due, retry: true })
            }
        };
        let placed = match redo {
            Some(request) if !*closed => {
                record.entry.phase = places.place(ticket.id, record.key.group(), request, now);
                true
            }
            redo => {
                let key = table.remove(ticket.id);
                if redo.is_some() {
                    dropped_redos.extend(key);
                }
                false
            }
        };
        let worked = match started {
            Some(started) if places.recorder.is_enabled() => {
                Some(now.get().saturating_duration_since(started))
            }
            _ => None,
        };
        Finished {
            worked,
            wake: placed && self.sleepers > 0,
            drained: *closed && in_flight.count() == 0,
        }
    }

    /// A worker found nothing to take and is about to wait for a wake-up.
    pub(crate) fn sleep(&mut self) {
        self.sleepers += 1;
    }

    /// A sleeping worker woke up (or was cancelled).
    pub(crate) fn woke(&mut self) {
        self.sleepers = self.sleepers.saturating_sub(1);
    }

    /// Stops intake and hand-out. Idempotent.
    pub(crate) fn close(&mut self) {
        self.closed = true;
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    pub(crate) fn refused_adds(&self) -> u64 {
        self.refused_adds
    }

    pub(crate) fn in_flight_count(&self) -> usize {
        self.in_flight.count()
    }

    /// Exact only for a queue with metrics (the only reader): without them, start times are
    /// not read from the clock (see `Places::metrics_stamp`).
    pub(crate) fn in_flight_stats(&self, now: Instant) -> InFlightStats {
        self.in_flight.stats(now)
    }

    /// Keys still held by workers, and keys with work that will not run (queued, waiting,
    /// gated, requested while held, or dropped at finish after shutdown). A key held *and* with
    /// a requested rerun appears in both.
    pub(crate) fn leftovers(&self) -> (Vec<K>, Vec<K>) {
        let mut held = Vec::new();
        let mut pending = self.dropped_redos.clone();
        for Record { key, entry, .. } in self.table.iter() {
            match entry.phase {
                Phase::InFlight { redo, .. } => {
                    held.push(key.clone());
                    if redo.is_some() {
                        pending.push(key.clone());
                    }
                }
                _ => pending.push(key.clone()),
            }
        }
        (held, pending)
    }

    pub(crate) fn stats(&self) -> QueueStats {
        QueueStats {
            ready_normal: self.places.levels.live(Priority::Normal),
            ready_low: self.places.levels.live(Priority::Low),
            waiting: self.places.delayed.len(),
            gated: self.places.gate.live(),
            in_flight: self.in_flight.count(),
            keys: self.table.len(),
        }
    }

    /// Drops stale FIFO slots once they outnumber live ones (see `priority.rs`).
    fn compact_if_stale(&mut self) {
        let table = &self.table;
        for p in [Priority::Normal, Priority::Low] {
            if self.places.levels.wants_compaction(p) {
                self.places.levels.compact(p, |s| is_live(table, s));
            }
        }
        if self.places.gate.wants_compaction() {
            self.places.gate.compact(|s| is_live(table, s));
        }
    }
}

/// Merges `request` into the existing record `id` (the rules are in `entry.rs`).
fn merge<K: QueueKey>(
    places: &mut Places<K>,
    id: Id,
    record: &mut Record<K>,
    request: Request,
    now: &mut Now,
) -> Added {
    let merged = |wake| Added {
        outcome: AddOutcome::Merged,
        wake,
    };
    let group = record.key.group();
    let entry = &mut record.entry;
    match (entry.phase, request) {
        (Phase::InFlight { slot, taken, redo }, request) => {
            entry.phase = Phase::InFlight {
                slot,
                taken,
                redo: Some(redo.map_or(request, |r| r.merge(request))),
            };
            Added {
                outcome: if redo.is_none() {
                    AddOutcome::Queued
                } else {
                    AddOutcome::Merged
                },
                wake: false,
            }
        }
        (
            old @ Phase::Ready {
                priority, since, ..
            },
            Request::Now(p),
        ) if p > priority => {
            places.unlink(old);
            entry.phase = places.ready(id, group, p, since, false);
            merged(true)
        }
        (Phase::Ready { .. }, _) => merged(false),
        (old @ (Phase::Waiting { .. } | Phase::Gated { .. }), Request::Now(p)) => {
            places.unlink(old);
            let since = places.ready_stamp(now, p);
            entry.phase = places.ready(id, group, p, since, true);
            merged(true)
        }
        (old @ Phase::Waiting { due: current, .. }, Request::At { due, retry })
            if due < current =>
        {
            places.unlink(old);
            entry.phase = places.schedule(id, group, due, retry, now);
            merged(true)
        }
        (Phase::Waiting { .. } | Phase::Gated { .. }, Request::At { .. }) => merged(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::key::ObjectKey;
    use crate::queue::metrics::QueueMetrics;
    use prometheus_client::registry::Registry;

    fn key(name: &str) -> ObjectKey {
        ObjectKey::namespaced("ConfigMap", "ns", name)
    }

    fn queue(recorder: Recorder) -> QueueState<ObjectKey> {
        QueueState::new(&QueueConfig::new("clock"), recorder, Instant::now()).unwrap()
    }

    /// Takes the next key with a fresh lazy clock; returns it and whether the clock was read.
    fn take(q: &mut QueueState<ObjectKey>) -> (Taken<ObjectKey>, bool) {
        let mut now = Now::lazy();
        match q.take(&mut now) {
            Take::Got(taken) => (taken, now.was_read()),
            _ => panic!("nothing to take"),
        }
    }

    fn finish(q: &mut QueueState<ObjectKey>, ticket: Ticket, outcome: Outcome) -> (Finished, bool) {
        let mut now = Now::lazy();
        let finished = q.finish(ticket, outcome, &mut now);
        (finished, now.was_read())
    }

    fn add(q: &mut QueueState<ObjectKey>, name: &str, request: Request) -> bool {
        let mut now = Now::lazy();
        assert_eq!(
            q.add(key(name), request, &mut now).outcome,
            AddOutcome::Queued
        );
        now.was_read()
    }

    #[tokio::test(start_paused = true)]
    async fn without_metrics_or_timed_work_a_key_goes_through_without_reading_the_clock() {
        let mut q = queue(Recorder::default());
        assert!(!add(&mut q, "a", Request::Now(Priority::Normal)));
        let (taken, read) = take(&mut q);
        assert!(!read, "take");
        assert_eq!(taken.queued_for, None);
        let (finished, read) = finish(&mut q, taken.ticket, Outcome::Success);
        assert!(!read, "finish");
        assert_eq!(finished.worked, None);
        assert_eq!(q.stats(), QueueStats::default());
    }

    #[tokio::test(start_paused = true)]
    async fn whatever_needs_the_time_reads_it() {
        let mut q = queue(Recorder::default());
        // A low key's ready time drives aging.
        assert!(add(&mut q, "low", Request::Now(Priority::Low)));
        // With both levels ready, a take asks whether the low key has aged.
        assert!(!add(&mut q, "normal", Request::Now(Priority::Normal)));
        let (normal, read) = take(&mut q);
        assert!(read, "take with both levels ready");
        assert_eq!(normal.priority, Priority::Normal);
        // A retry's due time.
        let (_, read) = finish(&mut q, normal.ticket, Outcome::Retry);
        assert!(read, "retry");
        // With the retry waiting out its backoff, every operation checks whether it is due.
        assert!(add(&mut q, "other", Request::Now(Priority::Normal)));
        // A due time is compared with now.
        let mut q = queue(Recorder::default());
        let due = Instant::now() + Duration::from_secs(1);
        assert!(add(&mut q, "later", Request::At { due, retry: false }));
    }

    #[tokio::test(start_paused = true)]
    async fn with_metrics_queue_and_work_durations_are_measured() {
        let metrics = QueueMetrics::register(&mut Registry::default());
        let mut q = queue(metrics.recorder_for(&QueueConfig::new("clock")).unwrap());
        assert!(add(&mut q, "a", Request::Now(Priority::Normal)));
        tokio::time::advance(Duration::from_millis(30)).await;
        let (taken, _) = take(&mut q);
        assert_eq!(taken.queued_for, Some(Duration::from_millis(30)));
        assert_eq!(q.in_flight_stats(Instant::now()).count, 1);
        tokio::time::advance(Duration::from_millis(20)).await;
        assert_eq!(
            q.in_flight_stats(Instant::now()).longest_seconds,
            Duration::from_millis(20).as_secs_f64()
        );
        let (finished, _) = finish(&mut q, taken.ticket, Outcome::Success);
        assert_eq!(finished.worked, Some(Duration::from_millis(20)));
    }
}
