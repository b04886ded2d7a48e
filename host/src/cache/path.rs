//! Simple JSON paths, used by declared indexes (which values to index) and by the informer's
//! transform (which fields to drop or keep).
//!
//! Grammar, deliberately small so that every path means one obvious thing:
//!
//! ```text
//! path    := field step*
//! step    := "." field | "[*]" | "[" quoted "]"
//! field   := one or more characters other than . [ ] "
//! quoted  := a JSON string, for keys holding dots or slashes
//! ```
//!
//! Examples: `spec.nodeName`, `spec.containers[*].image`,
//! `metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]`.
//! `[*]` walks every element of an array; there are no filters, slices or wildcards over
//! object keys.
//!
//! Evaluation works on the raw JSON text: each object along the path is scanned once for the
//! one key it needs, everything else is skipped without being parsed into values.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// An object field.
    Field(Box<str>),
    /// Every element of an array.
    Each,
}

/// A parsed path. `Display` gives back a canonical spelling (quoted only where needed).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JsonPath {
    steps: Vec<Step>,
}

/// Why a path did not parse. `Display` names the path and the offending position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path {path:?}: {reason} at character {position}")]
pub struct PathError {
    pub path: String,
    pub reason: &'static str,
    pub position: usize,
}

impl JsonPath {
    pub fn parse(path: &str) -> Result<Self, PathError> {
        let err = |reason, position| PathError {
            path: path.to_string(),
            reason,
            position,
        };
        let bytes = path.as_bytes();
        let mut steps = Vec::new();
        let field_end = |from: usize| {
            bytes[from..]
                .iter()
                .position(|b| matches!(b, b'.' | b'[' | b']' | b'"'))
                .map_or(bytes.len(), |p| from + p)
        };
        if path.is_empty() {
            return Err(err("empty path", 0));
        }
        // The first step is always a field: every object is a JSON object at the top.
        let end = field_end(0);
        if end == 0 {
            return Err(err("a path starts with a field name", 0));
        }
        steps.push(Step::Field(path[..end].into()));
        let mut i = end;
        while i < bytes.len() {
            match bytes[i] {
                b'.' => {
                    let end = field_end(i + 1);
                    if end == i + 1 {
                        return Err(err("empty field name", i + 1));
                    }
                    steps.push(Step::Field(path[i + 1..end].into()));
                    i = end;
                }
                b'[' if path[i..].starts_with("[*]") => {
                    steps.push(Step::Each);
                    i += 3;
                }
                b'[' if bytes.get(i + 1) == Some(&b'"') => {
                    let mut quoted =
                        serde_json::Deserializer::from_str(&path[i + 1..]).into_iter::<String>();
                    let key = match quoted.next() {
                        Some(Ok(key)) => key,
                        _ => return Err(err("unterminated or invalid quoted key", i + 1)),
                    };
                    let after = i + 1 + quoted.byte_offset();
                    if bytes.get(after) != Some(&b']') {
                        return Err(err("expected ] after the quoted key", after));
                    }
                    if key.is_empty() {
                        return Err(err("empty field name", i + 1));
                    }
                    steps.push(Step::Field(key.into()));
                    i = after + 1;
                }
                b'[' => return Err(err("expected [*] or [\"key\"]", i)),
                _ => return Err(err("expected . or [ between steps", i)),
            }
        }
        Ok(Self { steps })
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Every scalar the path reaches in `json`: strings as themselves, numbers and booleans as
    /// their JSON text. Nulls, objects, arrays (without `[*]`) and missing fields yield nothing.
    /// Malformed JSON yields nothing too: the caller parsed the document already.
    pub fn scalars(&self, json: &RawValue) -> Vec<String> {
        let mut out = Vec::new();
        collect_scalars(json, &self.steps, &mut out);
        out
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.steps.iter().enumerate() {
            match step {
                Step::Each => f.write_str("[*]")?,
                Step::Field(name) if name.contains(['.', '[', ']', '"']) => {
                    let quoted = serde_json::to_string(name).map_err(|_| fmt::Error)?;
                    write!(f, "[{quoted}]")?;
                }
                Step::Field(name) if i == 0 => f.write_str(name)?,
                Step::Field(name) => write!(f, ".{name}")?,
            }
        }
        Ok(())
    }
}

fn collect_scalars(json: &RawValue, steps: &[Step], out: &mut Vec<String>) {
    match steps.split_first() {
        None => {
            if let Some(scalar) = scalar_text(json) {
                out.push(scalar);
            }
        }
        Some((Step::Field(name), rest)) => {
            if let Some(child) = field(json, name) {
                collect_scalars(child, rest, out);
            }
        }
        Some((Step::Each, rest)) => {
            for element in elements(json).unwrap_or_default() {
                collect_scalars(element, rest, out);
            }
        }
    }
}

/// A scalar's index text, or `None` for null, objects and arrays.
pub fn scalar_text(json: &RawValue) -> Option<String> {
    let text = json.get();
    match text.as_bytes().first()? {
        b'"' => serde_json::from_str::<String>(text).ok(),
        b'{' | b'[' | b'n' => None,
        _ => Some(text.to_string()),
    }
}

/// The value of one field of a JSON object, or `None` when `json` is not an object or lacks
/// the field. Scans the object once and skips every other value unparsed.
pub fn field<'a>(json: &'a RawValue, name: &str) -> Option<&'a RawValue> {
    let mut de = serde_json::Deserializer::from_str(json.get());
    FindField(name).deserialize(&mut de).ok().flatten()
}

/// The elements of a JSON array, or `None` when `json` is not an array.
pub fn elements(json: &RawValue) -> Option<Vec<&RawValue>> {
    if !json.get().starts_with('[') {
        return None;
    }
    serde_json::from_str(json.get()).ok()
}

/// The entries of a JSON object in document order, or `None` when `json` is not an object.
/// Keys are unescaped (borrowed when they hold no escapes); values stay raw.
pub fn entries(json: &RawValue) -> Option<Vec<(Cow<'_, str>, &RawValue)>> {
    if !json.get().starts_with('{') {
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(json.get());
    Entries.deserialize(&mut de).ok()
}

struct FindField<'n>(&'n str);

impl<'de> DeserializeSeed<'de> for FindField<'_> {
    type Value = Option<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FindField<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if found.is_none() && key == self.0 {
                found = Some(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    // Anything but an object has no fields; consume it without complaint.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

struct Entries;

impl<'de> DeserializeSeed<'de> for Entries {
    type Value = Vec<(Cow<'de, str>, &'de RawValue)>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Entries {
    type Value = Vec<(Cow<'de, str>, &'de RawValue)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            out.push((key, map.next_value::<&'de RawValue>()?));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> &RawValue {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn parses_fields_arrays_and_quoted_keys() {
        let path = JsonPath::parse(r#"metadata.annotations["a.b/c"].x[*].y"#).unwrap();
        assert_eq!(
            path.steps(),
            [
                Step::Field("metadata".into()),
                Step::Field("annotations".into()),
                Step::Field("a.b/c".into()),
                Step::Field("x".into()),
                Step::Each,
                Step::Field("y".into()),
            ]
        );
        assert_eq!(path.to_string(), r#"metadata.annotations["a.b/c"].x[*].y"#);
        assert_eq!(
            JsonPath::parse("spec.nodeName").unwrap().to_string(),
            "spec.nodeName"
        );
    }

    #[test]
    fn rejects_malformed_paths_naming_the_position() {
        for (path, reason, position) in [
            ("", "empty path", 0),
            (".spec", "a path starts with a field name", 0),
            ("[*].a", "a path starts with a field name", 0),
            ("spec..a", "empty field name", 5),
            ("spec.", "empty field name", 5),
            ("spec[0]", "expected [*] or [\"key\"]", 4),
            ("spec[\"a\"", "expected ] after the quoted key", 8),
            ("spec[\"a", "unterminated or invalid quoted key", 5),
            ("spec[\"\"]", "empty field name", 5),
            ("spec]", "expected . or [ between steps", 4),
            ("spec\"x\"", "expected . or [ between steps", 4),
        ] {
            let err = JsonPath::parse(path).unwrap_err();
            assert_eq!(
                (err.reason, err.position),
                (reason, position),
                "path {path:?}"
            );
            assert!(err.to_string().contains(&format!("{path:?}")), "{err}");
        }
    }

    #[test]
    fn scalars_walk_arrays_and_skip_non_scalars() {
        let doc = raw(
            r#"{"spec":{"containers":[{"image":"a","port":80},{"image":"b\u0021"},{"image":null},{"image":{"x":1}}],
               "nodeName":"n1","replicas":3,"paused":false,"tags":["x","y"]},"status":null}"#,
        );
        let get = |p: &str| JsonPath::parse(p).unwrap().scalars(doc);
        assert_eq!(get("spec.containers[*].image"), ["a", "b!"]);
        assert_eq!(get("spec.containers[*].port"), ["80"]);
        assert_eq!(get("spec.nodeName"), ["n1"]);
        assert_eq!(get("spec.replicas"), ["3"]);
        assert_eq!(get("spec.paused"), ["false"]);
        assert_eq!(get("spec.tags[*]"), ["x", "y"]);
        assert!(
            get("spec.tags").is_empty(),
            "an array is not a scalar without [*]"
        );
        assert!(get("spec.missing").is_empty());
        assert!(get("status.phase").is_empty(), "null has no fields");
        assert!(
            get("spec.nodeName[*]").is_empty(),
            "a string has no elements"
        );
        assert!(get("spec.nodeName.x").is_empty(), "a string has no fields");
    }

    #[test]
    fn entries_keep_document_order_and_unescape_keys() {
        let doc = raw(r#"{"b":1,"a\"q":{"x":[1,2]},"c":"s"}"#);
        let got: Vec<(String, String)> = entries(doc)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k.into_owned(), v.get().to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("b".into(), "1".into()),
                ("a\"q".into(), r#"{"x":[1,2]}"#.into()),
                ("c".into(), r#""s""#.into())
            ]
        );
        assert!(entries(raw("[1]")).is_none());
        assert_eq!(elements(raw("[1, {\"a\":2}]")).unwrap().len(), 2);
        assert!(elements(raw("{}")).is_none());
    }
}
