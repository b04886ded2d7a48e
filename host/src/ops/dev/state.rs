//! The state directory of `trellis dev` (default `./.trellis-dev/`): everything a user needs
//! to look at or reuse while the dev loop runs.
//!
//! ```text
//! .trellis-dev/
//!   kubeconfig                 kubectl and any client: export KUBECONFIG=<this>
//!   trellis.yaml               the built-in dev config (not written with -c)
//!   namespace-defaults.wasm    the example plugins' components, next to the config that
//!   deployment-summary.wasm      names them (paths in a config are relative to it)
//!   fixtures/*.yaml            the built-in fixtures (not written with --fixtures)
//!   .gitignore                 `*`: the directory never ends up in the user's repository
//! ```
//!
//! The components come from `trellis-plugin-bundle`, embedded in the binary, so a binary
//! copied anywhere still runs the dev loop; they are rewritten on every start, so they always
//! match the binary.

use std::path::{Path, PathBuf};

use super::fixtures;

/// The config `trellis dev` runs without `-c`: the example plugins with what they need
/// (`ops::config`'s dev.yaml).
pub use crate::ops::config::DEV_CONFIG;

/// File names inside the state directory.
pub const KUBECONFIG: &str = "kubeconfig";
pub const CONFIG: &str = "trellis.yaml";
pub const FIXTURES: &str = "fixtures";

/// Why the state directory could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot prepare the state directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the config file {path} does not exist or cannot be read: {source}")]
    Config {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the fixtures {path} do not exist or cannot be read: {source}")]
    Fixtures {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl StateError {
    /// A mistake on the command line (a path that does not exist), not a runtime failure.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            StateError::Config { .. } | StateError::Fixtures { .. }
        )
    }
}

/// Where things are, all absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatePaths {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    /// The config to run: the user's (`-c`) or the built-in one written here.
    pub config: PathBuf,
    /// Whether `config` is the built-in one.
    pub builtin_config: bool,
    /// The fixtures to seed: the user's (`--fixtures`) or the built-in ones written here.
    pub fixtures: PathBuf,
    pub builtin_fixtures: bool,
}

/// Creates `dir` and writes into it what the options leave to the built-ins.
pub fn prepare(
    dir: &Path,
    config: Option<&Path>,
    fixtures: Option<&Path>,
) -> Result<StatePaths, StateError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StateError::Io { path, source }
    };
    // Check the user's paths before writing anything.
    let config = config
        .map(|path| {
            std::fs::canonicalize(path).map_err(|source| StateError::Config {
                path: path.to_path_buf(),
                source,
            })
        })
        .transpose()?;
    let fixtures = fixtures
        .map(|path| {
            std::fs::canonicalize(path).map_err(|source| StateError::Fixtures {
                path: path.to_path_buf(),
                source,
            })
        })
        .transpose()?;

    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let dir = std::fs::canonicalize(dir).map_err(io(dir))?;
    let ignore = dir.join(".gitignore");
    std::fs::write(&ignore, "# written by `trellis dev`\n*\n").map_err(io(&ignore))?;
    for component in trellis_plugin_bundle::ALL {
        // The misbehave plugin exists for tests; users get the examples.
        if component.name == trellis_plugin_bundle::MISBEHAVE.name {
            continue;
        }
        let path = dir.join(format!("{}.wasm", component.name));
        std::fs::write(&path, component.wasm).map_err(io(&path))?;
    }
    let (config, builtin_config) = match config {
        Some(path) => (path, false),
        None => {
            let path = dir.join(CONFIG);
            std::fs::write(&path, DEV_CONFIG).map_err(io(&path))?;
            (path, true)
        }
    };
    let (fixtures, builtin_fixtures) = match fixtures {
        Some(path) => (path, false),
        None => {
            let path = dir.join(FIXTURES);
            (fixtures::write_defaults(&path).map_err(io(&path))?, true)
        }
    };
    Ok(StatePaths {
        kubeconfig: dir.join(KUBECONFIG),
        dir,
        config,
        builtin_config,
        fixtures,
        builtin_fixtures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_are_written_next_to_each_other() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state");
        let paths = prepare(&dir, None, None).unwrap();
        let dir = std::fs::canonicalize(&dir).unwrap();
        assert_eq!(paths.dir, dir);
        assert_eq!(paths.config, dir.join("trellis.yaml"));
        assert!(paths.builtin_config && paths.builtin_fixtures);
        assert_eq!(std::fs::read_to_string(&paths.config).unwrap(), DEV_CONFIG);
        assert_eq!(
            std::fs::read(dir.join("namespace-defaults.wasm")).unwrap(),
            trellis_plugin_bundle::NAMESPACE_DEFAULTS.wasm
        );
        assert_eq!(
            std::fs::read(dir.join("deployment-summary.wasm")).unwrap(),
            trellis_plugin_bundle::DEPLOYMENT_SUMMARY.wasm
        );
        assert!(!dir.join("misbehave.wasm").exists());
        assert_eq!(paths.fixtures, dir.join("fixtures"));
        assert!(paths.fixtures.join("01-namespaces.yaml").is_file());
        // The dev config names components by paths relative to itself.
        for component in ["namespace-defaults.wasm", "deployment-summary.wasm"] {
            assert!(DEV_CONFIG.contains(&format!("component: {component}")));
        }
        // Preparing again (a second `trellis dev`) works over the first.
        assert_eq!(prepare(&dir, None, None).unwrap(), paths);
    }

    #[test]
    fn user_paths_are_used_as_given_and_nothing_is_written_for_them() {
        let root = tempfile::tempdir().unwrap();
        let config = root.path().join("mine.yaml");
        std::fs::write(&config, "plugins: []").unwrap();
        let fixtures = root.path().join("objects");
        std::fs::create_dir(&fixtures).unwrap();
        let paths = prepare(&root.path().join("s"), Some(&config), Some(&fixtures)).unwrap();
        assert_eq!(paths.config, std::fs::canonicalize(&config).unwrap());
        assert_eq!(paths.fixtures, std::fs::canonicalize(&fixtures).unwrap());
        assert!(!paths.builtin_config && !paths.builtin_fixtures);
        assert!(!paths.dir.join("trellis.yaml").exists());
        assert!(!paths.dir.join("fixtures").exists());
    }

    #[test]
    fn missing_user_paths_are_usage_errors_naming_the_path_and_write_nothing() {
        let root = tempfile::tempdir().unwrap();
        let state = root.path().join("s");
        let error = prepare(&state, Some(Path::new("/nope/trellis.yaml")), None).unwrap_err();
        assert!(error.is_usage());
        assert!(error.to_string().contains("/nope/trellis.yaml"), "{error}");
        let error = prepare(&state, None, Some(Path::new("/nope/fixtures"))).unwrap_err();
        assert!(error.is_usage());
        assert!(error.to_string().contains("/nope/fixtures"), "{error}");
        assert!(!state.exists());
    }

    #[test]
    fn a_state_dir_that_cannot_be_created_is_a_runtime_error_naming_it() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        let error = prepare(&file.join("state"), None, None).unwrap_err();
        assert!(!error.is_usage());
        assert!(error.to_string().contains("a-file/state"), "{error}");
    }
}
