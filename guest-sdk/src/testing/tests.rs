//! The harness through the public API, as a plugin's tests use it.

use serde_json::{Value, json};

use super::*;
use crate::{Applied, EventType, Level};

fn cm() -> Gvk {
    Gvk::new("", "v1", "ConfigMap")
}

const FIXTURES: &str = "
apiVersion: v1
kind: ConfigMap
metadata: {namespace: a, name: one, labels: {team: x}}
data: {k: v}
---
apiVersion: v1
kind: ConfigMap
metadata: {namespace: b, name: two, labels: {team: y}}
";

fn harness() -> Harness {
    let h = Harness::new();
    h.seed_yaml(FIXTURES).unwrap();
    h
}

/// Echoes what it was given into logs and returns what the ConfigMap's `data.action` says.
struct Echo;

impl Reconciler for Echo {
    fn reconcile(request: Request) -> Result<Action, Error> {
        let object: Option<Value> = request.object()?;
        crate::info!(present = object.is_some(), "reconciling {}", request.key);
        match object
            .as_ref()
            .and_then(|o| o.pointer("/data/action"))
            .and_then(Value::as_str)
        {
            Some("requeue") => Ok(Action::requeue_after(std::time::Duration::from_secs(5))),
            Some("fail") => Err(Error::permanent("asked to fail")),
            _ => Ok(Action::done()),
        }
    }
}

#[test]
fn reconcile_passes_the_cached_object_and_returns_the_plugins_answer() {
    let h = harness();
    assert_eq!(
        h.reconcile::<Echo>(&cm(), "a", "one").unwrap(),
        Action::done()
    );
    let logs = h.logs();
    assert_eq!(logs[0].message, "reconciling a/one");
    assert_eq!(logs[0].field("present"), Some("true"));
    assert_eq!(logs[0].level, Level::Info);

    // Deleted (absent) objects reconcile with no object.
    h.reconcile::<Echo>(&cm(), "a", "gone").unwrap();
    assert_eq!(h.logs()[1].field("present"), Some("false"));

    let mut changed: Value = h.object(&cm(), "a", "one").unwrap();
    changed["data"]["action"] = json!("fail");
    h.put(&changed).unwrap();
    let err = h.reconcile::<Echo>(&cm(), "a", "one").unwrap_err();
    assert_eq!(
        (err.to_string().as_str(), err.is_retryable()),
        ("asked to fail", false)
    );
}

#[test]
fn seeding_is_all_or_nothing_and_names_the_bad_document() {
    let h = harness();
    let err = h
        .seed_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: a, name: three}\n---\napiVersion: v1\nmetadata: {name: x}\n")
        .unwrap_err();
    assert_eq!(err.to_string(), "fixture document 2: missing kind");
    assert!(
        h.object(&cm(), "a", "three").is_none(),
        "document 1 must not be seeded"
    );

    let err = h.seed_yaml(FIXTURES).unwrap_err();
    assert_eq!(
        err.to_string(),
        "fixture document 1: v1 ConfigMap a/one is seeded twice"
    );
    let err = h
        .seed_json(r#"{"kind": "List", "apiVersion": "v1", "items": [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "a"}}, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "a"}}]}"#)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "fixture document 1 item 2: v1 Secret a/s is seeded twice"
    );
    assert!(h.objects(&Gvk::new("", "v1", "Secret")).is_empty());
}

#[test]
fn seeded_objects_get_server_fields() {
    let h = harness();
    let one = h.object(&cm(), "a", "one").unwrap();
    assert!(one["metadata"]["uid"].is_string());
    assert!(one["metadata"]["resourceVersion"].is_string());
}

#[test]
fn typed_reads_go_through_the_fake_cache() {
    let h = harness();
    h.run(|| {
        let all: Vec<Value> = crate::list_as(&cm(), None, None).unwrap();
        assert_eq!(all.len(), 2);
        let team_y: Vec<Value> = crate::list_as(&cm(), None, "team=y").unwrap();
        assert_eq!(team_y[0]["metadata"]["name"], "two");
        let by_label: Vec<Value> = crate::lookup_as(&cm(), crate::index::LABEL, &crate::index::label("team", "x")).unwrap();
        assert_eq!(by_label[0]["metadata"]["name"], "one");
        assert!(crate::get_as::<Value>(&cm(), "a", "missing").unwrap().is_none());
        let err = crate::lookup_as::<Value>(&cm(), "by-owner-name", "x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "lookup v1 ConfigMap by by-owner-name=x: not-found: no index \"by-owner-name\" for v1 ConfigMap"
        );
    });
}

#[test]
fn declared_indexes_answer_lookups() {
    let h = harness();
    h.index(&cm(), "data-key", |o| {
        o.get("data")
            .and_then(Value::as_object)
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default()
    });
    let found: Vec<Value> = h.run(|| crate::lookup_as(&cm(), "data-key", "k")).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["metadata"]["name"], "one");
}

#[test]
fn decode_failures_name_the_object_and_the_read() {
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Strict {
        data: std::collections::BTreeMap<String, u32>,
    }
    let h = harness();
    let err = h
        .run(|| crate::get_as::<Strict>(&cm(), "a", "one"))
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot decode v1 ConfigMap a/one from get v1 ConfigMap a/one: "),
        "{err}"
    );
    assert!(!err.is_retryable());
}

#[test]
fn writes_are_recorded_applied_and_visible_to_the_next_read() {
    let h = harness();
    let desired = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "a", "name": "new"}, "data": {"x": "1"}});
    h.run(|| {
        let first = crate::apply_if_changed(&desired).unwrap();
        assert!(matches!(first, Applied::Created(_)));
        assert!(matches!(crate::apply_if_changed(&desired).unwrap(), Applied::Unchanged(_)));
        let mut more = desired.clone();
        more["data"]["y"] = json!("2");
        assert!(matches!(crate::apply_if_changed(&more).unwrap(), Applied::Updated(_)));
        crate::patch_status_as::<Value>(&cm(), "a", "new", &json!({"status": {"seen": true}})).unwrap();
        crate::create(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "b", "generateName": "gen-"}})).unwrap();
        crate::raw::delete(&cm(), &ObjectKey::new("a", "one")).unwrap();
    });
    let writes = h.writes();
    assert_eq!(writes.len(), 5, "{writes:?}");
    assert!(matches!(&writes[0], Write::Apply { force: true, .. }));
    assert!(
        matches!(&writes[2], Write::PatchStatus { patch, .. } if patch["status"]["seen"] == true)
    );
    assert!(matches!(&writes[3], Write::Create { .. }));
    assert_eq!(
        writes[4].target().unwrap().to_string(),
        "v1 ConfigMap a/one"
    );
    assert!(h.object(&cm(), "a", "one").is_none());
    assert_eq!(h.objects(&cm()).len(), 3, "two, new and the generated one");
    let new = h.object(&cm(), "a", "new").unwrap();
    assert_eq!(
        (new["data"]["y"].as_str(), new["status"]["seen"].as_bool()),
        (Some("2"), Some(true))
    );
}

#[test]
fn injected_failures_fail_once_in_order_and_record_nothing() {
    let h = harness();
    h.fail_next(Operation::Apply, ErrorCode::Conflict, "lost a race");
    h.fail_next(Operation::Apply, ErrorCode::Forbidden, "not granted");
    let desired = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "a", "name": "one"}, "data": {"k": "w"}});
    h.run(|| {
        let first = crate::apply(&desired).unwrap_err();
        assert_eq!(
            first.to_string(),
            "apply v1 ConfigMap a/one: conflict: lost a race"
        );
        assert!(first.is_retryable());
        let second = crate::apply(&desired).unwrap_err();
        assert_eq!(
            (second.code(), second.is_retryable()),
            (Some(ErrorCode::Forbidden), false)
        );
        assert!(h.writes().is_empty());
        assert_eq!(
            h.object(&cm(), "a", "one").unwrap()["data"]["k"],
            "v",
            "nothing changed"
        );
        crate::apply(&desired).unwrap();
    });
    assert_eq!(h.writes().len(), 1);
}

#[test]
fn events_are_recorded_and_a_failed_event_only_logs() {
    let h = harness();
    let about = ObjectRef::new(cm(), ObjectKey::new("a", "one"));
    h.fail_next(Operation::Event, ErrorCode::BudgetExceeded, "spent");
    h.run(|| {
        crate::event(&about, EventType::Warning, "Dropped", "first");
        crate::event(&about, EventType::Normal, "Kept", "second");
    });
    let events = h.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].reason.as_str(), events[0].event_type),
        ("Kept", EventType::Normal)
    );
    assert_eq!(events[0].regarding, about);
    let logs = h.logs();
    assert_eq!(
        (logs[0].level, logs[0].message.as_str()),
        (Level::Warn, "event not recorded")
    );
    assert!(
        logs[0]
            .field("error")
            .unwrap()
            .contains("budget-exceeded: spent")
    );
}

#[test]
fn records_clear_but_the_cache_stays() {
    let h = harness();
    h.run(|| crate::apply(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "a", "name": "z"}})))
        .unwrap();
    h.clear_records();
    assert!(h.writes().is_empty() && h.logs().is_empty() && h.events().is_empty());
    assert!(h.object(&cm(), "a", "z").is_some());
    assert!(h.remove(&cm(), "a", "z"));
    assert!(!h.remove(&cm(), "a", "z"));
}

#[test]
fn without_a_harness_calls_are_unavailable_and_say_how_to_fix_it() {
    let err = crate::get_as::<Value>(&cm(), "a", "one").unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unavailable));
    assert!(err.to_string().contains("Harness::reconcile"), "{err}");
    crate::info!("logging without a harness is fine");
}

#[test]
fn the_harness_is_unbound_after_a_panicking_plugin() {
    let h = harness();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        h.run(|| panic!("plugin bug"))
    }));
    assert!(panicked.is_err());
    assert!(
        crate::get_as::<Value>(&cm(), "a", "one").is_err(),
        "no harness may stay bound"
    );
    assert!(
        h.run(|| crate::get_as::<Value>(&cm(), "a", "one"))
            .unwrap()
            .is_some()
    );
}

#[test]
fn writes_of_unusable_objects_fail_before_reaching_the_host() {
    let h = harness();
    h.run(|| {
        // Not encodable as JSON (map keys must be strings): an encode error, nothing sent.
        let mut odd = std::collections::BTreeMap::new();
        odd.insert((1u8, 2u8), "x".to_owned());
        let err = crate::apply(&odd).unwrap_err();
        assert!(err.to_string().starts_with("cannot encode the object to apply: "), "{err}");
        assert!(!err.is_retryable());

        // No identity: apply_if_changed cannot look it up, and says so.
        let err = crate::apply_if_changed(&json!({"kind": "ConfigMap", "metadata": {"name": "x"}})).unwrap_err();
        assert_eq!(err.to_string(), "apply_if_changed: the object has no apiVersion, kind or metadata.name");

        // The host (here: the fake) rejects what it cannot identify, naming the object as
        // far as it can.
        let err = crate::apply(&json!({"apiVersion": "v1", "metadata": {"name": "x"}})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "apply an object without apiVersion, kind or metadata.name: invalid: apply: missing kind"
        );
        let err = crate::raw::create("{oops").unwrap_err();
        assert!(err.to_string().starts_with("create an object that is not valid JSON: invalid: "), "{err}");
    });
    assert!(h.writes().is_empty());
    assert_eq!(h.objects(&cm()).len(), 2);
}

#[cfg(feature = "k8s")]
#[test]
fn typed_objects_name_themselves() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let h = harness();
    let one: ConfigMap = h.get("a", "one").unwrap();
    assert_eq!(ObjectRef::of(&one).to_string(), "v1 ConfigMap a/one");
    let typed: Vec<ConfigMap> = h.run(|| crate::list::<ConfigMap>("b", None)).unwrap();
    assert_eq!(typed[0].metadata.name.as_deref(), Some("two"));
}
