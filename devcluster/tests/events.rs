//! `events.k8s.io/v1` Events with the real kube client: discovery, OpenAPI, every verb, field
//! selectors, and kube-runtime's `Recorder` (create, then a merge patch with a series on
//! repeats), which is how Trellis plugins publish events.

mod common;

use common::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event as CoreEvent, ObjectReference};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, GroupVersionKind, ListParams, WatchEvent, WatchParams};
use kube::discovery::{Discovery, Scope};
use kube::runtime::events::{Event as Publish, EventType, Recorder, Reporter};
use serde_json::{Value, json};

fn event(name: &str, regarding: &str, controller: &str) -> Event {
    serde_json::from_value(json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": name},
        "eventTime": "2025-05-01T10:00:00.000000Z",
        "action": "Reconcile", "reason": "Synced", "type": "Normal",
        "note": format!("{regarding} synced"),
        "regarding": {"apiVersion": "v1", "kind": "ConfigMap", "name": regarding, "namespace": "default"},
        "reportingController": controller, "reportingInstance": format!("{controller}-0"),
    }))
    .unwrap()
}

/// Creating `body` at `path` is answered 400 with the server's decode message.
async fn refused_as_undecodable(client: &kube::Client, path: &str, body: Value) {
    let request = raw_request(
        "POST",
        path,
        "application/json",
        serde_json::to_vec(&body).unwrap(),
    );
    let error = status(client.request::<Value>(request).await.unwrap_err());
    assert_eq!(error.code, 400);
    assert!(
        error
            .message
            .starts_with("Event in version \"v1\" cannot be handled as a Event"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn discovery_and_openapi_serve_events_k8s_io() {
    let (_cluster, client) = start().await;

    let apis = get_json(&client, "/apis").await;
    let group = apis["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "events.k8s.io")
        .expect("/apis lists events.k8s.io");
    assert_eq!(
        group["preferredVersion"]["groupVersion"],
        "events.k8s.io/v1"
    );
    let group = get_json(&client, "/apis/events.k8s.io").await;
    assert_eq!(group["kind"], "APIGroup");
    assert_eq!(group["versions"][0]["version"], "v1");
    let resources = get_json(&client, "/apis/events.k8s.io/v1").await;
    assert_eq!(resources["groupVersion"], "events.k8s.io/v1");
    let events = &resources["resources"][0];
    assert_eq!(
        (&events["name"], &events["kind"], &events["namespaced"]),
        (&json!("events"), &json!("Event"), &json!(true))
    );
    assert_eq!(events["shortNames"], json!(["ev"]));
    for verb in ["create", "get", "list", "watch", "patch", "delete"] {
        assert!(
            events["verbs"].as_array().unwrap().contains(&json!(verb)),
            "{verb}"
        );
    }
    assert_eq!(
        resources["resources"].as_array().unwrap().len(),
        1,
        "no status subresource"
    );

    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let (resource, capabilities) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("events.k8s.io", "v1", "Event"))
        .expect("kube discovery resolves events.k8s.io/v1 Event");
    assert_eq!(resource.plural, "events");
    assert_eq!(capabilities.scope, Scope::Namespaced);

    let index = get_json(&client, "/openapi/v3").await;
    let url = index["paths"]["apis/events.k8s.io/v1"]["serverRelativeURL"]
        .as_str()
        .expect("OpenAPI index lists events.k8s.io/v1");
    let document = get_json(&client, url).await;
    let item = &document["paths"]["/apis/events.k8s.io/v1/namespaces/{namespace}/events/{name}"];
    assert_eq!(
        item["patch"]["x-kubernetes-group-version-kind"],
        json!({"group": "events.k8s.io", "version": "v1", "kind": "Event"})
    );
}

#[tokio::test]
async fn events_k8s_io_serves_every_verb_and_its_field_selectors() {
    let (_cluster, client) = start().await;
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    let created = create(&api, &event("a.1", "a", "alpha")).await;
    assert_eq!(created.metadata.namespace.as_deref(), Some("default"));
    assert!(created.metadata.uid.is_some());
    assert_eq!(created.note.as_deref(), Some("a synced"));
    create(&api, &event("b.1", "b", "beta")).await;

    let got = api.get("a.1").await.unwrap();
    assert_eq!(got.regarding.unwrap().name.as_deref(), Some("a"));
    let all = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(&all.items), vec!["a.1", "b.1"]);
    for selector in [
        "regarding.name=b",
        "reportingController=beta",
        "regarding.kind=ConfigMap,regarding.name!=a",
    ] {
        let listed = api
            .list(&ListParams::default().fields(selector))
            .await
            .unwrap();
        assert_eq!(names(&listed.items), vec!["b.1"], "{selector}");
    }
    // The core names of the renamed fields are not events.k8s.io's.
    let error = status(
        api.list(&ListParams::default().fields("involvedObject.name=a"))
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, 400);
    assert_eq!(
        error.message,
        "field label not supported: involvedObject.name"
    );
    // ...and core v1 Events keep theirs.
    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    core.list(&ListParams::default().fields("involvedObject.name=a,source=x"))
        .await
        .unwrap();
    let error = status(
        core.list(&ListParams::default().fields("regarding.name=a"))
            .await
            .unwrap_err(),
    );
    assert_eq!(error.message, "field label not supported: regarding.name");

    let mut watch = api
        .watch(
            &WatchParams::default().fields("regarding.name=a"),
            created.metadata.resource_version.as_deref().unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    let patched = merge(
        &api,
        "a.1",
        json!({"series": {"count": 3, "lastObservedTime": "2025-05-01T10:05:00.000000Z"}}),
    )
    .await;
    assert_eq!(patched.series.as_ref().unwrap().count, 3);
    let seen = next_events(&mut watch, 1).await;
    match &seen[0] {
        WatchEvent::Modified(e) => assert_eq!(e.series.as_ref().unwrap().count, 3),
        other => panic!("expected MODIFIED a.1, got {}", describe(other)),
    }

    api.delete("a.1", &DeleteParams::default()).await.unwrap();
    let seen = next_events(&mut watch, 1).await;
    assert_eq!(describe(&seen[0]), "DELETED a.1");
    assert_eq!(status(api.get("a.1").await.unwrap_err()).code, 404);
    let left = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(&left.items), vec!["b.1"]);

    // A body that is not an events.k8s.io Event is refused and stores nothing.
    refused_as_undecodable(
        &client,
        "/apis/events.k8s.io/v1/namespaces/default/events",
        json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "c"}, "series": {"count": "x"}
        }),
    )
    .await;
    let left = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(&left.items), vec!["b.1"]);
}

#[tokio::test]
async fn recorder_publishes_and_patches_repeats_into_a_series() {
    let (_cluster, client) = start().await;
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "trellis".into(),
            instance: Some("trellis-0".into()),
        },
    );
    let regarding = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        name: Some("settings".into()),
        namespace: Some("default".into()),
        uid: Some("1234".into()),
        ..Default::default()
    };
    let published = Publish {
        type_: EventType::Warning,
        reason: "Conflict".into(),
        note: Some("field .data.a is owned by someone else".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    recorder.publish(&published, &regarding).await.unwrap();
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    let first = api.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(first.len(), 1);
    assert!(
        first[0].series.is_none(),
        "a first occurrence has no series"
    );

    recorder.publish(&published, &regarding).await.unwrap();
    let stored = api.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(stored.len(), 1, "a repeat patches the same Event");
    let event = &stored[0];
    assert_eq!(event.metadata.name, first[0].metadata.name);
    assert_eq!(event.series.as_ref().map(|s| s.count), Some(2));
    assert_eq!(event.reason.as_deref(), Some("Conflict"));
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(event.reporting_controller.as_deref(), Some("trellis"));
    assert_eq!(event.reporting_instance.as_deref(), Some("trellis-0"));
    let about = event.regarding.as_ref().unwrap();
    assert_eq!(
        (about.kind.as_deref(), about.name.as_deref()),
        (Some("ConfigMap"), Some("settings"))
    );
    assert_ne!(
        event.metadata.resource_version, first[0].metadata.resource_version,
        "the repeat was stored"
    );

    recorder.publish(&published, &regarding).await.unwrap();
    let stored = api.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(stored[0].series.as_ref().map(|s| s.count), Some(3));
}

/// Kubernetes keeps one Event whichever API group wrote it; `kubectl get events` and
/// `kubectl describe` read core `v1`, kube-runtime's `Recorder` writes `events.k8s.io/v1`.
#[tokio::test]
async fn both_versions_serve_one_event_under_their_own_names() {
    let (_cluster, client) = start().await;
    let new: Api<Event> = Api::namespaced(client.clone(), "default");
    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let mut core_watch = core
        .watch(
            &WatchParams::default().fields("involvedObject.name=a"),
            &list_version(&core).await,
        )
        .await
        .unwrap()
        .boxed();

    // Recorded as events.k8s.io, read as core v1: the renamed fields under their core names.
    let recorded = create(&new, &event("a.1", "a", "alpha")).await;
    let seen = core.get("a.1").await.unwrap();
    assert_eq!(seen.involved_object.name.as_deref(), Some("a"));
    assert_eq!(seen.involved_object.kind.as_deref(), Some("ConfigMap"));
    assert_eq!(seen.message.as_deref(), Some("a synced"));
    assert_eq!(seen.reporting_component.as_deref(), Some("alpha"));
    assert_eq!(seen.reporting_instance.as_deref(), Some("alpha-0"));
    assert_eq!(seen.action.as_deref(), Some("Reconcile"));
    assert_eq!(seen.metadata.uid, recorded.metadata.uid, "one object");
    assert_eq!(
        seen.metadata.resource_version,
        recorded.metadata.resource_version
    );
    let raw = get_json(&client, "/api/v1/namespaces/default/events/a.1").await;
    assert_eq!(raw["apiVersion"], "v1");
    for stored_name in ["regarding", "note", "reportingController"] {
        assert!(raw.get(stored_name).is_none(), "{stored_name} in {raw}");
    }
    match &next_events(&mut core_watch, 1).await[0] {
        WatchEvent::Added(e) => assert_eq!(e.message.as_deref(), Some("a synced")),
        other => panic!("expected ADDED a.1, got {}", describe(other)),
    }

    // Written as core v1 (a kubelet-style Event), read as events.k8s.io.
    let kubelet: CoreEvent = serde_json::from_value(json!({
        "metadata": {"name": "web.1"},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "web", "namespace": "default"},
        "reason": "Pulled", "type": "Normal", "message": "pulled",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2025-05-01T10:00:00Z", "lastTimestamp": "2025-05-01T10:05:00Z",
        "count": 2,
    }))
    .unwrap();
    let written = create(&core, &kubelet).await;
    assert_eq!(
        written.message.as_deref(),
        Some("pulled"),
        "answered as core v1"
    );
    assert_eq!(written.count, Some(2));
    let seen = new.get("web.1").await.unwrap();
    assert_eq!(
        seen.regarding.as_ref().unwrap().name.as_deref(),
        Some("web")
    );
    assert_eq!(seen.note.as_deref(), Some("pulled"));
    let source = seen.deprecated_source.as_ref().unwrap();
    assert_eq!(source.component.as_deref(), Some("kubelet"));
    assert_eq!(source.host.as_deref(), Some("node-1"));
    assert_eq!(seen.deprecated_count, Some(2));
    assert!(seen.deprecated_last_timestamp.is_some());

    // Each version selects with its own names, over both Events.
    for (selector, expected) in [
        ("involvedObject.name=web", vec!["web.1"]),
        ("involvedObject.kind=ConfigMap", vec!["a.1"]),
        ("reportingComponent=alpha", vec!["a.1"]),
        ("source=kubelet", vec!["web.1"]),
    ] {
        let listed = core
            .list(&ListParams::default().fields(selector))
            .await
            .unwrap();
        assert_eq!(names(&listed.items), expected, "core {selector}");
    }
    for (selector, expected) in [
        ("regarding.name=web", vec!["web.1"]),
        ("reportingController=alpha", vec!["a.1"]),
        ("source=kubelet", vec!["web.1"]),
    ] {
        let listed = new
            .list(&ListParams::default().fields(selector))
            .await
            .unwrap();
        assert_eq!(names(&listed.items), expected, "events.k8s.io {selector}");
    }
    let all = core.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(&all.items), vec!["a.1", "web.1"]);

    // A patch through core v1 changes the one Event; the watcher sees it as core v1.
    let patched = merge(&core, "a.1", json!({"message": "a resynced"})).await;
    assert_eq!(patched.message.as_deref(), Some("a resynced"));
    assert_eq!(
        new.get("a.1").await.unwrap().note.as_deref(),
        Some("a resynced")
    );
    match &next_events(&mut core_watch, 1).await[0] {
        WatchEvent::Modified(e) => assert_eq!(e.message.as_deref(), Some("a resynced")),
        other => panic!("expected MODIFIED a.1, got {}", describe(other)),
    }
    // A core v1 update that changes nothing stores nothing.
    let unchanged = core
        .replace("a.1", &Default::default(), &patched)
        .await
        .unwrap();
    assert_eq!(
        unchanged.metadata.resource_version,
        patched.metadata.resource_version
    );

    // Deleted through one version, gone from both.
    core.delete("a.1", &DeleteParams::default()).await.unwrap();
    assert_eq!(status(new.get("a.1").await.unwrap_err()).code, 404);
    assert_eq!(
        describe(&next_events(&mut core_watch, 1).await[0]),
        "DELETED a.1"
    );
    let left = new.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(&left.items), vec!["web.1"]);

    // A core v1 body is checked as a core v1 Event and stores nothing when it is not one.
    refused_as_undecodable(
        &client,
        "/api/v1/namespaces/default/events",
        json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "bad"}, "count": "many"}),
    )
    .await;
    let left = new.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(&left.items), vec!["web.1"]);

    // Deleting the collection through core v1 answers with core v1 Events.
    let deleted = core
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap()
        .left()
        .expect("the deleted Events");
    assert_eq!(names(&deleted.items), vec!["web.1"]);
    assert_eq!(deleted.items[0].message.as_deref(), Some("pulled"));
    assert_eq!(
        deleted.items[0].involved_object.name.as_deref(),
        Some("web")
    );
    assert!(
        new.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}
