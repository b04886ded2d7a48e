//! The work queue's contract (issue 4), one behaviour per test, through the public API only.
//!
//! Every test runs on tokio's paused clock, so delays, backoffs and token buckets are exact:
//! time moves only when a test advances it (or when every task is idle and the runtime jumps to
//! the next timer), never because the machine is slow.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, advance};
use trellis_host::queue::{
    AddOutcome, ObjectKey, Outcome, Priority, QueueConfig, QueueError, QueueMetrics, RateLimit,
    WorkQueue,
};

fn k(ns: &str, name: &str) -> ObjectKey {
    ObjectKey::namespaced("ConfigMap", ns, name)
}

fn queue_with(edit: impl FnOnce(&mut QueueConfig)) -> WorkQueue<ObjectKey> {
    let mut cfg = QueueConfig::new("test-plugin");
    edit(&mut cfg);
    WorkQueue::new(cfg).expect("valid config")
}

fn queue() -> WorkQueue<ObjectKey> {
    queue_with(|_| {})
}

/// `q.next()`, failing the test (instead of hanging it) if no key comes within an hour of
/// paused time.
async fn next(q: &WorkQueue<ObjectKey>) -> trellis_host::queue::Guard<ObjectKey> {
    tokio::time::timeout(Duration::from_secs(3600), q.next())
        .await
        .expect("no key was handed out within an hour")
        .expect("the queue was shut down")
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Takes everything ready now, finishing each key with success; returns the names in order.
fn drain_ready(q: &WorkQueue<ObjectKey>) -> Vec<String> {
    std::iter::from_fn(|| q.try_next())
        .map(|g| {
            let name = g.key().name.to_string();
            g.done();
            name
        })
        .collect()
}

// ---------------------------------------------------------------- dedup and never-concurrent

#[tokio::test(start_paused = true)]
async fn a_key_added_many_times_before_it_is_taken_runs_once() {
    let q = queue();
    assert_eq!(q.add(k("ns", "a")), AddOutcome::Queued);
    for _ in 0..100 {
        assert_eq!(q.add(k("ns", "a")), AddOutcome::Merged);
        assert_eq!(q.add_low(k("ns", "a")), AddOutcome::Merged);
    }
    assert_eq!(q.stats().ready_normal, 1);
    assert_eq!(drain_ready(&q), ["a"]);
    assert!(q.try_next().is_none());
    assert_eq!(q.stats().keys, 0, "a finished key leaves nothing behind");
}

#[tokio::test(start_paused = true)]
async fn a_held_key_is_not_handed_out_again_and_reruns_once_after_it_finishes() {
    let q = queue();
    q.add(k("ns", "a"));
    let held = next(&q).await;
    assert_eq!(q.add(k("ns", "a")), AddOutcome::Queued, "dirty while held");
    assert_eq!(q.add(k("ns", "a")), AddOutcome::Merged);
    assert_eq!(q.add_after(k("ns", "a"), ms(5)), AddOutcome::Merged);
    assert!(q.try_next().is_none(), "never two workers on one key");
    assert_eq!(q.stats().in_flight, 1);
    held.done();
    assert_eq!(
        drain_ready(&q),
        ["a"],
        "re-added while held: runs again, once"
    );
    advance(ms(10)).await;
    assert!(
        q.try_next().is_none(),
        "the merged add_after did not leave a second run"
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_workers_never_share_a_key_and_every_add_is_eventually_seen() {
    let q = queue();
    let active = Arc::new(parking_lot::Mutex::new(HashSet::new()));
    // Per key: the time of the last add, and the start time of the last reconcile.
    let last_add = Arc::new(parking_lot::Mutex::new(std::collections::HashMap::new()));
    let last_start = Arc::new(parking_lot::Mutex::new(std::collections::HashMap::new()));
    let mut workers = Vec::new();
    for w in 0..8u64 {
        let (q, active, last_start) = (q.clone(), active.clone(), last_start.clone());
        workers.push(tokio::spawn(async move {
            let mut runs = 0u32;
            while let Some(g) = q.next().await {
                let key = g.key().clone();
                assert!(active.lock().insert(key.clone()), "{key} held twice");
                last_start.lock().insert(key.clone(), Instant::now());
                tokio::time::sleep(ms(1 + (w * 7 + u64::from(runs)) % 13)).await;
                active.lock().remove(&key);
                runs += 1;
                match runs % 3 {
                    0 => g.retry(),
                    1 => g.done(),
                    _ => g.requeue_after(ms(3)),
                }
            }
            runs
        }));
    }
    for i in 0..2_000u64 {
        let key = k("ns", &format!("k{}", i % 17));
        last_add.lock().insert(key.clone(), Instant::now());
        q.add(key);
        if i % 5 == 0 {
            tokio::time::sleep(ms(1)).await;
        }
    }
    // Let everything settle: retries and requeues keep going, so wait for the adds only.
    tokio::time::sleep(Duration::from_secs(30)).await;
    for (key, added) in last_add.lock().iter() {
        let started = last_start.lock().get(key).copied();
        assert!(
            started.is_some_and(|s| s >= *added),
            "{key}: last add at {added:?} never followed by a reconcile (last start {started:?})"
        );
    }
    q.shutdown(Duration::from_secs(60)).await;
    let mut total = 0;
    for w in workers {
        total += w.await.unwrap();
    }
    assert!(total >= 17, "only {total} reconciles");
}

// ------------------------------------------------------------------- done on every path

#[tokio::test(start_paused = true)]
async fn dropping_a_guard_without_an_outcome_finishes_the_key_as_a_failure() {
    let q = queue();
    q.add(k("ns", "a"));
    let g = next(&q).await;
    drop(g);
    assert_eq!(q.stats().in_flight, 0);
    assert_eq!(q.num_requeues(&k("ns", "a")), 1);
    assert!(q.try_next().is_none(), "retried after backoff, not at once");
    advance(ms(5)).await;
    let again = q.try_next().expect("retried after the 5 ms base backoff");
    assert_eq!(again.requeues(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_worker_panic_finishes_the_key_and_it_is_retried() {
    let q = queue();
    q.add(k("ns", "a"));
    let worker = {
        let q = q.clone();
        tokio::spawn(async move {
            let _g = next(&q).await;
            panic!("planned panic in a reconcile");
        })
    };
    assert!(worker.await.unwrap_err().is_panic());
    assert_eq!(q.stats().in_flight, 0);
    advance(ms(5)).await;
    assert_eq!(q.try_next().unwrap().requeues(), 1);
}

#[tokio::test(start_paused = true)]
async fn cancelling_the_task_or_timing_out_the_future_holding_a_guard_finishes_the_key() {
    let q = queue();
    q.add(k("ns", "aborted"));
    let worker = {
        let q = q.clone();
        tokio::spawn(async move {
            let _g = next(&q).await;
            std::future::pending::<()>().await;
        })
    };
    tokio::task::yield_now().await;
    assert_eq!(q.stats().in_flight, 1);
    worker.abort();
    assert!(worker.await.unwrap_err().is_cancelled());
    assert_eq!(q.stats().in_flight, 0);

    q.add(k("ns", "timed-out"));
    let res = tokio::time::timeout(Duration::from_secs(1), async {
        let _g = next(&q).await;
        std::future::pending::<()>().await;
    })
    .await;
    assert!(res.is_err());
    assert_eq!(q.stats().in_flight, 0);
    assert_eq!(q.num_requeues(&k("ns", "aborted")), 1);
    assert_eq!(q.num_requeues(&k("ns", "timed-out")), 1);
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_waiting_next_loses_nothing() {
    let q = queue();
    assert!(tokio::time::timeout(ms(10), q.next()).await.is_err());
    q.add(k("ns", "a"));
    assert_eq!(q.try_next().unwrap().key(), &k("ns", "a"));
}

#[tokio::test(start_paused = true)]
async fn explicit_outcomes_through_finish() {
    let q = queue();
    q.add(k("ns", "a"));
    q.next()
        .await
        .unwrap()
        .finish(Outcome::RequeueAfter(Duration::ZERO));
    let g = q.try_next().expect("zero requeue-after runs again at once");
    g.finish(Outcome::Success);
    assert_eq!(q.stats().keys, 0);
}

// -------------------------------------------------------------------------- ordering

#[tokio::test(start_paused = true)]
async fn fifo_within_a_priority_and_normal_before_low() {
    let q = queue();
    q.add_low(k("ns", "low1"));
    q.add(k("ns", "a"));
    q.add(k("ns", "b"));
    q.add_low(k("ns", "low2"));
    q.add(k("ns", "c"));
    assert_eq!(drain_ready(&q), ["a", "b", "c", "low1", "low2"]);
}

#[tokio::test(start_paused = true)]
async fn a_normal_add_raises_a_queued_low_key() {
    let q = queue();
    q.add_low(k("ns", "x"));
    q.add(k("ns", "a"));
    assert_eq!(q.add(k("ns", "x")), AddOutcome::Merged);
    q.add(k("ns", "b"));
    assert_eq!(q.stats().ready_low, 0);
    assert_eq!(drain_ready(&q), ["a", "x", "b"]);
}

#[tokio::test(start_paused = true)]
async fn a_fresh_change_is_not_delayed_by_a_100k_key_relist() {
    let q = queue();
    for i in 0..100_000 {
        q.add_low(k("ns", &format!("obj{i}")));
    }
    q.add(k("ns", "fresh"));
    assert_eq!(next(&q).await.key().name.as_ref(), "fresh");
}

#[tokio::test(start_paused = true)]
async fn delayed_keys_join_the_fifo_in_the_order_they_became_due() {
    let q = queue();
    q.add_after(k("ns", "d20"), ms(20));
    q.add_after(k("ns", "d10"), ms(10));
    advance(ms(15)).await;
    q.add(k("ns", "now15"));
    advance(ms(10)).await;
    q.add(k("ns", "now25"));
    assert_eq!(drain_ready(&q), ["d10", "now15", "d20", "now25"]);
}

// ------------------------------------------------------------------ aging (starvation bound)

#[tokio::test(start_paused = true)]
async fn low_keys_are_served_within_the_aging_bound_under_a_normal_flood() {
    let aging = Duration::from_secs(60);
    let q = queue_with(|c| c.aging = aging);
    let t0 = Instant::now();
    let lows = 5;
    for i in 0..lows {
        q.add_low(k("ns", &format!("low{i}")));
    }
    // A flood: every take is followed by a new normal key, so normal is never empty, and each
    // reconcile takes one second.
    let mut fresh = 0u64;
    let mut add_fresh = |q: &WorkQueue<ObjectKey>| {
        q.add(k("ns", &format!("n{fresh}")));
        fresh += 1;
    };
    add_fresh(&q);
    let mut served_low = Vec::new();
    let mut take_no = 0u64;
    let mut first_aged_take = None;
    while served_low.len() < lows {
        assert!(
            take_no < 1_000,
            "low keys starved: {served_low:?} after {take_no} takes"
        );
        let g = next(&q).await;
        take_no += 1;
        if Instant::now() - t0 >= aging && first_aged_take.is_none() {
            first_aged_take = Some(take_no);
        }
        if g.priority() == Priority::Low {
            assert!(
                Instant::now() - t0 >= aging,
                "low served before aging with normal pending"
            );
            served_low.push((take_no, g.key().name.to_string()));
        }
        add_fresh(&q);
        advance(Duration::from_secs(1)).await;
        g.done();
    }
    let first = first_aged_take.unwrap();
    for (n, (take, name)) in served_low.iter().enumerate() {
        assert_eq!(name, &format!("low{n}"), "low keys stay FIFO");
        // Bound: the n-th low key (n earlier ones ahead) within 2(n+1) takes of aging.
        assert!(
            *take < first + 2 * (n as u64 + 1),
            "low{n} taken at take {take}, aging reached at take {first}"
        );
    }
}

// ------------------------------------------------------------------------ fairness bound

#[tokio::test(start_paused = true)]
async fn with_fairness_a_small_namespace_is_not_starved_by_a_big_one() {
    let fair = queue_with(|c| c.fairness = true);
    let plain = queue();
    for q in [&fair, &plain] {
        for i in 0..50_000 {
            q.add(k("big", &format!("b{i}")));
        }
        for i in 0..5 {
            q.add(k("small", &format!("s{i}")));
        }
    }
    let position_of_last_small = |q: &WorkQueue<ObjectKey>| {
        let order: Vec<_> = std::iter::from_fn(|| q.try_next())
            .map(|g| {
                let ns = g.key().namespace.clone();
                g.done();
                ns
            })
            .collect();
        assert_eq!(order.len(), 50_005);
        order
            .iter()
            .rposition(|ns| ns.as_deref() == Some("small"))
            .unwrap()
    };
    assert!(
        position_of_last_small(&fair) < 10,
        "5 keys, 2 namespaces: 10 turns"
    );
    assert_eq!(
        position_of_last_small(&plain),
        50_004,
        "FIFO without fairness"
    );
}

// ------------------------------------------------------------------------------- backoff

#[tokio::test(start_paused = true)]
async fn failures_back_off_exponentially_and_a_success_resets() {
    let q = queue();
    let key = k("ns", "a");
    q.add(key.clone());
    let mut g = next(&q).await;
    for (failures, backoff_ms) in [(1, 5), (2, 10), (3, 20), (4, 40), (5, 80)] {
        assert_eq!(g.requeues(), failures - 1);
        g.retry();
        assert_eq!(q.num_requeues(&key), failures);
        advance(ms(backoff_ms - 1)).await;
        assert!(q.try_next().is_none(), "failure {failures}: too early");
        advance(ms(1)).await;
        g = q
            .try_next()
            .unwrap_or_else(|| panic!("failure {failures}: due after {backoff_ms} ms"));
    }
    g.done();
    assert_eq!(q.num_requeues(&key), 0);
    assert_eq!(q.stats().keys, 0, "no failure history kept for an idle key");
    q.add(key.clone());
    q.try_next().unwrap().retry();
    advance(ms(5)).await;
    assert!(
        q.try_next().is_some(),
        "after a success, backoff starts at the base again"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rerun_requested_while_held_beats_the_backoff_and_requeue_after_resets() {
    let q = queue();
    let key = k("ns", "a");
    q.add(key.clone());
    let g = next(&q).await;
    q.add(key.clone()); // an event while held
    g.retry();
    let g = q
        .try_next()
        .expect("the event's rerun is due now, not after the backoff");
    assert_eq!(g.requeues(), 1, "the failure still counts");
    g.finish(Outcome::RequeueAfter(Duration::from_secs(3600)));
    assert_eq!(q.num_requeues(&key), 0, "requeue-after is a success");
    assert_eq!(q.stats().waiting, 1);
}

#[tokio::test(start_paused = true)]
async fn an_event_during_backoff_makes_the_key_due_now_and_keeps_its_failure_count() {
    let q = queue();
    let key = k("ns", "a");
    q.add(key.clone());
    for _ in 0..3 {
        next(&q).await.retry(); // 5, 10, 20 ms
    }
    assert_eq!(q.num_requeues(&key), 3);
    // Waiting 20 ms for retry #3. An event arrives:
    assert_eq!(q.add(key.clone()), AddOutcome::Merged);
    let g = q.try_next().expect("an event makes the key due now");
    assert_eq!(g.requeues(), 3, "failure count kept, not reset");
    advance(ms(50)).await;
    assert!(
        q.try_next().is_none(),
        "the overtaken retry does not fire a second run"
    );
    // It fails again: 4th failure, 40 ms, neither reset (5 ms) nor inflated (80 ms).
    g.retry();
    advance(ms(39)).await;
    assert!(q.try_next().is_none());
    advance(ms(1)).await;
    let g = q.try_next().unwrap();
    assert_eq!(g.requeues(), 4);
    g.done();
    assert_eq!(q.num_requeues(&key), 0);
    assert_eq!(q.stats().keys, 0);
}

#[tokio::test(start_paused = true)]
async fn add_rate_limited_and_forget() {
    let q = queue();
    let key = k("ns", "a");
    assert_eq!(q.add_rate_limited(key.clone()), AddOutcome::Queued);
    assert_eq!(q.add_rate_limited(key.clone()), AddOutcome::Merged);
    assert_eq!(q.num_requeues(&key), 2);
    q.forget(&key);
    assert_eq!(q.num_requeues(&key), 0);
    q.forget(&k("ns", "unknown")); // harmless
    advance(ms(5)).await; // the first (earliest) retry time stands
    assert!(q.try_next().is_some());
}

// ------------------------------------------------------------------------- requeue-after

#[tokio::test(start_paused = true)]
async fn requeue_after_is_advanced_by_an_earlier_add_and_cancelled_by_an_event() {
    let q = queue();
    let key = k("ns", "a");
    q.add(key.clone());
    next(&q).await.requeue_after(ms(100));
    assert_eq!(q.add_after(key.clone(), ms(200)), AddOutcome::Merged);
    assert_eq!(q.add_after(key.clone(), ms(50)), AddOutcome::Merged);
    advance(ms(49)).await;
    assert!(q.try_next().is_none());
    advance(ms(1)).await;
    q.try_next()
        .expect("advanced to 50 ms")
        .requeue_after(ms(100));
    q.add(key.clone());
    q.try_next().expect("event: due now").done();
    advance(ms(500)).await;
    assert!(
        q.try_next().is_none(),
        "the cancelled requeue does not fire"
    );
    assert_eq!(q.stats().keys, 0, "no stale timer left behind");
}

#[tokio::test(start_paused = true)]
async fn an_idle_worker_sleeps_until_the_delay_is_due() {
    let q = queue();
    let t0 = Instant::now();
    let waiter = {
        let q = q.clone();
        tokio::spawn(async move {
            let g = next(&q).await;
            (Instant::now(), g.key().clone())
        })
    };
    tokio::task::yield_now().await;
    q.add_after(k("ns", "later"), Duration::from_secs(10));
    q.add_after(k("ns", "sooner"), Duration::from_secs(3));
    let (at, key) = waiter.await.unwrap();
    assert_eq!(key.name.as_ref(), "sooner");
    assert_eq!(at - t0, Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_waiter_hands_its_timer_to_another_waiter() {
    let q = queue();
    let t0 = Instant::now();
    let first = {
        let q = q.clone();
        tokio::spawn(async move { q.next().await.map(|g| g.key().clone()) })
    };
    tokio::task::yield_now().await;
    let second = {
        let q = q.clone();
        tokio::spawn(async move {
            let g = next(&q).await;
            (Instant::now(), g.key().clone())
        })
    };
    tokio::task::yield_now().await;
    // One waiter is woken to set its timer for the delay; then it is cancelled.
    q.add_after(k("ns", "a"), Duration::from_secs(1));
    tokio::task::yield_now().await;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    let (at, key) = tokio::time::timeout(Duration::from_secs(60), second)
        .await
        .expect("the due key was stranded: no waiter woke for it")
        .unwrap();
    assert_eq!(key.name.as_ref(), "a");
    assert_eq!(at - t0, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn absurd_delays_are_clamped_not_panicking() {
    let q = queue();
    q.add_after(k("ns", "a"), Duration::MAX);
    q.add(k("ns", "b"));
    next(&q).await.requeue_after(Duration::MAX);
    assert_eq!(q.stats().waiting, 2);
}

// ------------------------------------------------------------------------ token buckets

#[tokio::test(start_paused = true)]
async fn retries_pass_the_retry_bucket_in_order_and_fresh_events_do_not() {
    let q = queue_with(|c| {
        c.retry_limit = Some(RateLimit {
            qps: 10.0,
            burst: 2,
        })
    });
    let t0 = Instant::now();
    for i in 0..5 {
        q.add(k("ns", &format!("r{i}")));
    }
    for _ in 0..5 {
        next(&q).await.retry(); // all due at +5 ms
    }
    let mut times = Vec::new();
    for _ in 0..2 {
        let g = next(&q).await;
        times.push((g.key().name.to_string(), (Instant::now() - t0).as_millis()));
        g.done();
    }
    // Retries are gated; a fresh event is not.
    q.add(k("ns", "fresh"));
    let g = q.try_next().expect("fresh events skip the retry bucket");
    assert_eq!(g.key().name.as_ref(), "fresh");
    g.done();
    assert_eq!(q.stats().gated, 3);
    for _ in 0..3 {
        let g = next(&q).await;
        times.push((g.key().name.to_string(), (Instant::now() - t0).as_millis()));
        g.done();
    }
    // Burst 2 at +5 ms, then one token per 100 ms.
    let expect = [("r0", 5), ("r1", 5), ("r2", 105), ("r3", 205), ("r4", 305)];
    let expect: Vec<_> = expect.iter().map(|(n, t)| (n.to_string(), *t)).collect();
    assert_eq!(times, expect);
}

#[tokio::test(start_paused = true)]
async fn a_gated_retry_overtaken_by_an_event_spends_no_token() {
    let q = queue_with(|c| c.retry_limit = Some(RateLimit { qps: 1.0, burst: 1 }));
    let t0 = Instant::now();
    for name in ["a", "b", "c"] {
        q.add(k("ns", name));
    }
    for _ in 0..3 {
        next(&q).await.retry();
    }
    next(&q).await.done(); // "a" spends the only token at +5 ms
    assert_eq!(q.stats().gated, 2);
    q.add(k("ns", "b")); // event overtakes gated "b"
    q.try_next().unwrap().done();
    let g = next(&q).await;
    assert_eq!(g.key().name.as_ref(), "c");
    assert_eq!(
        (Instant::now() - t0).as_millis(),
        1005,
        "c got the next token, not b"
    );
}

#[tokio::test(start_paused = true)]
async fn the_overall_limit_caps_every_take() {
    let q = queue_with(|c| c.overall_limit = Some(RateLimit { qps: 2.0, burst: 1 }));
    let t0 = Instant::now();
    for i in 0..5 {
        q.add(k("ns", &format!("k{i}")));
    }
    let mut at = Vec::new();
    for _ in 0..5 {
        next(&q).await.done();
        at.push((Instant::now() - t0).as_millis());
    }
    assert_eq!(at, [0, 500, 1000, 1500, 2000]);
}

// ---------------------------------------------------------------------------- shutdown

#[tokio::test(start_paused = true)]
async fn shutdown_stops_intake_waits_for_held_keys_and_reports_the_rest() {
    let q = queue();
    for name in ["quick", "slow", "queued"] {
        q.add(k("ns", name));
    }
    q.add_after(k("ns", "waiting"), Duration::from_secs(60));
    let quick = next(&q).await;
    let slow = next(&q).await;
    q.add(k("ns", "quick")); // rerun requested while held: cannot run after shutdown
    let idle = {
        let q = q.clone();
        tokio::spawn(async move { q.next().await.is_none() })
    };
    let finisher = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        quick.done();
        tokio::time::sleep(Duration::from_secs(60)).await;
        slow.done(); // after the deadline: still accepted
    });
    let t0 = Instant::now();
    let report = q.shutdown(Duration::from_secs(5)).await;
    assert_eq!(Instant::now() - t0, Duration::from_secs(5));
    assert!(idle.await.unwrap(), "idle workers are released with None");
    assert_eq!(q.add(k("ns", "late")), AddOutcome::Refused);
    assert!(q.next().await.is_none());
    assert!(!report.drained());
    assert_eq!(report.in_flight, [k("ns", "slow")]);
    let mut pending: Vec<_> = report.pending.iter().map(|k| k.name.to_string()).collect();
    pending.sort();
    assert_eq!(pending, ["queued", "quick", "waiting"]);
    assert_eq!(report.finished_in_grace, 1);
    finisher.await.unwrap();
    assert_eq!(q.stats().in_flight, 0);
    let again = q.shutdown(Duration::ZERO).await;
    assert!(again.drained());
    assert_eq!(again.refused_adds, 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_returns_as_soon_as_held_keys_finish() {
    let q = queue();
    q.add(k("ns", "a"));
    let g = next(&q).await;
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        g.done();
    });
    let t0 = Instant::now();
    let report = q.shutdown(Duration::from_secs(30)).await;
    assert_eq!(Instant::now() - t0, Duration::from_secs(2));
    assert!(report.drained());
    assert!(report.pending.is_empty());
    assert_eq!(report.finished_in_grace, 1);
}

// --------------------------------------------------------------------- the event path

#[test]
fn adds_work_from_plain_threads_without_a_runtime_and_never_block() {
    let q = queue();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let q = q.clone();
            std::thread::spawn(move || {
                for i in 0..25_000 {
                    q.add(k("ns", &format!("t{t}-{i}")));
                    q.add(k("ns", &format!("t{t}-{i}")));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(q.stats().ready_normal, 100_000);
}

// ------------------------------------------------------------------------ configuration

#[test]
fn a_bad_config_is_refused_naming_the_field() {
    let mut cfg = QueueConfig::new("p");
    cfg.retry_limit = Some(RateLimit {
        qps: -1.0,
        burst: 10,
    });
    match WorkQueue::<ObjectKey>::new(cfg) {
        Err(QueueError::Invalid { field, plugin, .. }) => {
            assert_eq!(field, "retry_limit.qps");
            assert_eq!(plugin, "p");
        }
        other => panic!("expected an invalid-field error, got {other:?}"),
    }
}

// ------------------------------------------------------------------------------ metrics

#[tokio::test(start_paused = true)]
async fn metrics_follow_the_queue_and_vanish_with_it() {
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = QueueMetrics::register(&mut registry);
    let q = WorkQueue::<ObjectKey>::with_metrics(QueueConfig::new("cert-sync"), &metrics).unwrap();
    assert!(matches!(
        WorkQueue::<ObjectKey>::with_metrics(QueueConfig::new("cert-sync"), &metrics),
        Err(QueueError::DuplicateMetrics { .. })
    ));
    let mut bad = QueueConfig::new("other");
    bad.aging = Duration::ZERO;
    assert!(matches!(
        WorkQueue::<ObjectKey>::with_metrics(bad, &metrics),
        Err(QueueError::Invalid { field: "aging", .. })
    ));
    q.add(k("ns", "a"));
    q.add(k("ns", "b"));
    q.add_low(k("ns", "c"));
    advance(ms(3)).await;
    let g = next(&q).await;
    advance(Duration::from_secs(2)).await;
    let scrape = || {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    };
    let text = scrape();
    let l = r#"name="cert-sync",controller="cert-sync",plugin="cert-sync""#;
    for line in [
        format!(r#"workqueue_depth{{{l},priority="0"}} 1"#),
        format!(r#"workqueue_depth{{{l},priority="-100"}} 1"#),
        format!("workqueue_adds_total{{{l}}} 3"),
        format!("workqueue_queue_duration_seconds_count{{{l}}} 1"),
        format!("workqueue_unfinished_work_seconds{{{l}}} 2.0"),
        format!("workqueue_longest_running_processor_seconds{{{l}}} 2.0"),
    ] {
        assert!(text.contains(&line), "missing {line:?} in\n{text}");
    }
    g.retry();
    let text = scrape();
    for line in [
        format!("workqueue_retries_total{{{l}}} 1"),
        format!("workqueue_work_duration_seconds_count{{{l}}} 1"),
        format!("workqueue_unfinished_work_seconds{{{l}}} 0.0"),
    ] {
        assert!(text.contains(&line), "missing {line:?} in\n{text}");
    }
    drop(q);
    assert!(
        !scrape().contains("cert-sync"),
        "series of a dropped queue disappear"
    );
    WorkQueue::<ObjectKey>::with_metrics(QueueConfig::new("cert-sync"), &metrics)
        .expect("labels are free again");
}
