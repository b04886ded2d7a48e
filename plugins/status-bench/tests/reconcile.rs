//! status-bench through the SDK's native harness: the write it makes, that a second pass makes
//! none, and its answers when the related ConfigMap is missing or the write fails.

use serde_json::{Value, json};
use status_bench::StatusBench;
use status_bench::logic::{self, CONDITION_TYPE, ROUND_ANNOTATION};
use trellis_guest::k8s_openapi::api::apps::v1::Deployment;
use trellis_guest::testing::{Harness, Operation, Write};
use trellis_guest::{Action, ErrorCode, Kind};

fn deployment(name: &str, round: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"namespace": "bench", "name": name, "annotations": {ROUND_ANNOTATION: round}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": "nginx"}]}},
        },
    })
}

fn config_map(name: &str, size: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"namespace": "bench", "name": name}, "data": {"size": size}})
}

fn harness() -> Harness {
    let h = Harness::new();
    h.seed(&deployment("web", "1", 2)).unwrap();
    h.seed(&config_map("web", "7")).unwrap();
    h
}

fn reconcile(h: &Harness, name: &str) -> Result<Action, trellis_guest::Error> {
    h.reconcile::<StatusBench>(&Deployment::gvk(), "bench", name)
}

fn expected(round: &str, replicas: i32, size: &str) -> String {
    let data = [("size".to_string(), size.to_string())].into();
    logic::expected_value(Some(round), Some(replicas), Some(&data))
}

fn status_value(h: &Harness, name: &str) -> Option<String> {
    let deployment: Deployment = h.get("bench", name)?;
    logic::current_value(deployment.status?.conditions.as_deref()).map(str::to_string)
}

#[test]
fn writes_the_computed_status_once_then_nothing() {
    let h = harness();
    assert_eq!(reconcile(&h, "web").unwrap(), Action::done());
    let writes = h.writes();
    let [Write::PatchStatus { kind, key, patch }] = &writes[..] else {
        panic!("expected one status patch: {writes:?}")
    };
    assert_eq!(kind, &Deployment::gvk());
    assert_eq!(key.to_string(), "bench/web");
    assert_eq!(
        patch,
        &json!({"status": {"conditions": [{"type": CONDITION_TYPE, "status": "True",
            "reason": "Computed", "message": expected("1", 2, "7")}]}})
    );
    assert_eq!(status_value(&h, "web"), Some(expected("1", 2, "7")));
    // The spec is untouched by a status write.
    let deployment: Deployment = h.get("bench", "web").unwrap();
    assert_eq!(deployment.spec.unwrap().replicas, Some(2));

    h.clear_records();
    assert_eq!(reconcile(&h, "web").unwrap(), Action::done());
    assert!(h.writes().is_empty(), "{:?}", h.writes());
}

#[test]
fn a_new_round_or_a_changed_config_map_writes_the_new_value() {
    let h = harness();
    reconcile(&h, "web").unwrap();

    // `put` replaces the whole object: carry the status the server would keep.
    let mut with_status = deployment("web", "2", 2);
    with_status["status"] = json!({"conditions": [{"type": CONDITION_TYPE, "status": "True",
        "message": expected("1", 2, "7")}]});
    h.put(&with_status).unwrap();
    h.clear_records();
    reconcile(&h, "web").unwrap();
    assert_eq!(h.writes().len(), 1);
    assert_eq!(status_value(&h, "web"), Some(expected("2", 2, "7")));

    h.put(&config_map("web", "8")).unwrap();
    h.clear_records();
    reconcile(&h, "web").unwrap();
    assert_eq!(h.writes().len(), 1);
    assert_eq!(status_value(&h, "web"), Some(expected("2", 2, "8")));
}

#[test]
fn other_conditions_do_not_count_as_ours() {
    let h = harness();
    let mut object = deployment("web", "1", 2);
    object["status"] = json!({"conditions": [{"type": "Available", "status": "True",
        "message": expected("1", 2, "7")}]});
    h.put(&object).unwrap();
    reconcile(&h, "web").unwrap();
    assert_eq!(h.writes().len(), 1, "{:?}", h.writes());
}

#[test]
fn a_missing_config_map_is_a_retryable_error_naming_it_and_writes_nothing() {
    let h = Harness::new();
    h.seed(&deployment("api", "1", 1)).unwrap();
    let error = reconcile(&h, "api").unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert!(error.to_string().contains("ConfigMap bench/api"), "{error}");
    assert!(h.writes().is_empty());
}

#[test]
fn a_deleted_deployment_is_done_without_reads_or_writes() {
    let h = Harness::new();
    assert_eq!(reconcile(&h, "gone").unwrap(), Action::done());
    assert!(h.writes().is_empty());
}

#[test]
fn a_failed_status_write_is_returned_with_its_code() {
    let h = harness();
    h.fail_next(
        Operation::PatchStatus,
        ErrorCode::Unavailable,
        "server busy",
    );
    let error = reconcile(&h, "web").unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::Unavailable), "{error}");
    assert!(error.is_retryable());
    assert!(error.to_string().contains("server busy"), "{error}");
    assert_eq!(status_value(&h, "web"), None);
}

#[test]
fn a_read_forbidden_by_the_host_is_a_permanent_error() {
    let h = harness();
    h.fail_next(
        Operation::Get,
        ErrorCode::Forbidden,
        "ConfigMaps are not readable",
    );
    let error = reconcile(&h, "web").unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::Forbidden), "{error}");
    assert!(!error.is_retryable());
    assert!(h.writes().is_empty());
}

#[test]
fn a_malformed_deployment_is_a_permanent_decode_error() {
    let h = Harness::new();
    let mut object = deployment("bad", "1", 1);
    object["spec"]["replicas"] = json!("three");
    // The harness seeds raw JSON; the cache holds whatever the server served.
    h.seed(&object).unwrap();
    h.seed(&config_map("bad", "1")).unwrap();
    let error = reconcile(&h, "bad").unwrap_err();
    assert!(!error.is_retryable(), "{error}");
    assert!(error.to_string().contains("bench/bad"), "{error}");
    assert!(h.writes().is_empty());
}
