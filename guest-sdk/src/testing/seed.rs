//! Turning fixture text into objects for the fake cache.
//!
//! Fixtures are what `kubectl get -o yaml` prints or what a repo keeps in `manifests/`:
//! multi-document YAML, a JSON object or array, or a `kind: List` (any kind ending in `List`
//! with `items`), whose items are seeded one by one. Errors say which document (1-based) and,
//! for lists, which item is at fault.

use serde::Deserialize;
use serde_json::Value;

/// Why fixtures could not be seeded. Nothing from the failing call is seeded.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The text is not YAML.
    #[error("fixture YAML document {document}: {message}")]
    Yaml { document: usize, message: String },
    /// The text is not JSON.
    #[error("fixture JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// A document is not a storable object (`reason` names the missing field or the duplicate).
    #[error("fixture document {document}{item}: {reason}", item = item.map(|i| format!(" item {i}")).unwrap_or_default())]
    Object {
        document: usize,
        item: Option<usize>,
        reason: String,
    },
    /// A typed object could not be encoded.
    #[error("cannot encode the fixture object: {0}")]
    Encode(#[source] serde_json::Error),
}

/// One object to seed and where it came from, for error messages.
#[derive(Debug)]
pub(crate) struct Located {
    pub document: usize,
    pub item: Option<usize>,
    pub object: Value,
}

impl Located {
    pub fn error(&self, reason: impl Into<String>) -> SeedError {
        SeedError::Object {
            document: self.document,
            item: self.item,
            reason: reason.into(),
        }
    }
}

fn is_list(value: &Value) -> bool {
    value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
        && value.get("items").is_some()
}

/// Flattens one document (1-based `document`) into objects, expanding lists.
fn expand(document: usize, value: Value, out: &mut Vec<Located>) -> Result<(), SeedError> {
    if is_list(&value) {
        let Some(Value::Array(items)) = value.get("items").cloned() else {
            return Err(SeedError::Object {
                document,
                item: None,
                reason: "items of a List is not an array".to_owned(),
            });
        };
        out.extend(items.into_iter().enumerate().map(|(i, object)| Located {
            document,
            item: Some(i + 1),
            object,
        }));
    } else {
        out.push(Located {
            document,
            item: None,
            object: value,
        });
    }
    Ok(())
}

/// Objects from multi-document YAML; empty documents (a trailing `---`) are skipped.
pub(crate) fn from_yaml(text: &str) -> Result<Vec<Located>, SeedError> {
    let mut out = Vec::new();
    for (i, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).map_err(|e| SeedError::Yaml {
            document: i + 1,
            message: e.to_string(),
        })?;
        if !value.is_null() {
            expand(i + 1, value, &mut out)?;
        }
    }
    Ok(out)
}

/// Objects from JSON text: one object, a List, or an array of objects (each a document).
pub(crate) fn from_json(text: &str) -> Result<Vec<Located>, SeedError> {
    let value: Value = serde_json::from_str(text).map_err(SeedError::Json)?;
    let mut out = Vec::new();
    match value {
        Value::Array(documents) => {
            for (i, document) in documents.into_iter().enumerate() {
                expand(i + 1, document, &mut out)?;
            }
        }
        value => expand(1, value, &mut out)?,
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn where_from(objects: &[Located]) -> Vec<(usize, Option<usize>)> {
        objects.iter().map(|o| (o.document, o.item)).collect()
    }

    #[test]
    fn yaml_documents_and_lists_are_flattened_in_order() {
        let objects = from_yaml(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\n\
             apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod, metadata: {name: p, namespace: a}}\n\
             - {apiVersion: v1, kind: Pod, metadata: {name: q, namespace: a}}\n---\n",
        )
        .unwrap();
        assert_eq!(
            where_from(&objects),
            [(1, None), (3, Some(1)), (3, Some(2))]
        );
        assert_eq!(objects[2].object["metadata"]["name"], "q");
    }

    #[test]
    fn broken_yaml_names_the_document() {
        let err = from_yaml("apiVersion: v1\n---\nkind: [unclosed\n").unwrap_err();
        assert!(
            err.to_string().starts_with("fixture YAML document 2: "),
            "{err}"
        );
    }

    #[test]
    fn json_arrays_objects_and_bad_lists() {
        assert_eq!(
            where_from(&from_json(r#"[{"a": 1}, {"b": 2}]"#).unwrap()),
            [(1, None), (2, None)]
        );
        assert_eq!(where_from(&from_json(r#"{"a": 1}"#).unwrap()), [(1, None)]);
        let err = from_json(r#"{"kind": "PodList", "items": {}}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "fixture document 1: items of a List is not an array"
        );
        assert!(matches!(from_json("{"), Err(SeedError::Json(_))));
    }
}
