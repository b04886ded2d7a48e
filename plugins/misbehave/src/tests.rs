//! The modes that terminate, run natively through the SDK's harness. The ones that exist to
//! be stopped by the sandbox (loop, unbounded memory and recursion, trap, and the floods
//! without a count) are exercised by the host's sandbox tests against the built component.

use std::time::Duration;

use serde_json::{Value, json};
use trellis_guest::testing::{Harness, Operation, Write};
use trellis_guest::{Action, Error, ErrorCode, Gvk};

use super::Misbehave;

fn cm() -> Gvk {
    Gvk::new("", "v1", "ConfigMap")
}

/// A harness holding ConfigMap `t/m` with this `data`, plus `t/slow`.
fn with_data(data: Value) -> Harness {
    let h = Harness::new();
    h.seed(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "t", "name": "m"}, "data": data}))
        .unwrap();
    h.seed(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "t", "name": "slow"}}))
        .unwrap();
    h
}

fn run(h: &Harness) -> Result<Action, Error> {
    h.reconcile::<Misbehave>(&cm(), "t", "m")
}

#[test]
fn ok_and_deleted_objects_are_done() {
    assert_eq!(
        run(&with_data(json!({"mode": "ok"}))).unwrap(),
        Action::done()
    );
    assert_eq!(
        Harness::new()
            .reconcile::<Misbehave>(&cm(), "t", "gone")
            .unwrap(),
        Action::done()
    );
}

#[test]
fn bad_modes_and_parameters_are_permanent_errors_naming_the_field() {
    for (data, expected) in [
        (json!({}), "data.mode is missing"),
        (
            json!({"mode": "explode"}),
            "data.mode: unknown mode \"explode\"",
        ),
        (
            json!({"mode": "requeue", "after-ms": "soon"}),
            "data.after-ms: \"soon\" is not a non-negative integer",
        ),
        (
            json!({"mode": "host-call-flood", "call": "delete"}),
            "data.call: unknown call \"delete\"",
        ),
        (
            json!({"mode": "host-call-flood", "count": "1", "on-error": "shrug"}),
            "data.on-error: \"shrug\"",
        ),
        (
            json!({"mode": "huge-log", "to": "printer"}),
            "data.to: unknown channel \"printer\"",
        ),
        (
            json!({"mode": "invalid-write", "variants": "apply-not-json,nope"}),
            "data.variants: unknown variant \"nope\"",
        ),
        (
            json!({"mode": "error", "retryable": "perhaps"}),
            "data.retryable: \"perhaps\" is neither true nor false",
        ),
    ] {
        let err = run(&with_data(data.clone())).unwrap_err();
        assert!(err.to_string().starts_with(expected), "{data}: {err}");
        assert!(!err.is_retryable(), "{data}");
    }
    let h = Harness::new();
    h.seed(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "t", "name": "m"}, "data": "x"}))
        .unwrap();
    assert_eq!(
        run(&h).unwrap_err().to_string(),
        "data: expected an object, found \"x\""
    );
}

#[test]
fn requeue_and_error_modes_report_as_asked() {
    assert_eq!(
        run(&with_data(json!({"mode": "requeue", "after-ms": "250"}))).unwrap(),
        Action::requeue_after(Duration::from_millis(250))
    );
    let retryable = run(&with_data(json!({"mode": "error", "message": "try later"}))).unwrap_err();
    assert_eq!(
        (retryable.to_string().as_str(), retryable.is_retryable()),
        ("try later", true)
    );
    let permanent = run(&with_data(json!({"mode": "error", "retryable": "false"}))).unwrap_err();
    assert_eq!(
        (permanent.to_string().as_str(), permanent.is_retryable()),
        ("misbehave: error requested", false)
    );
}

#[test]
fn static_state_counts_calls_in_the_requeue_delay() {
    // Natively the static survives between calls (one process), so the count grows; in the
    // host, with a fresh instance per call, it must stay at 1.
    let h = with_data(json!({"mode": "static-state"}));
    let first = run(&h).unwrap();
    let second = run(&h).unwrap();
    let (Action::RequeueAfter(a), Action::RequeueAfter(b)) = (first, second) else {
        panic!("static-state must requeue: {first:?} {second:?}");
    };
    assert!(a >= Duration::from_millis(1) && b > a, "{a:?} then {b:?}");
    assert_eq!(
        h.logs()
            .iter()
            .filter(|l| l.message == "static-state")
            .count(),
        2
    );
}

#[test]
fn bounded_memory_and_recursion_finish() {
    let h =
        with_data(json!({"mode": "memory", "chunk-bytes": "1048576", "limit-bytes": "4194304"}));
    assert_eq!(run(&h).unwrap(), Action::done());
    let line = h
        .logs()
        .into_iter()
        .find(|l| l.message.starts_with("memory"))
        .unwrap();
    assert_eq!(
        (line.field("bytes"), line.field("chunks")),
        (Some("4194304"), Some("4"))
    );

    let h = with_data(json!({"mode": "recursion", "depth": "2000"}));
    assert_eq!(run(&h).unwrap(), Action::done());
}

#[test]
fn panic_mode_panics_with_the_message() {
    let h = with_data(json!({"mode": "panic", "message": "boom"}));
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&h))).unwrap_err();
    assert_eq!(
        panic.downcast_ref::<String>().map(String::as_str),
        Some("boom")
    );
}

#[test]
fn a_counted_flood_makes_exactly_that_many_calls() {
    let h = with_data(json!({"mode": "host-call-flood", "call": "apply", "count": "25"}));
    assert_eq!(run(&h).unwrap(), Action::done());
    let writes = h.writes();
    assert_eq!(writes.len(), 25);
    // Every apply differs from the last, so a host cannot elide them.
    assert!(matches!(&writes[24], Write::Apply { object, .. } if object["data"]["n"] == "24"));
    for call in ["get", "list", "lookup", "event"] {
        let h = with_data(json!({"mode": "host-call-flood", "call": call, "count": "10"}));
        assert_eq!(run(&h).unwrap(), Action::done(), "{call}");
    }
}

#[test]
fn a_flood_stops_at_the_first_refusal_and_says_how_far_it_got() {
    let h = with_data(json!({"mode": "host-call-flood", "call": "event"}));
    h.limit_host_calls(3);
    let err = run(&h).unwrap_err();
    assert_eq!(
        err.to_string(),
        "host-call-flood: 3 calls succeeded, then event Flood about v1 ConfigMap t/m: budget-exceeded: \
         the budget of 3 host calls is spent"
    );
    assert!(!err.is_retryable());
    assert_eq!(h.events().len(), 3);
}

#[test]
fn on_error_continue_keeps_calling() {
    let h = with_data(
        json!({"mode": "host-call-flood", "call": "get", "count": "5", "on-error": "continue"}),
    );
    for _ in 0..5 {
        h.fail_next(Operation::Get, ErrorCode::BudgetExceeded, "spent");
    }
    assert_eq!(run(&h).unwrap(), Action::done());
}

#[test]
fn slow_host_call_reads_the_target_object() {
    let h = with_data(json!({"mode": "slow-host-call", "count": "3", "target": "elsewhere"}));
    h.fail_next(Operation::Get, ErrorCode::Unavailable, "too slow");
    let err = run(&h).unwrap_err();
    assert_eq!(
        err.to_string(),
        "slow-host-call: 0 calls succeeded, then get v1 ConfigMap t/elsewhere: unavailable: too slow"
    );
    assert!(err.is_retryable(), "unavailable stays retryable");
    let h = with_data(json!({"mode": "slow-host-call", "count": "3"}));
    assert_eq!(run(&h).unwrap(), Action::done());
}

#[test]
fn invalid_writes_are_all_rejected_and_nothing_is_written() {
    let h = with_data(json!({"mode": "invalid-write"}));
    assert_eq!(run(&h).unwrap(), Action::done());
    assert!(h.writes().is_empty());
    let answers: Vec<_> = h
        .logs()
        .into_iter()
        .filter(|l| l.message == "invalid-write")
        .collect();
    assert_eq!(answers.len(), 6);
    assert!(
        answers
            .iter()
            .all(|l| l.field("answer").unwrap().contains(": invalid: ")),
        "{answers:?}"
    );
}

#[test]
fn invalid_write_reports_a_host_that_accepts_or_misclassifies() {
    let h = with_data(json!({"mode": "invalid-write", "variants": "apply-missing-name"}));
    h.fail_next(Operation::Apply, ErrorCode::Forbidden, "not granted");
    let err = run(&h).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid-write: not rejected as invalid: apply-missing-name: apply an object without apiVersion, kind or metadata.name: forbidden: not granted"
    );
}

#[test]
fn huge_log_writes_the_requested_volume() {
    let h = with_data(
        json!({"mode": "huge-log", "bytes": "1048576", "line-bytes": "65536", "to": "log"}),
    );
    assert_eq!(run(&h).unwrap(), Action::done());
    let lines: Vec<_> = h
        .logs()
        .into_iter()
        .filter(|l| l.message.len() == 65536)
        .collect();
    assert_eq!(lines.len(), 16);
    assert_eq!(lines[0].field("payload").map(str::len), Some(65536));
}

#[test]
fn wasi_escape_reports_what_a_native_process_can_do() {
    // Natively nothing is sandboxed: at least the environment is visible, and the mode must
    // say so. Inside the host every attempt must be denied and the answer is `done`.
    let h =
        with_data(json!({"mode": "wasi-escape", "path": "Cargo.toml", "address": "127.0.0.1:9"}));
    let err = run(&h).unwrap_err();
    assert!(
        err.to_string().starts_with("wasi-escape: allowed: "),
        "{err}"
    );
    assert!(err.to_string().contains("file-read (read "), "{err}");
    let attempts: Vec<_> = h
        .logs()
        .into_iter()
        .filter(|l| l.message == "wasi-escape")
        .map(|l| l.field("attempt").unwrap().to_owned())
        .collect();
    assert_eq!(
        attempts,
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
}
