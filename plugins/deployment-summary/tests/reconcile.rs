//! deployment-summary through the SDK's native harness.

use std::time::Duration;

use deployment_summary::{ANNOTATION, DeploymentSummary, Summary, UNSETTLED_REQUEUE};
use serde_json::{Value, json};
use trellis_guest::k8s_openapi::api::apps::v1::Deployment;
use trellis_guest::k8s_openapi::api::core::v1::Pod;
use trellis_guest::testing::{Harness, Operation, Write};
use trellis_guest::{Action, ErrorCode, Kind};

fn harness() -> Harness {
    let h = Harness::new();
    h.seed_yaml(include_str!("fixtures/shop.yaml")).unwrap();
    h
}

fn reconcile(h: &Harness, name: &str) -> Result<Action, trellis_guest::Error> {
    h.reconcile::<DeploymentSummary>(&Deployment::gvk(), "shop", name)
}

fn summary(h: &Harness, name: &str) -> Option<Summary> {
    let deployment: Deployment = h.get("shop", name).unwrap();
    let value = deployment.metadata.annotations?.get(ANNOTATION)?.clone();
    Some(serde_json::from_str(&value).unwrap())
}

#[test]
fn summarizes_exactly_the_selected_pods_and_then_writes_nothing() {
    let h = harness();
    assert_eq!(reconcile(&h, "web").unwrap(), Action::done());
    let writes = h.writes();
    assert_eq!(writes.len(), 1);
    // Only the annotation is applied: no spec, so nothing the user owns changes hands.
    let Write::Apply {
        object,
        force: true,
    } = &writes[0]
    else {
        panic!("{writes:?}")
    };
    assert_eq!(
        object,
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"namespace": "shop", "name": "web",
            "annotations": {ANNOTATION: r#"{"ready":2,"total":2,"phases":{"Running":2},"restarts":3,"terminating":0}"#}}})
    );
    // Not the canary (excluded by matchExpressions), not staging's web-1, not db.
    let s = summary(&h, "web").unwrap();
    assert_eq!((s.ready, s.total, s.restarts), (2, 2, 3));
    // The spec is untouched.
    let deployment: Deployment = h.get("shop", "web").unwrap();
    assert_eq!(deployment.spec.unwrap().replicas, Some(2));

    h.clear_records();
    assert_eq!(reconcile(&h, "web").unwrap(), Action::done());
    assert!(h.writes().is_empty(), "{:?}", h.writes());
}

#[test]
fn a_pod_change_changes_the_summary_once() {
    let h = harness();
    reconcile(&h, "web").unwrap();
    let mut pod: Value = h.object(&Pod::gvk(), "shop", "web-2").unwrap();
    pod["status"]["conditions"][0]["status"] = json!("False");
    pod["status"]["containerStatuses"][0]["restartCount"] = json!(5);
    h.put(&pod).unwrap();
    h.clear_records();

    // Not settled: look again soon.
    assert_eq!(
        reconcile(&h, "web").unwrap(),
        Action::requeue_after(UNSETTLED_REQUEUE)
    );
    assert_eq!(h.writes().len(), 1);
    let s = summary(&h, "web").unwrap();
    assert_eq!((s.ready, s.total, s.restarts), (1, 2, 8));

    h.clear_records();
    reconcile(&h, "web").unwrap();
    assert!(h.writes().is_empty());
}

#[test]
fn a_selector_without_match_labels_reads_the_namespace() {
    let h = harness();
    assert_eq!(
        reconcile(&h, "api").unwrap(),
        Action::requeue_after(Duration::from_secs(30))
    );
    let s = summary(&h, "api").unwrap();
    assert_eq!((s.ready, s.total), (0, 1));
    assert_eq!(s.phases.get("Pending"), Some(&1));
}

#[test]
fn no_pods_is_a_settled_empty_summary() {
    let h = harness();
    assert_eq!(reconcile(&h, "idle").unwrap(), Action::done());
    assert_eq!(summary(&h, "idle").unwrap(), Summary::default());
}

#[test]
fn a_deleted_deployment_writes_nothing() {
    let h = harness();
    assert_eq!(reconcile(&h, "gone").unwrap(), Action::done());
    assert!(h.writes().is_empty());
}

#[test]
fn a_deployment_without_spec_is_a_permanent_error() {
    let h = harness();
    h.seed(&json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"namespace": "shop", "name": "broken"}}))
        .unwrap();
    let err = reconcile(&h, "broken").unwrap_err();
    assert_eq!(
        (err.to_string().as_str(), err.is_retryable()),
        ("spec is missing", false)
    );
    assert!(h.writes().is_empty());
}

#[test]
fn an_undecodable_deployment_names_itself() {
    let h = harness();
    h.seed(&json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"namespace": "shop", "name": "odd"},
        "spec": {"selector": "app=web"}}))
        .unwrap();
    let err = reconcile(&h, "odd").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot decode apps/v1 Deployment shop/odd: "),
        "{err}"
    );
    assert!(!err.is_retryable());
}

#[test]
fn host_errors_propagate_with_their_retry_decision() {
    let h = harness();
    h.fail_next(
        Operation::Lookup,
        ErrorCode::Forbidden,
        "pods are not readable",
    );
    let err = reconcile(&h, "web").unwrap_err();
    assert_eq!(
        err.to_string(),
        "lookup v1 Pod by label=app=web: forbidden: pods are not readable"
    );
    assert!(!err.is_retryable());

    h.fail_next(Operation::Apply, ErrorCode::Unavailable, "apiserver down");
    let err = reconcile(&h, "web").unwrap_err();
    assert!(err.is_retryable());
    assert!(h.writes().is_empty());
    assert_eq!(reconcile(&h, "web").unwrap(), Action::done());
}
