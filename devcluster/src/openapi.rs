//! OpenAPI v3 documents: enough for kubectl's default (strict) validation.
//!
//! kubectl 1.32 validates with `--validate=strict` by default. Before sending an object it
//! asks whether the server supports the `fieldValidation` query parameter for that kind: it
//! fetches `/openapi/v3`, then the group version's document, and looks for a PATCH operation
//! tagged `x-kubernetes-group-version-kind` with a `fieldValidation` query parameter. When it
//! finds one it leaves validation to the server (sending `fieldValidation=Strict`, which
//! `schema.rs` enforces) and needs no schemas at all. So each group version's document lists,
//! per kind, the item path with that PATCH operation; schemas are left out (`kubectl explain`
//! is not supported). `/openapi/v2` is not served: kubectl falls back to it only when v3 is
//! missing.

use serde_json::{Map, Value, json};

use crate::discovery::KUBERNETES_VERSION;
use crate::registry::Registry;

fn group_version_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// A digest of what a group version serves, so clients' caches notice CRD changes.
fn hash(registry: &Registry, group: &str, version: &str) -> String {
    let mut hash: u64 = 0xcbf29ce484222325;
    for t in registry
        .all()
        .iter()
        .filter(|t| t.group == group && t.version == version)
    {
        for b in format!("{}:{}:{};", t.plural, t.kind, t.namespaced).bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x100000001b3);
        }
    }
    format!("{hash:016X}")
}

/// `/openapi/v3`: where each group version's document is.
pub fn index(registry: &Registry) -> Value {
    let mut paths = Map::new();
    for (group, versions) in registry.group_versions() {
        for version in versions {
            let path = group_version_path(&group, &version);
            paths.insert(
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", hash(registry, &group, &version))}),
            );
        }
    }
    json!({"paths": paths})
}

fn query_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}})
}

/// `/openapi/v3/api/v1`, `/openapi/v3/apis/{group}/{version}`.
pub fn document(registry: &Registry, path: &str) -> Option<Value> {
    let (group, version) = match path.split('/').collect::<Vec<_>>().as_slice() {
        ["api", version] => ("", *version),
        ["apis", group, version] => (*group, *version),
        _ => return None,
    };
    let kinds: Vec<_> = registry
        .all()
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .cloned()
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let patch_params = vec![
        query_param(
            "dryRun",
            "When present, indicates that modifications should not be persisted.",
        ),
        query_param(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
        query_param(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: Ignore, Warn (default), Strict.",
        ),
        query_param("force", "Force is going to \"force\" Apply requests."),
    ];
    let mut paths = Map::new();
    for t in kinds {
        let gvk = json!({"group": t.group, "version": t.version, "kind": t.kind});
        let mut item = t.collection_path(Some("{namespace}"));
        item.push_str("/{name}");
        let mut path_params = vec![path_param("name")];
        if t.namespaced {
            path_params.push(path_param("namespace"));
        }
        let mut params = path_params.clone();
        params.extend(patch_params.iter().cloned());
        let operation = |verb: &str| {
            json!({
                "operationId": format!("{verb}{}", t.kind),
                "parameters": patch_params,
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk,
                "responses": {"200": {"description": "OK"}},
            })
        };
        paths.insert(
            item,
            json!({
                "parameters": params,
                "get": operation("get"),
                "put": operation("put"),
                "patch": operation("patch"),
                "delete": operation("delete"),
            }),
        );
        let collection = t.collection_path(Some("{namespace}"));
        paths.insert(
            collection,
            json!({
                "parameters": path_params.iter().skip(1).cloned().collect::<Vec<_>>(),
                "get": operation("list"),
                "post": operation("post"),
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_operations_declare_field_validation() {
        let registry = Registry::builtin();
        let idx = index(&registry);
        let url = idx["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
        let doc = document(&registry, "apis/apps/v1").unwrap();
        let item = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
        assert_eq!(
            item["patch"]["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(
            item["patch"]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
        );
        let ns = document(&registry, "api/v1").unwrap();
        assert!(
            ns["paths"].get("/api/v1/namespaces/{name}").is_some(),
            "cluster-scoped paths have no namespace"
        );
        assert!(document(&registry, "apis/nope/v1").is_none());
        assert!(document(&registry, "garbage").is_none());
    }
}
