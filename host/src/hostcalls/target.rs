//! What a write is about: the object a guest hands to `apply` or `create`, parsed and checked
//! before anything else happens, and the scope rules every write's key must meet.
//!
//! Every mistake is `invalid` with a message naming the call and the field at fault
//! (`apply: metadata.name is missing`), because the guest author reads it in a log line far
//! from the code that built the object.

use serde_json::{Map, Value};

use crate::cache::{Gvk, ObjectKey};
use crate::sandbox::HostError;

use super::denial::invalid;
use super::metrics::Call;

/// How an object must be named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Naming {
    /// `metadata.name` (apply: server-side apply addresses the object by name).
    Name,
    /// `metadata.name` or `metadata.generateName` (create).
    NameOrGenerate,
}

/// An object handed to a write, parsed.
#[derive(Debug)]
pub(crate) struct WriteObject {
    pub kind: Gvk,
    /// `None` for cluster-scoped objects (and for an empty namespace string).
    pub namespace: Option<String>,
    /// `None` only for `create` with `generateName`.
    pub name: Option<String>,
    pub value: Value,
}

impl WriteObject {
    /// The key, once the object has a name.
    pub(crate) fn key(&self) -> Option<ObjectKey> {
        self.name
            .as_deref()
            .map(|name| ObjectKey::new(self.namespace.as_deref(), name))
    }

    /// `namespace/name` (or `namespace/<generateName>...`), for messages.
    pub(crate) fn describe(&self) -> String {
        let name = self.name.clone().unwrap_or_else(|| {
            let prefix = self
                .value
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
                .unwrap_or("");
            format!("{prefix}<generated>")
        });
        match &self.namespace {
            Some(ns) => format!("{ns}/{name}"),
            None => name,
        }
    }
}

fn string_field<'a>(
    call: Call,
    map: &'a Map<String, Value>,
    field: &str,
    path: &str,
) -> Result<Option<&'a str>, HostError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(invalid(format!(
            "{}: {path} must be a string, not {}",
            call.as_str(),
            json_type(other)
        ))),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses `text` as an object to write: JSON, an object, with `apiVersion`, `kind` and a name.
pub(crate) fn parse_object(
    call: Call,
    text: &str,
    naming: Naming,
) -> Result<WriteObject, HostError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        invalid(format!(
            "{}: the object is not valid JSON: {e}",
            call.as_str()
        ))
    })?;
    let (kind, namespace, name) = identity(call, &value, naming)?;
    Ok(WriteObject {
        kind,
        namespace,
        name,
        value,
    })
}

/// `(kind, namespace, name)` of an object to write, checked as `parse_object` documents.
fn identity(
    call: Call,
    value: &Value,
    naming: Naming,
) -> Result<(Gvk, Option<String>, Option<String>), HostError> {
    let Value::Object(map) = value else {
        return Err(invalid(format!(
            "{}: the object must be a JSON object, not {}",
            call.as_str(),
            json_type(value)
        )));
    };
    let missing = |path: &str| invalid(format!("{}: {path} is missing", call.as_str()));
    let api_version = string_field(call, map, "apiVersion", "apiVersion")?
        .ok_or_else(|| missing("apiVersion"))?;
    let kind = string_field(call, map, "kind", "kind")?.ok_or_else(|| missing("kind"))?;
    let metadata = match map.get("metadata") {
        None | Some(Value::Null) => return Err(missing("metadata.name")),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(invalid(format!(
                "{}: metadata must be an object, not {}",
                call.as_str(),
                json_type(other)
            )));
        }
    };
    let name = string_field(call, metadata, "name", "metadata.name")?;
    let namespace = string_field(call, metadata, "namespace", "metadata.namespace")?;
    let generate_name = string_field(call, metadata, "generateName", "metadata.generateName")?;
    match (naming, name, generate_name) {
        (_, Some(_), _) | (Naming::NameOrGenerate, None, Some(_)) => {}
        (Naming::Name, None, _) => return Err(missing("metadata.name")),
        (Naming::NameOrGenerate, None, None) => {
            return Err(missing("metadata.name (or metadata.generateName)"));
        }
    }
    Ok((
        Gvk::from_api_version(api_version, kind),
        namespace.map(str::to_string),
        name.map(str::to_string),
    ))
}

/// The namespace of a write fits its kind's scope. `field` names where the namespace came
/// from (`metadata.namespace` or `key.namespace`), `what` the object (for the message).
pub(crate) fn check_scope(
    call: Call,
    kind: &Gvk,
    what: &str,
    namespace: Option<&str>,
    namespaced: bool,
    field: &str,
) -> Result<(), HostError> {
    match (namespaced, namespace) {
        (true, None) => Err(invalid(format!(
            "{} {kind} {what}: {field} is missing; the kind is namespaced",
            call.as_str()
        ))),
        (false, Some(ns)) => Err(invalid(format!(
            "{} {kind} {what}: {field} is {ns:?}, but the kind is cluster-scoped",
            call.as_str()
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::ErrorCode;

    fn error(text: &str, naming: Naming) -> String {
        let e = parse_object(Call::Apply, text, naming).unwrap_err();
        assert_eq!(e.code, ErrorCode::Invalid, "{e:?}");
        e.message
    }

    #[test]
    fn a_well_formed_object_parses() {
        let o = parse_object(
            Call::Apply,
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"shop"}}"#,
            Naming::Name,
        )
        .unwrap();
        assert_eq!(o.kind, Gvk::new("apps", "v1", "Deployment"));
        assert_eq!(o.key(), Some(ObjectKey::namespaced("shop", "web")));
        assert_eq!(o.describe(), "shop/web");
        let cluster = parse_object(
            Call::Create,
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"generateName":"team-","namespace":""}}"#,
            Naming::NameOrGenerate,
        )
        .unwrap();
        assert_eq!(cluster.key(), None);
        assert_eq!(cluster.namespace, None, "an empty namespace is none");
        assert_eq!(cluster.describe(), "team-<generated>");
    }

    #[test]
    fn every_mistake_names_its_field() {
        let n = Naming::Name;
        assert!(error("{not json", n).contains("apply: the object is not valid JSON"));
        assert!(error("[1]", n).contains("must be a JSON object, not an array"));
        assert_eq!(
            error(r#"{"kind":"Pod","metadata":{"name":"a"}}"#, n),
            "apply: apiVersion is missing"
        );
        assert_eq!(
            error(r#"{"apiVersion":"v1","metadata":{"name":"a"}}"#, n),
            "apply: kind is missing"
        );
        assert_eq!(
            error(
                r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":""}}"#,
                n
            ),
            "apply: metadata.name is missing"
        );
        assert_eq!(
            error(r#"{"apiVersion":"v1","kind":"Pod"}"#, n),
            "apply: metadata.name is missing"
        );
        assert_eq!(
            error(
                r#"{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"a-"}}"#,
                n
            ),
            "apply: metadata.name is missing"
        );
        assert_eq!(
            error(r#"{"apiVersion":"v1","kind":"Pod","metadata":[]}"#, n),
            "apply: metadata must be an object, not an array"
        );
        assert_eq!(
            error(
                r#"{"apiVersion":1,"kind":"Pod","metadata":{"name":"a"}}"#,
                n
            ),
            "apply: apiVersion must be a string, not a number"
        );
        assert_eq!(
            error(
                r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","namespace":{}}}"#,
                n
            ),
            "apply: metadata.namespace must be a string, not an object"
        );
        assert_eq!(
            error(
                r#"{"apiVersion":"v1","kind":"Pod","metadata":{}}"#,
                Naming::NameOrGenerate
            ),
            "apply: metadata.name (or metadata.generateName) is missing"
        );
    }

    #[test]
    fn scope_rules_name_the_field() {
        let pod = Gvk::new("", "v1", "Pod");
        let e =
            check_scope(Call::Apply, &pod, "web", None, true, "metadata.namespace").unwrap_err();
        assert_eq!(
            e.message,
            "apply /v1, Kind=Pod web: metadata.namespace is missing; the kind is namespaced"
        );
        let ns = Gvk::new("", "v1", "Namespace");
        let e =
            check_scope(Call::Delete, &ns, "a/b", Some("a"), false, "key.namespace").unwrap_err();
        assert!(
            e.message
                .contains("key.namespace is \"a\", but the kind is cluster-scoped")
        );
        assert!(check_scope(Call::Apply, &pod, "a/b", Some("a"), true, "x").is_ok());
        assert!(check_scope(Call::Apply, &ns, "b", None, false, "x").is_ok());
    }
}
