//! Log output of the `trellis` process: `ops::telemetry`'s subscriber (human or JSON lines,
//! filtered by RUST_LOG), writing through the dev [`Terminal`] so that a refreshing progress
//! line on a terminal is cleared before a log line and drawn again after it, instead of being
//! torn apart.

use crate::ops::dev::Terminal;
use crate::ops::telemetry::{self, LOG_ENV, TelemetryError};

pub use crate::ops::telemetry::LogFormat;

/// Installs the global subscriber. Fails when RUST_LOG is malformed (a usage mistake worth
/// stopping for) or a subscriber is already installed.
pub fn init(format: LogFormat, terminal: Terminal) -> Result<(), TelemetryError> {
    let spec = match std::env::var(LOG_ENV) {
        Ok(spec) => Some(spec),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => return Err(TelemetryError::FilterNotUnicode),
    };
    let filter = telemetry::filter(spec.as_deref())?;
    let ansi = terminal.is_tty();
    tracing::subscriber::set_global_default(telemetry::subscriber(format, filter, ansi, terminal))
        .map_err(|error| TelemetryError::AlreadyInitialized(error.to_string()))
}
