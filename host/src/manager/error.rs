//! Why a manager could not start or reload: each error names the config file, the plugin (by
//! index and name, as the config loader does: `plugins[1] (deployment-summary)`) and the field
//! at fault, so the operator knows where to look.

use std::path::PathBuf;

use crate::hostcalls::CachesError;
use crate::informer::SubscribeError;
use crate::queue::QueueError;
use crate::sandbox::{LoadError, SandboxError};

/// Where in the config a startup error is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginField {
    pub file: PathBuf,
    pub index: usize,
    pub plugin: String,
    /// `component`, `watch`, `secondary[0]`, `queue`, `workers`.
    pub field: String,
}

impl std::fmt::Display for PluginField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: plugins[{}] ({}).{}",
            self.file.display(),
            self.index,
            self.plugin,
            self.field
        )
    }
}

/// Why the host did not start. Nothing was reconciled: every plugin is prepared (component
/// loaded, watches subscribed) before any worker starts.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{file}: host.engine: {source}")]
    Sandbox {
        file: PathBuf,
        #[source]
        source: SandboxError,
    },
    /// The shared guest runtime (`host.guests.executor: shared`) could not start (the
    /// machine refused its threads).
    #[error("{file}: host.guests: cannot start the guest runtime: {source}")]
    Guests {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The runtime the host calls' API requests run on could not start (the machine refused
    /// its thread).
    #[error("cannot start the host calls' I/O runtime (thread trellis-io): {source}")]
    IoRuntime {
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: {source}")]
    Component {
        at: PluginField,
        #[source]
        source: LoadError,
    },
    #[error("{at}: {source}")]
    Queue {
        at: PluginField,
        #[source]
        source: QueueError,
    },
    #[error("{at}: {source}")]
    Watch {
        at: PluginField,
        #[source]
        source: SubscribeError,
    },
    #[error("{at}: {source}")]
    Caches {
        at: PluginField,
        #[source]
        source: CachesError,
    },
}

impl StartError {
    /// Whether the config (or a component it names) is at fault, rather than the cluster or
    /// the machine: the CLI exits 2 for these.
    pub fn is_config(&self) -> bool {
        match self {
            StartError::Component { .. } | StartError::Queue { .. } | StartError::Caches { .. } => {
                true
            }
            StartError::Watch { source, .. } => !matches!(source, SubscribeError::Discovery { .. }),
            StartError::Sandbox { .. }
            | StartError::Guests { .. }
            | StartError::IoRuntime { .. } => false,
        }
    }
}
