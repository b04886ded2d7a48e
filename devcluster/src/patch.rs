//! Non-apply patches: JSON merge patch, JSON patch, and strategic merge patch.
//!
//! Merge and JSON patches are exact (the json-patch crate implements RFC 7386 and RFC 6902).
//! Strategic merge patch is the subset kubectl and controllers use: maps merge, `null`
//! deletes, lists merge by their merge keys (the same table as field ownership, see
//! `listtype.rs`) or replace when atomic, set lists (finalizers) union, and the directives
//! `$patch: replace|delete|merge`, `$deleteFromPrimitiveList/<field>` and
//! `$setElementOrder/<field>` (accepted, order ignored); `$retainKeys` is accepted and ignored.
//! It is served for built-in kinds only, as the real server refuses it for custom resources.

use serde_json::{Map, Value};

use crate::listtype::ListType;
use crate::managed::item_key;
use crate::registry::ResourceType;

/// The patch types the server accepts, by Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub const MEDIA_TYPES: [&'static str; 4] = [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    ];

    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        match media {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// Why a patch could not be applied.
#[derive(Debug, PartialEq)]
pub enum PatchError {
    /// The patch body is not valid for its type (400).
    Malformed(String),
    /// The patch is well-formed but cannot apply to this object (422, e.g. a failed `test`).
    Unapplicable(String),
}

/// Applies a JSON merge patch, JSON patch or strategic merge patch to `object`.
pub fn apply_patch(
    resource: &ResourceType,
    kind: PatchType,
    object: &mut Value,
    body: &[u8],
) -> Result<(), PatchError> {
    match kind {
        PatchType::Merge => {
            let patch: Value = parse(body)?;
            if !patch.is_object() {
                return Err(PatchError::Malformed(
                    "merge patch must be a JSON object".to_string(),
                ));
            }
            json_patch::merge(object, &patch);
            Ok(())
        }
        PatchType::Json => {
            let patch: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| PatchError::Malformed(format!("error decoding patch: {e}")))?;
            json_patch::patch(object, &patch.0).map_err(|e| PatchError::Unapplicable(e.to_string()))
        }
        PatchType::Strategic => {
            let patch: Value = parse(body)?;
            let Value::Object(patch) = patch else {
                return Err(PatchError::Malformed(
                    "strategic merge patch must be a JSON object".to_string(),
                ));
            };
            let mut names = Vec::new();
            strategic_map(resource, object, patch, &mut names);
            Ok(())
        }
        PatchType::Apply => Err(PatchError::Malformed(
            "apply patches are handled by server-side apply".to_string(),
        )),
    }
}

fn parse(body: &[u8]) -> Result<Value, PatchError> {
    serde_json::from_slice(body)
        .map_err(|e| PatchError::Malformed(format!("error decoding patch: {e}")))
}

fn strategic_map(
    resource: &ResourceType,
    target: &mut Value,
    mut patch: Map<String, Value>,
    names: &mut Vec<String>,
) {
    match patch.remove("$patch").as_ref().and_then(Value::as_str) {
        Some("delete") => {
            *target = Value::Object(Map::new());
            return;
        }
        Some("replace") => {
            strip_directives(&mut patch);
            *target = Value::Object(patch);
            return;
        }
        _ => {}
    }
    patch.remove("$retainKeys");
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let mut deletions: Vec<(String, Value)> = Vec::new();
    for key in patch.keys().cloned().collect::<Vec<_>>() {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            deletions.push((field.to_string(), patch.remove(&key).unwrap_or(Value::Null)));
        } else if key.starts_with("$setElementOrder/") {
            patch.remove(&key);
        }
    }
    let map = target.as_object_mut().expect("made an object above");
    for (key, value) in patch {
        if value.is_null() {
            map.remove(&key);
            continue;
        }
        names.push(key.clone());
        let slot = map.entry(key.clone()).or_insert(Value::Null);
        match value {
            Value::Object(child) => strategic_map(resource, slot, child, names),
            Value::Array(items) => {
                let path: Vec<&str> = names.iter().map(String::as_str).collect();
                let list_type = resource.list_type(&path);
                strategic_list(resource, slot, items, &list_type, names);
            }
            scalar => *slot = scalar,
        }
        names.pop();
    }
    for (field, remove) in deletions {
        if let (Some(Value::Array(items)), Value::Array(remove)) = (map.get_mut(&field), remove) {
            items.retain(|item| !remove.contains(item));
        }
    }
}

fn strategic_list(
    resource: &ResourceType,
    target: &mut Value,
    items: Vec<Value>,
    list_type: &ListType,
    names: &mut Vec<String>,
) {
    let replace = items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"));
    let mut existing = match (target.take(), replace) {
        (Value::Array(existing), false) => existing,
        _ => Vec::new(),
    };
    match list_type {
        ListType::Atomic => {
            let mut items = items;
            items.iter_mut().for_each(|i| {
                if let Value::Object(m) = i {
                    strip_directives(m)
                }
            });
            existing = items;
        }
        ListType::Set => {
            for item in items {
                if !existing.contains(&item) {
                    existing.push(item);
                }
            }
        }
        ListType::Map(keys) => {
            for item in items {
                let Value::Object(mut fields) = item else {
                    continue;
                };
                let directive = fields.remove("$patch");
                if directive.as_ref().and_then(Value::as_str) == Some("replace") {
                    continue;
                }
                let key = item_key(&Value::Object(fields.clone()), keys);
                let position = key.as_ref().and_then(|key| {
                    existing
                        .iter()
                        .position(|e| item_key(e, keys).as_deref() == Some(key.as_str()))
                });
                match (directive.as_ref().and_then(Value::as_str), position) {
                    (Some("delete"), Some(i)) => {
                        existing.remove(i);
                    }
                    (Some("delete"), None) => {}
                    (_, Some(i)) => strategic_map(resource, &mut existing[i], fields, names),
                    (_, None) => {
                        let mut fresh = Value::Object(Map::new());
                        strategic_map(resource, &mut fresh, fields, names);
                        existing.push(fresh);
                    }
                }
            }
        }
    }
    *target = Value::Array(existing);
}

fn strip_directives(map: &mut Map<String, Value>) {
    map.retain(|k, _| !k.starts_with('$'));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    fn pods() -> std::sync::Arc<ResourceType> {
        Registry::builtin().find("", "v1", "pods").unwrap()
    }

    fn pod() -> Value {
        json!({
            "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
            "spec": {"containers": [
                {"name": "web", "image": "nginx:1", "args": ["-a"]},
                {"name": "sidecar", "image": "envoy"}
            ]}
        })
    }

    #[test]
    fn merge_patch_follows_rfc7386() {
        let mut object = pod();
        apply_patch(
            &pods(),
            PatchType::Merge,
            &mut object,
            br#"{"metadata":{"labels":{"a":null,"c":"3"}}}"#,
        )
        .unwrap();
        assert_eq!(object["metadata"]["labels"], json!({"b": "2", "c": "3"}));
        let error = apply_patch(&pods(), PatchType::Merge, &mut object, b"[1]").unwrap_err();
        assert!(matches!(error, PatchError::Malformed(_)));
        let error = apply_patch(&pods(), PatchType::Merge, &mut object, b"{nope").unwrap_err();
        assert!(matches!(error, PatchError::Malformed(m) if m.starts_with("error decoding patch")));
    }

    #[test]
    fn json_patch_tests_fail_cleanly() {
        let mut object = pod();
        let before = object.clone();
        let error = apply_patch(
            &pods(),
            PatchType::Json,
            &mut object,
            br#"[{"op":"test","path":"/metadata/name","value":"other"},{"op":"remove","path":"/spec"}]"#,
        )
        .unwrap_err();
        assert!(matches!(error, PatchError::Unapplicable(_)));
        assert_eq!(object, before, "a failed JSON patch changes nothing");
        apply_patch(
            &pods(),
            PatchType::Json,
            &mut object,
            br#"[{"op":"replace","path":"/metadata/name","value":"q"}]"#,
        )
        .unwrap();
        assert_eq!(object["metadata"]["name"], "q");
    }

    #[test]
    fn strategic_merge_merges_containers_by_name() {
        let mut object = pod();
        apply_patch(
            &pods(),
            PatchType::Strategic,
            &mut object,
            br#"{"spec":{"containers":[{"name":"web","image":"nginx:2"},{"name":"new","image":"busybox"},{"name":"sidecar","$patch":"delete"}]},
                "metadata":{"finalizers":["y"],"$deleteFromPrimitiveList/finalizers":["x"]}}"#,
        )
        .unwrap();
        let containers = object["spec"]["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 2);
        assert_eq!(
            containers[0],
            json!({"name": "web", "image": "nginx:2", "args": ["-a"]})
        );
        assert_eq!(containers[1]["name"], "new");
        assert_eq!(object["metadata"]["finalizers"], json!(["y"]));
    }

    #[test]
    fn strategic_merge_replaces_atomic_lists_and_honours_replace() {
        let mut object = pod();
        apply_patch(
            &pods(),
            PatchType::Strategic,
            &mut object,
            br#"{"spec":{"containers":[{"name":"web","args":["-b"]}]},"metadata":{"labels":{"$patch":"replace","z":"9"}}}"#,
        )
        .unwrap();
        assert_eq!(object["spec"]["containers"][0]["args"], json!(["-b"]));
        assert_eq!(object["metadata"]["labels"], json!({"z": "9"}));
    }
}
