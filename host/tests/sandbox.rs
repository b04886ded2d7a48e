//! The sandbox against the real `misbehave` component: every misbehaviour ends in the right
//! outcome, in bounded time, without harming the host, and the next call on the same plugin
//! works; nothing survives between calls; WASI escapes are denied; host-call budgets stop
//! floods without unbounded host work.
//!
//! Time bounds are generous ("bounded", not "fast"): the machine is a loaded 2-core box. Lower
//! bounds (a deadline cannot end a call early) are exact.

#[path = "sandbox_support/fake_host.rs"]
mod fake_host;
#[path = "sandbox_support/plugins.rs"]
mod plugins;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fake_host::{FakeHost, SLOW, count};
use plugins::{MISBEHAVE, call, configmap, misbehave_with, mode_request, request_for};
use serde_json::json;
use trellis_host::sandbox::{Action, Outcome, Plugin, ReconcileError};

/// Generous bound on any call that must be stopped by a limit.
const BOUNDED: Duration = Duration::from_secs(60);

/// The next call on the same plugin (and the same host) works.
async fn assert_recovers(plugin: &Plugin, host: &Arc<FakeHost>) {
    let request = mode_request(host, "ok", json!({}));
    let report = call(plugin, host, &request).await;
    assert_eq!(report.outcome, Outcome::Ok(Action::Done), "{report:?}");
}

fn guest_error(outcome: &Outcome) -> &ReconcileError {
    match outcome {
        Outcome::Ok(Action::Error(e)) => e,
        other => panic!("expected a guest error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ok_mode_is_done_and_reports_its_usage() {
    let host = Arc::new(FakeHost::new());
    let request = mode_request(&host, "ok", json!({}));
    let report = call(&MISBEHAVE, &host, &request).await;
    assert_eq!(report.outcome, Outcome::Ok(Action::Done));
    assert!(report.fuel_used > 0, "{report:?}");
    assert!(report.fuel_used < MISBEHAVE.budgets().fuel);
    assert_eq!(report.usage.host_calls, 0);
    assert_eq!(report.usage.writes, 0);
    assert_eq!(report.stdio_dropped_bytes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_object_is_done() {
    let host = Arc::new(FakeHost::new());
    let mut request = mode_request(&host, "ok", json!({}));
    request.object = None;
    let report = call(&MISBEHAVE, &host, &request).await;
    assert_eq!(report.outcome, Outcome::Ok(Action::Done));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_and_guest_errors_come_back_as_actions() {
    let host = Arc::new(FakeHost::new());
    let request = mode_request(&host, "requeue", json!({"after-ms": "1234"}));
    let report = call(&MISBEHAVE, &host, &request).await;
    assert_eq!(report.outcome, Outcome::Ok(Action::RequeueAfter(1234)));

    let request = mode_request(
        &host,
        "error",
        json!({"message": "nope", "retryable": "false"}),
    );
    let report = call(&MISBEHAVE, &host, &request).await;
    let error = guest_error(&report.outcome);
    assert!(error.message.contains("nope"), "{error:?}");
    assert!(!error.retryable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_guest_runs_out_of_fuel() {
    let plugin = misbehave_with(|b| {
        b.fuel = 50_000_000;
        b.deadline_ms = BOUNDED.as_millis() as u64;
    });
    let host = Arc::new(FakeHost::new());
    let report = call(&plugin, &host, &mode_request(&host, "loop", json!({}))).await;
    assert_eq!(report.outcome, Outcome::OutOfFuel, "{report:?}");
    assert_eq!(report.fuel_used, 50_000_000);
    assert!(report.wall_time < BOUNDED);
    assert_recovers(&plugin, &host).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_spinning_guest_is_stopped_at_its_deadline_and_yields_while_it_runs() {
    let plugin = misbehave_with(|b| {
        b.fuel = u64::MAX / 2;
        b.deadline_ms = 300;
    });
    let host = Arc::new(FakeHost::new());
    // On a single-threaded runtime this task can only run while the guest yields: if the
    // guest held the thread for its whole run, the counter would still be 0 when it returns.
    let progress = Arc::new(AtomicU64::new(0));
    let ticker = tokio::spawn({
        let progress = progress.clone();
        async move {
            loop {
                progress.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        }
    });
    let report = call(&plugin, &host, &mode_request(&host, "loop", json!({}))).await;
    let progressed = progress.load(Ordering::SeqCst);
    ticker.abort();
    assert_eq!(report.outcome, Outcome::Deadline, "{report:?}");
    assert!(report.wall_time >= Duration::from_millis(300), "{report:?}");
    assert!(report.wall_time < BOUNDED);
    assert!(
        progressed > 1,
        "the runtime made no progress while the guest spun"
    );
    assert_recovers(&plugin, &host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_waiting_in_a_slow_host_call_is_stopped_at_its_deadline() {
    // Long enough that even a loaded machine reaches the slow call before the deadline.
    let plugin = misbehave_with(|b| b.deadline_ms = 2000);
    let host = Arc::new(FakeHost::new());
    host.seed(&configmap(SLOW, json!({})));
    let report = call(
        &plugin,
        &host,
        &mode_request(&host, "slow-host-call", json!({})),
    )
    .await;
    assert_eq!(report.outcome, Outcome::Deadline, "{report:?}");
    assert!(report.wall_time >= Duration::from_millis(2000));
    // The host waits an hour in that call: only the outer timeout can have ended it.
    assert!(report.wall_time < BOUNDED);
    assert_eq!(count(&host.reached.get), 1);
    assert_eq!(report.usage.host_calls, 1);
    assert_recovers(&plugin, &host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_is_out_of_memory_at_its_cap() {
    let plugin = misbehave_with(|b| b.memory_bytes = 16 << 20);
    let host = Arc::new(FakeHost::new());
    let report = call(&plugin, &host, &mode_request(&host, "memory", json!({}))).await;
    match &report.outcome {
        Outcome::OutOfMemory { message } => {
            assert!(message.contains(&format!("cap {}", 16 << 20)), "{message}")
        }
        other => panic!("expected out of memory, got {other:?}"),
    }
    assert!(report.wall_time < BOUNDED);
    assert_recovers(&plugin, &host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_under_the_cap_is_granted() {
    let plugin = misbehave_with(|b| b.memory_bytes = 16 << 20);
    let host = Arc::new(FakeHost::new());
    let request = mode_request(
        &host,
        "memory",
        json!({"limit-bytes": (8 << 20).to_string()}),
    );
    let report = call(&plugin, &host, &request).await;
    assert_eq!(report.outcome, Outcome::Ok(Action::Done), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_recursion_is_a_stack_overflow() {
    let host = Arc::new(FakeHost::new());
    let report = call(
        &MISBEHAVE,
        &host,
        &mode_request(&host, "recursion", json!({})),
    )
    .await;
    assert_eq!(report.outcome, Outcome::StackOverflow, "{report:?}");
    assert!(report.wall_time < BOUNDED);
    assert_recovers(&MISBEHAVE, &host).await;

    let request = mode_request(&host, "recursion", json!({"depth": "1000"}));
    let report = call(&MISBEHAVE, &host, &request).await;
    assert_eq!(report.outcome, Outcome::Ok(Action::Done), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_is_reported_with_its_message() {
    let host = Arc::new(FakeHost::new());
    let report = call(&MISBEHAVE, &host, &mode_request(&host, "trap", json!({}))).await;
    match &report.outcome {
        Outcome::Trap { message } => assert!(message.contains("unreachable"), "{message}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_recovers(&MISBEHAVE, &host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_told_apart_from_other_traps() {
    let host = Arc::new(FakeHost::new());
    let request = mode_request(&host, "panic", json!({"message": "boom on purpose"}));
    let report = call(&MISBEHAVE, &host, &request).await;
    match &report.outcome {
        Outcome::GuestPanic { message } => {
            assert!(message.contains("boom on purpose"), "{message}");
            assert!(message.contains(".rs:"), "the location is kept: {message}");
        }
        other => panic!("expected a guest panic, got {other:?}"),
    }
    assert_recovers(&MISBEHAVE, &host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_state_survives_between_calls() {
    let host = Arc::new(FakeHost::new());
    let request = mode_request(&host, "static-state", json!({}));
    for _ in 0..3 {
        let report = call(&MISBEHAVE, &host, &request).await;
        // The guest's requeue delay is the number of calls its instance has seen.
        assert_eq!(
            report.outcome,
            Outcome::Ok(Action::RequeueAfter(1)),
            "{report:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasi_escape_attempts_are_all_denied() {
    let host = Arc::new(FakeHost::new());
    // A path of our own: the plugin's native tests run this mode outside any sandbox.
    let write_path =
        std::env::temp_dir().join(format!("trellis-escape-sandbox-{}", std::process::id()));
    let request = mode_request(
        &host,
        "wasi-escape",
        json!({"write-path": write_path.to_str().unwrap(), "path": "/etc/hostname"}),
    );
    let report = call(&MISBEHAVE, &host, &request).await;
    assert_eq!(report.outcome, Outcome::Ok(Action::Done), "{report:?}");
    let attempts: Vec<(String, String)> = host
        .logs()
        .iter()
        .filter(|l| l.message == "wasi-escape")
        .map(|l| {
            let field = |name: &str| {
                l.fields
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            (field("attempt"), field("outcome"))
        })
        .collect();
    let names: Vec<&str> = attempts.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        names,
        [
            "file-read",
            "file-write",
            "dir-list",
            "env",
            "args",
            "tcp-connect",
            "udp-bind"
        ]
    );
    assert!(
        attempts.iter().all(|(_, outcome)| outcome == "denied"),
        "{attempts:?}"
    );
    assert!(
        !write_path.exists(),
        "the guest created {}",
        write_path.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_call_flood_is_refused_past_the_budget_without_reaching_the_host() {
    let plugin = misbehave_with(|b| b.host_calls = 50);
    let host = Arc::new(FakeHost::new());
    let request = mode_request(&host, "host-call-flood", json!({"call": "get"}));
    let report = call(&plugin, &host, &request).await;
    let error = guest_error(&report.outcome);
    assert!(
        error
            .message
            .starts_with("host-call-flood: 50 calls succeeded, then"),
        "{error:?}"
    );
    assert!(error.message.contains("budget"), "{error:?}");
    assert!(!error.retryable, "budget-exceeded is not retryable");
    assert_eq!(count(&host.reached.get), 50);
    assert_eq!(report.usage.host_calls, 50);
    assert_eq!(report.usage.refused_calls, 1);
    assert_recovers(&plugin, &host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_that_ignores_refusals_ends_on_fuel_and_the_host_sees_only_the_budget() {
    let plugin = misbehave_with(|b| {
        b.host_calls = 50;
        b.fuel = 200_000_000;
        b.deadline_ms = BOUNDED.as_millis() as u64;
    });
    let host = Arc::new(FakeHost::new());
    let request = mode_request(
        &host,
        "host-call-flood",
        json!({"call": "get", "on-error": "continue"}),
    );
    let report = call(&plugin, &host, &request).await;
    assert_eq!(report.outcome, Outcome::OutOfFuel, "{report:?}");
    assert_eq!(count(&host.reached.get), 50);
    assert!(report.usage.refused_calls > 1000, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_100k_objects_in_a_loop_builds_the_answer_once() {
    let plugin = misbehave_with(|b| {
        b.returned_bytes = 1 << 20;
        b.fuel = 200_000_000;
        b.deadline_ms = BOUNDED.as_millis() as u64;
    });
    let host = Arc::new(FakeHost::new());
    for i in 0..100_000 {
        host.seed(&configmap(
            &format!("filler-{i}"),
            json!({"i": i.to_string()}),
        ));
    }
    let request = mode_request(
        &host,
        "host-call-flood",
        json!({"call": "list", "on-error": "continue"}),
    );
    let report = call(&plugin, &host, &request).await;
    assert_eq!(report.outcome, Outcome::OutOfFuel, "{report:?}");
    // The first answer did not fit and spent the byte budget; every later list was refused
    // before reaching the host.
    assert_eq!(count(&host.reached.list), 1);
    assert_eq!(report.usage.returned_bytes, 1 << 20);
    assert!(report.usage.refused_calls > 100, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_and_event_floods_stop_at_the_write_budget() {
    let plugin = misbehave_with(|b| b.writes = 7);
    for (call_name, reached) in [("apply", 0usize), ("event", 1)] {
        let host = Arc::new(FakeHost::new());
        let request = mode_request(&host, "host-call-flood", json!({"call": call_name}));
        let report = call(&plugin, &host, &request).await;
        let error = guest_error(&report.outcome);
        assert!(
            error
                .message
                .starts_with("host-call-flood: 7 calls succeeded"),
            "{error:?}"
        );
        let counters = [&host.reached.apply, &host.reached.emit_event];
        assert_eq!(count(counters[reached]), 7, "{call_name}");
        assert_eq!(report.usage.writes, 7);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_logs_and_output_are_capped() {
    let plugin = misbehave_with(|b| {
        b.log_bytes = 64 << 10;
        b.stdio_bytes = 16 << 10;
    });
    let host = Arc::new(FakeHost::new());
    let request = mode_request(&host, "huge-log", json!({}));
    let report = call(&plugin, &host, &request).await;
    assert_eq!(report.outcome, Outcome::Ok(Action::Done), "{report:?}");
    // 4 MiB to each of stdout and stderr, 16 KiB of each kept.
    assert_eq!(
        report.stdio_dropped_bytes,
        2 * ((4 << 20) + 64 - (16 << 10))
    );
    // 64 lines of 2 x 64 KiB: the first is cut to the budget, the rest dropped.
    assert_eq!(report.usage.log_bytes, 64 << 10);
    let huge: Vec<_> = host
        .logs()
        .into_iter()
        .filter(|l| l.message.starts_with("xxx"))
        .collect();
    assert_eq!(huge.len(), 1);
    assert!(huge[0].truncated);
    assert!(huge[0].message.len() < 64 << 10);
    assert!(report.usage.log_lines_dropped >= 63, "{report:?}");
    assert_recovers(&plugin, &host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_writes_reach_the_host_as_writes_and_are_answered_invalid() {
    let host = Arc::new(FakeHost::new());
    let request = mode_request(&host, "invalid-write", json!({}));
    let report = call(&MISBEHAVE, &host, &request).await;
    assert_eq!(report.outcome, Outcome::Ok(Action::Done), "{report:?}");
    assert_eq!(report.usage.writes, 6);
    assert!(host.writes.lock().unwrap().is_empty(), "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_of_one_plugin_are_isolated() {
    let host = Arc::new(FakeHost::new());
    let spin = misbehave_with(|b| b.fuel = 50_000_000);
    let loop_request = mode_request(&host, "loop", json!({}));
    let state_request = mode_request(&host, "static-state", json!({}));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (plugin, host) = (spin.clone(), host.clone());
        let request = if i % 2 == 0 {
            loop_request.clone()
        } else {
            state_request.clone()
        };
        tasks.push(tokio::spawn(async move {
            call(&plugin, &host, &request).await.outcome
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let outcome = task.await.unwrap();
        let expected = if i % 2 == 0 {
            Outcome::OutOfFuel
        } else {
            Outcome::Ok(Action::RequeueAfter(1))
        };
        assert_eq!(outcome, expected, "call {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_reaches_the_guest_intact() {
    let host = Arc::new(FakeHost::new());
    // A malformed parameter: the guest's error names the field, proving it saw our object.
    let object = configmap("bad", json!({"mode": "requeue", "after-ms": "soon"}));
    let report = call(&MISBEHAVE, &host, &request_for(&object)).await;
    let error = guest_error(&report.outcome);
    assert_eq!(
        error.message,
        "data.after-ms: \"soon\" is not a non-negative integer"
    );
}

/// A tracing writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn guest_output_and_logs_reach_tracing_with_the_plugin_and_key() {
    let out = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer({
            let out = out.clone();
            move || out.clone()
        })
        .finish();
    // The call runs on this thread (current-thread runtime), under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let plugin = misbehave_with(|b| b.stdio_bytes = 100);
    let host = Arc::new(FakeHost::new());
    let request = mode_request(
        &host,
        "huge-log",
        json!({"bytes": "60", "line-bytes": "30", "to": "stdout,stderr,log"}),
    );
    let report = call(&plugin, &host, &request).await;
    assert_eq!(report.outcome, Outcome::Ok(Action::Done), "{report:?}");
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let line = "x".repeat(30);
    let stdout: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("stream=\"stdout\"") && l.contains(&line))
        .collect();
    assert_eq!(stdout.len(), 2, "{text}");
    assert!(
        stdout.iter().all(|l| l.contains("plugin=\"misbehave\"")),
        "{text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("stream=\"stderr\"") && l.contains(&line))
            .count(),
        2,
        "{text}"
    );
    let logged: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("trellis::guest") && l.contains(&line))
        .collect();
    assert_eq!(logged.len(), 2, "{text}");
    for l in logged {
        for field in [
            "plugin=\"misbehave\"",
            "namespace=\"t\"",
            "name=\"huge-log\"",
            "/v1/ConfigMap",
        ] {
            assert!(l.contains(field), "{field} missing from {l}");
        }
    }
}
