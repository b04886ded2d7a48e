//! Response bodies: objects, lists and watch events in the formats clients ask for.
//!
//! Clients choose with the Accept header: plain JSON (kube, controllers), `as=Table` (kubectl's
//! human-readable output, server-side printing), or `as=PartialObjectMetadata(List)` (metadata
//! informers). Plain JSON is assembled from the stored bytes without re-serializing; the other
//! two are built per object. Protobuf and YAML are not served (406), which clients handle by
//! asking for JSON.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::object::StoredObject;
use crate::registry::ResourceType;
use crate::status::ApiError;

/// What a table row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

/// The representation a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    /// `meta.k8s.io/<version>` Table.
    Table {
        version: &'static str,
        include: Include,
    },
    /// `meta.k8s.io/<version>` PartialObjectMetadata(List).
    Metadata {
        version: &'static str,
    },
}

const ACCEPTED: &str = "application/json, application/yaml, application/vnd.kubernetes.protobuf";

/// Picks the first media range of `accept` the server can produce.
pub fn negotiate(accept: Option<&str>, include: Option<&str>) -> Result<Format, ApiError> {
    let include = match include {
        Some("None") => Include::None,
        Some("Object") => Include::Object,
        _ => Include::Metadata,
    };
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Format::Json);
    };
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let mut params = std::collections::HashMap::new();
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                params.insert(k.trim(), v.trim());
            }
        }
        if !matches!(media, "application/json" | "*/*" | "application/*") {
            continue;
        }
        let version = match params.get("v") {
            Some(&"v1") | None => "v1",
            Some(&"v1beta1") => "v1beta1",
            Some(_) => continue,
        };
        match (params.get("as"), params.get("g")) {
            (None, _) => return Ok(Format::Json),
            (Some(&"Table"), Some(&"meta.k8s.io")) => {
                return Ok(Format::Table { version, include });
            }
            (
                Some(&("PartialObjectMetadata" | "PartialObjectMetadataList")),
                Some(&"meta.k8s.io"),
            ) => return Ok(Format::Metadata { version }),
            _ => continue,
        }
    }
    Err(ApiError::not_acceptable(ACCEPTED))
}

/// What a page of a list says about itself.
pub struct ListMeta<'a> {
    pub resource_version: u64,
    pub continue_token: Option<&'a str>,
}

/// Renders objects for one request.
pub struct Renderer<'a> {
    pub resource: &'a ResourceType,
    pub format: Format,
    /// The caller's clock for ages in tables.
    pub now: k8s_openapi::jiff::Timestamp,
}

#[derive(Deserialize)]
struct MetaOnly<'a> {
    #[serde(borrow)]
    metadata: Option<&'a RawValue>,
    #[serde(rename = "apiVersion")]
    api_version: Option<&'a str>,
}

impl<'a> Renderer<'a> {
    pub fn new(resource: &'a ResourceType, format: Format) -> Self {
        Self {
            resource,
            format,
            now: k8s_openapi::jiff::Timestamp::now(),
        }
    }

    /// The object's JSON as served at the requested version (`ResourceType::for_response`);
    /// the stored bytes themselves when they already are at that version.
    fn json(&self, object: &StoredObject) -> Bytes {
        let wanted = self.resource.api_version();
        let stored = serde_json::from_slice::<MetaOnly<'_>>(&object.json)
            .ok()
            .and_then(|m| m.api_version.map(|v| v == wanted));
        if stored != Some(false) {
            return object.json.clone();
        }
        let value = self.resource.for_response(object.value());
        Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
    }

    fn partial(&self, object: &StoredObject, version: &str, out: &mut BytesMut) {
        let metadata = serde_json::from_slice::<MetaOnly<'_>>(&object.json)
            .ok()
            .and_then(|m| m.metadata.map(|r| r.get().to_string()))
            .unwrap_or_else(|| "{}".to_string());
        out.put_slice(b"{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"meta.k8s.io/");
        out.put_slice(version.as_bytes());
        out.put_slice(b"\",\"metadata\":");
        out.put_slice(metadata.as_bytes());
        out.put_slice(b"}");
    }

    /// One object (get, create, update responses).
    pub fn object(&self, object: &StoredObject) -> Bytes {
        match self.format {
            Format::Json => self.json(object),
            Format::Metadata { version } => {
                let mut out = BytesMut::new();
                self.partial(object, version, &mut out);
                out.freeze()
            }
            Format::Table { .. } => self.table(&[object], None),
        }
    }

    /// Serializes an arbitrary object (responses of writes) in the requested format.
    pub fn value_bytes(&self, body: Bytes) -> Bytes {
        if self.format == Format::Json && self.resource.conversion.is_none() {
            return body;
        }
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if value.get("kind").and_then(Value::as_str) == Some("Status") {
            return body;
        }
        let stored = StoredObject::new(&value, 0, &self.resource.selectable);
        self.object(&stored)
    }

    /// A page of a list.
    pub fn list(&self, items: &[std::sync::Arc<StoredObject>], meta: &ListMeta<'_>) -> Bytes {
        if let Format::Table { .. } = self.format {
            let refs: Vec<&StoredObject> = items.iter().map(|o| o.as_ref()).collect();
            return self.table(&refs, Some(meta));
        }
        let size: usize = items.iter().map(|o| o.json.len() + 1).sum();
        let mut out = BytesMut::with_capacity(size + 256);
        let (kind, api_version) = match self.format {
            Format::Metadata { version } => (
                "PartialObjectMetadataList".to_string(),
                format!("meta.k8s.io/{version}"),
            ),
            _ => (self.resource.list_kind(), self.resource.api_version()),
        };
        out.put_slice(
            format!("{{\"kind\":\"{kind}\",\"apiVersion\":\"{api_version}\",\"metadata\":")
                .as_bytes(),
        );
        out.put_slice(list_meta(meta).to_string().as_bytes());
        out.put_slice(b",\"items\":[");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.put_u8(b',');
            }
            match self.format {
                Format::Metadata { version } => self.partial(item, version, &mut out),
                _ => out.put_slice(&self.json(item)),
            }
        }
        out.put_slice(b"]}");
        out.freeze()
    }

    /// A watch event line: `{"type":"ADDED","object":...}\n`.
    pub fn event(&self, kind: &str, object: &StoredObject, out: &mut BytesMut) {
        out.put_slice(b"{\"type\":\"");
        out.put_slice(kind.as_bytes());
        out.put_slice(b"\",\"object\":");
        match self.format {
            Format::Json => out.put_slice(&self.json(object)),
            Format::Metadata { version } => self.partial(object, version, out),
            Format::Table { .. } => out.put_slice(&self.table(&[object], None)),
        }
        out.put_slice(b"}\n");
    }

    /// A BOOKMARK event at `rv`, optionally marking the end of the initial events.
    pub fn bookmark(&self, rv: u64, initial_events_end: bool, out: &mut BytesMut) {
        let (kind, api_version) = match self.format {
            Format::Json => (self.resource.kind.clone(), self.resource.api_version()),
            Format::Metadata { version } => (
                "PartialObjectMetadata".to_string(),
                format!("meta.k8s.io/{version}"),
            ),
            Format::Table { version, .. } => {
                ("Table".to_string(), format!("meta.k8s.io/{version}"))
            }
        };
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({"kind": kind, "apiVersion": api_version, "metadata": metadata});
        out.put_slice(
            json!({"type": "BOOKMARK", "object": object})
                .to_string()
                .as_bytes(),
        );
        out.put_u8(b'\n');
    }

    /// An ERROR event carrying a Status.
    pub fn error_event(error: &ApiError) -> Bytes {
        let mut line = json!({"type": "ERROR", "object": error.to_status()}).to_string();
        line.push('\n');
        Bytes::from(line)
    }

    fn table(&self, objects: &[&StoredObject], meta: Option<&ListMeta<'_>>) -> Bytes {
        let Format::Table { version, include } = self.format else {
            return Bytes::new();
        };
        let columns = crate::table::columns(self.resource);
        let rows: Vec<Value> = objects
            .iter()
            .map(|o| {
                let value = o.value();
                let cells = crate::table::cells(self.resource, &value, self.now);
                let mut row = json!({"cells": cells});
                match include {
                    Include::None => {}
                    Include::Metadata => {
                        row["object"] = json!({
                            "kind": "PartialObjectMetadata",
                            "apiVersion": format!("meta.k8s.io/{version}"),
                            "metadata": value.get("metadata").cloned().unwrap_or(json!({})),
                        });
                    }
                    Include::Object => row["object"] = self.resource.for_response(value),
                }
                row
            })
            .collect();
        let metadata = match meta {
            Some(meta) => list_meta(meta),
            None => json!({}),
        };
        let table = json!({
            "kind": "Table",
            "apiVersion": format!("meta.k8s.io/{version}"),
            "metadata": metadata,
            "columnDefinitions": columns,
            "rows": rows,
        });
        Bytes::from(serde_json::to_vec(&table).unwrap_or_default())
    }
}

fn list_meta(meta: &ListMeta<'_>) -> Value {
    let mut out = json!({"resourceVersion": meta.resource_version.to_string()});
    if let Some(token) = meta.continue_token {
        out["continue"] = Value::String(token.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn accept_headers_pick_a_format() {
        assert_eq!(negotiate(None, None).unwrap(), Format::Json);
        assert_eq!(
            negotiate(Some("application/json"), None).unwrap(),
            Format::Json
        );
        assert_eq!(negotiate(Some("*/*"), None).unwrap(), Format::Json);
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            negotiate(Some(kubectl), None).unwrap(),
            Format::Table {
                version: "v1",
                include: Include::Metadata
            }
        );
        assert_eq!(
            negotiate(
                Some("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
                None
            )
            .unwrap(),
            Format::Metadata { version: "v1" }
        );
        assert_eq!(
            negotiate(
                Some("application/vnd.kubernetes.protobuf, application/json"),
                None
            )
            .unwrap(),
            Format::Json
        );
        let error = negotiate(Some("application/vnd.kubernetes.protobuf"), None).unwrap_err();
        assert_eq!(error.code, 406);
    }

    #[test]
    fn lists_are_assembled_from_stored_bytes() {
        let registry = Registry::builtin();
        let cms = registry.find("", "v1", "configmaps").unwrap();
        let object = std::sync::Arc::new(StoredObject::new(
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "n", "resourceVersion": "3"}}),
            3,
            &cms.selectable,
        ));
        let renderer = Renderer::new(&cms, Format::Json);
        let body = renderer.list(
            &[object.clone(), object.clone()],
            &ListMeta {
                resource_version: 9,
                continue_token: Some("tok"),
            },
        );
        let list: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(list["kind"], "ConfigMapList");
        assert_eq!(
            list["metadata"],
            json!({"resourceVersion": "9", "continue": "tok"})
        );
        assert_eq!(list["items"][1]["metadata"]["name"], "a");

        let meta = Renderer::new(&cms, Format::Metadata { version: "v1" });
        let list: Value = serde_json::from_slice(&meta.list(
            std::slice::from_ref(&object),
            &ListMeta {
                resource_version: 9,
                continue_token: None,
            },
        ))
        .unwrap();
        assert_eq!(list["kind"], "PartialObjectMetadataList");
        assert_eq!(list["items"][0]["kind"], "PartialObjectMetadata");
        assert_eq!(list["items"][0]["metadata"]["name"], "a");

        let mut out = BytesMut::new();
        renderer.event("ADDED", &object, &mut out);
        renderer.bookmark(12, true, &mut out);
        let lines: Vec<Value> = out
            .as_ref()
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines[0]["type"], "ADDED");
        assert_eq!(
            lines[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
            "true"
        );
        assert_eq!(lines[1]["object"]["kind"], "ConfigMap");
    }
}
