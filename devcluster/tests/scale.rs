//! The `/scale` subresource with the real kube client: Deployments and a CRD that declares one,
//! every verb, preconditions, bad input, and discovery (which `kubectl scale` resolves the
//! Scale kind through; devcluster/tests/kubectl.rs runs kubectl itself).

mod common;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}, "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["web", "edge"]}]},
            "template": {
                "metadata": {"labels": {"app": name, "tier": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx"}]}
            }
        }
    }))
    .unwrap()
}

fn scale_to(replicas: i64) -> Patch<Value> {
    Patch::Merge(json!({"spec": {"replicas": replicas}}))
}

#[tokio::test]
async fn deployments_scale_through_their_scale_subresource() {
    let (cluster, client) = start().await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let created = create(&api, &deployment("web", 2)).await;
    let with_status = merge_status(&api, "web", json!({"status": {"replicas": 2}})).await;

    let scale = api.get_scale("web").await.unwrap();
    assert_eq!(scale.metadata.name.as_deref(), Some("web"));
    assert_eq!(scale.metadata.uid, created.metadata.uid);
    assert_eq!(
        scale.metadata.resource_version,
        with_status.metadata.resource_version
    );
    assert_eq!(scale.spec.as_ref().unwrap().replicas, Some(2));
    let reported = scale.status.as_ref().unwrap();
    assert_eq!(reported.replicas, 2);
    assert_eq!(
        reported.selector.as_deref(),
        Some("app=web,tier in (edge,web)")
    );

    // kubectl scale's merge patch: only spec.replicas changes, the generation moves.
    let scaled = api
        .patch_scale("web", &PatchParams::default(), &scale_to(5))
        .await
        .unwrap();
    assert_eq!(scaled.spec.as_ref().unwrap().replicas, Some(5));
    let web = api.get("web").await.unwrap();
    assert_eq!(web.spec.as_ref().unwrap().replicas, Some(5));
    assert_eq!(web.metadata.generation, Some(2));
    assert_eq!(
        web.status.as_ref().unwrap().replicas,
        Some(2),
        "status kept"
    );
    assert_eq!(
        web.spec.as_ref().unwrap().template,
        created.spec.as_ref().unwrap().template
    );
    assert_eq!(
        scaled.metadata.resource_version,
        web.metadata.resource_version
    );

    // A replace with the current resourceVersion lands; with an old one it conflicts.
    let mut replace = scaled.clone();
    replace.spec.as_mut().unwrap().replicas = Some(0);
    let zero = api
        .replace_scale("web", &PostParams::default(), &replace)
        .await
        .unwrap();
    assert_eq!(zero.spec.as_ref().unwrap().replicas, None, "0 is omitted");
    assert_eq!(
        api.get("web").await.unwrap().spec.unwrap().replicas,
        Some(0)
    );
    let stale = status(
        api.replace_scale("web", &PostParams::default(), &replace)
            .await
            .unwrap_err(),
    );
    assert_eq!(stale.code, 409);

    // Scaling to what it already is stores nothing.
    let writes = cluster.writes().len();
    let again = api
        .patch_scale("web", &PatchParams::default(), &scale_to(0))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        zero.metadata.resource_version
    );
    assert_eq!(cluster.writes().len(), writes + 1, "one request, no commit");
    assert_eq!(cluster.writes().last().unwrap().resource_version, None);

    // Bad input is refused and changes nothing.
    let before = api.get("web").await.unwrap();
    let negative = status(
        api.patch_scale("web", &PatchParams::default(), &scale_to(-1))
            .await
            .unwrap_err(),
    );
    assert_eq!(negative.code, 422);
    assert!(
        negative.message.contains("spec.replicas"),
        "{}",
        negative.message
    );
    let not_a_number = status(
        api.patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": "many"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(not_a_number.code, 400);
    let applied = status(
        api.patch_scale(
            "web",
            &PatchParams::apply("me"),
            &Patch::Apply(
                json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": 3}}),
            ),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(applied.code, 415);
    let wrong_kind = raw_request(
        "PUT",
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
        "application/json",
        serde_json::to_vec(
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web"}}),
        )
        .unwrap(),
    );
    let wrong_kind = status(client.request::<Value>(wrong_kind).await.unwrap_err());
    assert_eq!(wrong_kind.code, 400);
    assert!(
        wrong_kind.message.contains("autoscaling/v1 Scale"),
        "{}",
        wrong_kind.message
    );
    assert_eq!(
        api.get("web").await.unwrap().metadata.resource_version,
        before.metadata.resource_version
    );

    let missing = status(api.get_scale("nope").await.unwrap_err());
    assert_eq!(missing.code, 404);
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    create(&configmaps, &configmap("c", json!({}))).await;
    let request = raw_request(
        "GET",
        "/api/v1/namespaces/default/configmaps/c/scale",
        "application/json",
        Vec::new(),
    );
    let no_scale = status(client.request::<Scale>(request).await.unwrap_err());
    assert_eq!(no_scale.code, 404, "ConfigMaps have no /scale");

    let resources = get_json(&client, "/apis/apps/v1").await;
    let entry = resources["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "deployments/scale")
        .expect("discovery lists deployments/scale");
    assert_eq!(
        (&entry["group"], &entry["version"], &entry["kind"]),
        (&json!("autoscaling"), &json!("v1"), &json!("Scale"))
    );
}

async fn merge_status(api: &Api<Deployment>, name: &str, patch: Value) -> Deployment {
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap()
}

#[tokio::test]
async fn custom_resources_scale_through_the_paths_their_crd_declares() {
    let (_cluster, client) = start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "pools.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "pools", "singular": "pool", "kind": "Pool"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                    "status": {"type": "object", "properties": {
                        "size": {"type": "integer"}, "selector": {"type": "string"}}}
                }}},
                "subresources": {"status": {}, "scale": {
                    "specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size",
                    "labelSelectorPath": ".status.selector"}}
            }]
        }
    }))
    .unwrap();
    create(&crds, &crd).await;
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("example.com", "v1", "Pool"));
    let pools: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let pool: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Pool",
        "metadata": {"name": "p"}, "spec": {"size": 1}
    }))
    .unwrap();
    pools.create(&PostParams::default(), &pool).await.unwrap();
    pools
        .patch_status(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"size": 1, "selector": "pool=p"}})),
        )
        .await
        .unwrap();

    let scale: Scale = pools.get_scale("p").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(1));
    assert_eq!(
        scale.status.as_ref().unwrap().selector.as_deref(),
        Some("pool=p")
    );
    pools
        .patch_scale("p", &PatchParams::default(), &scale_to(4))
        .await
        .unwrap();
    let p = pools.get("p").await.unwrap();
    assert_eq!(p.data["spec"], json!({"size": 4}));
    assert_eq!(p.data["status"], json!({"size": 1, "selector": "pool=p"}));
}
