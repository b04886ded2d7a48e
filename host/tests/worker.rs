//! The worker pool end to end on real parts: the real sandbox running the real misbehave
//! component, a real informer cache, the real work queue, metrics read back from the
//! Prometheus text encoding.
//!
//! Each test asserts counts, states and orderings; none asserts a speed. Waits are polls with
//! generous bounds (see `worker_support::eventually`).

mod worker_support;

use std::time::Duration;

use serde_json::json;
use trellis_host::cache;
use trellis_host::informer::{KeySink, Priority};
use trellis_host::queue::{QueueConfig, WorkQueue};
use trellis_host::sandbox::Budgets;
use trellis_host::worker::{
    DedicatedRuntime, GuestExecutor, HealthState, Pool, PoolConfig, PoolError, PoolSpec, Target,
};
use worker_support::*;

fn reconcile_total(world: &World, plugin: &str, result: &str) -> f64 {
    world.scrape().value(
        "controller_runtime_reconcile_total",
        &[("controller", plugin), ("result", result)],
    )
}

fn errors_total(world: &World, plugin: &str) -> f64 {
    world.scrape().value(
        "controller_runtime_reconcile_errors_total",
        &[("controller", plugin)],
    )
}

fn sorted_names(keys: &[trellis_host::queue::ObjectKey]) -> Vec<String> {
    let mut names: Vec<String> = keys.iter().map(|k| k.name.to_string()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn done_is_a_success_and_the_key_is_forgotten() {
    let world = World::new();
    let pool = world.pool(misbehave("misbehave", |_| {}), 2);
    put(&world.cache, "fine", json!({"mode": "ok"}));
    // As an informer would: a cache key through the pool's sink.
    pool.sink()
        .enqueue(cache::ObjectKey::namespaced("t", "fine"), Priority::Normal);
    eventually("the key is reconciled and forgotten", || {
        world.outcomes("misbehave", "done") == 1.0 && pool.queue().stats().keys == 0
    })
    .await;
    assert_eq!(reconcile_total(&world, "misbehave", "success"), 1.0);
    assert_eq!(reconcile_total(&world, "misbehave", "error"), 0.0);
    assert_eq!(errors_total(&world, "misbehave"), 0.0);
    assert_eq!(pool.queue().num_requeues(&key("fine")), 0);
    let scrape = world.scrape();
    assert_eq!(
        scrape.value(
            "controller_runtime_reconcile_time_seconds_count",
            &[("controller", "misbehave")]
        ),
        1.0
    );
    assert_eq!(
        scrape.value("trellis_guest_fuel_used_count", &[("plugin", "misbehave")]),
        1.0
    );
    assert!(scrape.value("trellis_guest_fuel_used_sum", &[("plugin", "misbehave")]) > 0.0);
    assert_eq!(
        scrape.value(
            "trellis_guest_duration_seconds_count",
            &[("plugin", "misbehave")]
        ),
        1.0
    );
    assert_eq!(
        scrape.value(
            "controller_runtime_max_concurrent_reconciles",
            &[("controller", "misbehave")]
        ),
        2.0
    );
    assert_eq!(pool.health().state, HealthState::Healthy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_error_retries_with_growing_requeues_and_a_success_resets_them() {
    let world = World::new();
    let pool = world.pool(misbehave("misbehave", |_| {}), 1);
    world.submit(
        &pool,
        "flaky",
        json!({"mode": "error", "message": "try again", "retryable": "true"}),
    );
    eventually("three failed attempts", || {
        pool.queue().num_requeues(&key("flaky")) >= 3
    })
    .await;
    assert!(world.outcomes("misbehave", "guest_error") >= 3.0);
    assert!(reconcile_total(&world, "misbehave", "error") >= 3.0);
    assert!(errors_total(&world, "misbehave") >= 3.0);
    assert_eq!(world.outcomes("misbehave", "done"), 0.0);
    let health = pool.health();
    assert_eq!(health.state, HealthState::Failing);
    assert_eq!(health.last_outcome, Some("guest_error"));
    assert_eq!(health.last_detail.as_deref(), Some("try again"));

    // The object is fixed; the change event makes the waiting key due at once.
    world.submit(&pool, "flaky", json!({"mode": "ok"}));
    eventually("the fixed object is reconciled", || {
        world.outcomes("misbehave", "done") == 1.0 && pool.queue().stats().keys == 0
    })
    .await;
    assert_eq!(pool.queue().num_requeues(&key("flaky")), 0);
    assert_eq!(pool.health().state, HealthState::Healthy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_error_is_counted_as_an_error_but_not_retried() {
    let world = World::new();
    let pool = world.pool(misbehave("misbehave", |_| {}), 1);
    world.submit(
        &pool,
        "hopeless",
        json!({"mode": "error", "message": "fix the object", "retryable": "false"}),
    );
    // No state left in the queue means no retry is scheduled: it would be a waiting key.
    eventually("the key is reconciled and forgotten", || {
        world.outcomes("misbehave", "guest_error_permanent") == 1.0
            && pool.queue().stats().keys == 0
    })
    .await;
    assert_eq!(pool.queue().num_requeues(&key("hopeless")), 0);
    assert_eq!(reconcile_total(&world, "misbehave", "error"), 1.0);
    assert_eq!(reconcile_total(&world, "misbehave", "success"), 0.0);
    assert_eq!(errors_total(&world, "misbehave"), 1.0);
    assert_eq!(world.outcomes("misbehave", "guest_error"), 0.0);
    let health = pool.health();
    assert_eq!(health.failures, 1);
    assert_eq!(health.last_outcome, Some("guest_error_permanent"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_after_runs_the_key_again_without_counting_failures() {
    let world = World::new();
    let pool = world.pool(misbehave("misbehave", |_| {}), 1);
    world.submit(&pool, "poll", json!({"mode": "requeue", "after-ms": "10"}));
    eventually("three runs", || {
        world.outcomes("misbehave", "requeue_after") >= 3.0
    })
    .await;
    assert!(reconcile_total(&world, "misbehave", "requeue_after") >= 3.0);
    assert_eq!(errors_total(&world, "misbehave"), 0.0);
    assert_eq!(pool.queue().num_requeues(&key("poll")), 0);
    assert_eq!(pool.health().state, HealthState::Healthy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_guest_fault_is_retried_and_counted_by_class() {
    type Case = (
        &'static str,
        serde_json::Value,
        fn(&mut Budgets),
        &'static str,
    );
    let cases: [Case; 6] = [
        ("loop", json!({}), |b| b.fuel = 10_000_000, "out_of_fuel"),
        (
            "loop",
            json!({}),
            |b| {
                b.fuel = u64::MAX / 2;
                b.deadline_ms = 50;
            },
            "deadline",
        ),
        ("memory", json!({}), |_| {}, "out_of_memory"),
        ("recursion", json!({}), |_| {}, "stack_overflow"),
        ("trap", json!({}), |_| {}, "trap"),
        (
            "panic",
            json!({"message": "boom on purpose"}),
            |_| {},
            "guest_panic",
        ),
    ];
    for (mode, mut data, budgets, class) in cases {
        let world = World::new();
        let pool = world.pool(misbehave("misbehave", budgets), 1);
        data["mode"] = json!(mode);
        world.submit(&pool, "bad", data);
        eventually(&format!("{mode}: two {class} outcomes"), || {
            world.outcomes("misbehave", class) >= 2.0
        })
        .await;
        // Never reset by a success, so at least the first failure is on record.
        assert!(
            pool.queue().num_requeues(&key("bad")) >= 1,
            "{mode}: retried with backoff"
        );
        let errors = errors_total(&world, "misbehave");
        assert!(errors >= 2.0, "{mode}: {errors} errors");
        assert_eq!(world.outcomes("misbehave", "done"), 0.0, "{mode}");
        assert_eq!(pool.health().last_outcome, Some(class), "{mode}");
        let report = pool.shutdown(Duration::from_secs(60)).await;
        assert_eq!(report.plugin, "misbehave");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_whose_object_is_gone_is_reconciled_with_no_object() {
    let world = World::new();
    let pool = world.pool(misbehave("misbehave", |_| {}), 1);
    // With its object, the key fails (permanently, so it is not retried).
    world.submit(
        &pool,
        "doomed",
        json!({"mode": "error", "retryable": "false"}),
    );
    eventually("the object's error", || {
        world.outcomes("misbehave", "guest_error_permanent") == 1.0
    })
    .await;
    // Deleted: misbehave answers `done` only for a request without an object (an object
    // without a valid `data.mode` is an error naming the field).
    remove(&world.cache, "doomed");
    pool.queue().add(key("doomed"));
    eventually("the deletion is reconciled", || {
        world.outcomes("misbehave", "done") == 1.0
    })
    .await;
    // A key never seen in the cache is the same.
    pool.queue().add(key("never-existed"));
    eventually("the unknown key is reconciled", || {
        world.outcomes("misbehave", "done") == 2.0
    })
    .await;
    assert_eq!(world.outcomes("misbehave", "guest_error_permanent"), 1.0);
}

async fn looping_pool_does_not_stop_another(executor: GuestExecutor) {
    let world = World::new();
    let bad = world.pool_on(
        misbehave("looper", endless),
        world.quick_queue("looper"),
        PoolConfig {
            workers: 4,
            ..PoolConfig::default()
        },
        &executor,
    );
    let good = world.pool_on(
        misbehave("healthy", |_| {}),
        world.quick_queue("healthy"),
        PoolConfig {
            workers: 2,
            ..PoolConfig::default()
        },
        &executor,
    );
    for n in 0..4 {
        put(&world.cache, &format!("loop-{n}"), json!({"mode": "loop"}));
        bad.queue().add(key(&format!("loop-{n}")));
    }
    eventually("four guests looping", || {
        world.scrape().value(
            "controller_runtime_active_workers",
            &[("controller", "looper")],
        ) == 4.0
    })
    .await;
    for n in 0..50 {
        put(&world.cache, &format!("ok-{n}"), json!({"mode": "ok"}));
        good.queue().add(key(&format!("ok-{n}")));
    }
    eventually("the healthy pool reconciles all its keys", || {
        world.outcomes("healthy", "done") == 50.0
    })
    .await;
    // ... while every looping call is still running: none has ended.
    assert_eq!(bad.queue().stats().in_flight, 4, "{}", executor.name());
    let ended: f64 = world
        .scrape()
        .samples("trellis_guest_outcomes_total")
        .iter()
        .filter(|(labels, _)| labels["plugin"] == "looper")
        .map(|(_, v)| v)
        .sum();
    assert_eq!(ended, 0.0, "{}", executor.name());
    let report = bad.shutdown(Duration::from_millis(10)).await;
    assert_eq!(report.cancelled.len(), 4);
    assert_eq!(good.shutdown(Duration::from_secs(60)).await.cancelled, []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_plugin_does_not_stop_another_pools_keys_on_the_host_runtime() {
    looping_pool_does_not_stop_another(GuestExecutor::Host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_plugin_does_not_stop_another_pools_keys_on_a_shared_guest_runtime() {
    let runtime = DedicatedRuntime::new(2).unwrap();
    looping_pool_does_not_stop_another(GuestExecutor::Shared(runtime)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_plugin_does_not_stop_another_pools_keys_on_runtimes_per_plugin() {
    looping_pool_does_not_stop_another(GuestExecutor::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_host_call_retries_the_key_and_the_worker_survives() {
    let world = World::new();
    // One worker: if the panic killed it or stranded the key, nothing else would run.
    let pool = world.pool(misbehave("misbehave", |_| {}), 1);
    world.submit(
        &pool,
        "caller",
        json!({"mode": "slow-host-call", "target": BOOM, "count": "1"}),
    );
    eventually("two panicking attempts", || {
        world.outcomes("misbehave", "host_panic") >= 2.0
    })
    .await;
    assert!(pool.queue().num_requeues(&key("caller")) >= 1);
    let scrape = world.scrape();
    assert!(
        scrape.value(
            "controller_runtime_reconcile_panics_total",
            &[("controller", "misbehave")]
        ) >= 2.0
    );
    assert_eq!(pool.health().last_outcome, Some("host_panic"));
    let detail = pool.health().last_detail.unwrap();
    assert!(detail.contains("the test host panics"), "{detail}");

    world.submit(&pool, "after", json!({"mode": "ok"}));
    eventually("the same worker reconciles another key", || {
        world.outcomes("misbehave", "done") == 1.0
    })
    .await;
    let report = pool.shutdown(Duration::from_secs(60)).await;
    assert!(report.drained());
    assert_eq!(sorted_names(&report.pending), ["caller"], "still to retry");
}

// On the host runtime: a paused clock is the test runtime's, and a pool's own runtime would
// keep real time.
#[tokio::test(start_paused = true)]
async fn degraded_after_the_window_of_failures_and_cleared_by_one_success() {
    let world = World::new();
    let mut queue_config = QueueConfig::new("misbehave");
    queue_config.backoff.base = Duration::from_secs(1);
    queue_config.backoff.cap = Duration::from_secs(20);
    queue_config.retry_limit = None;
    let queue = WorkQueue::with_metrics(queue_config, &world.queue_metrics).unwrap();
    let pool = world.pool_on(
        misbehave("misbehave", |_| {}),
        queue,
        PoolConfig {
            workers: 1,
            degraded_after: Duration::from_secs(300),
        },
        &GuestExecutor::Host,
    );
    let degraded = || {
        world
            .scrape()
            .value("trellis_plugin_degraded", &[("plugin", "misbehave")])
    };
    world.submit(
        &pool,
        "flaky",
        json!({"mode": "error", "message": "still broken", "retryable": "true"}),
    );
    eventually("the first failure", || {
        pool.health().failing_since.is_some()
    })
    .await;
    let since = pool.health().failing_since.unwrap();

    tokio::time::sleep_until(since + Duration::from_secs(299)).await;
    let health = pool.health();
    assert_eq!(health.state, HealthState::Failing, "{health}");
    assert!(health.failures >= 5, "{health}");
    assert_eq!(degraded(), 0.0);

    tokio::time::sleep_until(since + Duration::from_secs(301)).await;
    let health = pool.health();
    assert_eq!(health.state, HealthState::Degraded, "{health}");
    assert_eq!(degraded(), 1.0);
    let text = health.to_string();
    assert!(
        text.starts_with("plugin misbehave: degraded: every call has failed for 301s"),
        "{text}"
    );
    assert!(text.contains("degraded after 300s"), "{text}");
    // Backoff keeps running: more attempts are made while degraded.
    let failures = health.failures;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(pool.health().failures > failures);

    world.submit(&pool, "flaky", json!({"mode": "ok"}));
    eventually("one success", || world.outcomes("misbehave", "done") == 1.0).await;
    let health = pool.health();
    assert_eq!(health.state, HealthState::Healthy, "{health}");
    assert_eq!(health.to_string(), "plugin misbehave: healthy");
    assert_eq!(degraded(), 0.0);
    assert_eq!(pool.queue().num_requeues(&key("flaky")), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_plugin_lets_the_call_in_flight_finish_on_the_old_and_the_next_uses_the_new() {
    let world = World::new();
    let pool = world.pool(misbehave("misbehave", |_| {}), 2);
    world.submit(
        &pool,
        "slow",
        json!({"mode": "slow-host-call", "target": GATE, "count": "1"}),
    );
    bounded(
        "the old plugin's call reaches the gate",
        world.host.wait_at_gate(1),
    )
    .await;

    // The new version cannot even start: one unit of fuel.
    pool.replace_plugin(misbehave("misbehave", |b| b.fuel = 1));
    assert_eq!(pool.current_plugin().budgets().fuel, 1);
    world.submit(&pool, "fresh", json!({"mode": "ok"}));
    eventually("the next call runs on the new plugin", || {
        world.outcomes("misbehave", "out_of_fuel") >= 1.0
    })
    .await;
    assert_eq!(world.outcomes("misbehave", "done"), 0.0);
    assert_eq!(
        world
            .host
            .gate_arrivals
            .load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the old call is still waiting at the gate"
    );

    world.host.open_gate(1);
    eventually("the old call finishes on the old plugin", || {
        world.outcomes("misbehave", "done") == 1.0
    })
    .await;
    assert_eq!(pool.queue().num_requeues(&key("slow")), 0);
    assert!(pool.queue().num_requeues(&key("fresh")) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_held_keys_finish_and_reports_what_did_not_run() {
    let world = World::new();
    let pool = world.pool(misbehave("misbehave", |_| {}), 1);
    world.submit(
        &pool,
        "held",
        json!({"mode": "slow-host-call", "target": GATE, "count": "1"}),
    );
    bounded("the held key reaches the gate", world.host.wait_at_gate(1)).await;
    for name in ["a", "b", "c"] {
        world.submit(&pool, name, json!({"mode": "ok"}));
    }
    let report = tokio::join!(pool.shutdown(Duration::from_secs(60)), async {
        eventually("intake stopped", || pool.queue().is_closed()).await;
        world.host.open_gate(1);
    })
    .0;
    assert!(report.drained(), "{report:?}");
    assert_eq!(report.finished_in_grace, 1);
    assert_eq!(sorted_names(&report.pending), ["a", "b", "c"]);
    assert_eq!(
        world.outcomes("misbehave", "done"),
        1.0,
        "only the held key ran"
    );

    // Intake stays closed: later events are refused and counted.
    pool.sink()
        .enqueue(cache::ObjectKey::namespaced("t", "late"), Priority::Normal);
    let again = pool.shutdown(Duration::ZERO).await;
    assert_eq!(again.refused_adds, 1);
    assert!(again.drained());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_calls_still_running_after_the_grace_period() {
    let world = World::new();
    let pool = world.pool(misbehave("misbehave", endless), 2);
    for name in ["spin-1", "spin-2"] {
        world.submit(&pool, name, json!({"mode": "loop"}));
    }
    eventually("both guests looping", || {
        pool.queue().stats().in_flight == 2
    })
    .await;
    // The guests would run for ten minutes; the bound proves shutdown did not wait for them.
    let report = bounded(
        "shutdown with a short grace",
        pool.shutdown(Duration::from_millis(100)),
    )
    .await;
    assert!(!report.drained());
    assert_eq!(sorted_names(&report.cancelled), ["spin-1", "spin-2"]);
    assert_eq!(report.finished_in_grace, 0);
    // The cancelled guards finished their keys: nothing is left in flight or marked busy.
    assert_eq!(pool.queue().stats().in_flight, 0);
    assert_eq!(
        world.scrape().value(
            "controller_runtime_active_workers",
            &[("controller", "misbehave")]
        ),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_with_bad_settings_is_refused_naming_the_plugin_and_what_is_wrong() {
    let world = World::new();
    let plugin = misbehave("misbehave", |_| {});
    let spec = |queue, workers| PoolSpec {
        target: Target {
            plugin: plugin.clone(),
            host: world.host.clone(),
        },
        queue,
        primary: world.cache.clone(),
        config: PoolConfig {
            workers,
            ..PoolConfig::default()
        },
    };
    let start = |spec| Pool::start(spec, &world.metrics, &GuestExecutor::Host);

    let err = start(spec(world.quick_queue("misbehave"), 0)).unwrap_err();
    assert!(
        matches!(
            err,
            PoolError::Invalid {
                field: "workers",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("\"misbehave\""), "{err}");

    let foreign = WorkQueue::new(QueueConfig::new("other")).unwrap();
    let err = start(spec(foreign, 1)).unwrap_err();
    assert_eq!(
        err,
        PoolError::ForeignQueue {
            plugin: "misbehave".into(),
            queue: "other".into()
        }
    );

    let first = start(spec(
        WorkQueue::new(QueueConfig::new("misbehave")).unwrap(),
        1,
    ))
    .unwrap();
    let err = start(spec(
        WorkQueue::new(QueueConfig::new("misbehave")).unwrap(),
        1,
    ))
    .unwrap_err();
    assert_eq!(
        err,
        PoolError::DuplicateMetrics {
            plugin: "misbehave".into()
        }
    );
    drop(first);

    let outside = std::thread::spawn(move || {
        let queue = WorkQueue::new(QueueConfig::new("misbehave")).unwrap();
        let world2 = World::new();
        let spec = PoolSpec {
            target: Target {
                plugin,
                host: world2.host.clone(),
            },
            queue,
            primary: world2.cache.clone(),
            config: PoolConfig::default(),
        };
        Pool::start(spec, &world2.metrics, &GuestExecutor::Host).err()
    })
    .join()
    .unwrap();
    assert_eq!(
        outside,
        Some(PoolError::NoRuntime {
            plugin: "misbehave".into()
        })
    );
}
