//! Log output of the `trellis` process: human or JSON lines on stderr, filtered by RUST_LOG.
//!
//! Lines go through the dev [`Terminal`] so that a refreshing progress line on a terminal is
//! cleared before a log line and drawn again after it, instead of being torn apart.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

use crate::ops::dev::Terminal;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The filter: RUST_LOG as users expect, `info` when unset.
fn filter() -> Result<EnvFilter, String> {
    match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec)
            .map_err(|e| format!("RUST_LOG={spec:?} is not a valid filter: {e}")),
        _ => Ok(EnvFilter::new("info")),
    }
}

/// Installs the global subscriber. Fails when RUST_LOG is malformed (a usage mistake worth
/// stopping for) or a subscriber is already installed.
pub fn init(format: LogFormat, terminal: Terminal) -> Result<(), String> {
    let filter = filter()?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(terminal.is_tty() && format == LogFormat::Human)
        .with_writer(terminal);
    let installed = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|e| format!("cannot install the log subscriber: {e}"))
}
