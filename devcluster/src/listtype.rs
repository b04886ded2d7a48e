//! How each list in an object merges: atomically, as a set, or as a map keyed by some fields.
//!
//! Server-side apply and field ownership need this per list. The real server reads it from
//! the OpenAPI schema (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`, or the built-in
//! types' patch merge keys). For built-in kinds we keep the table of the lists controllers
//! actually co-own (containers, ports, env, volumes, conditions, finalizers...); every other
//! list is atomic. For CRDs the schema is read directly, defaulting to atomic as Kubernetes
//! does.

use serde_json::Value;

use crate::registry::ResourceType;
use crate::schema::Schema;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole; owned as one field.
    Atomic,
    /// Scalars, each owned on its own (`v:` path elements).
    Set,
    /// Objects identified by these key fields (`k:` path elements).
    Map(Vec<String>),
}

/// Built-in associative lists: (last field name, parent field name or "" for any, keys).
const BUILTIN_MAPS: &[(&str, &str, &[&str])] = &[
    ("containers", "", &["name"]),
    ("initContainers", "", &["name"]),
    ("ephemeralContainers", "", &["name"]),
    ("ports", "containers", &["containerPort", "protocol"]),
    ("ports", "initContainers", &["containerPort", "protocol"]),
    ("ports", "spec", &["port", "protocol"]),
    ("env", "", &["name"]),
    ("volumeMounts", "", &["mountPath"]),
    ("volumeDevices", "", &["devicePath"]),
    ("volumes", "", &["name"]),
    ("imagePullSecrets", "", &["name"]),
    ("hostAliases", "", &["ip"]),
    ("conditions", "", &["type"]),
    ("ownerReferences", "metadata", &["uid"]),
    ("podIPs", "status", &["ip"]),
    ("hostIPs", "status", &["ip"]),
    ("resourceClaims", "", &["name"]),
    (
        "topologySpreadConstraints",
        "",
        &["topologyKey", "whenUnsatisfiable"],
    ),
];

impl ResourceType {
    /// The list type at `path` (field names from the root, list indexes left out).
    pub fn list_type(&self, path: &[&str]) -> ListType {
        match &self.schema {
            Schema::Structural(schema) => crd_list_type(schema, path),
            _ => builtin_list_type(path),
        }
    }
}

fn builtin_list_type(path: &[&str]) -> ListType {
    let Some((&last, parents)) = path.split_last() else {
        return ListType::Atomic;
    };
    if path == ["metadata", "finalizers"] {
        return ListType::Set;
    }
    let parent = parents.last().copied().unwrap_or("");
    BUILTIN_MAPS
        .iter()
        .find(|(name, p, _)| *name == last && (p.is_empty() || *p == parent))
        .map(|(_, _, keys)| ListType::Map(keys.iter().map(|k| k.to_string()).collect()))
        .unwrap_or(ListType::Atomic)
}

fn crd_list_type(schema: &Value, path: &[&str]) -> ListType {
    if path == ["metadata", "finalizers"] {
        return ListType::Set;
    }
    if path.first() == Some(&"metadata") {
        return builtin_list_type(path);
    }
    let mut node = schema;
    for field in path {
        // Lists in the path are stepped through to their item schema.
        while node.get("type").and_then(Value::as_str) == Some("array") {
            node = node.get("items").unwrap_or(&Value::Null);
        }
        node = match node
            .get("properties")
            .and_then(|p| p.get(*field))
            .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))
        {
            Some(next) => next,
            None => return ListType::Atomic,
        };
    }
    match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => ListType::Set,
        Some("map") => ListType::Map(
            node.get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|keys| {
                    keys.iter()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        _ => ListType::Atomic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;
    use std::sync::Arc;

    #[test]
    fn builtin_lists() {
        let registry = Registry::builtin();
        let deploy = registry.find("apps", "v1", "deployments").unwrap();
        let containers = ["spec", "template", "spec", "containers"];
        assert_eq!(
            deploy.list_type(&containers),
            ListType::Map(vec!["name".into()])
        );
        assert_eq!(
            deploy.list_type(&["spec", "template", "spec", "containers", "ports"]),
            ListType::Map(vec!["containerPort".into(), "protocol".into()])
        );
        assert_eq!(
            deploy.list_type(&["spec", "template", "spec", "containers", "args"]),
            ListType::Atomic
        );
        assert_eq!(deploy.list_type(&["metadata", "finalizers"]), ListType::Set);
        let svc = registry.find("", "v1", "services").unwrap();
        assert_eq!(
            svc.list_type(&["spec", "ports"]),
            ListType::Map(vec!["port".into(), "protocol".into()])
        );
    }

    #[test]
    fn crd_lists_come_from_the_schema() {
        let mut t = (*Registry::builtin().find("", "v1", "configmaps").unwrap()).clone();
        t.schema = Schema::Structural(Arc::new(json!({
            "type": "object",
            "properties": {"spec": {"type": "object", "properties": {
                "items": {"type": "array", "x-kubernetes-list-type": "map",
                          "x-kubernetes-list-map-keys": ["id"],
                          "items": {"type": "object", "properties": {
                              "tags": {"type": "array", "x-kubernetes-list-type": "set",
                                       "items": {"type": "string"}}}}},
                "plain": {"type": "array", "items": {"type": "string"}}
            }}}
        })));
        assert_eq!(
            t.list_type(&["spec", "items"]),
            ListType::Map(vec!["id".into()])
        );
        assert_eq!(t.list_type(&["spec", "items", "tags"]), ListType::Set);
        assert_eq!(t.list_type(&["spec", "plain"]), ListType::Atomic);
        assert_eq!(t.list_type(&["spec", "missing"]), ListType::Atomic);
        assert_eq!(t.list_type(&["metadata", "finalizers"]), ListType::Set);
    }
}
