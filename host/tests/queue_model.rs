//! Property test: random interleavings of add / add-after / add-rate-limited / take / finish /
//! forget / abort / panic / shutdown, executed by several worker tasks against the real queue,
//! checked step by step against a small reference model of the contract.
//!
//! The runtime is current-thread with tokio's clock paused, and the driver only ever yields
//! (never sleeps), so time moves only by explicit `advance` steps and every run is
//! deterministic for its seed.
//!
//! Two configurations:
//! * `exact`: no retry bucket, fairness off, aging far away. The model then predicts *which*
//!   key each take returns (normal before low; FIFO by the time a key became ready), every
//!   add's outcome, and each key's failure count.
//! * `loose`: retry bucket, fairness and a short aging bound on. Order is no longer predicted;
//!   the model checks safety (a taken key had due work and was not held) and, at the end,
//!   liveness (all pending work is taken, nothing extra).

use proptest::prelude::*;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use trellis_host::queue::{
    AddOutcome, Guard, Outcome, Priority, QueueConfig, QueueKey, RateLimit, WorkQueue,
};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Key {
    ns: u8,
    id: u8,
}

impl QueueKey for Key {
    type Group = u8;
    fn group(&self) -> &u8 {
        &self.ns
    }
}

const WORKERS: usize = 4;
const BASE: Duration = Duration::from_millis(5);
const CAP: Duration = Duration::from_secs(1000);

// ------------------------------------------------------------------------------ the model

#[derive(Clone, Copy, Debug, PartialEq)]
enum Req {
    Now(Priority),
    At(Instant),
}

impl Req {
    fn merge(self, other: Req) -> Req {
        match (self, other) {
            (Req::Now(a), Req::Now(b)) => Req::Now(a.max(b)),
            (now @ Req::Now(_), _) | (_, now @ Req::Now(_)) => now,
            (Req::At(a), Req::At(b)) => Req::At(a.min(b)),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    ready_at: Instant,
    priority: Priority,
    seq: u64,
}

#[derive(Default, Debug)]
struct KeyModel {
    pending: Option<Pending>,
    in_flight: bool,
    redo: Option<Req>,
    failures: u32,
}

/// The contract, as plainly as it can be written: one record per key with work.
#[derive(Default, Debug)]
struct Model {
    keys: HashMap<Key, KeyModel>,
    seq: u64,
    closed: bool,
    dropped: Vec<Key>,
}

fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(40);
    BASE.saturating_mul(2u32.saturating_pow(exp)).min(CAP)
}

impl Model {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn request(&mut self, key: Key, req: Req, now: Instant) -> AddOutcome {
        if self.closed {
            return AddOutcome::Refused;
        }
        let seq = self.next_seq();
        let m = self.keys.entry(key).or_default();
        if m.in_flight {
            let had = m.redo.is_some();
            m.redo = Some(m.redo.map_or(req, |r| r.merge(req)));
            return if had {
                AddOutcome::Merged
            } else {
                AddOutcome::Queued
            };
        }
        let (ready_at, priority) = match req {
            Req::Now(p) => (now, p),
            Req::At(due) => (due, Priority::Normal),
        };
        let fresh = Pending {
            ready_at,
            priority,
            seq,
        };
        match (&mut m.pending, req) {
            (None, _) => {
                m.pending = Some(fresh);
                return AddOutcome::Queued;
            }
            // Ready: only a higher priority changes anything (a raise goes to the back).
            (Some(p), Req::Now(prio)) if p.ready_at <= now => {
                if prio > p.priority {
                    *p = fresh;
                }
            }
            (Some(p), Req::At(_)) if p.ready_at <= now => {}
            // Waiting: an event makes it due now; an earlier time moves it earlier.
            (Some(p), Req::Now(_)) => *p = fresh,
            (Some(p), Req::At(due)) => {
                if due < p.ready_at {
                    *p = fresh;
                }
            }
        }
        AddOutcome::Merged
    }

    fn add_rate_limited(&mut self, key: Key, now: Instant) -> AddOutcome {
        if self.closed {
            return AddOutcome::Refused;
        }
        let m = self.keys.entry(key).or_default();
        m.failures += 1;
        let due = now + backoff(m.failures);
        self.request(key, Req::At(due), now)
    }

    fn forget(&mut self, key: Key) {
        if let Some(m) = self.keys.get_mut(&key) {
            m.failures = 0;
        }
    }

    fn due(&self, now: Instant) -> impl Iterator<Item = (&Key, &Pending)> {
        self.keys
            .iter()
            .filter(|(_, m)| !m.in_flight)
            .filter_map(move |(k, m)| {
                m.pending
                    .as_ref()
                    .filter(|p| p.ready_at <= now)
                    .map(|p| (k, p))
            })
    }

    /// The key the exact configuration must hand out next.
    fn expected_take(&self, now: Instant) -> Option<Key> {
        let best = |prio| {
            self.due(now)
                .filter(|(_, p)| p.priority == prio)
                .min_by_key(|(_, p)| (p.ready_at, p.seq))
                .map(|(k, _)| *k)
        };
        best(Priority::Normal).or_else(|| best(Priority::Low))
    }

    fn take(&mut self, key: Key) -> u32 {
        let m = self.keys.get_mut(&key).expect("taken key is modelled");
        m.in_flight = true;
        m.pending = None;
        m.failures
    }

    fn finish(&mut self, key: Key, outcome: Outcome, now: Instant) {
        let seq = self.next_seq();
        let m = self.keys.get_mut(&key).expect("finished key is modelled");
        assert!(
            m.in_flight,
            "model: finishing {key:?} which is not in flight"
        );
        m.in_flight = false;
        let next = match outcome {
            Outcome::Success => {
                m.failures = 0;
                None
            }
            Outcome::RequeueAfter(d) => {
                m.failures = 0;
                Some(if d.is_zero() {
                    Req::Now(Priority::Normal)
                } else {
                    Req::At(now + d)
                })
            }
            Outcome::Retry => {
                m.failures += 1;
                Some(Req::At(now + backoff(m.failures)))
            }
        };
        let redo = match (m.redo.take(), next) {
            (Some(a), Some(b)) => Some(a.merge(b)),
            (a, b) => a.or(b),
        };
        match redo {
            Some(_) if self.closed => {
                self.dropped.push(key);
                self.keys.remove(&key);
            }
            Some(req) => {
                let (ready_at, priority) = match req {
                    Req::Now(p) => (now, p),
                    // A rerun cannot start before the worker finished.
                    Req::At(due) => (due.max(now), Priority::Normal),
                };
                m.pending = Some(Pending {
                    ready_at,
                    priority,
                    seq,
                });
            }
            None => {
                self.keys.remove(&key);
            }
        }
    }

    fn in_flight(&self) -> Vec<Key> {
        sorted(
            self.keys
                .iter()
                .filter(|(_, m)| m.in_flight)
                .map(|(k, _)| *k),
        )
    }

    fn pending(&self) -> Vec<Key> {
        let with_work = self
            .keys
            .iter()
            .filter(|(_, m)| m.pending.is_some() || m.redo.is_some())
            .map(|(k, _)| *k);
        sorted(with_work.chain(self.dropped.iter().copied()))
    }
}

fn sorted(keys: impl Iterator<Item = Key>) -> Vec<Key> {
    let mut v: Vec<_> = keys.map(|k| (k.ns, k.id)).collect();
    v.sort_unstable();
    v.into_iter().map(|(ns, id)| Key { ns, id }).collect()
}

// ------------------------------------------------------------------------ the operations

#[derive(Clone, Copy, Debug)]
enum FinishHow {
    Done,
    Retry,
    RequeueAfter(u64),
    Drop,
}

#[derive(Clone, Debug)]
enum Op {
    Add(Key, bool),
    AddAfter(Key, u64),
    AddRateLimited(Key),
    Forget(Key),
    Take(usize),
    Finish(usize, FinishHow),
    Panic(usize),
    Abort(usize),
    Advance(u64),
    Shutdown,
}

fn key() -> impl Strategy<Value = Key> {
    (0u8..3, 0u8..4).prop_map(|(ns, id)| Key { ns, id })
}

fn op() -> impl Strategy<Value = Op> {
    let w = 0..WORKERS;
    let how = prop_oneof![
        3 => Just(FinishHow::Done),
        2 => Just(FinishHow::Retry),
        1 => (0u64..40).prop_map(FinishHow::RequeueAfter),
        1 => Just(FinishHow::Drop),
    ];
    prop_oneof![
        6 => (key(), any::<bool>()).prop_map(|(k, low)| Op::Add(k, low)),
        2 => (key(), 0u64..40).prop_map(|(k, d)| Op::AddAfter(k, d)),
        2 => key().prop_map(Op::AddRateLimited),
        1 => key().prop_map(Op::Forget),
        6 => w.clone().prop_map(Op::Take),
        5 => (w.clone(), how).prop_map(|(w, h)| Op::Finish(w, h)),
        1 => w.clone().prop_map(Op::Panic),
        1 => w.prop_map(Op::Abort),
        3 => (0u64..30).prop_map(Op::Advance),
        1 => Just(Op::Shutdown),
    ]
}

// ---------------------------------------------------------------------------- the workers

enum Cmd {
    Take,
    Finish(FinishHow),
    Panic,
}

struct Report {
    worker: usize,
    key: Key,
    requeues: u32,
    priority: Priority,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Worker {
    Idle,
    Taking,
    Holding(Key),
}

struct Slot {
    tx: mpsc::UnboundedSender<Cmd>,
    task: tokio::task::JoinHandle<()>,
    state: Worker,
}

fn spawn_worker(
    id: usize,
    q: WorkQueue<Key>,
    reports: mpsc::UnboundedSender<Option<Report>>,
) -> Slot {
    let (tx, mut rx) = mpsc::unbounded_channel::<Cmd>();
    let task = tokio::spawn(async move {
        let mut held: Option<Guard<Key>> = None;
        while let Some(cmd) = rx.recv().await {
            match cmd {
                Cmd::Take => match q.next().await {
                    Some(g) => {
                        let _ = reports.send(Some(Report {
                            worker: id,
                            key: *g.key(),
                            requeues: g.requeues(),
                            priority: g.priority(),
                        }));
                        held = Some(g);
                    }
                    None => {
                        let _ = reports.send(None);
                    }
                },
                Cmd::Finish(how) => {
                    let Some(g) = held.take() else { continue };
                    match how {
                        FinishHow::Done => g.done(),
                        FinishHow::Retry => g.retry(),
                        FinishHow::RequeueAfter(ms) => g.requeue_after(Duration::from_millis(ms)),
                        FinishHow::Drop => drop(g),
                    }
                }
                Cmd::Panic => {
                    let _keep_until_unwind = held.take();
                    panic!("planned panic while holding a key");
                }
            }
        }
    });
    Slot {
        tx,
        task,
        state: Worker::Idle,
    }
}

/// Lets every runnable task run until nothing changes. Only yields: never lets the paused clock
/// auto-advance.
async fn settle() {
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
}

// ----------------------------------------------------------------------------- the driver

struct Harness {
    q: WorkQueue<Key>,
    model: Model,
    workers: Vec<Slot>,
    reports_tx: mpsc::UnboundedSender<Option<Report>>,
    reports: mpsc::UnboundedReceiver<Option<Report>>,
    exact: bool,
}

impl Harness {
    fn new(q: WorkQueue<Key>, exact: bool) -> Self {
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let workers = (0..WORKERS)
            .map(|i| spawn_worker(i, q.clone(), reports_tx.clone()))
            .collect();
        Self {
            q,
            model: Model::default(),
            workers,
            reports_tx,
            reports,
            exact,
        }
    }

    /// Checks every take that happened since the last step, in the order it happened.
    fn absorb_reports(&mut self) {
        let now = Instant::now();
        while let Ok(report) = self.reports.try_recv() {
            let Some(r) = report else {
                assert!(self.model.closed, "next() returned None before shutdown");
                // The worker that got None is one of the Taking ones; mark one idle.
                if let Some(w) = self.workers.iter_mut().find(|w| w.state == Worker::Taking) {
                    w.state = Worker::Idle;
                }
                continue;
            };
            assert_eq!(self.workers[r.worker].state, Worker::Taking);
            assert!(!self.model.closed, "a key was handed out after shutdown");
            let m = self.model.keys.get(&r.key);
            assert!(
                m.is_some_and(|m| !m.in_flight),
                "{:?} handed out while held (or without work): {m:?}",
                r.key
            );
            assert!(
                self.model.due(now).any(|(k, _)| *k == r.key),
                "{:?} handed out before it was due: {m:?}",
                r.key
            );
            if self.exact {
                let expected = self.model.expected_take(now);
                assert_eq!(
                    Some(r.key),
                    expected,
                    "wrong key handed out (FIFO/priority)"
                );
                let p = m.and_then(|m| m.pending).map(|p| p.priority);
                assert_eq!(
                    Some(r.priority),
                    p,
                    "{:?} taken at the wrong priority",
                    r.key
                );
            }
            let failures = self.model.take(r.key);
            if self.exact {
                assert_eq!(r.requeues, failures, "{:?}: failure count", r.key);
            }
            self.workers[r.worker].state = Worker::Holding(r.key);
        }
    }

    /// After settling: a worker waiting in `next` while the model has a due key is a lost
    /// wake-up (exact configuration only: buckets may legitimately hold keys back).
    fn check_liveness(&self) {
        let now = Instant::now();
        let waiting = self.workers.iter().any(|w| w.state == Worker::Taking);
        if self.exact && waiting && !self.model.closed {
            assert_eq!(
                self.model.expected_take(now),
                None,
                "a worker is waiting while a key is due"
            );
        }
        let stats = self.q.stats();
        assert_eq!(
            stats.in_flight,
            self.model.in_flight().len(),
            "in-flight count"
        );
        if !self.model.closed {
            assert_eq!(stats.keys, self.model.keys.len(), "keys with state");
        }
    }

    async fn step(&mut self, op: &Op) {
        let now = Instant::now();
        match *op {
            Op::Add(k, low) => {
                let p = if low { Priority::Low } else { Priority::Normal };
                let got = self.q.add_with_priority(k, p);
                let want = self.model.request(k, Req::Now(p), now);
                assert_eq!(got, want, "add({k:?}, {p:?})");
            }
            Op::AddAfter(k, ms) => {
                let d = Duration::from_millis(ms);
                let got = self.q.add_after(k, d);
                let want = if d.is_zero() {
                    self.model.request(k, Req::Now(Priority::Normal), now)
                } else {
                    self.model.request(k, Req::At(now + d), now)
                };
                assert_eq!(got, want, "add_after({k:?}, {ms} ms)");
            }
            Op::AddRateLimited(k) => {
                let got = self.q.add_rate_limited(k);
                let want = self.model.add_rate_limited(k, now);
                assert_eq!(got, want, "add_rate_limited({k:?})");
                if want != AddOutcome::Refused {
                    assert_eq!(self.q.num_requeues(&k), self.model.keys[&k].failures);
                }
            }
            Op::Forget(k) => {
                self.q.forget(&k);
                self.model.forget(k);
                let want = self.model.keys.get(&k).map_or(0, |m| m.failures);
                assert_eq!(self.q.num_requeues(&k), want);
            }
            Op::Take(w) => {
                if self.workers[w].state == Worker::Idle {
                    self.workers[w].state = Worker::Taking;
                    let _ = self.workers[w].tx.send(Cmd::Take);
                }
            }
            Op::Finish(w, how) => {
                if let Worker::Holding(k) = self.workers[w].state {
                    let _ = self.workers[w].tx.send(Cmd::Finish(how));
                    let outcome = match how {
                        FinishHow::Done => Outcome::Success,
                        FinishHow::Retry | FinishHow::Drop => Outcome::Retry,
                        FinishHow::RequeueAfter(ms) => {
                            Outcome::RequeueAfter(Duration::from_millis(ms))
                        }
                    };
                    // The worker finishes when it next runs; time does not move before that.
                    self.model.finish(k, outcome, now);
                    self.workers[w].state = Worker::Idle;
                }
            }
            Op::Panic(w) => {
                if let Worker::Holding(k) = self.workers[w].state {
                    let _ = self.workers[w].tx.send(Cmd::Panic);
                    // The guard is dropped while unwinding, when the worker next runs; record
                    // it first, so takes by other workers during the settle see it finished.
                    self.model.finish(k, Outcome::Retry, now);
                    settle().await;
                    self.respawn(w);
                }
            }
            Op::Abort(w) => {
                // Worker states are exact here (reports were absorbed after the last step), and
                // an aborted task is never polled again, so a waiting worker cannot take a key
                // after this point.
                self.workers[w].task.abort();
                if let Worker::Holding(k) = self.workers[w].state {
                    self.model.finish(k, Outcome::Retry, now);
                }
                settle().await;
                self.respawn(w);
            }
            Op::Advance(ms) => {
                tokio::time::advance(Duration::from_millis(ms)).await;
            }
            Op::Shutdown => {
                let report = self.q.shutdown(Duration::ZERO).await;
                self.model.closed = true;
                settle().await;
                self.absorb_reports();
                assert_eq!(sorted(report.in_flight.into_iter()), self.model.in_flight());
                assert_eq!(sorted(report.pending.into_iter()), self.model.pending());
            }
        }
        settle().await;
        self.absorb_reports();
        self.check_liveness();
    }

    fn respawn(&mut self, w: usize) {
        self.workers[w] = spawn_worker(w, self.q.clone(), self.reports_tx.clone());
    }

    /// After the random steps: finish everything held, then keep taking (with success) and
    /// advancing time until the model has no work left. Every pending key must come out.
    async fn drain(&mut self) {
        if self.model.closed {
            return;
        }
        for _ in 0..500 {
            for w in 0..WORKERS {
                match self.workers[w].state {
                    Worker::Holding(_) => self.step(&Op::Finish(w, FinishHow::Done)).await,
                    Worker::Idle => self.step(&Op::Take(w)).await,
                    Worker::Taking => {}
                }
            }
            if self.model.keys.is_empty() {
                break;
            }
            self.step(&Op::Advance(250)).await;
        }
        assert!(
            self.model.keys.is_empty(),
            "work never drained: {:?}",
            self.model.keys
        );
        let stats = self.q.stats();
        assert_eq!(
            (stats.keys, stats.in_flight),
            (0, 0),
            "queue holds state: {stats:?}"
        );
    }
}

fn run(ops: Vec<Op>, exact: bool) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut cfg = QueueConfig::new("model");
        if exact {
            cfg.retry_limit = None;
            cfg.aging = Duration::from_secs(365 * 24 * 3600);
        } else {
            cfg.retry_limit = Some(RateLimit {
                qps: 40.0,
                burst: 2,
            });
            cfg.fairness = true;
            cfg.aging = Duration::from_millis(20);
        }
        let mut h = Harness::new(WorkQueue::new(cfg).unwrap(), exact);
        for op in &ops {
            h.step(op).await;
        }
        h.drain().await;
        for w in &h.workers {
            w.task.abort();
        }
    });
}

fn quiet_planned_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let planned = info
                .payload()
                .downcast_ref::<&str>()
                .is_some_and(|m| m.starts_with("planned panic"));
            if !planned {
                default(info);
            }
        }));
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn exact_model(ops in prop::collection::vec(op(), 1..160)) {
        quiet_planned_panics();
        run(ops, true);
    }

    #[test]
    fn loose_model_with_buckets_fairness_and_aging(ops in prop::collection::vec(op(), 1..160)) {
        quiet_planned_panics();
        run(ops, false);
    }
}
