//! A stored object: its serialized JSON plus the few parsed bits reads need.
//!
//! Lists and watches are the hot path (100k Pods, many watchers), so an object is serialized
//! once, when written, and served from those bytes to every reader: a list is the concatenation
//! of items' bytes, a watch event is a fixed prefix, the bytes and a suffix. Labels and
//! selectable field values are extracted at write time so filtering never parses JSON. The
//! parsed `Value` is not kept (a Pod's `Value` is several times its JSON size); writes re-parse
//! the bytes, which costs microseconds.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use trellis_selector::Labels;

use crate::fields::{FieldValues, SelectableField};

/// Where an object lives in its table: sorted by namespace, then name (the real server's
/// etcd key order, `<namespace>/<name>`). Cluster-scoped objects have an empty namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjKey {
    pub namespace: Box<str>,
    pub name: Box<str>,
}

impl ObjKey {
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// An object's labels, sorted by key.
#[derive(Debug, Clone, Default)]
pub struct LabelSet(Box<[(Box<str>, Box<str>)]>);

impl LabelSet {
    pub fn from_object(object: &Value) -> Self {
        let mut labels: Vec<(Box<str>, Box<str>)> = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str().into(), v.into())))
                    .collect()
            })
            .unwrap_or_default();
        labels.sort();
        Self(labels.into())
    }
}

impl Labels for LabelSet {
    fn label(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.0[i].1)
    }
}

/// One version of one object, immutable once stored.
#[derive(Debug)]
pub struct StoredObject {
    pub key: ObjKey,
    pub rv: u64,
    /// The object as served, `metadata.resourceVersion` included.
    pub json: Bytes,
    pub labels: LabelSet,
    pub fields: FieldValues,
}

impl StoredObject {
    /// Serializes `object` (whose `metadata.resourceVersion` must already be `rv`).
    pub fn new(object: &Value, rv: u64, selectable: &Arc<[SelectableField]>) -> Self {
        let mut json = serde_json::to_vec(object).unwrap_or_default();
        // `to_vec` grows by doubling; without this every stored object would carry up to
        // its size again in spare capacity.
        json.shrink_to_fit();
        Self {
            key: ObjKey::new(meta_str(object, "namespace"), meta_str(object, "name")),
            rv,
            json: Bytes::from(json),
            labels: LabelSet::from_object(object),
            fields: FieldValues::extract(selectable, object),
        }
    }

    /// Finishes a prepared object under its resourceVersion: splices
    /// `"metadata":{"resourceVersion":"<rv>",...}` in front of the rest, a copy, so the
    /// serialization itself happens before the store lock is taken.
    pub fn from_prepared(prepared: Prepared, rv: u64) -> Self {
        let Prepared {
            key,
            labels,
            fields,
            meta,
            rest,
        } = prepared;
        let rv_text = rv.to_string();
        let mut json = Vec::with_capacity(meta.len() + rest.len() + rv_text.len() + 40);
        json.extend_from_slice(b"{\"metadata\":{\"resourceVersion\":\"");
        json.extend_from_slice(rv_text.as_bytes());
        json.push(b'"');
        // `meta` and `rest` are `{...}`: keep their members and closing brace.
        if meta.len() > 2 {
            json.push(b',');
            json.extend_from_slice(&meta[1..]);
        } else {
            json.push(b'}');
        }
        if rest.len() > 2 {
            json.push(b',');
            json.extend_from_slice(&rest[1..]);
        } else {
            json.push(b'}');
        }
        Self {
            key,
            rv,
            json: Bytes::from(json),
            labels,
            fields,
        }
    }

    /// The object parsed back (for writes, conversions and tables).
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }
}

/// An object serialized but for its resourceVersion, ready to be stored.
#[derive(Debug)]
pub struct Prepared {
    pub key: ObjKey,
    labels: LabelSet,
    fields: FieldValues,
    /// `metadata` without `resourceVersion`.
    meta: Vec<u8>,
    /// Everything but `metadata`.
    rest: Vec<u8>,
}

impl Prepared {
    pub fn new(mut object: Value, selectable: &Arc<[SelectableField]>) -> Self {
        let key = ObjKey::new(meta_str(&object, "namespace"), meta_str(&object, "name"));
        let labels = LabelSet::from_object(&object);
        let fields = FieldValues::extract(selectable, &object);
        let mut meta = match object.as_object_mut().and_then(|m| m.remove("metadata")) {
            Some(Value::Object(meta)) => meta,
            _ => serde_json::Map::new(),
        };
        meta.remove("resourceVersion");
        Self {
            key,
            labels,
            fields,
            meta: serde_json::to_vec(&meta).unwrap_or_else(|_| b"{}".to_vec()),
            rest: serde_json::to_vec(&object).unwrap_or_else(|_| b"{}".to_vec()),
        }
    }
}

/// `metadata.<field>` as a string, or empty.
pub fn meta_str<'a>(object: &'a Value, field: &str) -> &'a str {
    object
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata`, created if absent. Callers have checked the object is a JSON object.
pub fn meta_mut(object: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = Value::Object(Default::default());
    }
    object["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

/// `metadata.finalizers` as strings.
pub fn finalizers(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn is_deleting(object: &Value) -> bool {
    object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// The current time as the server formats `metav1.Time`.
pub fn now_timestamp() -> String {
    k8s_openapi::jiff::fmt::strtime::format(
        "%Y-%m-%dT%H:%M:%SZ",
        k8s_openapi::jiff::Timestamp::now(),
    )
    .unwrap_or_default()
}

/// A random (version 4) UUID.
pub fn new_uid() -> String {
    let bits = fastrand::u128(..);
    let bits = (bits & !(0xf << 76)) | (0x4 << 76); // version 4
    let bits = (bits & !(0x3 << 62)) | (0x2 << 62); // RFC 4122 variant
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The five characters `generateName` appends, from the real server's alphabet (no vowels,
/// no look-alikes).
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_are_matched_by_selectors() {
        let labels = LabelSet::from_object(&json!({"metadata": {"labels": {"b": "2", "a": "1"}}}));
        assert_eq!(labels.label("a"), Some("1"));
        assert_eq!(labels.label("b"), Some("2"));
        assert_eq!(labels.label("c"), None);
        let selector = trellis_selector::LabelSelector::parse("a=1,b in (2,3),!c").unwrap();
        assert!(selector.matches(&labels));
    }

    #[test]
    fn prepared_objects_get_their_version_spliced_in() {
        let fields = crate::fields::with_metadata(true, Vec::new());
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "n", "resourceVersion": "1", "labels": {"x": "y"}},
            "data": {"k": "v"}});
        let stored = StoredObject::from_prepared(Prepared::new(object.clone(), &fields), 42);
        let mut expected = object;
        expected["metadata"]["resourceVersion"] = json!("42");
        assert_eq!(stored.value(), expected);
        assert_eq!(stored.rv, 42);
        assert_eq!(stored.key, ObjKey::new("n", "a"));
        assert_eq!(stored.labels.label("x"), Some("y"));
        let bare = StoredObject::from_prepared(Prepared::new(json!({}), &fields), 7);
        assert_eq!(bare.value(), json!({"metadata": {"resourceVersion": "7"}}));
    }

    #[test]
    fn uids_look_like_uuids_and_differ() {
        let a = new_uid();
        let b = new_uid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn timestamps_are_rfc3339_seconds() {
        let ts = now_timestamp();
        assert_eq!(ts.len(), 20, "{ts}");
        assert!(ts.ends_with('Z'));
    }

    #[test]
    fn suffixes_use_the_servers_alphabet() {
        let s = name_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }
}
