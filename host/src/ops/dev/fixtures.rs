//! The objects `trellis dev` seeds: the built-in examples, or the user's `--fixtures`.
//!
//! Loading is the devcluster's (`DevCluster::load_fixtures`: server-side apply, namespaces
//! first, errors naming the file and document). What it cannot do is seed a status: like a
//! real API server it drops `status` from writes to the main resource, and the devcluster runs
//! no controllers (no kubelet to mark Pods Running). So after loading, every fixture object
//! that carries a `status` gets it written through the status subresource, with the real kube
//! client — the way a controller would — and deployment-summary has Pods worth summarizing.

use std::path::{Path, PathBuf};

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::gvk::GroupVersionKind;
use kube::discovery::Scope;
use serde_json::{Value, json};
use trellis_devcluster::{DevCluster, FixtureObject, is_fixture_file, read_fixtures};

/// The built-in fixtures (host/fixtures/dev), embedded so a bare `trellis` binary can seed
/// them: (file name, YAML).
pub const DEFAULT_FIXTURES: &[(&str, &str)] = &[
    (
        "01-namespaces.yaml",
        include_str!("../../../fixtures/dev/01-namespaces.yaml"),
    ),
    (
        "02-shop.yaml",
        include_str!("../../../fixtures/dev/02-shop.yaml"),
    ),
    (
        "03-teams.yaml",
        include_str!("../../../fixtures/dev/03-teams.yaml"),
    ),
];

/// The field manager of the status writes (the devcluster's loader uses
/// `devcluster-fixtures` for the objects themselves).
pub const STATUS_MANAGER: &str = "trellis-dev-fixtures";

/// Why seeding failed; each names the file (and document or object).
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// Reading or parsing a fixture file (the devcluster's reader, which names the file and
    /// document).
    #[error(transparent)]
    Read(#[from] trellis_devcluster::FixtureError),
    #[error("{0}")]
    Load(#[from] trellis_devcluster::Error),
    #[error("{path}: document {index}: writing the status of {kind} {name}: {source}")]
    Status {
        path: PathBuf,
        index: usize,
        kind: String,
        name: String,
        source: Box<kube::Error>,
    },
}

/// What was seeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    pub objects: usize,
    pub statuses: usize,
}

/// Writes the built-in fixtures into `dir` (created; earlier fixture files there removed, so
/// a renamed built-in file does not linger) and returns `dir`.
pub fn write_defaults(dir: &Path) -> Result<PathBuf, std::io::Error> {
    std::fs::create_dir_all(dir)?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() && is_fixture_file(&path) {
            std::fs::remove_file(&path)?;
        }
    }
    for (name, text) in DEFAULT_FIXTURES {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(dir.to_path_buf())
}

/// Loads the fixtures at `path` (a file or a folder) into `cluster`, then writes the statuses
/// they carry with `client` (a client of that cluster).
pub async fn seed(
    cluster: &DevCluster,
    client: &kube::Client,
    path: &Path,
) -> Result<Seeded, FixtureError> {
    // Read once, parse first: a malformed file stops seeding before anything is written.
    let documents = read_fixtures(path)?;
    let objects = cluster.apply_fixtures(documents.clone())?;
    let mut statuses = 0;
    for document in &documents {
        if write_status(client, document).await? {
            statuses += 1;
        }
    }
    Ok(Seeded { objects, statuses })
}

/// Writes `document`'s status, if it has one, by server-side apply of the status
/// subresource. Returns whether it wrote.
async fn write_status(
    client: &kube::Client,
    document: &FixtureObject,
) -> Result<bool, FixtureError> {
    let object = &document.object;
    let Some(status) = object.get("status").filter(|s| s.is_object()) else {
        return Ok(false);
    };
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let (api_version, kind, name) = (text("/apiVersion"), text("/kind"), text("/metadata/name"));
    let failed = |source| FixtureError::Status {
        path: document.path.clone(),
        index: document.index,
        kind: kind.to_string(),
        name: name.to_string(),
        source: Box::new(source),
    };
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, capabilities) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(failed)?;
    let namespace = match text("/metadata/namespace") {
        "" => "default",
        namespace => namespace,
    };
    let api: Api<DynamicObject> = match capabilities.scope {
        Scope::Namespaced => Api::namespaced_with(client.clone(), namespace, &resource),
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    let mut metadata = json!({ "name": name });
    if capabilities.scope == Scope::Namespaced {
        metadata["namespace"] = json!(namespace);
    }
    let patch = json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": metadata,
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(STATUS_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(failed)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_fixtures_parse_and_hold_what_the_example_plugins_need() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_defaults(&dir.path().join("fixtures")).unwrap();
        let documents = read_fixtures(&written).unwrap();
        let of_kind = |kind: &str| {
            documents
                .iter()
                .filter(|d| d.object["kind"] == kind)
                .collect::<Vec<_>>()
        };
        let enabled = of_kind("Namespace")
            .iter()
            .filter(|d| d.object["metadata"]["labels"]["trellis.dev/defaults"] == "enabled")
            .count();
        assert!(enabled >= 2, "namespace-defaults needs labelled namespaces");
        assert!(of_kind("Namespace").len() > enabled, "and some left alone");
        assert!(of_kind("Deployment").len() >= 3);
        let pods = of_kind("Pod");
        assert!(pods.len() >= 5);
        assert!(pods.iter().all(|p| p.object["status"]["phase"].is_string()));
    }

    #[test]
    fn writing_the_defaults_replaces_stale_fixture_files_and_keeps_others() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("00-old.yaml"), "kind: Gone").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        write_defaults(dir.path()).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut expected: Vec<_> = DEFAULT_FIXTURES
            .iter()
            .map(|(n, _)| n.to_string())
            .collect();
        expected.push("notes.txt".into());
        assert_eq!(names, expected);
    }

    #[test]
    fn a_malformed_document_names_the_file_and_document() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.yaml");
        std::fs::write(&file, "kind: ConfigMap\n---\nkind: [unclosed\n").unwrap();
        let error = read_fixtures(&file).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("{}: document 1: ", file.display())),
            "{error}"
        );
    }

    #[test]
    fn a_missing_path_is_named() {
        let error = read_fixtures(Path::new("/nonexistent/fixtures"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("/nonexistent/fixtures"), "{error}");
    }
}
