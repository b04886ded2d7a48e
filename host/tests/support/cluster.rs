//! The devcluster the informer and host-call tests run against: a real API server in the test
//! process, with the namespaces a test needs, and the custom resource kinds they create on it.

#![allow(dead_code)] // each test binary uses a different part of it

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use trellis_devcluster::{DevCluster, DevClusterOptions};

/// A devcluster serving `namespaces` (and nothing seeded).
pub async fn devcluster(namespaces: &[&str]) -> DevCluster {
    let options = DevClusterOptions {
        namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
        ..DevClusterOptions::default()
    };
    DevCluster::start(options).await.expect("devcluster starts")
}

/// A namespaced custom resource `kind` of `group` (plural `plural`) with one version, `v1`,
/// served and stored; `version` adds the rest of that version (schema, subresources,
/// selectable fields).
pub fn crd(group: &str, kind: &str, plural: &str, version: Value) -> CustomResourceDefinition {
    let mut versions = json!({"name": "v1", "served": true, "storage": true});
    for (field, value) in version.as_object().expect("the version's fields") {
        versions[field] = value.clone();
    }
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind},
            "versions": [versions],
        }
    }))
    .expect("a valid CRD")
}

/// Creates `crd` through `client`.
pub async fn create_crd(client: &Client, crd: &CustomResourceDefinition) {
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), crd)
        .await
        .unwrap_or_else(|e| panic!("creating the CRD {:?}: {e}", crd.metadata.name));
}
