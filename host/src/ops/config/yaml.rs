//! The config file as YAML: parsed once into a tree to check its syntax and shape, then read
//! section by section, so that a type error in one plugin does not hide the mistakes of the
//! others.
//!
//! serde stops at the first error of a deserialization, and a failed one leaves its
//! deserializer in the middle of the input. So each section (the `host` mapping, each plugin)
//! is deserialized in a pass of its own over the text: [`Document::extract`] walks to the
//! section, deserializes it strictly and skips everything else. Errors keep serde_norway's line
//! and column, and `serde_path_to_error` gives their field path.
//!
//! Mistakes found later, by validation, have a path but no position; [`Document::locate`] finds
//! the position of a path with the same walk, ending in a visitor that refuses whatever it
//! finds (serde_norway marks the error with the node's position). A config file is small and
//! has few mistakes, so one pass per section or mistake costs nothing that matters.

use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_norway::Value;

use super::error::{Fault, FieldPath, Location, Segment};

/// A syntactically valid config file.
pub(crate) struct Document<'t> {
    text: &'t str,
    value: Value,
}

impl<'t> Document<'t> {
    /// Parses the text; a syntax error (or a second document) is the only mistake reported,
    /// since nothing after it can be trusted.
    pub(crate) fn parse(text: &'t str) -> Result<Self, Fault> {
        match serde_norway::from_str::<Value>(text) {
            Ok(value) => Ok(Self { text, value }),
            Err(error) => Err(fault(FieldPath::root(), &error)),
        }
    }

    pub(crate) fn value(&self) -> &Value {
        &self.value
    }

    /// Deserializes the value at `path` as `T`, strictly; `Ok(None)` when there is no such value.
    pub(crate) fn extract<T: DeserializeOwned>(
        &self,
        path: &FieldPath,
    ) -> Result<Option<T>, Fault> {
        let mut track = serde_path_to_error::Track::new();
        let deserializer = serde_path_to_error::Deserializer::new(
            serde_norway::Deserializer::from_str(self.text),
            &mut track,
        );
        let seed = At {
            path: path.segments(),
            seed: std::marker::PhantomData::<T>,
            missing: Missing::IsNone,
        };
        match seed.deserialize(deserializer) {
            Ok(found) => Ok(found),
            Err(error) => Err(fault(from_tracked(track.path()), &error)),
        }
    }

    /// Where `path` is in the file: the position of its value, or of the nearest enclosing
    /// value that exists (a missing field is reported where it should have been).
    pub(crate) fn locate(&self, path: &FieldPath) -> Option<Location> {
        let seed = At {
            path: path.segments(),
            seed: Refuse,
            missing: Missing::IsError,
        };
        match seed.deserialize(serde_norway::Deserializer::from_str(self.text)) {
            Ok(_) => None,
            Err(error) => location(&error),
        }
    }
}

fn location(error: &serde_norway::Error) -> Option<Location> {
    error.location().map(|l| Location {
        line: l.line(),
        column: l.column(),
    })
}

/// A fault from a serde_norway error: its message without the path and position that its
/// Display adds (they are reported separately).
fn fault(path: FieldPath, error: &serde_norway::Error) -> Fault {
    let location = location(error);
    let mut message = error.to_string();
    if let Some(at) = location {
        let suffix = format!(" at line {} column {}", at.line, at.column);
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_string();
        }
    }
    // serde_norway prefixes the path of the node it was at, which may be an ancestor of the
    // tracked path (an unknown key is tracked as a child of its mapping).
    let mut ancestor = path.clone();
    loop {
        if let Some(stripped) = message.strip_prefix(&format!("{ancestor}: ")) {
            message = stripped.to_string();
            break;
        }
        if !ancestor.pop() {
            break;
        }
    }
    Fault {
        path,
        message,
        location,
    }
}

fn from_tracked(tracked: serde_path_to_error::Path) -> FieldPath {
    let mut path = FieldPath::root();
    for segment in tracked.iter() {
        path = match segment {
            serde_path_to_error::Segment::Seq { index } => path.index(*index),
            serde_path_to_error::Segment::Map { key } => path.key(key),
            serde_path_to_error::Segment::Enum { variant } => path.key(variant),
            serde_path_to_error::Segment::Unknown => path.key("?"),
        };
    }
    path
}

/// What [`At`] does when the path leads nowhere.
#[derive(Clone, Copy)]
enum Missing {
    /// Returns `None`.
    IsNone,
    /// Fails at the deepest value found, so the error carries its position.
    IsError,
}

/// Walks to `path` and deserializes what is there with `seed`, skipping everything else.
struct At<'p, S> {
    path: &'p [Segment],
    seed: S,
    missing: Missing,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for At<'_, S> {
    type Value = Option<S::Value>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        match self.path.first() {
            None => self.seed.deserialize(deserializer).map(Some),
            Some(Segment::Key(_)) => deserializer.deserialize_map(self),
            Some(Segment::Index(_)) => deserializer.deserialize_seq(self),
        }
    }
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for At<'_, S> {
    type Value = Option<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path.first() {
            Some(Segment::Key(key)) => write!(f, "a mapping with `{key}`"),
            _ => f.write_str("a sequence"),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some(Segment::Key(wanted)) = self.path.first() else {
            return Err(de::Error::custom("a sequence was expected"));
        };
        let mut found = None;
        let mut seed = Some(self.seed);
        while let Some(key) = map.next_key::<KeyText>()? {
            match seed.take_if(|_| key.0.as_deref() == Some(wanted.as_str())) {
                Some(seed) => {
                    found = map.next_value_seed(At {
                        path: &self.path[1..],
                        seed,
                        missing: self.missing,
                    })?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        self.missing.resolve(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Some(Segment::Index(wanted)) = self.path.first() else {
            return Err(de::Error::custom("a mapping was expected"));
        };
        let mut found = None;
        let mut seed = Some(self.seed);
        let mut index = 0;
        loop {
            let next = match seed.take_if(|_| index == *wanted) {
                Some(seed) => seq.next_element_seed(At {
                    path: &self.path[1..],
                    seed,
                    missing: self.missing,
                })?,
                None => seq.next_element::<IgnoredAny>()?.map(|_| None),
            };
            match next {
                Some(value) if index == *wanted => found = value,
                Some(_) => {}
                None => break,
            }
            index += 1;
        }
        self.missing.resolve(found)
    }

    // A scalar where a mapping or sequence was expected: the path leads nowhere.
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.missing.resolve(None)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        self.missing.resolve(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        self.missing.resolve(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        self.missing.resolve(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        self.missing.resolve(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        self.missing.resolve(None)
    }
}

impl Missing {
    fn resolve<T, E: de::Error>(self, found: Option<T>) -> Result<Option<T>, E> {
        match (found, self) {
            (Some(value), _) => Ok(Some(value)),
            (None, Missing::IsNone) => Ok(None),
            (None, Missing::IsError) => Err(E::custom("here")),
        }
    }
}

/// A mapping key as text; keys that are not scalars (allowed by YAML, never by this schema)
/// read as `None` and match nothing.
struct KeyText(Option<String>);

impl<'de> de::Deserialize<'de> for KeyText {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = <Value as de::Deserialize>::deserialize(deserializer)?;
        Ok(KeyText(match value {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }))
    }
}

/// Refuses any value, so that the error carries the value's position.
struct Refuse;

impl<'de> DeserializeSeed<'de> for Refuse {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Refuse {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("nothing (this only finds a position)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    const TEXT: &str = "\
host:
  metricsAddress: ':9090'
plugins:
  - name: a
    workers: 2
  - name: b
    workers: many
    budgets: {fuel: 5}
";

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Plugin {
        name: String,
        workers: u32,
        #[serde(default)]
        budgets: Option<serde_norway::Value>,
    }

    fn plugin(i: usize) -> FieldPath {
        FieldPath::root().key("plugins").index(i)
    }

    #[test]
    fn a_section_is_read_alone_and_its_errors_keep_path_and_position() {
        let doc = Document::parse(TEXT).unwrap();
        let a: Plugin = doc.extract(&plugin(0)).unwrap().unwrap();
        assert_eq!(a.workers, 2);
        let err = doc.extract::<Plugin>(&plugin(1)).unwrap_err();
        assert_eq!(err.path.to_string(), "plugins[1].workers");
        assert_eq!(
            err.location,
            Some(Location {
                line: 7,
                column: 14
            })
        );
        assert_eq!(
            err.message, "invalid type: string \"many\", expected u32",
            "no path or position repeated in the message"
        );
        assert_eq!(doc.extract::<Plugin>(&plugin(2)).unwrap(), None);
        assert_eq!(
            doc.extract::<String>(&FieldPath::root().key("nothing"))
                .unwrap(),
            None
        );
    }

    #[test]
    fn positions_are_found_for_present_and_missing_fields() {
        let doc = Document::parse(TEXT).unwrap();
        let at = |line, column| Some(Location { line, column });
        assert_eq!(doc.locate(&plugin(1).key("workers")), at(7, 14));
        assert_eq!(doc.locate(&plugin(1).key("budgets").key("fuel")), at(8, 21));
        // Missing: the enclosing mapping (block mappings start at their first key).
        assert_eq!(doc.locate(&plugin(0).key("budgets")), at(4, 5));
        assert_eq!(
            doc.locate(&plugin(1).key("budgets").key("deadlineMs")),
            at(8, 14)
        );
        assert_eq!(doc.locate(&FieldPath::root().key("host")), at(2, 3));
        // A scalar where the path wants to go deeper: the scalar.
        assert_eq!(doc.locate(&plugin(0).key("workers").key("x")), at(5, 14));
        // An index past the end: the sequence.
        assert_eq!(doc.locate(&plugin(5)), at(4, 3));
    }

    #[test]
    fn syntax_errors_have_a_position_and_stop_everything() {
        let err = Document::parse("plugins:\n  - name: a\n   bad: [\n")
            .err()
            .unwrap();
        assert!(err.location.is_some(), "{err:?}");
        assert_eq!(err.path, FieldPath::root());
        let two = Document::parse("a: 1\n---\nb: 2\n").err().unwrap();
        assert!(two.message.contains("more than one document"), "{two:?}");
    }
}
