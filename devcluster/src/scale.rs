//! The `/scale` subresource: an `autoscaling/v1` Scale view of an object's replicas, and
//! writes through it that change `spec.replicas` and nothing else.
//!
//! `kubectl scale` (a merge patch of `{"spec":{"replicas":N}}`, or a read and an update when
//! given `--current-replicas` or `--resource-version`) and autoscalers only speak Scale, so
//! without it the first thing a `trellis dev` user tries on a Deployment answered 404.
//! Deployments, ReplicaSets and StatefulSets have it, as do custom resources whose CRD declares
//! `subresources.scale` (its `specReplicasPath`, `statusReplicasPath` and `labelSelectorPath`).
//!
//! A write through the Scale is an update of the object itself (`Cluster::update_loop`): it is
//! validated, bumps `metadata.generation`, keeps the object's status and records the manager
//! like any update. One difference from the real server: the manager's `managedFields` entry
//! does not say `subresource: scale`.

use serde_json::{Map, Value, json};

use crate::cluster::Cluster;
use crate::managed::Part;
use crate::patch::{PatchError, PatchType, apply_patch};
use crate::registry::ResourceType;
use crate::status::{ApiError, Cause};
use crate::write::{Mutation, Ownership, Target, WriteOptions, Written};

/// Where an object keeps what its Scale shows (JSON pointers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleSubresource {
    spec_replicas: String,
    status_replicas: String,
    selector: Selector,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Selector {
    /// A `LabelSelector` (built-in kinds' `spec.selector`), shown in its string form.
    Structured(String),
    /// A string field already in that form (a CRD's `labelSelectorPath`).
    Text(String),
    None,
}

/// `.spec.replicas` -> `/spec/replicas`.
fn pointer(json_path: &str) -> String {
    json_path.replace('.', "/")
}

impl ScaleSubresource {
    /// Deployments, ReplicaSets, StatefulSets.
    pub fn replicas_and_selector() -> Self {
        Self {
            spec_replicas: "/spec/replicas".to_string(),
            status_replicas: "/status/replicas".to_string(),
            selector: Selector::Structured("/spec/selector".to_string()),
        }
    }

    /// From a CRD version's `subresources.scale`, if it has one.
    pub fn from_crd(scale: &Value) -> Option<Self> {
        let path = |key: &str| scale.get(key).and_then(Value::as_str).map(pointer);
        Some(Self {
            spec_replicas: path("specReplicasPath")?,
            status_replicas: path("statusReplicasPath")?,
            selector: path("labelSelectorPath").map_or(Selector::None, Selector::Text),
        })
    }

    /// The Scale of `object`, as `autoscaling/v1` serializes it (`spec.replicas` and
    /// `status.selector` are `omitempty`; `status.replicas` is not).
    pub fn view(&self, object: &Value) -> Value {
        let mut metadata = Map::new();
        for field in [
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "creationTimestamp",
        ] {
            if let Some(value) = object.pointer(&format!("/metadata/{field}")) {
                metadata.insert(field.to_string(), value.clone());
            }
        }
        let count = |at: &str| object.pointer(at).and_then(Value::as_i64).unwrap_or(0);
        let mut spec = Map::new();
        if count(&self.spec_replicas) != 0 {
            spec.insert("replicas".into(), json!(count(&self.spec_replicas)));
        }
        let mut status = Map::new();
        status.insert("replicas".into(), json!(count(&self.status_replicas)));
        let selector = match &self.selector {
            Selector::Structured(at) => object.pointer(at).map(selector_text),
            Selector::Text(at) => object.pointer(at).and_then(Value::as_str).map(String::from),
            Selector::None => None,
        };
        if let Some(selector) = selector.filter(|s| !s.is_empty()) {
            status.insert("selector".into(), json!(selector));
        }
        json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": metadata,
            "spec": spec,
            "status": status,
        })
    }

    /// `object` with `spec.replicas` (or the CRD's path) set to `replicas`.
    fn with_replicas(&self, mut object: Value, replicas: i64) -> Value {
        let mut at = &mut object;
        let mut keys = self.spec_replicas.split('/').skip(1).peekable();
        while let Some(key) = keys.next() {
            if !at.is_object() {
                *at = Value::Object(Map::new());
            }
            let map = at.as_object_mut().expect("made an object above");
            if keys.peek().is_none() {
                map.insert(key.to_string(), json!(replicas));
                break;
            }
            at = map
                .entry(key.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
        }
        object
    }
}

/// A `LabelSelector` as `labels.Selector.String()` writes it: requirements sorted by key,
/// `k=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`.
fn selector_text(selector: &Value) -> String {
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (key, value) in labels {
            let value = value.as_str().unwrap_or_default();
            requirements.push((key.clone(), format!("{key}={value}")));
        }
    }
    for expression in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = expression["key"].as_str().unwrap_or_default();
        let mut values: Vec<&str> = expression["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let values = values.join(",");
        let text = match expression["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({values})"),
            "NotIn" => format!("{key} notin ({values})"),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => continue,
        };
        requirements.push((key.to_string(), text));
    }
    requirements.sort();
    requirements
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join(",")
}

/// A write to `/scale`.
pub enum ScaleChange<'a> {
    /// `PUT` of a whole Scale.
    Replace(Value),
    /// `PATCH` of the Scale view (JSON, merge or strategic merge).
    Patch(PatchType, &'a [u8]),
}

impl ResourceType {
    /// The Scale subresource, or the 404 the real server gives a kind without one.
    pub fn scale_subresource(&self) -> Result<&ScaleSubresource, ApiError> {
        self.scale.as_ref().ok_or_else(ApiError::no_route)
    }
}

/// A 422 about the Scale of `name`.
fn invalid_scale(name: &str, field: &str, message: &str) -> ApiError {
    ApiError::invalid_kind(
        "Scale",
        "autoscaling",
        name,
        vec![Cause::invalid(field, "", message)],
    )
}

/// The replicas a Scale asks for: an integer from 0 to 2^31-1, as the real server validates.
fn replicas(scale: &Value, name: &str) -> Result<i64, ApiError> {
    match scale.pointer("/spec/replicas") {
        None | Some(Value::Null) => Ok(0),
        Some(value) => match value.as_i64() {
            Some(n) if (0..=i64::from(i32::MAX)).contains(&n) => Ok(n),
            Some(_) => Err(invalid_scale(
                name,
                "spec.replicas",
                "must be greater than or equal to 0",
            )),
            None => Err(ApiError::bad_request(format!(
                "Scale in version \"v1\" cannot be handled as a Scale: spec.replicas: expected an integer, got {value}"
            ))),
        },
    }
}

impl Cluster {
    /// `GET .../{name}/scale`.
    pub fn get_scale(
        &self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let scale = resource.scale_subresource()?;
        let object = self.get(resource, namespace, name)?;
        Ok(scale.view(&resource.to_served(object.value())))
    }

    /// `PUT` or `PATCH` of `.../{name}/scale`: sets the object's replicas; answers with the
    /// Scale of the object as committed.
    pub fn write_scale(
        &self,
        target: &Target,
        change: ScaleChange<'_>,
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        let resource = &target.resource;
        let scale = resource.scale_subresource()?;
        let name = target.name.as_str();
        let target = Target {
            part: Part::Main,
            ..target.clone()
        };
        let mut written = self.update_loop(&target, opts, |current| {
            let Some((old, rv)) = current else {
                return Err(ApiError::not_found(resource, name));
            };
            let wanted = match &change {
                ScaleChange::Replace(body) => {
                    let kind = (body.get("apiVersion"), body.get("kind"));
                    if kind != (Some(&json!("autoscaling/v1")), Some(&json!("Scale"))) {
                        return Err(ApiError::bad_request(format!(
                            "the body of a /scale write must be an autoscaling/v1 Scale, not {} {}",
                            kind.0.unwrap_or(&Value::Null),
                            kind.1.unwrap_or(&Value::Null)
                        )));
                    }
                    let body_name = body.pointer("/metadata/name").and_then(Value::as_str);
                    if body_name.is_some_and(|n| n != name) {
                        return Err(ApiError::bad_request(format!(
                            "the name of the object ({}) does not match the name on the URL ({name})",
                            body_name.unwrap_or_default()
                        )));
                    }
                    let precondition = body
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .filter(|v| !v.is_empty());
                    if precondition.is_some_and(|p| p != rv.to_string()) {
                        return Err(ApiError::conflict_modified(resource, name));
                    }
                    body.clone()
                }
                ScaleChange::Patch(kind, patch) => {
                    let mut view = scale.view(old);
                    apply_patch(resource, *kind, &mut view, patch).map_err(|e| match e {
                        PatchError::Malformed(m) => ApiError::bad_request(m),
                        PatchError::Unapplicable(m) => invalid_scale(name, "", &m),
                    })?;
                    view
                }
            };
            let replicas = replicas(&wanted, name)?;
            Ok(Mutation::Update(
                scale.with_replicas(old.clone(), replicas),
                Ownership::Update,
            ))
        })?;
        let committed: Value = serde_json::from_slice(&written.body)
            .map_err(|e| ApiError::internal(format!("stored object: {e}")))?;
        written.body = serde_json::to_vec(&scale.view(&committed))
            .unwrap_or_default()
            .into();
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_read_like_the_servers_strings() {
        let selector = json!({
            "matchLabels": {"tier": "web", "app": "shop"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "canary"]},
                {"key": "zone", "operator": "NotIn", "values": ["b"]},
                {"key": "gpu", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist"},
            ],
        });
        assert_eq!(
            selector_text(&selector),
            "app=shop,env in (canary,prod),gpu,!legacy,tier=web,zone notin (b)"
        );
        assert_eq!(selector_text(&json!({})), "");
    }

    #[test]
    fn the_view_and_the_write_use_the_kinds_paths() {
        let deployment = json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u", "resourceVersion": "7",
                         "labels": {"x": "y"}, "generation": 3},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"replicas": 1},
        });
        let scale = ScaleSubresource::replicas_and_selector();
        assert_eq!(
            scale.view(&deployment),
            json!({
                "kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": "web", "namespace": "shop", "uid": "u", "resourceVersion": "7"},
                "spec": {"replicas": 2},
                "status": {"replicas": 1, "selector": "app=web"},
            })
        );
        let scaled = scale.with_replicas(deployment.clone(), 0);
        assert_eq!(scaled["spec"]["replicas"], 0);
        assert_eq!(scaled["status"], deployment["status"]);
        let view = scale.view(&scaled);
        assert_eq!(view["spec"], json!({}), "0 is omitted");

        let custom = ScaleSubresource::from_crd(&json!({
            "specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size",
            "labelSelectorPath": ".status.selector",
        }))
        .unwrap();
        let widget = custom.with_replicas(json!({"metadata": {"name": "w"}}), 4);
        assert_eq!(widget["spec"], json!({"size": 4}));
        let widget = json!({"spec": {"size": 4}, "status": {"size": 3, "selector": "a=b"}});
        assert_eq!(
            custom.view(&widget)["status"],
            json!({"replicas": 3, "selector": "a=b"})
        );
        assert_eq!(ScaleSubresource::from_crd(&json!({})), None);
    }

    #[test]
    fn replicas_must_be_a_non_negative_int32() {
        assert_eq!(replicas(&json!({"spec": {"replicas": 3}}), "w").unwrap(), 3);
        assert_eq!(replicas(&json!({"spec": {}}), "w").unwrap(), 0);
        let negative = replicas(&json!({"spec": {"replicas": -1}}), "w").unwrap_err();
        assert_eq!(negative.code, 422);
        assert!(
            negative.message.contains("spec.replicas"),
            "{}",
            negative.message
        );
        let text = replicas(&json!({"spec": {"replicas": "3"}}), "w").unwrap_err();
        assert_eq!(text.code, 400);
    }
}
