//! CustomResourceDefinitions: turning one into the kinds it serves.
//!
//! Creating or updating a CRD registers a `ResourceType` per served version (all sharing one
//! table, the CRD's `<plural>.<group>`, as conversion strategy `None` would); deleting it
//! removes its objects and stops serving it. The server plays the CRD controllers' part
//! synchronously: the status says `NamesAccepted` and `Established` as soon as the CRD is
//! stored, so `kubectl wait --for condition=established` and clients that poll for it work.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::fields::{SelectableField, with_metadata};
use crate::registry::{NameRule, ResourceType};
use crate::schema::Schema;
use crate::status::Cause;

/// The kinds a CRD serves (one per served version), or why it is invalid.
pub fn resource_types(crd: &Value) -> Result<Vec<ResourceType>, Vec<Cause>> {
    let spec = crd.get("spec").cloned().unwrap_or(Value::Null);
    let text = |pointer: &str| spec.pointer(pointer).and_then(Value::as_str).unwrap_or("");
    let group = text("/group");
    let plural = text("/names/plural");
    let kind = text("/names/kind");
    let singular = match text("/names/singular") {
        "" => kind.to_lowercase(),
        s => s.to_string(),
    };
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut causes = Vec::new();
    if group.is_empty() {
        causes.push(Cause::required("spec.group", ""));
    } else if !group.contains('.') {
        causes.push(Cause::invalid(
            "spec.group",
            group,
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        causes.push(Cause::required("spec.names.plural", ""));
    }
    if kind.is_empty() {
        causes.push(Cause::required("spec.names.kind", ""));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause::invalid(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let namespaced = match text("/scope") {
        "Namespaced" => true,
        "Cluster" => false,
        other => {
            causes.push(Cause::not_supported(
                "spec.scope",
                other,
                &["Cluster", "Namespaced"],
            ));
            true
        }
    };
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause::required(
            "spec.versions",
            "must have exactly one version marked as storage version",
        ));
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if !versions.is_empty() && storage != 1 {
        causes.push(Cause::invalid(
            "spec.versions",
            &format!("{storage}"),
            "must have exactly one version marked as storage version",
        ));
    }
    if !causes.is_empty() {
        return Err(causes);
    }
    let strings = |pointer: &str| -> Vec<String> {
        spec.pointer(pointer)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let short_names = strings("/names/shortNames");
    let categories = strings("/names/categories");
    Ok(versions
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool) == Some(true))
        .map(|v| {
            let schema = v
                .pointer("/schema/openAPIV3Schema")
                .cloned()
                .map(|s| Schema::Structural(Arc::new(s)))
                .unwrap_or(Schema::Open);
            let selectable: Vec<SelectableField> = v
                .get("selectableFields")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|f| f.get("jsonPath").and_then(Value::as_str))
                .map(SelectableField::json_path)
                .collect();
            let printer_columns = v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| {
                    let field =
                        |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    (field("name"), field("type"), field("jsonPath"))
                })
                .collect();
            ResourceType {
                group: group.to_string(),
                version: v
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                kind: kind.to_string(),
                plural: plural.to_string(),
                singular: singular.clone(),
                namespaced,
                short_names: short_names.clone(),
                categories: categories.clone(),
                status_subresource: v.pointer("/subresources/status").is_some(),
                generation: true,
                name_rule: NameRule::Subdomain,
                selectable: with_metadata(namespaced, selectable),
                schema,
                printer_columns,
                custom: true,
                return_deleted: false,
                conversion: None,
                scale: v
                    .pointer("/subresources/scale")
                    .and_then(crate::scale::ScaleSubresource::from_crd),
            }
        })
        .collect())
}

/// The table a CRD's objects live in.
pub fn storage_key(crd: &Value) -> Option<String> {
    let group = crd.pointer("/spec/group")?.as_str()?;
    let plural = crd.pointer("/spec/names/plural")?.as_str()?;
    Some(format!("{plural}.{group}"))
}

/// The status the CRD controllers would write: names accepted, established.
pub fn established_status(crd: &Value, now: &str) -> Value {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let mut accepted = names.clone();
    if accepted.get("listKind").is_none()
        && let Some(kind) = names.get("kind").and_then(Value::as_str)
    {
        accepted["listKind"] = json!(format!("{kind}List"));
    }
    if accepted.get("singular").is_none()
        && let Some(kind) = names.get("kind").and_then(Value::as_str)
    {
        accepted["singular"] = json!(kind.to_lowercase());
    }
    let storage: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .filter_map(|v| v.get("name").cloned())
        .collect();
    let mut stored: Vec<Value> = crd
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for version in storage {
        if !stored.contains(&version) {
            stored.push(version);
        }
    }
    json!({
        "acceptedNames": accepted,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now,
             "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": now,
             "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}
        ],
        "storedVersions": stored
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widget_crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {"type": "object"}},
                     "subresources": {"status": {}},
                     "selectableFields": [{"jsonPath": ".spec.color"}]},
                    {"name": "v1beta1", "served": false, "storage": false}
                ]
            }
        })
    }

    #[test]
    fn served_versions_become_kinds() {
        let types = resource_types(&widget_crd()).unwrap();
        assert_eq!(types.len(), 1, "v1beta1 is not served");
        let t = &types[0];
        assert_eq!(t.qualified_plural(), "widgets.example.com");
        assert!(t.namespaced && t.status_subresource && t.custom && t.generation);
        assert_eq!(t.short_names, vec!["wd"]);
        let names: Vec<&str> = t.field_names().collect();
        assert_eq!(
            names,
            vec!["metadata.name", "metadata.namespace", "spec.color"]
        );
        assert_eq!(storage_key(&widget_crd()).unwrap(), "widgets.example.com");
    }

    #[test]
    fn invalid_definitions_name_their_fields() {
        let mut crd = widget_crd();
        crd["metadata"]["name"] = json!("wrong");
        crd["spec"]["scope"] = json!("Galaxy");
        crd["spec"]["versions"][1]["storage"] = json!(true);
        let causes = resource_types(&crd).unwrap_err();
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["metadata.name", "spec.scope", "spec.versions"]);
    }

    #[test]
    fn status_is_established() {
        let status = established_status(&widget_crd(), "2024-01-01T00:00:00Z");
        assert_eq!(status["conditions"][1]["type"], "Established");
        assert_eq!(status["acceptedNames"]["listKind"], "WidgetList");
        assert_eq!(status["storedVersions"], json!(["v1"]));
    }
}
