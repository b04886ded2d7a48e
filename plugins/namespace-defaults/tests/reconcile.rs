//! namespace-defaults through the SDK's native harness: fixtures in, writes and events out,
//! and a second reconcile to prove idempotence.

use namespace_defaults::{NamespaceDefaults, POLICY_NAME, QUOTA_NAME};
use serde_json::{Value, json};
use trellis_guest::k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use trellis_guest::k8s_openapi::api::networking::v1::NetworkPolicy;
use trellis_guest::testing::{Harness, Operation, Write};
use trellis_guest::{Action, ErrorCode, EventType, Gvk, Kind};

fn harness() -> Harness {
    let h = Harness::new();
    h.seed_yaml(include_str!("fixtures/namespaces.yaml"))
        .unwrap();
    h
}

fn reconcile(h: &Harness, namespace: &str) -> Result<Action, trellis_guest::Error> {
    h.reconcile::<NamespaceDefaults>(&Namespace::gvk(), None, namespace)
}

fn applied_kinds(h: &Harness) -> Vec<String> {
    h.writes()
        .iter()
        .map(|w| match w {
            Write::Apply {
                object,
                force: true,
            } => format!(
                "{} {}",
                object["kind"].as_str().unwrap(),
                object["metadata"]["name"].as_str().unwrap()
            ),
            other => panic!("only forced applies expected, got {other:?}"),
        })
        .collect()
}

#[test]
fn an_enabled_namespace_gets_both_defaults_once() {
    let h = harness();
    assert_eq!(reconcile(&h, "team-a").unwrap(), Action::done());
    assert_eq!(
        applied_kinds(&h),
        [
            "NetworkPolicy trellis-default-deny",
            "ResourceQuota trellis-defaults"
        ]
    );

    let policy: NetworkPolicy = h.get("team-a", POLICY_NAME).unwrap();
    let spec = policy.spec.unwrap();
    assert_eq!(spec.policy_types.unwrap(), ["Ingress", "Egress"]);
    assert!(spec.ingress.is_none() && spec.egress.is_none());
    let quota: ResourceQuota = h.get("team-a", QUOTA_NAME).unwrap();
    assert_eq!(quota.spec.unwrap().hard.unwrap()["pods"].0, "50");

    let events = h.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].reason.as_str(), events[0].event_type),
        ("DefaultsCreated", EventType::Normal)
    );
    assert_eq!(
        events[0].note,
        "created NetworkPolicy trellis-default-deny; created ResourceQuota trellis-defaults"
    );
    assert_eq!(events[0].regarding.to_string(), "v1 Namespace team-a");

    h.clear_records();
    assert_eq!(reconcile(&h, "team-a").unwrap(), Action::done());
    assert!(
        h.writes().is_empty(),
        "second reconcile wrote {:?}",
        h.writes()
    );
    assert!(h.events().is_empty());
}

#[test]
fn annotations_tune_the_objects_and_canonical_quantities_stay_idempotent() {
    let h = harness();
    reconcile(&h, "team-b").unwrap();
    let policy: NetworkPolicy = h.get("team-b", POLICY_NAME).unwrap();
    assert_eq!(policy.spec.unwrap().policy_types.unwrap(), ["Ingress"]);
    let hard = h
        .get::<ResourceQuota>("team-b", QUOTA_NAME)
        .unwrap()
        .spec
        .unwrap()
        .hard
        .unwrap();
    assert_eq!(hard["pods"].0, "20");
    assert!(!hard.contains_key("services.nodeports"));

    // The API server stores 1024Mi as 1Gi; that is not a change.
    let mut stored: Value = h
        .object(&ResourceQuota::gvk(), "team-b", QUOTA_NAME)
        .unwrap();
    stored["spec"]["hard"]["requests.memory"] = json!("1Gi");
    h.put(&stored).unwrap();
    h.clear_records();
    reconcile(&h, "team-b").unwrap();
    assert!(h.writes().is_empty(), "{:?}", h.writes());
}

#[test]
fn changing_an_annotation_updates_only_what_changed() {
    let h = harness();
    reconcile(&h, "team-a").unwrap();
    let mut ns: Namespace = h.get(None, "team-a").unwrap();
    ns.metadata.annotations = Some(
        [(
            "defaults.trellis.dev/quota".to_owned(),
            "pods=10,secrets=none,services.loadbalancers=none".to_owned(),
        )]
        .into(),
    );
    h.put(&ns).unwrap();
    h.clear_records();

    reconcile(&h, "team-a").unwrap();
    assert_eq!(applied_kinds(&h), ["ResourceQuota trellis-defaults"]);
    let hard = h
        .get::<ResourceQuota>("team-a", QUOTA_NAME)
        .unwrap()
        .spec
        .unwrap()
        .hard
        .unwrap();
    assert_eq!(hard["pods"].0, "10");
    assert!(
        !hard.contains_key("services.loadbalancers"),
        "a dropped resource leaves the quota: {hard:?}"
    );
    let events = h.events();
    assert_eq!(
        (events[0].reason.as_str(), events[0].note.as_str()),
        ("DefaultsUpdated", "updated ResourceQuota trellis-defaults")
    );

    h.clear_records();
    reconcile(&h, "team-a").unwrap();
    assert!(h.writes().is_empty());
}

#[test]
fn someone_elses_edit_is_reverted() {
    let h = harness();
    reconcile(&h, "team-a").unwrap();
    let mut policy: Value = h
        .object(&NetworkPolicy::gvk(), "team-a", POLICY_NAME)
        .unwrap();
    policy["spec"]["policyTypes"] = json!(["Egress"]);
    h.put(&policy).unwrap();
    h.clear_records();
    reconcile(&h, "team-a").unwrap();
    assert_eq!(applied_kinds(&h), ["NetworkPolicy trellis-default-deny"]);
    let policy: NetworkPolicy = h.get("team-a", POLICY_NAME).unwrap();
    assert_eq!(
        policy.spec.unwrap().policy_types.unwrap(),
        ["Ingress", "Egress"]
    );
}

#[test]
fn removing_the_label_deletes_only_our_objects() {
    let h = harness();
    reconcile(&h, "team-a").unwrap();
    // Someone else's quota of the same name in another unlabelled namespace is left alone.
    h.seed_yaml("apiVersion: v1\nkind: ResourceQuota\nmetadata: {namespace: legacy, name: trellis-defaults}\nspec: {hard: {pods: '5'}}\n")
        .unwrap();
    let mut ns: Namespace = h.get(None, "team-a").unwrap();
    ns.metadata
        .labels
        .as_mut()
        .unwrap()
        .remove("trellis.dev/defaults");
    h.put(&ns).unwrap();
    h.clear_records();

    reconcile(&h, "team-a").unwrap();
    let deleted: Vec<String> = h
        .writes()
        .iter()
        .map(|w| match w {
            Write::Delete { kind, key } => format!("{} {key}", kind.kind),
            other => panic!("only deletes expected, got {other:?}"),
        })
        .collect();
    assert_eq!(
        deleted,
        [
            "NetworkPolicy team-a/trellis-default-deny",
            "ResourceQuota team-a/trellis-defaults"
        ]
    );
    assert_eq!(h.events()[0].reason, "DefaultsRemoved");
    assert!(h.get::<NetworkPolicy>("team-a", POLICY_NAME).is_none());

    h.clear_records();
    reconcile(&h, "team-a").unwrap();
    reconcile(&h, "legacy").unwrap();
    assert!(h.writes().is_empty(), "{:?}", h.writes());
    assert!(h.get::<ResourceQuota>("legacy", QUOTA_NAME).is_some());
}

#[test]
fn a_bad_annotation_is_a_warning_and_a_permanent_error_and_writes_nothing() {
    let h = harness();
    let err = reconcile(&h, "typo").unwrap_err();
    assert_eq!(
        err.to_string(),
        "annotation defaults.trellis.dev/quota: entry \"pods=lots\": \"lots\" is not a quantity: expected a number like 500m, 2, 1.5Gi"
    );
    assert!(!err.is_retryable());
    assert!(h.writes().is_empty());
    let events = h.events();
    assert_eq!(
        (events[0].event_type, events[0].reason.as_str()),
        (EventType::Warning, "InvalidDefaults")
    );
    assert_eq!(events[0].note, err.to_string());
}

#[test]
fn unlabelled_terminating_and_deleted_namespaces_write_nothing() {
    let h = harness();
    for namespace in ["legacy", "leaving", "gone"] {
        assert_eq!(
            reconcile(&h, namespace).unwrap(),
            Action::done(),
            "{namespace}"
        );
    }
    assert!(h.writes().is_empty() && h.events().is_empty());
}

#[test]
fn a_lost_race_is_retryable_and_the_retry_converges() {
    let h = harness();
    h.fail_next(
        Operation::Apply,
        ErrorCode::Conflict,
        "the object has been modified",
    );
    let err = reconcile(&h, "team-a").unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(err.code(), Some(ErrorCode::Conflict));
    assert!(
        err.to_string().starts_with(
            "apply networking.k8s.io/v1 NetworkPolicy team-a/trellis-default-deny: conflict"
        ),
        "{err}"
    );
    reconcile(&h, "team-a").unwrap();
    assert_eq!(
        h.objects(&Gvk::new("networking.k8s.io", "v1", "NetworkPolicy"))
            .len(),
        1
    );
    assert!(h.get::<ResourceQuota>("team-a", QUOTA_NAME).is_some());
}

#[test]
fn a_spent_budget_stops_the_reconcile_without_partial_events() {
    let h = harness();
    h.limit_host_calls(2); // get + apply of the policy; the quota's get is refused
    let err = reconcile(&h, "team-a").unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BudgetExceeded));
    assert_eq!(applied_kinds(&h), ["NetworkPolicy trellis-default-deny"]);
    assert!(h.events().is_empty());
}
