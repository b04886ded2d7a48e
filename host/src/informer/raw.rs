//! The type kube-runtime's watcher deserializes objects into: the raw JSON text plus our parsed
//! [`Metadata`], never a tree of values.
//!
//! kube's `list` deserializes `items` and its `watch` deserializes the `object` of each event
//! line directly from serde_json's deserializer (the API server writes `type` before `object`,
//! so serde's adjacently-tagged enum does not buffer the object), which is what lets a
//! `Box<RawValue>` capture the text as it arrived. The metadata is parsed once here and handed
//! on to the cache; kube-runtime itself reads only `metadata.resourceVersion` (and the name for
//! its logs), which is all the `ObjectMeta` below carries.
//!
//! `META` selects metadata-only requests: kube asks the server for `PartialObjectMetadata`
//! when `Resource::metadata_api()` is true, a per-type switch, hence the const parameter.

use std::borrow::Cow;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{ApiResource, DynamicResourceScope, Resource};
use serde::de::{Deserialize, Deserializer, Error as _};
use serde_json::value::RawValue;

use crate::cache::Metadata;

#[derive(Clone)]
pub struct RawObject<const META: bool> {
    /// Only `name`, `namespace` and `resourceVersion`, for kube-runtime.
    kube_meta: ObjectMeta,
    pub(crate) json: Box<RawValue>,
    pub(crate) metadata: Metadata,
}

impl<const META: bool> fmt::Debug for RawObject<META> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawObject")
            .field("key", &self.metadata.key)
            .field("resource_version", &self.metadata.resource_version)
            .field("bytes", &self.json.get().len())
            .finish()
    }
}

impl<'de, const META: bool> Deserialize<'de> for RawObject<META> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = Box::<RawValue>::deserialize(deserializer)?;
        let metadata = Metadata::parse(json.get()).map_err(D::Error::custom)?;
        let kube_meta = ObjectMeta {
            name: Some(metadata.key.name.to_string()),
            namespace: metadata.key.namespace.as_deref().map(str::to_string),
            resource_version: Some(metadata.resource_version.to_string()),
            ..ObjectMeta::default()
        };
        Ok(Self {
            kube_meta,
            json,
            metadata,
        })
    }
}

impl<const META: bool> Resource for RawObject<META> {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        Cow::Borrowed(&dt.kind)
    }

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        Cow::Borrowed(&dt.group)
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        Cow::Borrowed(&dt.version)
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        Cow::Borrowed(&dt.api_version)
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        Cow::Borrowed(&dt.plural)
    }

    fn metadata_api() -> bool {
        META
    }

    fn meta(&self) -> &ObjectMeta {
        &self.kube_meta
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.kube_meta
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::{ObjectList, WatchEvent};

    const OBJECT: &str = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"n","resourceVersion":"5","managedFields":[{"x":1}]},"data":{"k":"v"}}"#;

    #[test]
    fn watch_events_capture_the_object_text_as_sent() {
        let line = format!(r#"{{"type":"MODIFIED","object":{OBJECT}}}"#);
        let event: WatchEvent<RawObject<false>> = serde_json::from_str(&line).unwrap();
        let WatchEvent::Modified(object) = event else {
            panic!("expected MODIFIED");
        };
        assert_eq!(object.json.get(), OBJECT);
        assert_eq!(object.metadata.key.to_string(), "n/a");
        assert_eq!(object.meta().resource_version.as_deref(), Some("5"));
        assert_eq!(object.meta().name.as_deref(), Some("a"));
    }

    #[test]
    fn list_items_capture_their_text() {
        let body = format!(
            r#"{{"kind":"ConfigMapList","apiVersion":"v1","metadata":{{"resourceVersion":"9"}},"items":[{OBJECT},{OBJECT}]}}"#
        );
        let list: ObjectList<RawObject<false>> = serde_json::from_str(&body).unwrap();
        assert_eq!(list.items.len(), 2);
        assert_eq!(list.items[1].json.get(), OBJECT);
        assert_eq!(list.metadata.resource_version.as_deref(), Some("9"));
    }

    #[test]
    fn bookmarks_and_errors_still_parse() {
        let bookmark = r#"{"type":"BOOKMARK","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"resourceVersion":"12","annotations":{"k8s.io/initial-events-end":"true"}}}}"#;
        let event: WatchEvent<RawObject<false>> = serde_json::from_str(bookmark).unwrap();
        assert!(matches!(event, WatchEvent::Bookmark(b) if b.metadata.resource_version == "12"));
        let gone = r#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version","reason":"Expired","code":410}}"#;
        let event: WatchEvent<RawObject<false>> = serde_json::from_str(gone).unwrap();
        assert!(matches!(event, WatchEvent::Error(s) if s.code == 410));
    }

    #[test]
    fn an_object_without_a_name_is_a_deserialization_error_naming_the_field() {
        let line = r#"{"type":"ADDED","object":{"metadata":{"resourceVersion":"1"}}}"#;
        let err = serde_json::from_str::<WatchEvent<RawObject<false>>>(line).unwrap_err();
        assert!(err.to_string().contains("metadata.name"), "{err}");
    }

    #[test]
    fn metadata_only_is_a_type_level_switch() {
        assert!(RawObject::<true>::metadata_api());
        assert!(!RawObject::<false>::metadata_api());
    }
}
