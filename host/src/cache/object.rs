//! What the cache holds per object: the JSON as shared bytes, plus the handful of parsed fields
//! that keys, indexes, selectors and predicates need.
//!
//! Why not a parsed tree (`serde_json::Value`, `DynamicObject`, a k8s-openapi struct): a tree
//! costs several times the JSON it came from (a heap allocation per string, map and array), and
//! a plugin needs JSON text anyway, so a tree would be serialized again on every read. Keeping
//! the bytes makes reads a reference-count increment and the footprint about the JSON size.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::key::ObjectKey;

/// UTF-8 JSON text in shared bytes. Built only from `String`, so it is always valid UTF-8, and
/// `Bytes` is immutable, so it stays that way; cloning shares the buffer.
#[derive(Clone, PartialEq, Eq)]
pub struct JsonText(Bytes);

impl JsonText {
    pub fn as_str(&self) -> &str {
        // SAFETY: constructed only from `String` (see `From<String>`), and `Bytes` never
        // mutates its contents, so the bytes are valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for JsonText {
    /// Drops spare capacity first: `Bytes` keeps a `Vec`'s whole allocation, and a transformed
    /// object is built in a buffer sized for the untransformed one (often twice its size).
    fn from(mut text: String) -> Self {
        text.shrink_to_fit();
        Self(Bytes::from(text.into_bytes()))
    }
}

impl fmt::Debug for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// An object's labels, sorted by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSet(Box<[(Box<str>, Box<str>)]>);

impl LabelSet {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.0[i].1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn heap_size(&self) -> usize {
        self.0.len() * std::mem::size_of::<(Box<str>, Box<str>)>()
            + self.0.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
    }
}

impl From<BTreeMap<String, String>> for LabelSet {
    fn from(map: BTreeMap<String, String>) -> Self {
        Self(map.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

impl trellis_selector::Labels for LabelSet {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key)
    }
}

/// The controller owner reference (`controller: true`) of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerRef {
    pub api_version: Box<str>,
    pub kind: Box<str>,
    pub name: Box<str>,
    pub uid: Box<str>,
}

impl ControllerRef {
    /// The owner's API group: `apps` for `apps/v1`, empty for `v1`.
    pub fn group(&self) -> &str {
        self.api_version
            .split_once('/')
            .map_or("", |(group, _)| group)
    }
}

/// The parsed part of an object's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub key: ObjectKey,
    pub uid: Option<Box<str>>,
    pub resource_version: Box<str>,
    pub generation: Option<i64>,
    pub labels: LabelSet,
    /// A hash of `metadata.annotations` as the server serialized it (Go sorts map keys, so
    /// equal maps serialize equally): enough to tell whether annotations changed without
    /// keeping a second copy of them, which can be large (last-applied-configuration).
    pub annotations_digest: u64,
    pub controller: Option<Box<ControllerRef>>,
}

/// Why an object could not be read. Names the object when its name is known.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("object is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("object has no metadata.name")]
    MissingName,
    #[error("object {key} has an empty metadata.resourceVersion")]
    MissingResourceVersion { key: ObjectKey },
}

#[derive(Deserialize)]
struct Document<'a> {
    #[serde(borrow)]
    metadata: Option<MetadataFields<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetadataFields<'a> {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    #[serde(borrow)]
    annotations: Option<&'a RawValue>,
    owner_references: Option<Vec<OwnerReferenceFields>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OwnerReferenceFields {
    api_version: String,
    kind: String,
    name: String,
    uid: String,
    controller: Option<bool>,
}

impl Metadata {
    /// Parses `metadata` out of an object's JSON. Only the metadata fields above are built;
    /// `spec`, `status`, `managedFields` and the rest are skipped over, not materialized.
    pub fn parse(json: &str) -> Result<Self, ObjectError> {
        let document: Document<'_> = serde_json::from_str(json)?;
        let fields = document.metadata.ok_or(ObjectError::MissingName)?;
        let name = fields
            .name
            .filter(|n| !n.is_empty())
            .ok_or(ObjectError::MissingName)?;
        let namespace = fields.namespace.filter(|n| !n.is_empty());
        let key = ObjectKey::new(namespace.as_deref(), &name);
        let resource_version = fields.resource_version.unwrap_or_default();
        if resource_version.is_empty() {
            return Err(ObjectError::MissingResourceVersion { key });
        }
        let annotations = fields
            .annotations
            .map(RawValue::get)
            .filter(|a| !matches!(*a, "{}" | "null"));
        let controller = fields
            .owner_references
            .unwrap_or_default()
            .into_iter()
            .find(|owner| owner.controller == Some(true))
            .map(|owner| {
                Box::new(ControllerRef {
                    api_version: owner.api_version.into(),
                    kind: owner.kind.into(),
                    name: owner.name.into(),
                    uid: owner.uid.into(),
                })
            });
        Ok(Self {
            key,
            uid: fields.uid.filter(|u| !u.is_empty()).map(Into::into),
            resource_version: resource_version.into(),
            generation: fields.generation,
            labels: fields.labels.unwrap_or_default().into(),
            annotations_digest: digest(annotations),
            controller,
        })
    }

    fn heap_size(&self) -> usize {
        let strings = self.key.name.len()
            + self.uid.as_deref().map_or(0, str::len)
            + self.resource_version.len()
            + self.labels.heap_size();
        let controller = self.controller.as_deref().map_or(0, |c| {
            std::mem::size_of::<ControllerRef>()
                + c.api_version.len()
                + c.kind.len()
                + c.name.len()
                + c.uid.len()
        });
        strings + controller
    }
}

fn digest(annotations: Option<&str>) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    annotations.hash(&mut hasher);
    hasher.finish()
}

/// One cached object. Immutable: an update replaces the whole `Arc<CachedObject>`, so a reader
/// holding one always sees a consistent object.
#[derive(Debug)]
pub struct CachedObject {
    meta: Metadata,
    json: JsonText,
    /// The values of the cache's declared indexes, in declaration order.
    index_values: Box<[Box<[Box<str>]>]>,
}

impl CachedObject {
    pub fn new(meta: Metadata, json: JsonText, index_values: Vec<Vec<String>>) -> Self {
        let index_values = index_values
            .into_iter()
            .map(|values| values.into_iter().map(Into::into).collect())
            .collect();
        Self {
            meta,
            json,
            index_values,
        }
    }

    pub fn key(&self) -> &ObjectKey {
        &self.meta.key
    }

    pub fn meta(&self) -> &Metadata {
        &self.meta
    }

    /// The stored JSON (after the informer's transform), shared, never re-serialized.
    pub fn json(&self) -> &JsonText {
        &self.json
    }

    pub fn labels(&self) -> &LabelSet {
        &self.meta.labels
    }

    pub fn resource_version(&self) -> &str {
        &self.meta.resource_version
    }

    pub(crate) fn index_values(&self, declared: usize) -> &[Box<str>] {
        self.index_values.get(declared).map_or(&[], |v| v)
    }

    /// An estimate of the memory this object holds: the JSON, the parsed fields and the struct
    /// itself. Index postings are accounted by the store.
    pub fn heap_size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.json.len()
            + self.meta.heap_size()
            + self
                .index_values
                .iter()
                .map(|vs| {
                    std::mem::size_of::<Box<[Box<str>]>>()
                        + vs.iter()
                            .map(|v| v.len() + std::mem::size_of::<Box<str>>())
                            .sum::<usize>()
                })
                .sum::<usize>()
    }
}

/// Shared handle to a cached object, as readers receive it.
pub type ObjectRef = Arc<CachedObject>;

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_selector::{LabelSelector, Labels};

    const POD: &str = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"prod",
        "uid":"u-1","resourceVersion":"42","generation":3,"labels":{"tier":"front","app":"web"},
        "annotations":{"note":"x"},"managedFields":[{"manager":"kubectl","fieldsV1":{"f:spec":{}}}],
        "ownerReferences":[{"apiVersion":"v1","kind":"Other","name":"o","uid":"o-1"},
          {"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web","uid":"rs-1","controller":true}]},
        "spec":{"nodeName":"n1"}}"#;

    #[test]
    fn parses_the_fields_keys_indexes_and_predicates_need() {
        let meta = Metadata::parse(POD).unwrap();
        assert_eq!(meta.key, ObjectKey::namespaced("prod", "web-1"));
        assert_eq!(meta.uid.as_deref(), Some("u-1"));
        assert_eq!(&*meta.resource_version, "42");
        assert_eq!(meta.generation, Some(3));
        let labels: Vec<_> = meta.labels.iter().collect();
        assert_eq!(labels, [("app", "web"), ("tier", "front")]);
        assert_eq!(meta.labels.label("tier"), Some("front"));
        assert_eq!(meta.labels.label("nope"), None);
        let owner = meta.controller.as_deref().unwrap();
        assert_eq!(
            (&*owner.kind, owner.group(), &*owner.uid),
            ("ReplicaSet", "apps", "rs-1")
        );
        assert!(
            LabelSelector::parse("app=web,tier in (front)")
                .unwrap()
                .matches(&meta.labels)
        );
    }

    #[test]
    fn annotation_digest_tells_changes_apart_and_treats_empty_as_absent() {
        let with = |annotations: &str| {
            Metadata::parse(&format!(
                r#"{{"metadata":{{"name":"a","resourceVersion":"1"{annotations}}}}}"#
            ))
            .unwrap()
            .annotations_digest
        };
        let none = with("");
        assert_eq!(none, with(r#","annotations":{}"#));
        assert_eq!(none, with(r#","annotations":null"#));
        assert_ne!(none, with(r#","annotations":{"a":"1"}"#));
        assert_ne!(
            with(r#","annotations":{"a":"1"}"#),
            with(r#","annotations":{"a":"2"}"#)
        );
        assert_eq!(
            with(r#","annotations":{"a":"1"}"#),
            with(r#","annotations":{"a":"1"}"#)
        );
    }

    #[test]
    fn cluster_scoped_objects_have_no_namespace() {
        let meta =
            Metadata::parse(r#"{"metadata":{"name":"n1","namespace":"","resourceVersion":"1"}}"#)
                .unwrap();
        assert_eq!(meta.key, ObjectKey::cluster("n1"));
        assert!(meta.controller.is_none());
        assert!(meta.labels.is_empty());
    }

    #[test]
    fn bad_objects_are_errors_naming_what_is_missing() {
        let err = Metadata::parse("{not json").unwrap_err();
        assert!(
            err.to_string().starts_with("object is not valid JSON"),
            "{err}"
        );
        for json in [r#"{}"#, r#"{"metadata":{}}"#, r#"{"metadata":{"name":""}}"#] {
            assert!(
                matches!(Metadata::parse(json), Err(ObjectError::MissingName)),
                "{json}"
            );
        }
        let err = Metadata::parse(r#"{"metadata":{"name":"a","namespace":"ns"}}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "object ns/a has an empty metadata.resourceVersion"
        );
        let err =
            Metadata::parse(r#"{"metadata":{"name":"a","resourceVersion":"1","labels":{"a":1}}}"#)
                .unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
    }

    #[test]
    fn json_is_shared_not_copied() {
        let meta = Metadata::parse(POD).unwrap();
        let object = CachedObject::new(meta, JsonText::from(POD.to_string()), vec![]);
        let a = object.json().clone();
        assert_eq!(a.as_bytes().as_ptr(), object.json().as_bytes().as_ptr());
        assert_eq!(a.as_str(), POD);
        assert!(object.heap_size() > POD.len());
    }
}
