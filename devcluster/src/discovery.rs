//! Discovery documents: `/version`, `/api`, `/apis`, `/apis/{group}`, and the resource lists
//! of each group version.
//!
//! Only the legacy (unaggregated) documents are served. kubectl and client-go ask for the
//! aggregated `APIGroupDiscoveryList` first and fall back to these when the answer's
//! Content-Type is plain `application/json`, which it always is here.

use serde_json::{Value, json};

use crate::registry::{Registry, ResourceType};

/// The Kubernetes version this server speaks.
pub const KUBERNETES_VERSION: &str = "v1.33.0";

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": KUBERNETES_VERSION,
        "gitCommit": "devcluster",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

fn group_entry(group: &str, versions: &[String]) -> Value {
    let entries: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": entries,
        "preferredVersion": entries.first().cloned().unwrap_or(json!({})),
    })
}

/// `/apis`.
pub fn groups(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry
        .group_versions()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, v)| group_entry(&g, &v))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`, if the group is served.
pub fn group(registry: &Registry, name: &str) -> Option<Value> {
    registry
        .group_versions()
        .into_iter()
        .find(|(g, _)| g == name && !g.is_empty())
        .map(|(g, v)| {
            let mut entry = group_entry(&g, &v);
            entry["kind"] = json!("APIGroup");
            entry["apiVersion"] = json!("v1");
            entry
        })
}

fn resource_entries(t: &ResourceType) -> Vec<Value> {
    let mut main = json!({
        "name": t.plural,
        "singularName": t.singular,
        "namespaced": t.namespaced,
        "kind": t.kind,
        "verbs": VERBS,
        "storageVersionHash": storage_hash(t),
    });
    if !t.short_names.is_empty() {
        main["shortNames"] = json!(t.short_names);
    }
    if !t.categories.is_empty() {
        main["categories"] = json!(t.categories);
    }
    let mut entries = vec![main];
    if t.status_subresource {
        entries.push(json!({
            "name": format!("{}/status", t.plural),
            "singularName": "",
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": ["get", "patch", "update"],
        }));
    }
    if t.scale.is_some() {
        entries.push(json!({
            "name": format!("{}/scale", t.plural),
            "singularName": "",
            "namespaced": t.namespaced,
            "group": "autoscaling",
            "version": "v1",
            "kind": "Scale",
            "verbs": ["get", "patch", "update"],
        }));
    }
    entries
}

/// A stable digest of a kind's identity (the real server hashes its storage version).
fn storage_hash(t: &ResourceType) -> String {
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in format!("{}/{}/{}", t.group, t.version, t.kind).bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{:011x}", hash & 0xfff_ffff_ffff)
}

/// `/api/v1` or `/apis/{group}/{version}`, if served.
pub fn resources(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let kinds: Vec<&std::sync::Arc<ResourceType>> = registry
        .all()
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let resources: Vec<Value> = kinds.iter().flat_map(|t| resource_entries(t)).collect();
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_list_what_is_served() {
        let registry = Registry::builtin();
        let apis = groups(&registry);
        let names: Vec<&str> = apis["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"apps") && names.contains(&"apiextensions.k8s.io"));
        assert!(!names.contains(&""), "the core group is under /api");
        let core = resources(&registry, "", "v1").unwrap();
        let pods: Vec<&Value> = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["name"].as_str().unwrap().starts_with("pods"))
            .collect();
        assert_eq!(pods.len(), 2);
        assert_eq!(pods[0]["shortNames"], json!(["po"]));
        assert_eq!(pods[1]["name"], "pods/status");
        assert!(resources(&registry, "nope", "v1").is_none());
        assert_eq!(
            group(&registry, "apps").unwrap()["preferredVersion"]["groupVersion"],
            "apps/v1"
        );
        assert!(group(&registry, "nope").is_none());
    }
}
