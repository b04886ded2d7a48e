//! How the process ends: the exit codes `trellis` documents, and the one error type every
//! command returns so that `cli::run` can print it once and pick the code.

use std::process::ExitCode;

use crate::manager::StartError;
use crate::ops::config::ConfigErrors;
use crate::ops::dev::DevError;
use crate::ops::http::HttpError;

/// The exit codes of `trellis` (docs/cli.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: the command did what it was asked (a server stopped gracefully).
    Ok,
    /// 1: something failed at runtime: the cluster unreachable, a port taken, leadership lost.
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
    /// Every mistake of the config file, each on its own line.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("{0}")]
    Start(#[from] StartError),
    #[error(transparent)]
    Dev(#[from] DevError),
    /// A setting the loader accepted but a service refused (e.g. leader election).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Cluster(String),
    #[error("cannot handle signals: {0}")]
    Signals(#[source] std::io::Error),
    #[error("{0}")]
    Http(#[from] HttpError),
    #[error("leadership lost: stopped reconciling; restart to rejoin as a standby")]
    LeadershipLost,
}

impl CliError {
    pub fn exit(&self) -> Exit {
        match self {
            CliError::Config(_) | CliError::Invalid(_) => Exit::Usage,
            CliError::Start(error) if error.is_config() => Exit::Usage,
            CliError::Dev(error) if error.is_usage() => Exit::Usage,
            CliError::Start(_)
            | CliError::Dev(_)
            | CliError::Cluster(_)
            | CliError::Signals(_)
            | CliError::Http(_)
            | CliError::LeadershipLost => Exit::Runtime,
        }
    }
}
