//! How the process ends: the exit codes `trellis` documents, and the one error type every
//! command returns so that `cli::run` can print it once and pick the code.

use std::process::ExitCode;

use crate::ops::dev::DevError;

/// The exit codes of `trellis` (docs/cli.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: the command did what it was asked (a server stopped gracefully).
    Ok,
    /// 1: something failed at runtime: the cluster unreachable, a port taken, a watch the
    /// server rejected, a shutdown that left work behind.
    Runtime,
    /// 2: the command line or the config is wrong; nothing was started. (clap uses 2 for
    /// usage errors too.)
    Usage,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Runtime => 1,
            Exit::Usage => 2,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

/// Why a command failed. Its `Display` is the whole message the user sees after `error: `.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("`trellis {0}` is not built yet")]
    NotBuilt(&'static str),
    /// The config (or a component it names) is wrong; nothing was started.
    #[error("{0}")]
    Invalid(String),
    /// A command failed for a reason outside the user's input.
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Dev(#[from] DevError),
}

impl CliError {
    pub fn exit(&self) -> Exit {
        match self {
            CliError::NotBuilt(_) | CliError::Failed(_) => Exit::Runtime,
            CliError::Invalid(_) => Exit::Usage,
            CliError::Dev(error) if error.is_usage() => Exit::Usage,
            CliError::Dev(_) => Exit::Runtime,
        }
    }
}
