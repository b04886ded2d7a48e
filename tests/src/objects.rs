//! Reading and changing the objects the example plugins work on, through the kube client.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

/// namespace-defaults' objects (plugins/namespace-defaults/README.md).
pub const POLICY: &str = "trellis-default-deny";
pub const QUOTA: &str = "trellis-defaults";
/// deployment-summary's annotation.
pub const SUMMARY: &str = "trellis.dev/pod-summary";

pub async fn policy(client: &kube::Client, namespace: &str) -> Option<NetworkPolicy> {
    Api::<NetworkPolicy>::namespaced(client.clone(), namespace)
        .get_opt(POLICY)
        .await
        .expect("get NetworkPolicy")
}

pub async fn quota(client: &kube::Client, namespace: &str) -> Option<ResourceQuota> {
    Api::<ResourceQuota>::namespaced(client.clone(), namespace)
        .get_opt(QUOTA)
        .await
        .expect("get ResourceQuota")
}

/// The quota's `spec.hard` as `resource -> quantity` strings.
pub fn hard(quota: &ResourceQuota) -> Vec<(String, String)> {
    quota
        .spec
        .as_ref()
        .and_then(|s| s.hard.as_ref())
        .map(|hard| hard.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
        .unwrap_or_default()
}

/// deployment-summary's annotation of `namespace/name`, parsed.
pub async fn summary(client: &kube::Client, namespace: &str, name: &str) -> Option<Value> {
    let deployment = Api::<Deployment>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .expect("get Deployment");
    let text = deployment.metadata.annotations?.get(SUMMARY)?.clone();
    Some(serde_json::from_str(&text).expect("the summary is JSON"))
}

/// Sets (or, with `None`, removes) a label of a Namespace, as `kubectl label` does.
pub async fn label_namespace(client: &kube::Client, name: &str, key: &str, value: Option<&str>) {
    Api::<Namespace>::all(client.clone())
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {key: value}}})),
        )
        .await
        .expect("label the namespace");
}

/// Sets an annotation of a Namespace.
pub async fn annotate_namespace(client: &kube::Client, name: &str, key: &str, value: &str) {
    Api::<Namespace>::all(client.clone())
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {key: value}}})),
        )
        .await
        .expect("annotate the namespace");
}

pub async fn delete_pod(client: &kube::Client, namespace: &str, name: &str) {
    Api::<Pod>::namespaced(client.clone(), namespace)
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete the pod");
}

/// Merge-patches a Pod's status (what a kubelet does).
pub async fn patch_pod_status(client: &kube::Client, namespace: &str, name: &str, status: Value) {
    Api::<Pod>::namespaced(client.clone(), namespace)
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .expect("patch the pod's status");
}
