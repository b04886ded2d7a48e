//! Validating and normalizing request bodies against a kind's schema.
//!
//! The real server decodes every body into its Go type, which checks value types, drops
//! unknown fields and drops nulls; with `fieldValidation=Strict` unknown fields are an error,
//! with `Warn` (the default) a warning header. We get the same from k8s-openapi: decode the
//! body into the typed struct, encode it back, and whatever key is missing from the result was
//! unknown. CRDs have no Rust type, so their `openAPIV3Schema` is walked instead (types,
//! `required`, `enum`, pruning of unknown fields, `x-kubernetes-preserve-unknown-fields`,
//! `x-kubernetes-int-or-string`, `additionalProperties`).

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::status::Cause;

/// Decode-then-encode through a k8s-openapi type.
#[derive(Clone, Copy)]
pub struct TypedCodec(pub fn(&Value) -> Result<Value, serde_json::Error>);

impl std::fmt::Debug for TypedCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TypedCodec")
    }
}

/// Round-trips a body through `T` (reading it in place: the caller still needs the input to
/// find what was dropped).
pub fn codec<T: serde::de::DeserializeOwned + serde::Serialize>(
    value: &Value,
) -> Result<Value, serde_json::Error> {
    let typed = T::deserialize(value)?;
    serde_json::to_value(typed)
}

/// How bodies of a kind are checked.
#[derive(Debug, Clone)]
pub enum Schema {
    Typed(TypedCodec),
    /// A CRD version's `openAPIV3Schema`.
    Structural(Arc<Value>),
    /// Anything goes (a CRD without a schema, which v1 CRDs cannot have, or kinds whose Rust
    /// type is not worth a round trip).
    Open,
}

/// What checking a body found.
#[derive(Debug, Default)]
pub struct Checked {
    /// The body as it will be stored: unknown fields and nulls dropped.
    pub value: Value,
    /// Paths of unknown fields (`spec.foo`, `spec.containers[0].bar`), in key order.
    pub unknown: Vec<String>,
}

/// Why a body was rejected.
#[derive(Debug, PartialEq)]
pub enum SchemaError {
    /// The body could not be decoded into the kind's type (400 in the real server:
    /// `Pod in version "v1" cannot be handled as a Pod: ...`).
    Decode(String),
    /// The body decoded but breaks the schema (422 Invalid, one cause per field).
    Invalid(Vec<Cause>),
}

impl Schema {
    pub fn check(&self, value: Value) -> Result<Checked, SchemaError> {
        self.check_against(None, value)
    }

    /// Checks `value`, the new version of `previous` (which passed this check when it was
    /// stored). For typed kinds, when nothing but metadata changed only the metadata is
    /// decoded: the rest is the stored, already valid content. This keeps the common
    /// controller writes (labels, annotations, finalizers) cheap.
    pub fn check_against(
        &self,
        previous: Option<&Value>,
        value: Value,
    ) -> Result<Checked, SchemaError> {
        match self {
            Schema::Open => Ok(Checked {
                value,
                unknown: Vec::new(),
            }),
            Schema::Typed(TypedCodec(codec)) => {
                // managedFields are the server's (checked by `ManagedFields::decode` when a
                // client sets them); decoding them through their types would be most of the
                // cost of a small write.
                let mut value = value;
                let managed = value
                    .get_mut("metadata")
                    .and_then(Value::as_object_mut)
                    .and_then(|m| m.remove("managedFields"));
                let mut checked = if let Some(previous) = previous
                    && only_metadata_changed(previous, &value)
                {
                    check_metadata(value)?
                } else {
                    let input = quantities_as_strings(value);
                    let output = codec(&input).map_err(|e| SchemaError::Decode(e.to_string()))?;
                    let mut unknown = Vec::new();
                    dropped_keys(&input, &output, &mut Vec::new(), &mut unknown);
                    Checked {
                        value: output,
                        unknown,
                    }
                };
                if let (Some(managed), Some(meta)) = (
                    managed,
                    checked
                        .value
                        .get_mut("metadata")
                        .and_then(Value::as_object_mut),
                ) {
                    meta.insert("managedFields".to_string(), managed);
                }
                Ok(checked)
            }
            Schema::Structural(schema) => {
                let mut walk = Walk::default();
                let value = walk.root(schema, value);
                if walk.causes.is_empty() {
                    Ok(Checked {
                        value,
                        unknown: walk.unknown,
                    })
                } else {
                    Err(SchemaError::Invalid(walk.causes))
                }
            }
        }
    }
}

/// Quantities may be written as numbers (`cpu: 1`); the server accepts that, k8s-openapi's
/// `Quantity` only takes strings. Numbers in the usual quantity maps become strings.
fn quantities_as_strings(mut value: Value) -> Value {
    const QUANTITY_MAPS: [&str; 7] = [
        "limits",
        "requests",
        "capacity",
        "allocatable",
        "hard",
        "used",
        "overhead",
    ];
    fn walk(value: &mut Value, quantity_map: bool) {
        match value {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    if quantity_map && child.is_number() {
                        *child = Value::String(child.to_string());
                    } else {
                        let is_map = QUANTITY_MAPS.contains(&key.as_str()) || key == "sizeLimit";
                        if key == "sizeLimit" && child.is_number() {
                            *child = Value::String(child.to_string());
                        } else {
                            walk(child, is_map);
                        }
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, false)),
            _ => {}
        }
    }
    walk(&mut value, false);
    value
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// True if every top-level field but `metadata` is the same in both objects.
fn only_metadata_changed(previous: &Value, value: &Value) -> bool {
    let (Value::Object(p), Value::Object(v)) = (previous, value) else {
        return false;
    };
    let others = |m: &Map<String, Value>| m.keys().filter(|k| *k != "metadata").count();
    others(p) == others(v)
        && v.iter()
            .filter(|(k, _)| *k != "metadata")
            .all(|(k, value)| p.get(k) == Some(value))
}

/// Checks only `metadata`, through `ObjectMeta`.
fn check_metadata(mut value: Value) -> Result<Checked, SchemaError> {
    let Some(meta) = value.get_mut("metadata").map(Value::take) else {
        return Ok(Checked {
            value,
            unknown: Vec::new(),
        });
    };
    let output = codec::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>(&meta)
        .map_err(|e| SchemaError::Decode(format!("metadata: {e}")))?;
    let mut unknown = Vec::new();
    dropped_keys(
        &meta,
        &output,
        &mut vec![Segment::Key("metadata")],
        &mut unknown,
    );
    value["metadata"] = output;
    Ok(Checked { value, unknown })
}

/// One step of a path being walked; joined into `a.b[0].c` only when reported.
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn render(path: &[Segment<'_>]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Keys present (and not null) in `input` but gone from `output`.
fn dropped_keys<'a>(
    input: &'a Value,
    output: &Value,
    path: &mut Vec<Segment<'a>>,
    out: &mut Vec<String>,
) {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            for (key, value) in i {
                if value.is_null() {
                    continue;
                }
                path.push(Segment::Key(key));
                match o.get(key) {
                    Some(next) => dropped_keys(value, next, path, out),
                    None => out.push(render(path)),
                }
                path.pop();
            }
        }
        (Value::Array(i), Value::Array(o)) if i.len() == o.len() => {
            for (n, (a, b)) in i.iter().zip(o).enumerate() {
                path.push(Segment::Index(n));
                dropped_keys(a, b, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// A walk of a CRD body against its structural schema.
#[derive(Default)]
struct Walk {
    unknown: Vec<String>,
    causes: Vec<Cause>,
}

impl Walk {
    fn root(&mut self, schema: &Value, value: Value) -> Value {
        let Value::Object(mut map) = value else {
            return value;
        };
        // apiVersion, kind and metadata are the server's, not the schema's.
        let mut kept = Map::new();
        for key in ["apiVersion", "kind", "metadata"] {
            if let Some(v) = map.remove(key) {
                kept.insert(key.to_string(), v);
            }
        }
        let rest = self.object(schema, map, "");
        kept.extend(rest);
        Value::Object(kept)
    }

    fn object(
        &mut self,
        schema: &Value,
        map: Map<String, Value>,
        path: &str,
    ) -> Map<String, Value> {
        let properties = schema.get("properties").and_then(Value::as_object);
        let preserve = schema
            .get("x-kubernetes-preserve-unknown-fields")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let additional = schema.get("additionalProperties");
        let mut out = Map::new();
        for (key, value) in map {
            let child_path = join(path, &key);
            if value.is_null() && !nullable(properties.and_then(|p| p.get(&key))) {
                continue;
            }
            if let Some(child) = properties.and_then(|p| p.get(&key)) {
                out.insert(key, self.value(child, value, &child_path));
            } else if let Some(child) = additional.filter(|a| a.is_object()) {
                out.insert(key, self.value(child, value, &child_path));
            } else if preserve || additional == Some(&Value::Bool(true)) {
                out.insert(key, value);
            } else {
                self.unknown.push(child_path);
            }
        }
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !out.contains_key(name) {
                    self.causes.push(Cause::required(join(path, name), ""));
                }
            }
        }
        out
    }

    fn value(&mut self, schema: &Value, value: Value, path: &str) -> Value {
        if value.is_null() {
            return value;
        }
        let int_or_string = schema
            .get("x-kubernetes-int-or-string")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if int_or_string {
            if !(value.is_string() || value.is_i64() || value.is_u64()) {
                self.type_error(path, &value, "integer or string");
            }
            return value;
        }
        let expected = schema.get("type").and_then(Value::as_str).unwrap_or("");
        let value = match (expected, value) {
            ("object", Value::Object(map)) => Value::Object(self.object(schema, map, path)),
            ("array", Value::Array(items)) => {
                let item_schema = schema.get("items").cloned().unwrap_or(Value::Null);
                Value::Array(
                    items
                        .into_iter()
                        .enumerate()
                        .map(|(n, v)| self.value(&item_schema, v, &format!("{path}[{n}]")))
                        .collect(),
                )
            }
            ("", Value::Object(map)) if schema.get("properties").is_some() => {
                Value::Object(self.object(schema, map, path))
            }
            ("string", v @ Value::String(_))
            | ("boolean", v @ Value::Bool(_))
            | ("number", v @ Value::Number(_))
            | ("", v) => v,
            ("integer", Value::Number(n)) if n.is_i64() || n.is_u64() => Value::Number(n),
            (expected, v) => {
                self.type_error(path, &v, expected);
                v
            }
        };
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(&value)
        {
            let supported: Vec<String> = allowed.iter().map(value_text).collect();
            let supported: Vec<&str> = supported.iter().map(String::as_str).collect();
            self.causes
                .push(Cause::not_supported(path, &value_text(&value), &supported));
        }
        value
    }

    fn type_error(&mut self, path: &str, value: &Value, expected: &str) {
        let actual = json_type(value);
        self.causes.push(Cause::type_invalid(
            path,
            actual,
            &format!("{path} in body must be of type {expected}: \"{actual}\""),
        ));
    }
}

fn nullable(schema: Option<&Value>) -> bool {
    schema
        .and_then(|s| s.get("nullable"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use serde_json::json;

    #[test]
    fn typed_round_trip_finds_unknown_fields_and_drops_them() {
        let schema = Schema::Typed(TypedCodec(codec::<ConfigMap>));
        let checked = schema
            .check(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "a", "bogus": 1},
                "data": {"k": "v"},
                "extra": {"x": 1},
                "immutable": null
            }))
            .unwrap();
        assert_eq!(checked.unknown, vec!["extra", "metadata.bogus"]);
        assert!(checked.value.get("extra").is_none());
        assert_eq!(checked.value["data"]["k"], "v");
    }

    #[test]
    fn metadata_only_changes_check_only_metadata() {
        use k8s_openapi::api::core::v1::Pod;
        let schema = Schema::Typed(TypedCodec(codec::<Pod>));
        let old = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
                         "spec": {"containers": [{"name": "c"}]}});
        let mut new = old.clone();
        new["metadata"]["labels"] = json!({"x": "y"});
        new["metadata"]["bogus"] = json!(1);
        let checked = schema.check_against(Some(&old), new).unwrap();
        assert_eq!(checked.unknown, vec!["metadata.bogus"]);
        assert_eq!(checked.value["metadata"]["labels"]["x"], "y");
        let mut bad = old.clone();
        bad["metadata"]["labels"] = json!({"x": 1});
        assert!(
            matches!(schema.check_against(Some(&old), bad), Err(SchemaError::Decode(m)) if m.starts_with("metadata:"))
        );
        // A spec change is checked in full.
        let mut spec = old.clone();
        spec["spec"]["containers"][0]["bogus"] = json!(1);
        let checked = schema.check_against(Some(&old), spec).unwrap();
        assert_eq!(checked.unknown, vec!["spec.containers[0].bogus"]);
    }

    #[test]
    fn typed_decode_errors_name_the_problem() {
        let schema = Schema::Typed(TypedCodec(codec::<ConfigMap>));
        let error = schema
            .check(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": 5}}))
            .unwrap_err();
        let SchemaError::Decode(message) = error else {
            panic!("expected a decode error");
        };
        assert!(message.contains("invalid type"), "{message}");
    }

    #[test]
    fn numeric_quantities_are_accepted() {
        use k8s_openapi::api::core::v1::Pod;
        let schema = Schema::Typed(TypedCodec(codec::<Pod>));
        let checked = schema
            .check(json!({
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
                "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": 1, "memory": "1Gi"}}}]}
            }))
            .unwrap();
        assert_eq!(
            checked.value["spec"]["containers"][0]["resources"]["limits"]["cpu"],
            "1"
        );
        assert!(checked.unknown.is_empty());
    }

    fn widget_schema() -> Schema {
        Schema::Structural(Arc::new(json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["size"],
                    "properties": {
                        "size": {"type": "integer"},
                        "color": {"type": "string", "enum": ["red", "blue"]},
                        "port": {"x-kubernetes-int-or-string": true},
                        "tags": {"type": "array", "items": {"type": "string"}},
                        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}}
                    }
                },
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
            }
        })))
    }

    #[test]
    fn structural_schema_prunes_unknown_fields() {
        let checked = widget_schema()
            .check(json!({
                "apiVersion": "x/v1", "kind": "Widget", "metadata": {"name": "w"},
                "spec": {"size": 3, "bogus": true, "port": "http", "extra": {"anything": [1]},
                         "labels": {"a": "b"}},
                "top": 1
            }))
            .unwrap();
        assert_eq!(checked.unknown, vec!["spec.bogus", "top"]);
        assert_eq!(checked.value["spec"]["extra"]["anything"][0], 1);
        assert!(checked.value["spec"].get("bogus").is_none());
        assert_eq!(checked.value["metadata"]["name"], "w");
    }

    #[test]
    fn structural_schema_rejects_wrong_types_missing_and_unsupported_values() {
        let Err(SchemaError::Invalid(causes)) = widget_schema().check(json!({
            "spec": {"color": "green", "tags": ["a", 1], "labels": {"a": 2}}
        })) else {
            panic!("expected invalid");
        };
        let by_field = |field: &str| {
            causes
                .iter()
                .find(|c| c.field == field)
                .unwrap_or_else(|| panic!("no cause for {field}: {causes:?}"))
                .message
                .clone()
        };
        assert_eq!(causes.len(), 4, "{causes:?}");
        assert_eq!(
            by_field("spec.tags[1]"),
            "Invalid value: \"integer\": spec.tags[1] in body must be of type string: \"integer\""
        );
        assert_eq!(by_field("spec.size"), "Required value");
        assert!(by_field("spec.color").contains("supported values: \"red\", \"blue\""));
        assert!(by_field("spec.labels.a").contains("must be of type string"));
    }
}
