//! The fake cache: the objects a test seeded, the indexes the host would keep for them, and
//! the writes the plugin made, applied so that a second reconcile sees them.
//!
//! Reads answer as the host's cache does (ordering by namespace then name, label selectors
//! parsed and matched by `trellis-selector`, the built-in `namespace`/`owner`/`label`
//! indexes). Writes answer as the API server does for a single field manager, with the error
//! codes the contract names. What it does not model: permissions and budgets (always
//! granted), field ownership between managers (`force` is recorded, never needed), namespace
//! existence, and the host's elision of no-op writes (every write call is recorded, which is
//! what lets tests prove a plugin's own idempotence).

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};
use trellis_selector::LabelSelector;

use super::merge;
use crate::backend::{HostError, HostResult};
use crate::cache::index;
use crate::{ErrorCode, Gvk, ObjectKey, ObjectRef};

/// Computes the values of a declared index for one object (JSON, as the host caches it).
pub type IndexFn = Box<dyn Fn(&Value) -> Vec<String>>;

/// Why an object cannot be stored: the first required field it lacks.
pub(crate) fn identify(object: &Value) -> Result<ObjectRef, String> {
    if !object.is_object() {
        return Err("not a JSON object".to_owned());
    }
    let field = |name: &str| {
        object
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let api_version = field("apiVersion").ok_or("missing apiVersion")?;
    let kind = field("kind").ok_or("missing kind")?;
    if !object.get("metadata").is_some_and(Value::is_object) {
        return Err("missing metadata".to_owned());
    }
    let key = ObjectKey::of_json(object)
        .filter(|k| !k.name.is_empty())
        .ok_or("missing metadata.name")?;
    Ok(ObjectRef {
        kind: Gvk::from_api_version(api_version, kind),
        key,
    })
}

fn labels(object: &Value) -> Option<&Map<String, Value>> {
    object.pointer("/metadata/labels")?.as_object()
}

fn controller_uid(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))?
        .get("uid")?
        .as_str()
}

fn not_found(target: &ObjectRef) -> HostError {
    HostError::new(ErrorCode::NotFound, format!("{target} not found"))
}

fn invalid(message: impl Into<String>) -> HostError {
    HostError::new(ErrorCode::Invalid, message)
}

fn parse_object(text: &str) -> HostResult<Value> {
    serde_json::from_str(text).map_err(|e| invalid(format!("the object is not valid JSON: {e}")))
}

#[derive(Default)]
pub(crate) struct FakeCache {
    objects: BTreeMap<Gvk, BTreeMap<ObjectKey, Value>>,
    /// The plugin's last applied configuration per object, to remove fields it stops applying.
    applied: HashMap<ObjectRef, Value>,
    indexes: HashMap<(Gvk, String), IndexFn>,
    /// Source of uids, resourceVersions and generated names, so runs are reproducible.
    counter: u64,
}

impl FakeCache {
    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// Fills in what the server sets on a new object, and bumps the resourceVersion.
    fn stamp(&mut self, object: &mut Value, new: bool) {
        let n = self.next();
        let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
            return;
        };
        if new {
            metadata
                .entry("uid")
                .or_insert_with(|| Value::String(format!("00000000-0000-0000-0000-{n:012}")));
            metadata
                .entry("creationTimestamp")
                .or_insert_with(|| Value::String("2025-01-01T00:00:00Z".to_owned()));
        }
        metadata.insert("resourceVersion".to_owned(), Value::String(n.to_string()));
    }

    pub fn object(&self, target: &ObjectRef) -> Option<&Value> {
        self.objects.get(&target.kind)?.get(&target.key)
    }

    pub fn objects_of(&self, kind: &Gvk) -> impl Iterator<Item = &Value> {
        self.objects
            .get(kind)
            .into_iter()
            .flat_map(BTreeMap::values)
    }

    /// Stores an object as given (seeding, or a test simulating someone else's change);
    /// `replace` decides whether an existing one may be overwritten.
    pub fn put(&mut self, mut object: Value, replace: bool) -> Result<ObjectRef, String> {
        let target = identify(&object)?;
        let existing = self.object(&target).is_some();
        if existing && !replace {
            return Err(format!("{target} is already in the cache"));
        }
        self.stamp(&mut object, !existing);
        self.objects
            .entry(target.kind.clone())
            .or_default()
            .insert(target.key.clone(), object);
        Ok(target)
    }

    pub fn remove(&mut self, target: &ObjectRef) -> Option<Value> {
        self.applied.remove(target);
        self.objects.get_mut(&target.kind)?.remove(&target.key)
    }

    pub fn register_index(&mut self, kind: Gvk, name: String, f: IndexFn) {
        self.indexes.insert((kind, name), f);
    }

    pub fn get(&self, kind: &Gvk, key: &ObjectKey) -> Option<Value> {
        self.object(&ObjectRef::new(kind.clone(), key.clone()))
            .cloned()
    }

    pub fn list(
        &self,
        kind: &Gvk,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> HostResult<Vec<Value>> {
        let selector = match selector {
            Some(s) => LabelSelector::parse(s)
                .map_err(|e| invalid(format!("label selector {s:?}: {e}")))?,
            None => LabelSelector::everything(),
        };
        let empty = Map::new();
        Ok(self
            .objects_of(kind)
            .filter(|o| {
                namespace.is_none()
                    || ObjectKey::of_json(o).and_then(|k| k.namespace).as_deref() == namespace
            })
            .filter(|o| selector.matches(labels(o).unwrap_or(&empty)))
            .cloned()
            .collect())
    }

    pub fn lookup(&self, kind: &Gvk, index_name: &str, value: &str) -> HostResult<Vec<Value>> {
        let matches: Box<dyn Fn(&Value) -> bool + '_> = match index_name {
            index::NAMESPACE => Box::new(|o| {
                o.pointer("/metadata/namespace").and_then(Value::as_str) == Some(value)
            }),
            index::OWNER => Box::new(|o| controller_uid(o) == Some(value)),
            // A value without `=` names no label, so it matches nothing.
            index::LABEL => match value.split_once('=') {
                Some((k, v)) => Box::new(move |o| {
                    labels(o).and_then(|l| l.get(k)).and_then(Value::as_str) == Some(v)
                }),
                None => Box::new(|_| false),
            },
            declared => {
                let f = self
                    .indexes
                    .get(&(kind.clone(), declared.to_owned()))
                    .ok_or_else(|| {
                        HostError::new(
                            ErrorCode::NotFound,
                            format!("no index {declared:?} for {kind}"),
                        )
                    })?;
                Box::new(move |o| f(o).iter().any(|v| v == value))
            }
        };
        Ok(self
            .objects_of(kind)
            .filter(|o| matches(o))
            .cloned()
            .collect())
    }

    /// Server-side apply for the plugin's field manager.
    pub fn apply(&mut self, text: &str) -> HostResult<Value> {
        let config = parse_object(text)?;
        let target = identify(&config).map_err(|e| invalid(format!("apply: {e}")))?;
        let live = self.object(&target);
        let mut result = merge::apply(live, self.applied.get(&target), &config);
        if live == Some(&result) {
            // A no-op apply leaves the object, and its resourceVersion, alone.
            self.applied.insert(target, config);
            return Ok(result);
        }
        let new = live.is_none();
        self.stamp(&mut result, new);
        self.store(&target, result.clone());
        self.applied.insert(target, config);
        Ok(result)
    }

    pub fn patch_status(&mut self, kind: &Gvk, key: &ObjectKey, patch: &str) -> HostResult<Value> {
        let target = ObjectRef::new(kind.clone(), key.clone());
        let patch: Value = serde_json::from_str(patch)
            .map_err(|e| invalid(format!("the status patch is not valid JSON: {e}")))?;
        if !patch.is_object() {
            return Err(invalid("the status patch is not a JSON object"));
        }
        let live = self.object(&target).ok_or_else(|| not_found(&target))?;
        // The status subresource takes only `status` from the patched object.
        let mut patched = live.clone();
        merge::merge_patch(&mut patched, &patch);
        let mut result = live.clone();
        match patched.get("status") {
            Some(status) => result["status"] = status.clone(),
            None => {
                result.as_object_mut().map(|o| o.remove("status"));
            }
        }
        if &result != live {
            self.stamp(&mut result, false);
            self.store(&target, result.clone());
        }
        Ok(result)
    }

    pub fn create(&mut self, text: &str) -> HostResult<Value> {
        let mut object = parse_object(text)?;
        let generate_name = object
            .pointer("/metadata/generateName")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let (None, Some(prefix)) = (object.pointer("/metadata/name"), generate_name) {
            let suffix = self.next();
            object["metadata"]["name"] = Value::String(format!("{prefix}{suffix:05}"));
        }
        let target = identify(&object).map_err(|e| invalid(format!("create: {e}")))?;
        if self.object(&target).is_some() {
            return Err(HostError::new(
                ErrorCode::Conflict,
                format!("{target} already exists"),
            ));
        }
        self.stamp(&mut object, true);
        self.store(&target, object.clone());
        Ok(object)
    }

    pub fn delete(&mut self, kind: &Gvk, key: &ObjectKey) -> HostResult<()> {
        let target = ObjectRef::new(kind.clone(), key.clone());
        self.remove(&target)
            .map(drop)
            .ok_or_else(|| not_found(&target))
    }

    fn store(&mut self, target: &ObjectRef, object: Value) {
        self.objects
            .entry(target.kind.clone())
            .or_default()
            .insert(target.key.clone(), object);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ns: &str, name: &str, labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": ns, "name": name, "labels": labels}})
    }

    fn names(objects: &[Value]) -> Vec<String> {
        objects
            .iter()
            .map(|o| ObjectKey::of_json(o).unwrap().to_string())
            .collect()
    }

    fn seeded() -> FakeCache {
        let mut cache = FakeCache::default();
        for object in [
            pod("b", "web-2", json!({"app": "web", "tier": "front"})),
            pod("a", "web-1", json!({"app": "web"})),
            pod("a", "db-1", json!({"app": "db"})),
        ] {
            cache.put(object, false).unwrap();
        }
        cache
    }

    #[test]
    fn identify_names_the_missing_field() {
        assert_eq!(identify(&json!([])).unwrap_err(), "not a JSON object");
        assert_eq!(
            identify(&json!({"kind": "Pod"})).unwrap_err(),
            "missing apiVersion"
        );
        assert_eq!(
            identify(&json!({"apiVersion": "v1"})).unwrap_err(),
            "missing kind"
        );
        assert_eq!(
            identify(&json!({"apiVersion": "v1", "kind": "Pod"})).unwrap_err(),
            "missing metadata"
        );
        assert_eq!(
            identify(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": ""}}))
                .unwrap_err(),
            "missing metadata.name"
        );
    }

    #[test]
    fn list_orders_by_namespace_then_name_and_filters() {
        let cache = seeded();
        let kind = Gvk::new("", "v1", "Pod");
        assert_eq!(
            names(&cache.list(&kind, None, None).unwrap()),
            ["a/db-1", "a/web-1", "b/web-2"]
        );
        assert_eq!(
            names(&cache.list(&kind, Some("a"), None).unwrap()),
            ["a/db-1", "a/web-1"]
        );
        assert_eq!(
            names(&cache.list(&kind, None, Some("app=web,tier")).unwrap()),
            ["b/web-2"]
        );
        assert_eq!(
            names(
                &cache
                    .list(&kind, None, Some("app in (db, web),!tier"))
                    .unwrap()
            ),
            ["a/db-1", "a/web-1"]
        );
        assert!(
            cache
                .list(&Gvk::new("", "v1", "Service"), None, None)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn list_rejects_a_bad_selector_with_the_servers_message() {
        let err = seeded()
            .list(&Gvk::new("", "v1", "Pod"), None, Some("=web"))
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::Invalid);
        assert!(
            err.message.starts_with("label selector \"=web\": "),
            "{}",
            err.message
        );
    }

    #[test]
    fn lookup_by_builtin_and_declared_indexes() {
        let mut cache = seeded();
        let kind = Gvk::new("", "v1", "Pod");
        let mut owned = pod("a", "owned", json!({}));
        owned["metadata"]["ownerReferences"] = json!([
            {"uid": "not-controller", "controller": false},
            {"uid": "rs-1", "controller": true}
        ]);
        cache.put(owned, false).unwrap();
        assert_eq!(
            names(&cache.lookup(&kind, "namespace", "b").unwrap()),
            ["b/web-2"]
        );
        assert_eq!(
            names(&cache.lookup(&kind, "owner", "rs-1").unwrap()),
            ["a/owned"]
        );
        assert!(
            cache
                .lookup(&kind, "owner", "not-controller")
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            names(&cache.lookup(&kind, "label", "app=web").unwrap()),
            ["a/web-1", "b/web-2"]
        );
        assert!(cache.lookup(&kind, "label", "app").unwrap().is_empty());

        let err = cache.lookup(&kind, "tier", "front").unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (ErrorCode::NotFound, "no index \"tier\" for v1 Pod")
        );
        cache.register_index(
            kind.clone(),
            "tier".into(),
            Box::new(|o| {
                o.pointer("/metadata/labels/tier")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .into_iter()
                    .collect()
            }),
        );
        assert_eq!(
            names(&cache.lookup(&kind, "tier", "front").unwrap()),
            ["b/web-2"]
        );
    }

    #[test]
    fn apply_creates_then_updates_and_a_noop_keeps_the_resource_version() {
        let mut cache = FakeCache::default();
        let cm = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "a", "name": "c"}, "data": {"k": "1"}}"#;
        let created = cache.apply(cm).unwrap();
        assert!(created["metadata"]["uid"].is_string());
        let rv = created["metadata"]["resourceVersion"].clone();
        let again = cache.apply(cm).unwrap();
        assert_eq!(again["metadata"]["resourceVersion"], rv);
        let changed = cache.apply(&cm.replace("\"1\"", "\"2\"")).unwrap();
        assert_ne!(changed["metadata"]["resourceVersion"], rv);
        assert_eq!(changed["metadata"]["uid"], created["metadata"]["uid"]);
        assert_eq!(
            cache
                .get(&Gvk::new("", "v1", "ConfigMap"), &ObjectKey::new("a", "c"))
                .unwrap()["data"]["k"],
            "2"
        );
    }

    #[test]
    fn bad_writes_are_invalid_and_change_nothing() {
        let mut cache = seeded();
        let before = cache.list(&Gvk::new("", "v1", "Pod"), None, None).unwrap();
        for (text, expected) in [
            ("{not json", "the object is not valid JSON"),
            (
                r#"{"apiVersion": "v1", "metadata": {"name": "x"}}"#,
                "apply: missing kind",
            ),
            (
                r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {}}"#,
                "apply: missing metadata.name",
            ),
        ] {
            let err = cache.apply(text).unwrap_err();
            assert_eq!(err.code, ErrorCode::Invalid);
            assert!(err.message.starts_with(expected), "{}", err.message);
        }
        let err = cache
            .create(r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {}}"#)
            .unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (ErrorCode::Invalid, "create: missing metadata.name")
        );
        let pod = Gvk::new("", "v1", "Pod");
        let key = ObjectKey::new("a", "web-1");
        assert_eq!(
            cache.patch_status(&pod, &key, "[1]").unwrap_err().code,
            ErrorCode::Invalid
        );
        assert_eq!(
            cache.patch_status(&pod, &key, "{").unwrap_err().code,
            ErrorCode::Invalid
        );
        assert_eq!(cache.list(&pod, None, None).unwrap(), before);
    }

    #[test]
    fn create_conflicts_on_existing_and_generates_names() {
        let mut cache = seeded();
        let err = cache
            .create(r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": "a", "name": "web-1"}}"#)
            .unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (ErrorCode::Conflict, "v1 Pod a/web-1 already exists")
        );
        let made = cache
            .create(r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": "a", "generateName": "job-"}}"#)
            .unwrap();
        let name = made["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("job-") && name.len() > 4, "{name}");
        assert!(
            cache
                .get(&Gvk::new("", "v1", "Pod"), &ObjectKey::new("a", name))
                .is_some()
        );
    }

    #[test]
    fn patch_status_changes_only_status() {
        let mut cache = seeded();
        let pod = Gvk::new("", "v1", "Pod");
        let key = ObjectKey::new("a", "web-1");
        let patched = cache
            .patch_status(
                &pod,
                &key,
                r#"{"status": {"phase": "Running"}, "metadata": {"labels": {"app": "hacked"}}}"#,
            )
            .unwrap();
        assert_eq!(patched["status"]["phase"], "Running");
        assert_eq!(patched["metadata"]["labels"]["app"], "web");
        let missing = cache
            .patch_status(&pod, &ObjectKey::new("a", "nope"), "{}")
            .unwrap_err();
        assert_eq!(
            (missing.code, missing.message.as_str()),
            (ErrorCode::NotFound, "v1 Pod a/nope not found")
        );
    }

    #[test]
    fn delete_removes_and_reports_missing() {
        let mut cache = seeded();
        let pod = Gvk::new("", "v1", "Pod");
        cache.delete(&pod, &ObjectKey::new("a", "db-1")).unwrap();
        assert!(cache.get(&pod, &ObjectKey::new("a", "db-1")).is_none());
        assert_eq!(
            cache
                .delete(&pod, &ObjectKey::new("a", "db-1"))
                .unwrap_err()
                .code,
            ErrorCode::NotFound
        );
    }
}
