//! Field ownership: `metadata.managedFields`.
//!
//! Every write records which manager owns which fields, in the real server's FieldsV1
//! encoding (`{"f:spec":{"f:replicas":{}}}`), so clients that read or strip managedFields see
//! realistic data and server-side apply can detect conflicts.
//!
//! Granularity (what differs from structured-merge-diff is listed in docs/devcluster.md):
//! leaves are scalars, atomic lists and empty maps; items of associative lists (`k:` keys, see
//! `listtype.rs`) and of set lists (`v:` values) are owned one by one. Maps are never owned as
//! a whole, only their keys, so the `.` marker appears only on associative list items.
//! Tracked fields are everything but `apiVersion`, `kind` and server-owned metadata (only
//! labels, annotations, finalizers and ownerReferences are tracked), and status for writes to
//! the main resource of kinds with a status subresource (the reverse for `/status` writes).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::listtype::ListType;
use crate::registry::ResourceType;

/// A path from the object root, each element in FieldsV1 spelling (`f:spec`,
/// `k:{"name":"web"}`, `v:"finalizer"`, `i:3`).
pub type FieldPath = Vec<String>;

/// A set of owned field paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet(BTreeSet<FieldPath>);

impl FieldSet {
    /// The fields `value` sets, as ownership sees them.
    pub fn of(value: &Value, resource: &ResourceType) -> Self {
        let mut set = BTreeSet::new();
        let mut path = Vec::new();
        let mut names = Vec::new();
        walk(value, resource, &mut path, &mut names, &mut set);
        Self(set)
    }

    pub fn iter(&self) -> impl Iterator<Item = &FieldPath> {
        self.0.iter()
    }

    #[cfg(test)]
    pub fn contains(&self, path: &FieldPath) -> bool {
        self.0.contains(path)
    }

    pub fn insert(&mut self, path: FieldPath) {
        self.0.insert(path);
    }

    #[cfg(test)]
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        Self(self.0.union(&other.0).cloned().collect())
    }

    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        Self(self.0.difference(&other.0).cloned().collect())
    }

    /// The FieldsV1 tree.
    pub fn to_fields_v1(&self) -> Value {
        let mut root = Map::new();
        for path in &self.0 {
            let mut node = &mut root;
            for element in path {
                let child = node
                    .entry(element.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                node = child.as_object_mut().expect("FieldsV1 nodes are objects");
            }
        }
        // A path that is also a prefix of others is marked with "." (after all paths are in,
        // since a prefix sorts before its extensions).
        for path in &self.0 {
            let mut node = &mut root;
            for element in path {
                node = node
                    .get_mut(element)
                    .and_then(Value::as_object_mut)
                    .expect("inserted above");
            }
            let has_children = node.keys().any(|k| k != ".");
            if has_children {
                node.insert(".".to_string(), json!({}));
            }
        }
        Value::Object(root)
    }

    /// Parses a FieldsV1 tree.
    #[cfg(test)]
    pub fn from_fields_v1(value: &Value) -> Result<Self, String> {
        validate_tree(value, 0)?;
        let mut out = BTreeSet::new();
        read_tree(
            value.as_object().expect("validated"),
            &mut Vec::new(),
            &mut out,
        );
        Ok(Self(out))
    }
}

fn walk<'a>(
    value: &'a Value,
    resource: &ResourceType,
    path: &mut FieldPath,
    names: &mut Vec<&'a str>,
    out: &mut BTreeSet<FieldPath>,
) {
    match value {
        Value::Object(map) if !map.is_empty() => walk_fields(value, resource, path, names, out),
        Value::Array(items) if !items.is_empty() => match resource.list_type(names) {
            ListType::Atomic => {
                out.insert(path.clone());
            }
            ListType::Set => {
                for item in items {
                    let mut p = path.clone();
                    p.push(format!("v:{item}"));
                    out.insert(p);
                }
            }
            ListType::Map(keys) => {
                for item in items {
                    let Some(key) = item_key(item, &keys) else {
                        // An item without its key fields cannot be tracked on its own: the
                        // list degrades to atomic, as an invalid associative list would.
                        out.insert(path.clone());
                        return;
                    };
                    path.push(key);
                    out.insert(path.clone());
                    walk_fields(item, resource, path, names, out);
                    path.pop();
                }
            }
        },
        _ => {
            if !path.is_empty() {
                out.insert(path.clone());
            }
        }
    }
}

/// The fields of an object (a map, or an associative list item), below its own path.
fn walk_fields<'a>(
    item: &'a Value,
    resource: &ResourceType,
    path: &mut FieldPath,
    names: &mut Vec<&'a str>,
    out: &mut BTreeSet<FieldPath>,
) {
    if let Value::Object(fields) = item {
        for (k, child) in fields {
            path.push(format!("f:{k}"));
            names.push(k);
            walk(child, resource, path, names, out);
            names.pop();
            path.pop();
        }
    }
}

/// The `k:` element of an associative list item: its present key fields, sorted, as JSON.
pub fn item_key(item: &Value, keys: &[String]) -> Option<String> {
    let object = item.as_object()?;
    let mut key = Map::new();
    for k in keys {
        if let Some(v) = object.get(k) {
            key.insert(k.clone(), v.clone());
        }
    }
    if key.is_empty() {
        return None;
    }
    Some(format!("k:{}", Value::Object(key)))
}

/// Finds the array index an element selects.
fn find_item(items: &[Value], element: &str) -> Option<usize> {
    if let Some(key) = element.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(key).ok()?;
        items.iter().position(|item| {
            item.as_object()
                .is_some_and(|o| key.iter().all(|(k, v)| o.get(k) == Some(v)))
        })
    } else if let Some(value) = element.strip_prefix("v:") {
        let value: Value = serde_json::from_str(value).ok()?;
        items.iter().position(|item| *item == value)
    } else if let Some(index) = element.strip_prefix("i:") {
        index.parse().ok().filter(|i| *i < items.len())
    } else {
        None
    }
}

/// The value at `path`, if present.
pub fn lookup<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut node = value;
    for element in path {
        node = match (node, element.strip_prefix("f:")) {
            (Value::Object(map), Some(field)) => map.get(field)?,
            (Value::Array(items), None) => &items[find_item(items, element)?],
            _ => return None,
        };
    }
    Some(node)
}

/// Removes the value at `path`; parents left empty stay (as the real server leaves `{}`).
pub fn remove(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = value;
    for element in parents {
        node = match (node, element.strip_prefix("f:")) {
            (Value::Object(map), Some(field)) => match map.get_mut(field) {
                Some(next) => next,
                None => return,
            },
            (Value::Array(items), None) => match find_item(items, element) {
                Some(i) => &mut items[i],
                None => return,
            },
            _ => return,
        };
    }
    match (node, last.strip_prefix("f:")) {
        (Value::Object(map), Some(field)) => {
            map.remove(field);
        }
        (Value::Array(items), None) => {
            if let Some(i) = find_item(items, last) {
                items.remove(i);
            }
        }
        _ => {}
    }
}

/// A path as the real server prints it in conflicts: `.spec.containers[name="web"].image`.
pub fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(field) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(field);
        } else if let Some(key) = element.strip_prefix("k:") {
            let parts: Vec<String> = serde_json::from_str::<Map<String, Value>>(key)
                .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                .unwrap_or_default();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(value) = element.strip_prefix("v:") {
            out.push_str(&format!("[={value}]"));
        } else if let Some(index) = element.strip_prefix("i:") {
            out.push_str(&format!("[{index}]"));
        }
    }
    out
}

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The main resource: everything but status (for kinds with a status subresource).
    Main,
    /// The `/status` subresource: only status.
    Status,
}

/// The tracked top-level fields of `object` for a write to `part`, borrowed. Metadata is
/// represented by its tracked fields, which `diff`/`walk` reach through `metadata_view`.
fn tracked_children<'a>(
    object: &'a Value,
    resource: &ResourceType,
    part: Part,
) -> Vec<(&'a str, &'a Value)> {
    let Value::Object(map) = object else {
        return Vec::new();
    };
    map.iter()
        .filter(|(key, value)| match (part, key.as_str()) {
            (Part::Status, "status") => true,
            (Part::Status, _) => false,
            (Part::Main, "apiVersion" | "kind") => false,
            (Part::Main, "status") => !resource.status_subresource,
            (Part::Main, "metadata") => value.is_object(),
            (Part::Main, _) => true,
        })
        .map(|(k, v)| (k.as_str(), v))
        .collect()
}

/// `diff` over two lists of named children (top-level fields, tracked metadata fields).
fn diff_children<'a>(
    old: &[(&'a str, &'a Value)],
    new: &[(&'a str, &'a Value)],
    resource: &ResourceType,
    path: &mut FieldPath,
    names: &mut Vec<&'a str>,
    changed: &mut BTreeSet<FieldPath>,
    removed: &mut BTreeSet<FieldPath>,
) {
    let find = |children: &[(&'a str, &'a Value)], key: &str| {
        children.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    };
    for &(key, value) in new {
        path.push(format!("f:{key}"));
        names.push(key);
        match find(old, key) {
            Some(before) => diff(before, value, resource, path, names, changed, removed),
            None => walk(value, resource, path, names, changed),
        }
        names.pop();
        path.pop();
    }
    for &(key, value) in old {
        if find(new, key).is_none() {
            path.push(format!("f:{key}"));
            names.push(key);
            walk(value, resource, path, names, removed);
            names.pop();
            path.pop();
        }
    }
}

/// Separates the tracked metadata fields from the other top-level children.
type Children<'a> = Vec<(&'a str, &'a Value)>;

fn split_metadata(children: Children<'_>) -> (Children<'_>, Children<'_>) {
    let meta = children
        .iter()
        .find(|(k, _)| *k == "metadata")
        .map(|(_, m)| metadata_fields(m))
        .unwrap_or_default();
    let rest = children
        .into_iter()
        .filter(|(k, _)| *k != "metadata")
        .collect();
    (meta, rest)
}

/// The tracked fields of `metadata`.
fn metadata_fields(meta: &Value) -> Vec<(&str, &Value)> {
    ["labels", "annotations", "finalizers", "ownerReferences"]
        .into_iter()
        .filter_map(|f| meta.get(f).filter(|v| !v.is_null()).map(|v| (f, v)))
        .collect()
}

/// The part of `object` whose fields ownership tracks for a write to `part`.
pub fn tracked_view(object: &Value, resource: &ResourceType, part: Part) -> Value {
    let Value::Object(map) = object else {
        return Value::Object(Map::new());
    };
    let mut view = Map::new();
    if part == Part::Status {
        if let Some(status) = map.get("status") {
            view.insert("status".to_string(), status.clone());
        }
        return Value::Object(view);
    }
    for (key, value) in map {
        match key.as_str() {
            "apiVersion" | "kind" => {}
            "status" if resource.status_subresource => {}
            "metadata" => {
                let mut meta = Map::new();
                for field in ["labels", "annotations", "finalizers", "ownerReferences"] {
                    if let Some(v) = value.get(field).filter(|v| !v.is_null()) {
                        meta.insert(field.to_string(), v.clone());
                    }
                }
                if !meta.is_empty() {
                    view.insert("metadata".to_string(), Value::Object(meta));
                }
            }
            _ => {
                view.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(view)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `managedFields` entry. Its fields are kept as the FieldsV1 tree they are stored as and
/// edited in place (`tree_insert`, `tree_remove`): a write touching a few fields costs a few
/// tree walks, not decoding and re-encoding every manager's set.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    tree: Map<String, Value>,
}

impl Entry {
    /// How conflicts name this manager (apiserver's `printManager`).
    pub fn describe(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            out.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == Operation::Update {
            out.push_str(&format!(" using {}", self.api_version));
            if !self.time.is_empty() {
                out.push_str(&format!(" at {}", self.time));
            }
        }
        out
    }

    /// The owned fields as a set.
    pub fn fields(&self) -> FieldSet {
        let mut out = BTreeSet::new();
        read_tree(&self.tree, &mut Vec::new(), &mut out);
        FieldSet(out)
    }

    fn same_owner(&self, manager: &str, operation: Operation, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }
}

/// Collects the member paths of a FieldsV1 tree (validated when decoded).
fn read_tree(node: &Map<String, Value>, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    for (key, child) in node {
        if key == "." {
            if !path.is_empty() {
                out.insert(path.clone());
            }
            continue;
        }
        path.push(key.clone());
        match child.as_object() {
            Some(map) if map.is_empty() => {
                out.insert(path.clone());
            }
            Some(map) => read_tree(map, path, out),
            None => {}
        }
        path.pop();
    }
}

/// Checks a FieldsV1 tree's shape: objects all the way, known path element prefixes.
fn validate_tree(node: &Value, depth: usize) -> Result<(), String> {
    let Value::Object(map) = node else {
        return Err("expected an object".to_string());
    };
    for (key, child) in map {
        if key != "." && !["f:", "k:", "v:", "i:"].iter().any(|p| key.starts_with(p)) {
            return Err(format!("unknown path element {key:?}"));
        }
        if depth > 64 {
            return Err("nested too deeply".to_string());
        }
        validate_tree(child, depth + 1)?;
    }
    Ok(())
}

/// True if `path` is a member of the tree.
fn tree_contains(node: &Map<String, Value>, path: &[String]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    match node.get(first).and_then(Value::as_object) {
        Some(child) if rest.is_empty() => child.is_empty() || child.contains_key("."),
        Some(child) => tree_contains(child, rest),
        None => false,
    }
}

/// True if the tree has a node at `path`: `path` or something below it is a member (trees
/// never keep nodes without members below them).
fn tree_has_node(node: &Map<String, Value>, path: &[String]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return true;
    };
    match node.get(first).and_then(Value::as_object) {
        Some(child) => tree_has_node(child, rest),
        None => false,
    }
}

/// Adds `path`; returns whether it was new. A leaf that gains children keeps its membership
/// as a `.` entry.
fn tree_insert(node: &mut Map<String, Value>, path: &[String]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let child = node.entry(first.clone()).or_insert_with(|| Value::Null);
    let fresh = child.is_null();
    if fresh {
        *child = Value::Object(Map::new());
    }
    let Some(map) = child.as_object_mut() else {
        *child = Value::Object(Map::new());
        return tree_insert(node, path);
    };
    if rest.is_empty() {
        if fresh || map.is_empty() || map.contains_key(".") {
            return fresh;
        }
        map.insert(".".to_string(), json!({}));
        return true;
    }
    if !fresh && map.is_empty() {
        map.insert(".".to_string(), json!({}));
    }
    tree_insert(map, rest)
}

/// Removes `path` if present; returns whether it was. Parents that were only there for it go
/// too; a parent left with only its `.` becomes a plain leaf.
fn tree_remove(node: &mut Map<String, Value>, path: &[String]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let Some(child) = node.get_mut(first).and_then(Value::as_object_mut) else {
        return false;
    };
    let removed = if rest.is_empty() {
        if child.keys().any(|k| k != ".") {
            child.remove(".").is_some()
        } else {
            node.remove(first);
            return true;
        }
    } else {
        tree_remove(child, rest)
    };
    if removed {
        if child.is_empty() {
            node.remove(first);
        } else if child.len() == 1 && child.contains_key(".") {
            child.clear();
        }
    }
    removed
}

/// An object's `managedFields`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManagedFields(pub Vec<Entry>);

impl ManagedFields {
    /// Reads `metadata.managedFields`; an error names the bad entry.
    pub fn decode(object: &Value) -> Result<Self, String> {
        let Some(entries) = object.pointer("/metadata/managedFields") else {
            return Ok(Self::default());
        };
        let Value::Array(entries) = entries else {
            return Ok(Self::default());
        };
        let mut out = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            if entry.as_object().is_some_and(Map::is_empty) {
                continue; // `[{}]` is how clients reset ownership.
            }
            let text = |k: &str| {
                entry
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let operation = match text("operation").as_str() {
                "Apply" => Operation::Apply,
                "Update" => Operation::Update,
                other => {
                    return Err(format!(
                        "metadata.managedFields[{i}].operation: unsupported value {other:?}"
                    ));
                }
            };
            let tree = match entry.get("fieldsV1") {
                Some(v) => {
                    validate_tree(v, 0)
                        .map_err(|e| format!("metadata.managedFields[{i}].fieldsV1: {e}"))?;
                    v.as_object().cloned().unwrap_or_default()
                }
                None => Map::new(),
            };
            out.push(Entry {
                manager: text("manager"),
                operation,
                api_version: text("apiVersion"),
                time: text("time"),
                subresource: text("subresource"),
                tree,
            });
        }
        Ok(Self(out))
    }

    pub fn encode(&self) -> Value {
        Value::Array(
            self.0
                .iter()
                .map(|e| {
                    let mut entry = json!({
                        "manager": e.manager,
                        "operation": e.operation.as_str(),
                        "apiVersion": e.api_version,
                        "time": e.time,
                        "fieldsType": "FieldsV1",
                        "fieldsV1": Value::Object(e.tree.clone()),
                    });
                    if !e.subresource.is_empty() {
                        entry["subresource"] = Value::String(e.subresource.clone());
                    }
                    entry
                })
                .collect(),
        )
    }

    /// The entry of `manager` for `operation` on `subresource`.
    pub fn entry(&self, manager: &str, operation: Operation, subresource: &str) -> Option<&Entry> {
        self.0
            .iter()
            .find(|e| e.same_owner(manager, operation, subresource))
    }

    /// True if anyone but (`manager`, `operation`, `subresource`) owns `path`; returns their
    /// descriptions.
    pub fn other_owners(
        &self,
        manager: &str,
        operation: Operation,
        subresource: &str,
        path: &FieldPath,
    ) -> Vec<String> {
        self.0
            .iter()
            .filter(|e| !e.same_owner(manager, operation, subresource))
            .filter(|e| tree_contains(&e.tree, path))
            .map(Entry::describe)
            .collect()
    }

    /// True if anyone but (`manager`, `operation`, `subresource`) owns `path` or anything
    /// below it.
    pub fn others_cover(
        &self,
        manager: &str,
        operation: Operation,
        subresource: &str,
        path: &FieldPath,
    ) -> bool {
        self.0
            .iter()
            .filter(|e| !e.same_owner(manager, operation, subresource))
            .any(|e| tree_has_node(&e.tree, path))
    }

    fn entry_mut(
        &mut self,
        manager: &str,
        operation: Operation,
        subresource: &str,
        api_version: &str,
        now: &str,
    ) -> &mut Entry {
        let position = self
            .0
            .iter()
            .position(|e| e.same_owner(manager, operation, subresource));
        let index = match position {
            Some(i) => i,
            None => {
                self.0.push(Entry {
                    manager: manager.to_string(),
                    operation,
                    api_version: api_version.to_string(),
                    time: now.to_string(),
                    subresource: subresource.to_string(),
                    tree: Map::new(),
                });
                self.0.len() - 1
            }
        };
        &mut self.0[index]
    }

    /// Sets the fields of one owner, creating its entry (stamped `now`) or replacing it; an
    /// owner left with no fields is dropped.
    pub fn set(
        &mut self,
        manager: &str,
        operation: Operation,
        subresource: &str,
        api_version: &str,
        now: &str,
        fields: FieldSet,
    ) {
        let tree = match fields.to_fields_v1() {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let entry = self.entry_mut(manager, operation, subresource, api_version, now);
        if entry.tree != tree {
            entry.tree = tree;
            entry.time = now.to_string();
        }
        entry.api_version = api_version.to_string();
        self.0.retain(|e| !e.tree.is_empty());
    }

    /// Removes `fields` from every owner but the given one.
    pub fn take_from_others(
        &mut self,
        manager: &str,
        operation: Operation,
        subresource: &str,
        fields: &FieldSet,
    ) {
        for entry in self
            .0
            .iter_mut()
            .filter(|e| !e.same_owner(manager, operation, subresource))
        {
            for path in fields.iter() {
                tree_remove(&mut entry.tree, path);
            }
        }
        self.0.retain(|e| !e.tree.is_empty());
    }

    /// Removes `fields` from every owner.
    pub fn forget(&mut self, fields: &FieldSet) {
        for entry in &mut self.0 {
            for path in fields.iter() {
                tree_remove(&mut entry.tree, path);
            }
        }
        self.0.retain(|e| !e.tree.is_empty());
    }

    /// Records a non-apply write (create, update, patch) by `manager`: it takes the fields it
    /// added or changed (from everyone else), and removed fields are forgotten. `old` and
    /// `new` are whole objects (or tracked views of them); only tracked fields count.
    pub fn record_update(&mut self, write: &Write<'_>, old: Option<&Value>, new: &Value) {
        let mut changed = BTreeSet::new();
        let mut removed = BTreeSet::new();
        let mut path = Vec::new();
        let mut names = Vec::new();
        let old_children = old
            .map(|o| tracked_children(o, write.resource, write.part))
            .unwrap_or_default();
        let new_children = tracked_children(new, write.resource, write.part);
        // Metadata is compared through its tracked fields only.
        let (old_meta, old_rest) = split_metadata(old_children);
        let (new_meta, new_rest) = split_metadata(new_children);
        let resource = write.resource;
        diff_children(
            &old_rest,
            &new_rest,
            resource,
            &mut path,
            &mut names,
            &mut changed,
            &mut removed,
        );
        path.push("f:metadata".to_string());
        names.push("metadata");
        diff_children(
            &old_meta,
            &new_meta,
            resource,
            &mut path,
            &mut names,
            &mut changed,
            &mut removed,
        );
        // A modified leaf is both removed (old value) and changed (new value): it changed.
        removed.retain(|p| !changed.contains(p));
        self.forget(&FieldSet(removed));
        if changed.is_empty() {
            return;
        }
        let changed = FieldSet(changed);
        let sub = write.subresource();
        self.take_from_others(write.manager, Operation::Update, sub, &changed);
        let api_version = write.resource.api_version();
        let entry = self.entry_mut(
            write.manager,
            Operation::Update,
            sub,
            &api_version,
            write.now,
        );
        for path in changed.iter() {
            tree_insert(&mut entry.tree, path);
        }
        // Changing a value it already owned is still this manager's latest write.
        entry.time = write.now.to_string();
        entry.api_version = api_version;
    }
}

/// The field paths that differ between `old` and `new`: `changed` gets those set (added or
/// modified) in `new`, `removed` those set in `old` (a modified leaf lands in both). Walks
/// both trees together and skips equal subtrees, so a one-field patch costs a comparison,
/// not a full enumeration of both objects.
fn diff<'a>(
    old: &'a Value,
    new: &'a Value,
    resource: &ResourceType,
    path: &mut FieldPath,
    names: &mut Vec<&'a str>,
    changed: &mut BTreeSet<FieldPath>,
    removed: &mut BTreeSet<FieldPath>,
) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(o), Value::Object(n)) if !o.is_empty() && !n.is_empty() => {
            diff_fields(o, n, resource, path, names, changed, removed);
        }
        (Value::Array(o), Value::Array(n)) if !o.is_empty() && !n.is_empty() => {
            match resource.list_type(names) {
                ListType::Atomic => {
                    changed.insert(path.clone());
                }
                ListType::Set => {
                    for item in n.iter().filter(|i| !o.contains(i)) {
                        let mut p = path.clone();
                        p.push(format!("v:{item}"));
                        changed.insert(p);
                    }
                    for item in o.iter().filter(|i| !n.contains(i)) {
                        let mut p = path.clone();
                        p.push(format!("v:{item}"));
                        removed.insert(p);
                    }
                }
                ListType::Map(keys) => {
                    let old_keys: Option<Vec<String>> =
                        o.iter().map(|i| item_key(i, &keys)).collect();
                    let new_keys: Option<Vec<String>> =
                        n.iter().map(|i| item_key(i, &keys)).collect();
                    let (Some(old_keys), Some(new_keys)) = (old_keys, new_keys) else {
                        walk(old, resource, path, names, removed);
                        walk(new, resource, path, names, changed);
                        return;
                    };
                    for (item, key) in n.iter().zip(&new_keys) {
                        path.push(key.clone());
                        match old_keys.iter().position(|k| k == key) {
                            Some(i) => {
                                if let (Value::Object(a), Value::Object(b)) = (&o[i], item) {
                                    diff_fields(a, b, resource, path, names, changed, removed);
                                }
                            }
                            None => {
                                changed.insert(path.clone());
                                walk_fields(item, resource, path, names, changed);
                            }
                        }
                        path.pop();
                    }
                    for (item, key) in o.iter().zip(&old_keys) {
                        if !new_keys.contains(key) {
                            path.push(key.clone());
                            removed.insert(path.clone());
                            walk_fields(item, resource, path, names, removed);
                            path.pop();
                        }
                    }
                }
            }
        }
        _ => {
            walk(old, resource, path, names, removed);
            walk(new, resource, path, names, changed);
        }
    }
}

fn diff_fields<'a>(
    o: &'a Map<String, Value>,
    n: &'a Map<String, Value>,
    resource: &ResourceType,
    path: &mut FieldPath,
    names: &mut Vec<&'a str>,
    changed: &mut BTreeSet<FieldPath>,
    removed: &mut BTreeSet<FieldPath>,
) {
    for (key, value) in n {
        path.push(format!("f:{key}"));
        names.push(key);
        match o.get(key) {
            Some(before) => diff(before, value, resource, path, names, changed, removed),
            None => walk(value, resource, path, names, changed),
        }
        names.pop();
        path.pop();
    }
    for (key, value) in o.iter().filter(|(k, _)| !n.contains_key(*k)) {
        path.push(format!("f:{key}"));
        names.push(key);
        walk(value, resource, path, names, removed);
        names.pop();
        path.pop();
    }
}

/// Who writes what, for ownership bookkeeping.
pub struct Write<'a> {
    pub resource: &'a ResourceType,
    pub manager: &'a str,
    pub part: Part,
    pub now: &'a str,
}

impl Write<'_> {
    pub fn subresource(&self) -> &'static str {
        match self.part {
            Part::Main => "",
            Part::Status => "status",
        }
    }
}

/// Fixtures shared by the ownership tests here and in `apply.rs`.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::registry::Registry;

    pub fn deployments() -> std::sync::Arc<ResourceType> {
        Registry::builtin()
            .find("apps", "v1", "deployments")
            .unwrap()
    }

    /// A field path from its elements.
    pub fn path(elements: &[&str]) -> FieldPath {
        elements.iter().map(|s| s.to_string()).collect()
    }

    /// The image of the container named `web` in a Deployment's pod template.
    pub fn web_image() -> FieldPath {
        path(&[
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            "k:{\"name\":\"web\"}",
            "f:image",
        ])
    }

    /// A write by `manager` to the main resource (not `/status`).
    pub fn main_write<'a>(resource: &'a ResourceType, manager: &'a str, now: &'a str) -> Write<'a> {
        Write {
            resource,
            manager,
            part: Part::Main,
            now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{deployments, main_write, path, web_image};
    use super::*;

    fn deployment(image: &str, replicas: u32) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns", "uid": "u", "labels": {"app": "web"},
                         "finalizers": ["a/b"]},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "web", "image": image, "ports": [{"containerPort": 80, "protocol": "TCP"}],
                 "args": ["-v"]}
            ]}}},
            "status": {"replicas": 1}
        })
    }

    #[test]
    fn field_sets_follow_list_types() {
        let resource = deployments();
        let view = tracked_view(&deployment("nginx", 2), &resource, Part::Main);
        let fields = FieldSet::of(&view, &resource).to_fields_v1();
        assert_eq!(
            fields,
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}, "f:finalizers": {"v:\"a/b\"": {}}},
                "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"web\"}": {
                        ".": {}, "f:name": {}, "f:image": {}, "f:args": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                            ".": {}, "f:containerPort": {}, "f:protocol": {}}}
                    }
                }}}}
            })
        );
        let parsed = FieldSet::from_fields_v1(&fields).unwrap();
        assert_eq!(parsed.to_fields_v1(), fields, "round trip");
    }

    #[test]
    fn lookup_and_remove_follow_keys() {
        let mut d = deployment("nginx", 2);
        let path = web_image();
        assert_eq!(lookup(&d, &path), Some(&json!("nginx")));
        assert_eq!(
            display_path(&path),
            ".spec.template.spec.containers[name=\"web\"].image"
        );
        remove(&mut d, &path);
        assert_eq!(lookup(&d, &path), None);
        let finalizer: FieldPath = vec![
            "f:metadata".into(),
            "f:finalizers".into(),
            "v:\"a/b\"".into(),
        ];
        remove(&mut d, &finalizer);
        assert_eq!(d["metadata"]["finalizers"], json!([]));
    }

    #[test]
    fn updates_take_changed_fields_from_other_managers() {
        let resource = deployments();
        let now = "2024-01-01T00:00:00Z";
        let creator = main_write(&resource, "creator", now);
        let scaler = main_write(&resource, "scaler", now);
        let v1 = tracked_view(&deployment("nginx", 2), &resource, Part::Main);
        let v2 = tracked_view(&deployment("nginx", 5), &resource, Part::Main);
        let mut managed = ManagedFields::default();
        managed.record_update(&creator, None, &v1);
        managed.record_update(&scaler, Some(&v1), &v2);
        let replicas: FieldPath = vec!["f:spec".into(), "f:replicas".into()];
        let creator_fields = &managed
            .entry("creator", Operation::Update, "")
            .unwrap()
            .fields();
        let scaler_fields = &managed
            .entry("scaler", Operation::Update, "")
            .unwrap()
            .fields();
        assert!(!creator_fields.contains(&replicas));
        assert!(scaler_fields.contains(&replicas));
        assert_eq!(scaler_fields.iter().count(), 1);
        let encoded = managed.encode();
        assert_eq!(encoded[1]["manager"], "scaler");
        assert_eq!(encoded[1]["apiVersion"], "apps/v1");
        let decoded =
            ManagedFields::decode(&json!({"metadata": {"managedFields": encoded}})).unwrap();
        assert_eq!(decoded, managed);
    }

    #[test]
    fn diffs_follow_list_keys() {
        let resource = deployments();
        let now = "2024-01-01T00:00:00Z";
        let view = |d: &Value| tracked_view(d, &resource, Part::Main);
        let creator = main_write(&resource, "creator", now);
        let updater = main_write(&resource, "updater", now);
        let v1 = deployment("nginx", 2);
        let mut managed = ManagedFields::default();
        managed.record_update(&creator, None, &view(&v1));
        let all = managed
            .entry("creator", Operation::Update, "")
            .unwrap()
            .fields()
            .clone();
        assert_eq!(
            all,
            FieldSet::of(&view(&v1), &resource),
            "a create owns everything"
        );

        // Changing one container's image moves only that leaf.
        let v2 = deployment("nginx:2", 2);
        managed.record_update(&updater, Some(&view(&v1)), &view(&v2));
        let image = web_image();
        let mine = &managed
            .entry("updater", Operation::Update, "")
            .unwrap()
            .fields();
        assert_eq!(mine.iter().collect::<Vec<_>>(), vec![&image]);

        // Removing the container forgets its fields for everyone; adding one gives it all.
        let mut v3 = v2.clone();
        v3["spec"]["template"]["spec"]["containers"] = json!([{"name": "other", "image": "x"}]);
        v3["metadata"]["finalizers"] = json!(["a/b", "c/d"]);
        managed.record_update(&updater, Some(&view(&v2)), &view(&v3));
        assert!(
            managed
                .entry("creator", Operation::Update, "")
                .unwrap()
                .fields()
                .iter()
                .all(|p| !p.contains(&"k:{\"name\":\"web\"}".to_string()))
        );
        let mine = &managed
            .entry("updater", Operation::Update, "")
            .unwrap()
            .fields();
        assert!(mine.contains(&vec![
            "f:metadata".into(),
            "f:finalizers".into(),
            "v:\"c/d\"".into()
        ]));
        assert!(mine.contains(&path(&[
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            "k:{\"name\":\"other\"}"
        ])));
        assert!(
            !mine.contains(&image),
            "the removed container's image is forgotten"
        );
        assert_eq!(
            managed
                .0
                .iter()
                .map(|e| e.fields())
                .fold(FieldSet::default(), |a, b| a.union(&b)),
            FieldSet::of(&view(&v3), &resource),
            "every field has exactly the owners the history gives it"
        );
    }

    #[test]
    fn tree_edits_keep_membership_exact() {
        let p = path;
        let mut tree = Map::new();
        assert!(tree_insert(&mut tree, &p(&["f:a"])));
        assert!(tree_insert(&mut tree, &p(&["f:a", "f:b"])));
        assert!(
            !tree_insert(&mut tree, &p(&["f:a", "f:b"])),
            "already there"
        );
        assert_eq!(
            Value::Object(tree.clone()),
            json!({"f:a": {".": {}, "f:b": {}}})
        );
        assert!(tree_contains(&tree, &p(&["f:a"])) && tree_contains(&tree, &p(&["f:a", "f:b"])));
        assert!(tree_remove(&mut tree, &p(&["f:a", "f:b"])));
        assert_eq!(
            Value::Object(tree.clone()),
            json!({"f:a": {}}),
            "a stays a leaf member"
        );
        assert!(tree_remove(&mut tree, &p(&["f:a"])));
        assert!(tree.is_empty());

        tree_insert(&mut tree, &p(&["f:x", "f:y", "f:z"]));
        assert!(
            !tree_contains(&tree, &p(&["f:x", "f:y"])),
            "parents are not members"
        );
        assert!(!tree_remove(&mut tree, &p(&["f:x", "f:y"])));
        assert!(tree_remove(&mut tree, &p(&["f:x", "f:y", "f:z"])));
        assert!(tree.is_empty(), "parents that were only paths go too");

        tree_insert(&mut tree, &p(&["f:m", "f:n"]));
        tree_insert(&mut tree, &p(&["f:m"]));
        assert_eq!(
            Value::Object(tree.clone()),
            json!({"f:m": {".": {}, "f:n": {}}})
        );
        let mut entry_set = BTreeSet::new();
        read_tree(&tree, &mut Vec::new(), &mut entry_set);
        assert_eq!(entry_set.len(), 2);
    }

    #[test]
    fn bad_managed_fields_are_named() {
        let error = ManagedFields::decode(&json!({"metadata": {"managedFields": [
            {"manager": "m", "operation": "Apply", "fieldsV1": {"bogus": {}}}
        ]}}))
        .unwrap_err();
        assert!(error.contains("managedFields[0].fieldsV1"), "{error}");
        assert!(
            ManagedFields::decode(&json!({"metadata": {"managedFields": [{}]}}))
                .unwrap()
                .0
                .is_empty()
        );
    }

    #[test]
    fn status_writes_track_only_status() {
        let resource = deployments();
        let view = tracked_view(&deployment("nginx", 2), &resource, Part::Status);
        assert_eq!(view, json!({"status": {"replicas": 1}}));
        let main = tracked_view(&deployment("nginx", 2), &resource, Part::Main);
        assert!(main.get("status").is_none());
        assert!(main["metadata"].get("uid").is_none());
    }
}
