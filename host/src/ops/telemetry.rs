//! Logging: `tracing` events to stderr, as JSON for log pipelines or as human-readable lines,
//! filtered by `RUST_LOG` the way every Rust service's users expect (default `info`).
//!
//! Logs go to stderr so that commands which print results (`trellis check`, `trellis rbac`)
//! keep stdout for them. A bad `RUST_LOG` is an error at start naming the variable and the
//! directive, not silently ignored: an operator who asked for `debug` and got `info` would
//! debug the wrong thing.

use std::io::IsTerminal;
use std::str::FromStr;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The environment variable that sets the filter.
pub const LOG_ENV: &str = "RUST_LOG";

/// The level when `RUST_LOG` is unset or empty, and for targets it does not name.
pub const DEFAULT_LEVEL: LevelFilter = LevelFilter::INFO;

/// The `--log-format` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per event for people: time, level, target, message, fields.
    #[default]
    Human,
    /// One JSON object per line for log pipelines; the event's fields at top level, with the
    /// current span's fields under `span`.
    Json,
}

impl FromStr for LogFormat {
    type Err = TelemetryError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "human" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            _ => Err(TelemetryError::Format(value.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("--log-format {0:?}: expected \"json\" or \"human\"")]
    Format(String),
    #[error("{LOG_ENV}={value:?}: {source}")]
    Filter {
        value: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("{LOG_ENV} is not valid UTF-8")]
    FilterNotUnicode,
    #[error("logging was already set up: {0}")]
    AlreadyInitialized(String),
}

/// The filter for a `RUST_LOG` value: unset or empty means `info`, and so does any target the
/// value does not name unless it sets a bare level itself: `RUST_LOG=kube=debug` logs kube at
/// debug and the host at info, where plain `EnvFilter` would silence the host.
pub fn filter(spec: Option<&str>) -> Result<EnvFilter, TelemetryError> {
    let spec = spec.unwrap_or("");
    let sets_global_level = spec
        .split(',')
        .map(str::trim)
        .any(|directive| !directive.is_empty() && directive.parse::<LevelFilter>().is_ok());
    let directives = if sets_global_level {
        spec.to_string()
    } else {
        format!("{DEFAULT_LEVEL},{spec}")
    };
    EnvFilter::builder()
        .parse(directives)
        .map_err(|source| TelemetryError::Filter {
            value: spec.to_string(),
            source,
        })
}

/// The subscriber for `format` and `filter`, writing to `writer`; `ansi` colours human lines
/// (only for a terminal: escape codes in a log pipeline are noise).
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    ansi: bool,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi && format == LogFormat::Human)
        .with_writer(writer);
    match format {
        LogFormat::Human => Box::new(builder.finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
    }
}

/// Sets up logging for the process from `format` and `RUST_LOG`. Once per process.
pub fn init(format: LogFormat) -> Result<(), TelemetryError> {
    let spec = match std::env::var(LOG_ENV) {
        Ok(spec) => Some(spec),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => return Err(TelemetryError::FilterNotUnicode),
    };
    let filter = filter(spec.as_deref())?;
    let ansi = std::io::stderr().is_terminal();
    tracing::subscriber::set_global_default(subscriber(format, filter, ansi, std::io::stderr))
        .map_err(|error| TelemetryError::AlreadyInitialized(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[test]
    fn log_formats_parse() {
        assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!("human".parse::<LogFormat>().unwrap(), LogFormat::Human);
        assert_eq!(LogFormat::default(), LogFormat::Human);
        let err = "JSON ".parse::<LogFormat>().unwrap_err();
        assert!(matches!(err, TelemetryError::Format(ref v) if v == "JSON "));
        assert_eq!(
            err.to_string(),
            "--log-format \"JSON \": expected \"json\" or \"human\""
        );
    }

    #[test]
    fn the_clap_flag_accepts_the_same_names() {
        use clap::ValueEnum;
        assert_eq!(
            <LogFormat as ValueEnum>::from_str("json", false).unwrap(),
            LogFormat::Json
        );
        assert_eq!(
            <LogFormat as ValueEnum>::from_str("human", false).unwrap(),
            LogFormat::Human
        );
        assert!(<LogFormat as ValueEnum>::from_str("text", false).is_err());
    }

    #[test]
    fn unset_or_empty_rust_log_means_info() {
        for spec in [None, Some("")] {
            let filter = filter(spec).unwrap();
            assert_eq!(filter.max_level_hint(), Some(LevelFilter::INFO), "{spec:?}");
        }
    }

    #[test]
    fn rust_log_directives_are_honoured() {
        assert_eq!(
            filter(Some("debug")).unwrap().max_level_hint(),
            Some(LevelFilter::DEBUG)
        );
        assert_eq!(
            filter(Some("warn")).unwrap().max_level_hint(),
            Some(LevelFilter::WARN)
        );
        // A bare level given with target directives is the base for the rest.
        let quiet = filter(Some("error,kube=warn")).unwrap();
        assert_eq!(quiet.max_level_hint(), Some(LevelFilter::WARN));
        assert!(!quiet.to_string().contains("info"), "{quiet}");
        // A target directive raises that target; the default still covers the rest.
        let filter = filter(Some("kube=trace,trellis_host::queue=debug")).unwrap();
        assert_eq!(filter.max_level_hint(), Some(LevelFilter::TRACE));
        assert!(filter.to_string().contains("kube=trace"), "{filter}");
        assert!(filter.to_string().contains("info"), "{filter}");
    }

    #[test]
    fn a_bad_rust_log_is_an_error_naming_it() {
        let err = filter(Some("info,kube=loud")).unwrap_err();
        assert!(
            matches!(err, TelemetryError::Filter { ref value, .. } if value == "info,kube=loud")
        );
        assert!(
            err.to_string().starts_with("RUST_LOG=\"info,kube=loud\": "),
            "{err}"
        );
    }

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(format: LogFormat, spec: &str, log: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = subscriber(format, filter(Some(spec)).unwrap(), false, move || {
            writer.clone()
        });
        tracing::subscriber::with_default(subscriber, log);
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn json_lines_carry_fields_and_the_current_span() {
        let out = capture(LogFormat::Json, "info", || {
            let span = tracing::info_span!("reconcile", plugin = "x", key = "default/a");
            let _entered = span.enter();
            tracing::info!(fuel = 42u64, "reconciled");
            tracing::debug!("filtered out");
        });
        let lines: Vec<_> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let event: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(event["level"], "INFO");
        assert_eq!(event["message"], "reconciled");
        assert_eq!(event["fuel"], 42);
        assert_eq!(event["span"]["name"], "reconcile");
        assert_eq!(event["span"]["plugin"], "x");
        assert_eq!(event["span"]["key"], "default/a");
    }

    #[test]
    fn a_target_directive_keeps_the_rest_at_info() {
        let out = capture(LogFormat::Human, "kube=debug", || {
            tracing::info!(target: "trellis_host::ops", "host info kept");
            tracing::debug!(target: "trellis_host::ops", "host debug dropped");
            tracing::debug!(target: "kube::client", "kube debug kept");
            tracing::trace!(target: "kube::client", "kube trace dropped");
        });
        assert!(out.contains("host info kept"), "{out}");
        assert!(out.contains("kube debug kept"), "{out}");
        assert!(!out.contains("dropped"), "{out}");
    }

    #[test]
    fn human_lines_are_not_json_and_respect_the_level() {
        let out = capture(LogFormat::Human, "warn", || {
            tracing::info!("hidden");
            tracing::warn!(lease = "trellis", "stopped leading");
        });
        assert!(!out.contains("hidden"), "{out}");
        assert!(out.contains("WARN"), "{out}");
        assert!(out.contains("stopped leading"), "{out}");
        assert!(out.contains("lease=\"trellis\""), "{out}");
        assert!(serde_json::from_str::<serde_json::Value>(out.trim()).is_err());
    }
}
