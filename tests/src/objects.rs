//! Reading and changing the objects the example plugins work on, through the kube client.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::wait::{PATIENCE, until};

/// namespace-defaults' objects (plugins/namespace-defaults/README.md).
pub const POLICY: &str = "trellis-default-deny";
pub const QUOTA: &str = "trellis-defaults";
/// deployment-summary's annotation.
pub const SUMMARY: &str = "trellis.dev/pod-summary";
/// The Namespace label namespace-defaults selects on (`enabled` to be defaulted).
pub const DEFAULTS_LABEL: &str = "trellis.dev/defaults";

pub async fn policy(client: &kube::Client, namespace: &str) -> Option<NetworkPolicy> {
    Api::<NetworkPolicy>::namespaced(client.clone(), namespace)
        .get_opt(POLICY)
        .await
        .expect("get NetworkPolicy")
}

/// Waits (up to [`PATIENCE`]) for namespace-defaults' NetworkPolicy in `namespace`: the
/// plugin has reconciled it. `what` names the wait in a failure.
pub async fn until_policy(client: &kube::Client, namespace: &str, what: &str) {
    until(what, PATIENCE, || async {
        policy(client, namespace).await.map(|_| ())
    })
    .await;
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
    patch_namespace_metadata(client, name, json!({"labels": {key: value}})).await;
}

/// Labels a Namespace for namespace-defaults ([`DEFAULTS_LABEL`]`: enabled`).
pub async fn enable_defaults(client: &kube::Client, name: &str) {
    label_namespace(client, name, DEFAULTS_LABEL, Some("enabled")).await;
}

/// Sets an annotation of a Namespace.
pub async fn annotate_namespace(client: &kube::Client, name: &str, key: &str, value: &str) {
    patch_namespace_metadata(client, name, json!({"annotations": {key: value}})).await;
}

/// Merge-patches a Namespace's metadata with `metadata`.
async fn patch_namespace_metadata(client: &kube::Client, name: &str, metadata: Value) {
    Api::<Namespace>::all(client.clone())
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": metadata })),
        )
        .await
        .unwrap_or_else(|e| panic!("patching Namespace {name}'s metadata: {e}"));
}

/// `count` Namespaces `<prefix>-0`.. labelled for namespace-defaults, as fixture YAML.
pub fn defaulted_namespaces(prefix: &str, count: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {prefix}-{i}\n  labels: {{{DEFAULTS_LABEL}: enabled}}\n"
            )
        })
        .collect()
}

/// Waits (up to [`PATIENCE`] each) until every one of `defaulted_namespaces(prefix, count)`
/// has the quota round `last` asked it for.
pub async fn until_quotas_of_round(client: &kube::Client, prefix: &str, count: usize, last: usize) {
    for i in 0..count {
        let namespace = format!("{prefix}-{i}");
        let wanted = quota_pods(last, i);
        until(
            &format!("{namespace}'s quota at pods={wanted}"),
            PATIENCE,
            || async {
                let quota = quota(client, &namespace).await?;
                hard(&quota)
                    .contains(&("pods".to_string(), wanted.clone()))
                    .then_some(())
            },
        )
        .await;
    }
}

/// The `pods` quota round `round` asks of the `i`th of [`defaulted_namespaces`]: distinct for
/// every round and namespace, so a stale answer is never mistaken for the last one.
pub fn quota_pods(round: usize, i: usize) -> String {
    (round * 100 + i + 1).to_string()
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
