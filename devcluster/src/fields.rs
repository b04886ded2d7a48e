//! Which fields each kind can be selected by, and reading them out of an object.
//!
//! The real server answers `fieldSelector` per kind: every kind knows `metadata.name`,
//! namespaced kinds `metadata.namespace`, and some kinds a few more (pods: `spec.nodeName`,
//! `status.phase`...; CRDs: their `selectableFields`). Anything else is rejected with
//! `field label not supported: X`. Values are extracted once, when an object is written, so
//! filtering a list or a watch never re-reads the JSON.

use std::sync::Arc;

use serde_json::Value;
use trellis_selector::{FieldSelector, Fields};

use crate::registry::ResourceType;
use crate::status::ApiError;

/// Where a selectable field's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldSource {
    /// A path of object keys; absent or null reads as `default` (the real server formats Go
    /// zero values: `""`, `"0"`, `"false"`).
    Path {
        path: Vec<String>,
        default: &'static str,
    },
    /// Pods' `status.podIP`: the first of `status.podIPs`, falling back to `status.podIP`.
    PodIp,
}

/// One field a kind can be selected by.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectableField {
    pub name: String,
    pub source: FieldSource,
}

impl SelectableField {
    /// A field read from the dotted path it is named after.
    pub fn at(name: &str, default: &'static str) -> Self {
        Self::renamed(name, name, default)
    }

    /// A field whose selector name differs from where it lives (`status.successful` reads
    /// `status.succeeded` on Jobs; events' `source` reads `source.component`).
    pub fn renamed(name: &str, path: &str, default: &'static str) -> Self {
        Self {
            name: name.to_string(),
            source: FieldSource::Path {
                path: path.split('.').map(str::to_string).collect(),
                default,
            },
        }
    }

    /// A CRD `selectableFields` JSON path such as `.spec.color`.
    pub fn json_path(json_path: &str) -> Self {
        let name = json_path.trim_start_matches('.');
        Self::at(name, "")
    }

    fn extract(&self, object: &Value) -> String {
        match &self.source {
            FieldSource::Path { path, default } => {
                let mut value = object;
                for key in path {
                    match value.get(key) {
                        Some(v) => value = v,
                        None => return (*default).to_string(),
                    }
                }
                scalar_text(value).unwrap_or_else(|| (*default).to_string())
            }
            FieldSource::PodIp => object
                .pointer("/status/podIPs/0/ip")
                .or_else(|| object.pointer("/status/podIP"))
                .and_then(scalar_text)
                .unwrap_or_default(),
        }
    }
}

/// A scalar as the field-selector text the server compares against.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The selectable fields every kind has, followed by `extra`.
pub fn with_metadata(namespaced: bool, extra: Vec<SelectableField>) -> Arc<[SelectableField]> {
    let mut fields = vec![SelectableField::at("metadata.name", "")];
    if namespaced {
        fields.push(SelectableField::at("metadata.namespace", ""));
    }
    fields.extend(extra);
    fields.into()
}

/// The field values of one stored object, aligned with its kind's `selectable` list.
///
/// Values, not names: a selector reads them under the names of the version it was sent to
/// ([`FieldValues::named`]). Every version stored in one table lists the same paths in the same
/// order (core `v1` Events name `regarding.name` `involvedObject.name`, see `builtin.rs`), so
/// the values extracted at the write serve every version's selectors.
#[derive(Debug, Clone)]
pub struct FieldValues(Box<[Box<str>]>);

impl FieldValues {
    pub fn extract(fields: &[SelectableField], object: &Value) -> Self {
        Self(
            fields
                .iter()
                .map(|f| f.extract(object).into_boxed_str())
                .collect(),
        )
    }

    /// The values under the names `fields` gives them: the `selectable` list of the version
    /// a selector was sent to.
    pub fn named<'a>(&'a self, fields: &'a [SelectableField]) -> NamedValues<'a> {
        NamedValues {
            fields,
            values: &self.0,
        }
    }
}

/// An object's field values under one version's names.
pub struct NamedValues<'a> {
    fields: &'a [SelectableField],
    values: &'a [Box<str>],
}

impl Fields for NamedValues<'_> {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .position(|f| f.name == name)
            .and_then(|i| self.values.get(i))
            .map(|v| &**v)
    }
}

/// Parses a `fieldSelector` and checks each field against what the kind supports.
pub fn parse_selector(resource: &ResourceType, selector: &str) -> Result<FieldSelector, ApiError> {
    let parsed =
        FieldSelector::parse(selector).map_err(|e| ApiError::bad_request(e.to_string()))?;
    for requirement in parsed.requirements() {
        if !resource.field_names().any(|n| n == requirement.field) {
            return Err(ApiError::bad_request(format!(
                "field label not supported: {}",
                requirement.field
            )));
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    #[test]
    fn pod_fields_read_like_the_server() {
        let registry = Registry::builtin();
        let pods = registry.find("", "v1", "pods").unwrap();
        let pod = json!({
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {"nodeName": "n1", "hostNetwork": true},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}], "podIP": "10.9.9.9"}
        });
        let values = FieldValues::extract(&pods.selectable, &pod);
        let values = values.named(&pods.selectable);
        assert_eq!(values.field("metadata.name"), Some("web"));
        assert_eq!(values.field("metadata.namespace"), Some("prod"));
        assert_eq!(values.field("spec.nodeName"), Some("n1"));
        assert_eq!(values.field("spec.hostNetwork"), Some("true"));
        assert_eq!(values.field("status.podIP"), Some("10.0.0.1"));
        assert_eq!(values.field("spec.restartPolicy"), Some(""));
        assert_eq!(values.field("spec.bogus"), None);

        let bare = FieldValues::extract(&pods.selectable, &json!({"metadata": {"name": "x"}}));
        assert_eq!(
            bare.named(&pods.selectable).field("spec.hostNetwork"),
            Some("false"),
            "Go zero value"
        );
    }

    #[test]
    fn unsupported_fields_are_rejected_with_the_servers_message() {
        let registry = Registry::builtin();
        let pods = registry.find("", "v1", "pods").unwrap();
        let error = parse_selector(&pods, "spec.bogus=x").unwrap_err();
        assert_eq!(error.code, 400);
        assert_eq!(error.message, "field label not supported: spec.bogus");
        assert!(parse_selector(&pods, "status.phase=Running,spec.nodeName!=").is_ok());

        let namespaces = registry.find("", "v1", "namespaces").unwrap();
        let error = parse_selector(&namespaces, "metadata.namespace=x").unwrap_err();
        assert_eq!(
            error.message,
            "field label not supported: metadata.namespace"
        );

        let error = parse_selector(&pods, "metadata.name").unwrap_err();
        assert_eq!(error.code, 400);
        assert!(
            error.message.contains("can't understand"),
            "{}",
            error.message
        );
    }

    #[test]
    fn job_and_event_fields_are_renamed() {
        let registry = Registry::builtin();
        let jobs = registry.find("batch", "v1", "jobs").unwrap();
        let values = FieldValues::extract(&jobs.selectable, &json!({"status": {"succeeded": 2}}));
        let values = values.named(&jobs.selectable);
        assert_eq!(values.field("status.successful"), Some("2"));
        let empty = FieldValues::extract(&jobs.selectable, &json!({}));
        assert_eq!(
            empty.named(&jobs.selectable).field("status.successful"),
            Some("0")
        );
    }

    #[test]
    fn both_event_versions_select_the_stored_form_under_their_own_names() {
        let registry = Registry::builtin();
        let core = registry.find("", "v1", "events").unwrap();
        let new = registry.find("events.k8s.io", "v1", "events").unwrap();
        let stored = core.to_storage(json!({
            "source": {"component": "kubelet"},
            "involvedObject": {"kind": "Pod", "name": "web"},
            "reportingComponent": "kubelet",
        }));
        // Extracted with either version's list: the same values.
        let values = FieldValues::extract(&new.selectable, &stored);
        assert_eq!(FieldValues::extract(&core.selectable, &stored).0, values.0);
        let as_core = values.named(&core.selectable);
        assert_eq!(as_core.field("source"), Some("kubelet"));
        assert_eq!(as_core.field("involvedObject.kind"), Some("Pod"));
        assert_eq!(as_core.field("reportingComponent"), Some("kubelet"));
        assert_eq!(as_core.field("regarding.kind"), None);
        let as_new = values.named(&new.selectable);
        assert_eq!(as_new.field("source"), Some("kubelet"));
        assert_eq!(as_new.field("regarding.name"), Some("web"));
        assert_eq!(as_new.field("reportingController"), Some("kubelet"));
        assert_eq!(as_new.field("involvedObject.kind"), None);
    }
}
