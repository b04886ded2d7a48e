//! What a config mistake looks like to the operator: the file, the line and column, the field
//! (`plugins[1] (deployment-summary).budgets.fuel`) and what was expected or found.
//!
//! Validation code records [`Fault`]s against a [`FieldPath`] as it goes and never stops at the
//! first one; [`Faults::finish`] then turns them into [`ConfigError`]s, filling in the plugin's
//! name after its index and the line and column of the field (found in the YAML by
//! `yaml::Document::locate`), and sorts them into file order.

use std::fmt;
use std::path::{Path, PathBuf};

/// A place in the config file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One mistake in a config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The config file, as given to `load`/`parse`.
    pub file: PathBuf,
    /// The field at fault: `plugins[1] (deployment-summary).budgets.fuel`, `host.engine`; empty
    /// when the mistake is about the whole file (it cannot be read, or is not YAML).
    pub field: String,
    /// Where the field (or the nearest enclosing one that is present) is in the file.
    pub location: Option<Location>,
    /// What was expected and what was found.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(location) = self.location {
            write!(f, ":{location}")?;
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.field, self.message)
        }
    }
}

/// Every mistake found in one config file (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    pub file: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.errors.iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "{}: {n} mistake{}",
            self.file.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for error in &self.errors {
            write!(f, "\n  {error}")?;
        }
        Ok(())
    }
}

/// One step of a [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

/// Where a value is in the document, as keys and sequence indexes from the root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct FieldPath(Vec<Segment>);

impl FieldPath {
    pub(crate) fn root() -> Self {
        Self::default()
    }

    pub(crate) fn key(&self, key: &str) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_string()));
        path
    }

    pub(crate) fn index(&self, index: usize) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }

    /// This path extended by a field as other modules spell it: `transform.drop[1]`,
    /// `budgets.fuel`, `indexes[0].name`.
    pub(crate) fn join(&self, relative: &str) -> Self {
        let mut path = self.clone();
        for part in relative.split('.').filter(|p| !p.is_empty()) {
            let (key, mut rest) = match part.find('[') {
                Some(at) => part.split_at(at),
                None => (part, ""),
            };
            if !key.is_empty() {
                path.0.push(Segment::Key(key.to_string()));
            }
            while let Some(inner) = rest.strip_prefix('[') {
                let Some(end) = inner.find(']') else { break };
                match inner[..end].parse() {
                    Ok(index) => path.0.push(Segment::Index(index)),
                    Err(_) => path.0.push(Segment::Key(inner[..end].to_string())),
                }
                rest = &inner[end + 1..];
            }
        }
        path
    }

    /// Drops the last segment; false at the root.
    pub(crate) fn pop(&mut self) -> bool {
        self.0.pop().is_some()
    }

    pub(crate) fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// The index of the plugin this path is inside, if any.
    fn plugin_index(&self) -> Option<usize> {
        match self.0.as_slice() {
            [Segment::Key(plugins), Segment::Index(i), ..] if plugins == "plugins" => Some(*i),
            _ => None,
        }
    }

    /// The field as shown to the operator, with the plugin's name after its index when known.
    fn display(&self, plugin_names: &[Option<String>]) -> String {
        let name = self
            .plugin_index()
            .and_then(|i| plugin_names.get(i).cloned().flatten());
        let mut out = String::new();
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
            }
            if position == 1
                && let Some(name) = &name
            {
                out.push_str(&format!(" ({name})"));
            }
        }
        out
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display(&[]))
    }
}

/// A mistake found while loading, before it is given its file, plugin name and location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    pub path: FieldPath,
    pub message: String,
    /// Known already (YAML syntax and type errors carry theirs); otherwise looked up by path.
    pub location: Option<Location>,
}

/// The mistakes found so far.
#[derive(Debug, Default)]
pub(crate) struct Faults(Vec<Fault>);

impl Faults {
    pub(crate) fn push(&mut self, path: FieldPath, message: impl Into<String>) {
        self.0.push(Fault {
            path,
            message: message.into(),
            location: None,
        });
    }

    pub(crate) fn add(&mut self, fault: Fault) {
        self.0.push(fault);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The errors in file order (mistakes without a place first), each with its location.
    pub(crate) fn finish(
        self,
        file: &Path,
        plugin_names: &[Option<String>],
        locate: impl Fn(&FieldPath) -> Option<Location>,
    ) -> ConfigErrors {
        let mut errors: Vec<ConfigError> = self
            .0
            .into_iter()
            .map(|fault| ConfigError {
                file: file.to_path_buf(),
                field: fault.path.display(plugin_names),
                location: fault.location.or_else(|| locate(&fault.path)),
                message: fault.message,
            })
            .collect();
        // Stable: mistakes at one place keep the order they were found in.
        errors.sort_by_key(|e| e.location);
        ConfigErrors {
            file: file.to_path_buf(),
            errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_the_spellings_of_other_modules() {
        let base = FieldPath::root().key("plugins").index(1);
        let path = base.join("secondary[0].transform.drop[12]");
        assert_eq!(
            path.to_string(),
            "plugins[1].secondary[0].transform.drop[12]"
        );
        assert_eq!(
            path.segments()[2..],
            [
                Segment::Key("secondary".into()),
                Segment::Index(0),
                Segment::Key("transform".into()),
                Segment::Key("drop".into()),
                Segment::Index(12),
            ]
        );
        assert_eq!(base.join("").to_string(), "plugins[1]");
    }

    #[test]
    fn the_plugin_name_follows_its_index() {
        let names = [Some("a".to_string()), None];
        let path = FieldPath::root()
            .key("plugins")
            .index(0)
            .key("budgets")
            .key("fuel");
        assert_eq!(path.display(&names), "plugins[0] (a).budgets.fuel");
        let unnamed = FieldPath::root().key("plugins").index(1).key("name");
        assert_eq!(unnamed.display(&names), "plugins[1].name");
        let host = FieldPath::root().key("host").key("engine");
        assert_eq!(host.display(&names), "host.engine");
    }

    #[test]
    fn errors_print_file_location_field_and_message_in_file_order() {
        let mut faults = Faults::default();
        faults.push(FieldPath::root().key("b"), "second");
        faults.push(FieldPath::root().key("a"), "first");
        faults.push(FieldPath::root(), "whole file");
        let errors = faults.finish(Path::new("c.yaml"), &[], |path| {
            match path.to_string().as_str() {
                "a" => Some(Location { line: 1, column: 4 }),
                "b" => Some(Location { line: 2, column: 4 }),
                _ => None,
            }
        });
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "c.yaml: whole file",
                "c.yaml:1:4: a: first",
                "c.yaml:2:4: b: second"
            ]
        );
        assert_eq!(
            errors.to_string(),
            "c.yaml: 3 mistakes\n  c.yaml: whole file\n  c.yaml:1:4: a: first\n  c.yaml:2:4: b: second"
        );
    }
}
