//! Server-side apply: merging an applied configuration into the live object.
//!
//! The applier owns exactly the fields of its configuration. Applying:
//! 1. finds conflicts: fields in the configuration whose value differs from the live value and
//!    that another manager owns; without `force` they fail the request (409, one cause per
//!    field), with `force` the applier takes them over;
//! 2. removes the fields the applier owned before but no longer applies, unless someone else
//!    also owns them;
//! 3. merges the configuration in: maps by key, associative lists by their keys, set lists as
//!    a union, everything else replaced;
//! 4. records the applier's `Apply` entry; fields applied with the value already live stay
//!    shared with their other owners.
//!
//! Ownership granularity and what differs from structured-merge-diff is described in
//! `managed.rs` and docs/devcluster.md.

use serde_json::{Map, Value};

use crate::listtype::ListType;
use crate::managed::{
    FieldPath, FieldSet, ManagedFields, Operation, Part, display_path, item_key, lookup, remove,
    tracked_view,
};
use crate::registry::ResourceType;

/// A field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// The other manager as the real server prints it (`"kubectl" using apps/v1`).
    pub manager: String,
    /// `.spec.replicas`.
    pub field: String,
}

/// The inputs of one apply.
pub struct Apply<'a> {
    pub resource: &'a ResourceType,
    pub manager: &'a str,
    pub part: Part,
    pub force: bool,
    pub now: &'a str,
}

impl Apply<'_> {
    fn subresource(&self) -> &'static str {
        match self.part {
            Part::Main => "",
            Part::Status => "status",
        }
    }

    /// Merges `config` into `live` and updates `managed`. On conflict without force, nothing
    /// is changed and the conflicts are returned.
    pub fn merge(
        &self,
        live: &Value,
        config: &Value,
        managed: &mut ManagedFields,
    ) -> Result<Value, Vec<Conflict>> {
        let sub = self.subresource();
        let config_view = tracked_view(config, self.resource, self.part);
        let live_view = tracked_view(live, self.resource, self.part);
        let applied = FieldSet::of(&config_view, self.resource);

        let mut conflicting = FieldSet::default();
        let mut conflicts = Vec::new();
        for path in applied.iter() {
            if is_item_marker(path) || lookup(&live_view, path) == lookup(&config_view, path) {
                continue;
            }
            for manager in managed.other_owners(self.manager, Operation::Apply, sub, path) {
                conflicts.push(Conflict {
                    manager,
                    field: display_path(path),
                });
                conflicting.insert(path.clone());
            }
        }
        if !conflicts.is_empty() && !self.force {
            return Err(conflicts);
        }
        managed.take_from_others(self.manager, Operation::Apply, sub, &conflicting);

        let previous = managed
            .entry(self.manager, Operation::Apply, sub)
            .map(|e| e.fields())
            .unwrap_or_default();
        let mut result = live.clone();
        // Shallowest paths first: a list item goes as a whole, before its key fields could be
        // removed one by one (which would leave it unfindable).
        let dropped_set = previous.difference(&applied);
        let mut dropped: Vec<&FieldPath> = dropped_set.iter().collect();
        dropped.sort_by_key(|p| p.len());
        for path in dropped {
            if !managed.others_cover(self.manager, Operation::Apply, sub, path)
                && !is_item_key_field(path)
            {
                remove(&mut result, path);
            }
        }

        let mut names = Vec::new();
        merge_into(self.resource, &mut result, &config_view, &mut names);
        managed.set(
            self.manager,
            Operation::Apply,
            sub,
            &self.resource.api_version(),
            self.now,
            applied,
        );
        Ok(result)
    }
}

/// True for the `.` entry of an associative list item (its existence, not a value).
fn is_item_marker(path: &FieldPath) -> bool {
    path.last().is_some_and(|e| e.starts_with("k:"))
}

/// True for a key field of an associative list item (`k:{"name":"web"}` / `f:name`): it
/// identifies the item and goes only with it.
fn is_item_key_field(path: &FieldPath) -> bool {
    let [.., item, field] = path.as_slice() else {
        return false;
    };
    match (item.strip_prefix("k:"), field.strip_prefix("f:")) {
        (Some(key), Some(field)) => {
            serde_json::from_str::<Map<String, Value>>(key).is_ok_and(|k| k.contains_key(field))
        }
        _ => false,
    }
}

fn merge_into(
    resource: &ResourceType,
    target: &mut Value,
    config: &Value,
    names: &mut Vec<String>,
) {
    match config {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let map = target.as_object_mut().expect("made an object above");
            for (key, value) in fields {
                if value.is_null() {
                    map.remove(key);
                    continue;
                }
                names.push(key.clone());
                let slot = map.entry(key.clone()).or_insert(Value::Null);
                merge_into(resource, slot, value, names);
                names.pop();
            }
        }
        Value::Array(items) => {
            let path: Vec<&str> = names.iter().map(String::as_str).collect();
            match resource.list_type(&path) {
                ListType::Atomic => *target = config.clone(),
                ListType::Set => {
                    let mut merged = target.as_array().cloned().unwrap_or_default();
                    for item in items {
                        if !merged.contains(item) {
                            merged.push(item.clone());
                        }
                    }
                    *target = Value::Array(merged);
                }
                ListType::Map(keys) => {
                    let mut merged = target.as_array().cloned().unwrap_or_default();
                    for item in items {
                        let key = item_key(item, &keys);
                        let position = key.as_ref().and_then(|key| {
                            merged
                                .iter()
                                .position(|e| item_key(e, &keys).as_deref() == Some(key.as_str()))
                        });
                        match position {
                            Some(i) => merge_into(resource, &mut merged[i], item, names),
                            None => merged.push(item.clone()),
                        }
                    }
                    *target = Value::Array(merged);
                }
            }
        }
        scalar => *target = scalar.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::managed::testing::{deployments, main_write, web_image};
    use serde_json::json;

    const NOW: &str = "2024-01-01T00:00:00Z";

    fn config(replicas: u32, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "web", "image": image}
            ]}}}
        })
    }

    fn apply(
        manager: &str,
        force: bool,
        live: &Value,
        cfg: &Value,
        managed: &mut ManagedFields,
    ) -> Result<Value, Vec<Conflict>> {
        let resource = deployments();
        Apply {
            resource: &resource,
            manager,
            part: Part::Main,
            force,
            now: NOW,
        }
        .merge(live, cfg, managed)
    }

    /// The first apply of `config(2, "nginx:1")` by alice: the object and its ownership.
    fn created_by_alice() -> (Value, ManagedFields) {
        let mut managed = ManagedFields::default();
        let live = apply(
            "alice",
            false,
            &json!({}),
            &config(2, "nginx:1"),
            &mut managed,
        )
        .unwrap();
        (live, managed)
    }

    #[test]
    fn conflicting_values_fail_without_force_and_transfer_with_it() {
        let (live, mut managed) = created_by_alice();
        // bob applies the same image (shared) and a different replica count (conflict).
        let bob_cfg = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"replicas": 5, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}}});
        let before = managed.clone();
        let conflicts = apply("bob", false, &live, &bob_cfg, &mut managed).unwrap_err();
        assert_eq!(
            conflicts,
            vec![Conflict {
                manager: "\"alice\"".to_string(),
                field: ".spec.replicas".to_string()
            }]
        );
        assert_eq!(managed, before, "a failed apply changes no ownership");

        let forced = apply("bob", true, &live, &bob_cfg, &mut managed).unwrap();
        assert_eq!(forced["spec"]["replicas"], 5);
        let replicas: FieldPath = vec!["f:spec".into(), "f:replicas".into()];
        let image = web_image();
        let alice = &managed
            .entry("alice", Operation::Apply, "")
            .unwrap()
            .fields();
        let bob = &managed.entry("bob", Operation::Apply, "").unwrap().fields();
        assert!(!alice.contains(&replicas) && bob.contains(&replicas));
        assert!(
            alice.contains(&image) && bob.contains(&image),
            "same value: shared"
        );
    }

    #[test]
    fn fields_dropped_from_the_config_are_removed_unless_shared() {
        let (live, mut managed) = created_by_alice();
        let mut smaller = config(2, "nginx:1");
        smaller["metadata"]["labels"] = json!({});
        smaller["spec"].as_object_mut().unwrap().remove("replicas");
        let after = apply("alice", false, &live, &smaller, &mut managed).unwrap();
        assert!(after["spec"].get("replicas").is_none(), "{after}");
        assert!(after["metadata"]["labels"].get("app").is_none());

        // Now a field shared with an Update manager survives its removal from the config.
        let (live, mut managed) = created_by_alice();
        let resource = deployments();
        let scaler = main_write(&resource, "hpa", NOW);
        let mut scaled = live.clone();
        scaled["spec"]["replicas"] = json!(7);
        managed.record_update(
            &scaler,
            Some(&tracked_view(&live, &resource, Part::Main)),
            &tracked_view(&scaled, &resource, Part::Main),
        );
        let mut no_replicas = config(2, "nginx:1");
        no_replicas["spec"]
            .as_object_mut()
            .unwrap()
            .remove("replicas");
        let after = apply("alice", false, &scaled, &no_replicas, &mut managed).unwrap();
        assert_eq!(after["spec"]["replicas"], 7);
    }

    #[test]
    fn associative_lists_merge_by_key() {
        let (live, mut managed) = created_by_alice();
        let sidecar = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"containers": [{"name": "proxy", "image": "envoy"}]}}}});
        let merged = apply("mesh", false, &live, &sidecar, &mut managed).unwrap();
        let names: Vec<&str> = merged["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["web", "proxy"]);
        // mesh withdraws its container: only its item goes.
        let none =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
        let withdrawn = apply("mesh", false, &merged, &none, &mut managed).unwrap();
        assert_eq!(
            withdrawn["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert!(
            managed.entry("mesh", Operation::Apply, "").is_none(),
            "an owner of nothing is dropped"
        );
    }

    #[test]
    fn status_is_ignored_on_the_main_resource() {
        let mut managed = ManagedFields::default();
        let mut cfg = config(1, "nginx");
        cfg["status"] = json!({"replicas": 9});
        let live = json!({"status": {"replicas": 1}});
        let merged = apply("alice", false, &live, &cfg, &mut managed).unwrap();
        assert_eq!(merged["status"]["replicas"], 1);
    }
}
