//! Conformance with the real kube client: writes (create, update, patch, server-side apply,
//! status, delete, finalizers, generateName), CRDs, and bad requests leaving the store
//! unchanged.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, WatchParams,
};
use kube::discovery::Discovery;
use serde_json::{Value, json};

fn deployment(replicas: i32, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": image}]}}
        }
    })
}

/// Server-side apply of `config` to the Deployment `web`.
async fn apply_web(
    api: &Api<Deployment>,
    params: &PatchParams,
    config: Value,
) -> Result<Deployment, kube::Error> {
    api.patch("web", params, &Patch::Apply(config)).await
}

/// The managedFields entry of `manager`.
fn managed_entry(meta: ObjectMeta, manager: &str) -> ManagedFieldsEntry {
    meta.managed_fields
        .unwrap()
        .into_iter()
        .find(|m| m.manager.as_deref() == Some(manager))
        .unwrap()
}

#[tokio::test]
async fn server_side_apply_owns_fields_and_detects_conflicts() {
    let (_cluster, client) = start().await;
    let api: Api<Deployment> = Api::namespaced(client, "default");
    let applied = apply_web(&api, &PatchParams::apply("alice"), deployment(2, "nginx:1"))
        .await
        .unwrap();
    assert_eq!(applied.metadata.generation, Some(1));
    let managed = applied.metadata.managed_fields.clone().unwrap();
    assert_eq!(managed[0].manager.as_deref(), Some("alice"));
    assert_eq!(managed[0].operation.as_deref(), Some("Apply"));

    // Re-applying the same configuration changes nothing.
    let again = apply_web(&api, &PatchParams::apply("alice"), deployment(2, "nginx:1"))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        applied.metadata.resource_version
    );

    // bob sets replicas to another value: conflict, nothing changes.
    let bob = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 5}});
    let conflict = status(
        apply_web(&api, &PatchParams::apply("bob"), bob.clone())
            .await
            .unwrap_err(),
    );
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        conflict.message,
        "Apply failed with 1 conflict: conflict with \"alice\": .spec.replicas"
    );
    let causes = conflict.details.unwrap().causes;
    assert_eq!(causes[0].field, ".spec.replicas");
    assert_eq!(
        api.get("web").await.unwrap().spec.unwrap().replicas,
        Some(2)
    );

    // With force, bob takes the field over.
    let forced = apply_web(&api, &PatchParams::apply("bob").force(), bob)
        .await
        .unwrap();
    assert_eq!(forced.spec.unwrap().replicas, Some(5));
    assert_eq!(forced.metadata.generation, Some(2));
    // alice applying her old value now conflicts with bob.
    let conflict = status(
        apply_web(&api, &PatchParams::apply("alice"), deployment(2, "nginx:1"))
            .await
            .unwrap_err(),
    );
    assert!(
        conflict.message.contains("conflict with \"bob\""),
        "{}",
        conflict.message
    );

    // An update by another client takes the fields it changes.
    let patched = api
        .patch(
            "web",
            &PatchParams {
                field_manager: Some("scaler".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    let scaler = managed_entry(patched.metadata, "scaler");
    assert_eq!(scaler.operation.as_deref(), Some("Update"));
    assert_eq!(
        scaler.fields_v1.unwrap().0,
        json!({"f:spec": {"f:replicas": {}}})
    );
}

#[tokio::test]
async fn apply_requires_a_field_manager_and_a_matching_name() {
    let (_cluster, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}});
    let error = status(
        api.patch("a", &PatchParams::default(), &Patch::Apply(cm.clone()))
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, 422);
    assert!(
        error.message.contains("fieldManager: Required value"),
        "{}",
        error.message
    );
    let error = status(
        api.patch("b", &PatchParams::apply("m"), &Patch::Apply(cm))
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, 400);
    assert_eq!(
        error.message,
        "the name of the object (a) does not match the name on the URL (b)"
    );
    assert!(
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn status_subresource_splits_writes_and_generation_tracks_spec() {
    let (_cluster, client) = start().await;
    let api: Api<Deployment> = Api::namespaced(client, "default");
    let mut body = deployment(1, "nginx");
    body["status"] = json!({"replicas": 7});
    let created = create(&api, &serde_json::from_value(body).unwrap()).await;
    assert!(created.status.is_none(), "status is not set by creates");
    let with_status = api
        .patch_status(
            "web",
            &PatchParams::apply("ctrl"),
            &Patch::Apply(json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "status": {"replicas": 1, "readyReplicas": 1}, "spec": {"replicas": 9}
            })),
        )
        .await
        .unwrap();
    assert_eq!(with_status.status.as_ref().unwrap().ready_replicas, Some(1));
    assert_eq!(
        with_status.spec.as_ref().unwrap().replicas,
        Some(1),
        "status writes ignore spec"
    );
    assert_eq!(with_status.metadata.generation, Some(1));
    let ctrl = managed_entry(with_status.metadata, "ctrl");
    assert_eq!(ctrl.subresource.as_deref(), Some("status"));

    let labelled = merge(
        &api,
        "web",
        json!({"metadata": {"labels": {"x": "y"}}, "status": {"replicas": 0}}),
    )
    .await;
    assert_eq!(
        labelled.metadata.generation,
        Some(1),
        "metadata changes keep the generation"
    );
    assert_eq!(
        labelled.status.unwrap().replicas,
        Some(1),
        "spec writes ignore status"
    );
    let scaled = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.metadata.generation, Some(2));
    let got = api.get_status("web").await.unwrap();
    assert_eq!(got.status.unwrap().replicas, Some(1));
}

#[tokio::test]
async fn finalizers_hold_deletion_and_watchers_see_it_through() {
    let (_cluster, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut cm = configmap("held", json!({}));
    cm.metadata.finalizers = Some(vec!["example.com/cleanup".to_string()]);
    let created = create(&api, &cm).await;
    let mut stream = watch_from(
        &api,
        &WatchParams::default().disable_bookmarks(),
        created.metadata.resource_version.as_deref().unwrap(),
    )
    .await;
    let pending = api.delete("held", &DeleteParams::default()).await.unwrap();
    let marked = pending
        .left()
        .expect("the object comes back while finalizers remain");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert!(api.get("held").await.is_ok(), "still there");
    // A second delete is idempotent.
    assert!(api.delete("held", &DeleteParams::default()).await.is_ok());
    let adding = status(
        api.patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/cleanup", "x/y"]}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(adding.code, 422);
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Json::<()>(
            serde_json::from_value(json!([{"op": "remove", "path": "/metadata/finalizers"}]))
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(status(api.get("held").await.unwrap_err()).code, 404);
    let seen = describe_all(&next_events(&mut stream, 2).await);
    assert_eq!(seen, vec!["MODIFIED held", "DELETED held"]);
}

#[tokio::test]
async fn generate_name_and_namespaces() {
    let (_cluster, client) = start().await;
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut p = pod("", json!({}));
    p.metadata.name = None;
    p.metadata.generate_name = Some("worker-".to_string());
    let created = create(&api, &p).await;
    let name = created.metadata.name.unwrap();
    assert!(
        name.starts_with("worker-") && name.len() == "worker-".len() + 5,
        "{name}"
    );
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Pending"));

    let missing: Api<Pod> = Api::namespaced(client.clone(), "nowhere");
    let error = status(
        missing
            .create(&PostParams::default(), &pod("x", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (error.code, error.message.as_str()),
        (404, "namespaces \"nowhere\" not found")
    );

    namespace(&client, "team").await;
    let team: Api<Pod> = Api::namespaced(client.clone(), "team");
    create(&team, &pod("a", json!({}))).await;
    let namespaces: Api<Namespace> = Api::all(client);
    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        status(team.get("a").await.unwrap_err()).code,
        404,
        "contents go with the namespace"
    );
    assert_eq!(status(namespaces.get("team").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn bad_requests_get_the_servers_status_and_change_nothing() {
    let (cluster, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    create(&api, &configmap("existing", json!({}))).await;
    let before = cluster.resource_version();
    let cases = [
        (
            raw_request(
                "POST",
                "/api/v1/namespaces/default/configmaps",
                "application/json",
                "{not json",
            ),
            400,
            "BadRequest",
            "couldn't get version/kind; json parse error",
        ),
        (
            raw_request(
                "POST",
                "/api/v1/namespaces/default/widgets",
                "application/json",
                "{}",
            ),
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
        (
            raw_request(
                "POST",
                "/api/v1/namespaces/default/configmaps",
                "application/json",
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"other"}}"#,
            ),
            400,
            "BadRequest",
            "the namespace of the provided object does not match",
        ),
        (
            raw_request(
                "POST",
                "/api/v1/namespaces/default/configmaps",
                "application/json",
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"k":1}}"#,
            ),
            400,
            "BadRequest",
            "ConfigMap in version \"v1\" cannot be handled as a ConfigMap",
        ),
        (
            raw_request(
                "POST",
                "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
                "application/json",
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"bogus":1}"#,
            ),
            400,
            "BadRequest",
            "strict decoding error: unknown field \"bogus\"",
        ),
        (
            raw_request(
                "POST",
                "/api/v1/namespaces/default/configmaps",
                "application/json",
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"existing"}}"#,
            ),
            409,
            "AlreadyExists",
            "configmaps \"existing\" already exists",
        ),
        (
            raw_request(
                "PATCH",
                "/api/v1/namespaces/default/configmaps/existing",
                "application/merge-patch+json",
                "[1]",
            ),
            400,
            "BadRequest",
            "merge patch must be a JSON object",
        ),
        (
            raw_request(
                "PATCH",
                "/api/v1/namespaces/default/configmaps/existing",
                "application/json-patch+json",
                r#"[{"op":"test","path":"/data","value":1}]"#,
            ),
            422,
            "Invalid",
            "",
        ),
        (
            raw_request(
                "PATCH",
                "/api/v1/namespaces/default/configmaps/existing",
                "text/plain",
                "x",
            ),
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format",
        ),
        (
            raw_request(
                "GET",
                "/api/v1/namespaces/default/configmaps?labelSelector=a%20in%20(",
                "",
                "",
            ),
            400,
            "BadRequest",
            "unable to parse requirement",
        ),
        (
            raw_request(
                "PUT",
                "/api/v1/namespaces/default/configmaps",
                "application/json",
                "{}",
            ),
            405,
            "MethodNotAllowed",
            "",
        ),
        (
            raw_request(
                "GET",
                "/api/v1/namespaces/default/configmaps/existing/status",
                "",
                "",
            ),
            404,
            "NotFound",
            "",
        ),
    ];
    for (request, code, reason, message) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let error = status(client.request::<Value>(request).await.unwrap_err());
        assert_eq!(
            (error.code, error.reason.as_str()),
            (code, reason),
            "{what}: {}",
            error.message
        );
        assert!(error.message.contains(message), "{what}: {}", error.message);
    }
    assert_eq!(
        cluster.resource_version(),
        before,
        "no bad request wrote anything"
    );
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
}

#[tokio::test]
async fn dry_run_and_delete_collection() {
    let (_cluster, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let dry = api
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &configmap("ghost", json!({})),
        )
        .await
        .unwrap();
    assert_eq!(dry.metadata.name.as_deref(), Some("ghost"));
    assert_eq!(status(api.get("ghost").await.unwrap_err()).code, 404);
    for (name, team) in [("a", "x"), ("b", "x"), ("c", "y")] {
        create(&api, &configmap(name, json!({"team": team}))).await;
    }
    let deleted = api
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("team=x"),
        )
        .await
        .unwrap();
    assert_eq!(names(&deleted.left().unwrap().items), vec!["a", "b"]);
    let left = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(&left.items), vec!["c"]);
}

fn widget_crd(served: bool) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{
                "name": "v1", "served": served, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}, "color": {"type": "string"}}},
                    "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
                }}},
                "subresources": {"status": {}},
                "selectableFields": [{"jsonPath": ".spec.color"}]
            }]
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn crds_serve_their_kinds_until_deleted() {
    let (_cluster, client) = start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let created = create(&crds, &widget_crd(true)).await;
    let conditions = created.status.unwrap().conditions.unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );

    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let (resource, _) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"))
        .expect("discovery lists the new kind");
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let widget = |name: &str, size: Value, color: &str| {
        serde_json::from_value::<DynamicObject>(json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": name}, "spec": {"size": size, "color": color}, "status": {"ready": true}
        }))
        .unwrap()
    };
    let w = create(&widgets, &widget("w1", json!(3), "red")).await;
    assert!(w.data.get("status").is_none(), "status is reset on create");
    assert_eq!(w.metadata.generation, Some(1));
    create(&widgets, &widget("w2", json!(1), "blue")).await;
    let invalid = status(
        widgets
            .create(&PostParams::default(), &widget("w3", json!("big"), "red"))
            .await
            .unwrap_err(),
    );
    assert_eq!(invalid.code, 422);
    assert!(
        invalid
            .message
            .contains("spec.size in body must be of type integer"),
        "{}",
        invalid.message
    );
    let red = widgets
        .list(&ListParams::default().fields("spec.color=red"))
        .await
        .unwrap();
    assert_eq!(red.items.len(), 1, "selectableFields serve field selectors");
    let strategic = status(
        widgets
            .patch(
                "w1",
                &PatchParams::default(),
                &Patch::Strategic(json!({"spec": {"size": 4}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(strategic.code, 415);

    // Unserving the version stops serving the kind.
    merge(&crds, "widgets.example.com", json!({"spec": {"versions": [{
        "name": "v1", "served": false, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}}]}})).await;
    assert_eq!(
        status(widgets.list(&ListParams::default()).await.unwrap_err()).code,
        404
    );
    merge(
        &crds,
        "widgets.example.com",
        json!({"spec": widget_crd(true).spec}),
    )
    .await;
    assert_eq!(
        widgets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2,
        "objects survive unserving"
    );

    // Deleting the CRD deletes its objects and stops serving it.
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        status(widgets.list(&ListParams::default()).await.unwrap_err()).code,
        404
    );
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    assert!(
        discovery
            .resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"))
            .is_none()
    );
    create(&crds, &widget_crd(true)).await;
    let fresh: Api<DynamicObject> = Api::namespaced_with(
        client,
        "default",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("example.com", "v1", "Widget"),
            "widgets",
        ),
    );
    tokio::time::timeout(Duration::from_secs(20), async {
        assert!(
            fresh
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty(),
            "re-created empty"
        );
    })
    .await
    .unwrap();
}
