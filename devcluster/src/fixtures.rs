//! Fixtures: objects loaded from YAML (or JSON) files at start.
//!
//! A fixture path is a file or a folder (its `.yaml`, `.yml` and `.json` files, sorted by
//! name, not recursive). Files may hold several `---`-separated documents and `kind: List`
//! documents. Objects are applied with server-side apply (manager `devcluster-fixtures`,
//! forced), so loading the same fixtures twice changes nothing, and namespaces the objects
//! name are created when missing. Namespaces and CustomResourceDefinitions go first, so a
//! fixture can define a CRD and its objects in any order.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::cluster::Cluster;
use crate::managed::Part;
use crate::object::meta_str;
use crate::patch::PatchType;
use crate::write::{FieldValidation, Target, WriteOptions};

/// Why fixtures could not be loaded. Each names the file (and document) at fault.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("cannot read fixtures at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: document {index}: {message}")]
    Document {
        path: PathBuf,
        index: usize,
        message: String,
    },
}

/// One object read from a fixture file (`kind: List` items are objects of their own).
#[derive(Debug, Clone)]
pub struct FixtureObject {
    pub path: PathBuf,
    /// The YAML document's position in its file, from 0.
    pub index: usize,
    pub object: Value,
}

/// Whether `path` is read as fixtures when its folder is given: `.yaml`, `.yml`, `.json`.
pub fn is_fixture_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
}

/// Every object of the fixtures at `path` (a file, or a folder's fixture files sorted by
/// name, not recursive), in file order; what `load_fixtures` applies.
pub fn read_fixtures(path: &Path) -> Result<Vec<FixtureObject>, FixtureError> {
    let mut all = Vec::new();
    for file in files(path)? {
        all.extend(documents(&file)?);
    }
    Ok(all)
}

fn files(path: &Path) -> Result<Vec<PathBuf>, FixtureError> {
    let io = |source| FixtureError::Io {
        path: path.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(io)?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && is_fixture_file(p))
        .collect();
    files.sort();
    Ok(files)
}

fn documents(path: &Path) -> Result<Vec<FixtureObject>, FixtureError> {
    let text = std::fs::read_to_string(path).map_err(|source| FixtureError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for (index, document) in serde_norway::Deserializer::from_str(&text).enumerate() {
        let error = |message: String| FixtureError::Document {
            path: path.to_path_buf(),
            index,
            message,
        };
        let value = Value::deserialize(document).map_err(|e| error(e.to_string()))?;
        match value {
            Value::Null => {}
            Value::Object(_) if value.get("kind").and_then(Value::as_str) == Some("List") => {
                for item in value
                    .get("items")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    out.push(FixtureObject {
                        path: path.to_path_buf(),
                        index,
                        object: item.clone(),
                    });
                }
            }
            Value::Object(_) => out.push(FixtureObject {
                path: path.to_path_buf(),
                index,
                object: value,
            }),
            other => return Err(error(format!("expected an object, found {other}"))),
        }
    }
    Ok(out)
}

fn priority(object: &Value) -> u8 {
    match object.get("kind").and_then(Value::as_str) {
        Some("Namespace") => 0,
        Some("CustomResourceDefinition") => 1,
        _ => 2,
    }
}

impl Cluster {
    /// Loads the fixtures at `path`; returns how many objects were applied.
    pub fn load_fixtures(&self, path: &Path) -> Result<usize, FixtureError> {
        self.apply_fixtures(read_fixtures(path)?)
    }

    /// Applies objects already read with [`read_fixtures`] (namespaces and CRDs first);
    /// returns how many were applied.
    pub fn apply_fixtures(&self, mut all: Vec<FixtureObject>) -> Result<usize, FixtureError> {
        all.sort_by_key(|d| priority(&d.object));
        let options = WriteOptions {
            manager: "devcluster-fixtures".to_string(),
            manager_explicit: true,
            validation: FieldValidation::Strict,
            dry_run: false,
            force: true,
        };
        for document in &all {
            let error = |message: String| FixtureError::Document {
                path: document.path.clone(),
                index: document.index,
                message,
            };
            let object = &document.object;
            let api_version = object
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
            let resource = self
                .resolve_kind(api_version, kind)
                .ok_or_else(|| error(format!("no kind {kind:?} is served in {api_version:?}")))?;
            let name = meta_str(object, "name");
            if name.is_empty() {
                return Err(error(format!("{kind} has no metadata.name")));
            }
            let namespace = match (resource.namespaced, meta_str(object, "namespace")) {
                (false, _) => String::new(),
                (true, "") => "default".to_string(),
                (true, ns) => ns.to_string(),
            };
            if resource.namespaced {
                self.ensure_namespace(&namespace)
                    .map_err(|e| error(e.message))?;
            }
            let target = Target {
                resource,
                namespace,
                name: name.to_string(),
                part: Part::Main,
            };
            let body = serde_json::to_vec(object).unwrap_or_default();
            self.patch(&target, PatchType::Apply, &body, &options)
                .map_err(|e| error(e.message))?;
        }
        Ok(all.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn folders_of_multi_document_files_load_in_dependency_order() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "a-widgets.yaml",
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: shop}\nspec: {size: 2}\n",
        );
        write(
            dir.path(),
            "b-crd.yaml",
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {plural: widgets, kind: Widget}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n",
        );
        write(
            dir.path(),
            "c-list.yaml",
            "---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: one}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: two}\n---\n",
        );
        write(dir.path(), "ignored.txt", "not yaml");
        let cluster = Cluster::new(100);
        cluster.ensure_namespace("default").unwrap();
        assert_eq!(cluster.load_fixtures(dir.path()).unwrap(), 4);
        assert_eq!(cluster.store.len("widgets.example.com"), 1);
        assert_eq!(cluster.store.len("configmaps"), 2);
        let rv = cluster.store.current_rv();
        assert_eq!(cluster.load_fixtures(dir.path()).unwrap(), 4);
        assert_eq!(cluster.store.current_rv(), rv, "reloading changes nothing");
    }

    #[test]
    fn errors_name_the_file_and_document() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = Cluster::new(100);
        let bad = write(
            dir.path(),
            "bad.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\napiVersion: v1\nkind: Nope\nmetadata: {name: x}\n",
        );
        let error = cluster.load_fixtures(&bad).unwrap_err().to_string();
        assert!(
            error.contains("bad.yaml: document 1: no kind \"Nope\""),
            "{error}"
        );
        let broken = write(dir.path(), "broken.yaml", "a: [unclosed\n");
        let error = cluster.load_fixtures(&broken).unwrap_err().to_string();
        assert!(error.contains("broken.yaml: document 0"), "{error}");
        let strict = write(
            dir.path(),
            "strict.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\nbogus: 1\n",
        );
        let error = cluster.load_fixtures(&strict).unwrap_err().to_string();
        assert!(error.contains("unknown field \"bogus\""), "{error}");
        let missing = cluster
            .load_fixtures(&dir.path().join("absent"))
            .unwrap_err();
        assert!(matches!(missing, FixtureError::Io { .. }));
    }
}
