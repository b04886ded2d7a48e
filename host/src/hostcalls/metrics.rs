//! Host-call metrics, registered once into the host's registry and labelled per plugin.
//!
//! | metric | labels |
//! |---|---|
//! | `trellis_host_calls_total` | plugin, call, result (`ok` or the WIT error code) |
//! | `trellis_host_call_bytes_total` | plugin, call: bytes handed back to the guest |
//! | `trellis_writes_total` | plugin, verb, result (`issued`, `elided`, `denied`, `failed`, `invalid`) |
//! | `trellis_events_total` | plugin, result (`emitted`, `failed`, `denied`) |
//! | `trellis_guest_log_lines_total` | plugin, level |
//!
//! Host calls are the hot path of a reconcile, so each plugin resolves a series once, on its
//! first use, into a `OnceLock` slot: later increments are one atomic add, with no label
//! hashing and no lock. Series are created lazily (not all ~90 combinations per plugin up
//! front), so /metrics shows what happened, not a wall of zeros.

use std::sync::OnceLock;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::sandbox::{ErrorCode, Level};

/// Declares a label-value enum with its snake_case names (what Prometheus users expect, and
/// what the derive cannot do) and the list of every value.
macro_rules! label_values {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
                EncodeLabelValue::encode(&self.as_str(), encoder)
            }
        }
    };
}

label_values!(
    /// A guest import, as counted (named as in the WIT contract).
    Call {
        Get => "get",
        List => "list",
        Lookup => "lookup",
        Apply => "apply",
        PatchStatus => "patch_status",
        Create => "create",
        Delete => "delete",
        Event => "emit_event",
    }
);

label_values!(
    /// How a host call ended: `ok`, or the error code the guest got.
    CallResult {
        Ok => "ok",
        NotFound => "not_found",
        Conflict => "conflict",
        Forbidden => "forbidden",
        Invalid => "invalid",
        Unavailable => "unavailable",
        BudgetExceeded => "budget_exceeded",
    }
);

impl CallResult {
    pub fn of<T>(result: &Result<T, crate::sandbox::HostError>) -> Self {
        match result {
            Ok(_) => CallResult::Ok,
            Err(e) => match e.code {
                ErrorCode::NotFound => CallResult::NotFound,
                ErrorCode::Conflict => CallResult::Conflict,
                ErrorCode::Forbidden => CallResult::Forbidden,
                ErrorCode::Invalid => CallResult::Invalid,
                ErrorCode::Unavailable => CallResult::Unavailable,
                ErrorCode::BudgetExceeded => CallResult::BudgetExceeded,
            },
        }
    }
}

label_values!(
    /// A write verb, as counted.
    WriteVerb {
        Apply => "apply",
        PatchStatus => "patch_status",
        Create => "create",
        Delete => "delete",
    }
);

label_values!(
    /// What became of a write. Disjoint: every write call is exactly one of these.
    WriteResult {
        /// Sent, and the server accepted it.
        Issued => "issued",
        /// Not sent: the cache already showed its result.
        Elided => "elided",
        /// Not sent: the plugin's permissions do not grant it.
        Denied => "denied",
        /// Sent, and the server refused it, or it failed in transit or timed out.
        Failed => "failed",
        /// Not sent: the object or key was malformed, or the kind is not served.
        Invalid => "invalid",
    }
);

label_values!(
    /// What became of an Event.
    EventResult {
        Emitted => "emitted",
        Failed => "failed",
        Denied => "denied",
    }
);

label_values!(
    /// A guest log level.
    LogLevel {
        Trace => "trace",
        Debug => "debug",
        Info => "info",
        Warn => "warn",
        Error => "error",
    }
);

impl From<Level> for LogLevel {
    fn from(level: Level) -> Self {
        match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CallLabels {
    plugin: String,
    call: Call,
    result: CallResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BytesLabels {
    plugin: String,
    call: Call,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct WriteLabels {
    plugin: String,
    verb: WriteVerb,
    result: WriteResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EventLabels {
    plugin: String,
    result: EventResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LogLabels {
    plugin: String,
    level: LogLevel,
}

/// The metric families, shared by every plugin's [`HostCalls`](super::HostCalls).
#[derive(Clone, Default)]
pub struct HostCallMetrics {
    calls: Family<CallLabels, Counter>,
    bytes: Family<BytesLabels, Counter>,
    writes: Family<WriteLabels, Counter>,
    events: Family<EventLabels, Counter>,
    logs: Family<LogLabels, Counter>,
}

impl std::fmt::Debug for HostCallMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostCallMetrics")
    }
}

impl HostCallMetrics {
    /// Registers the families; call once per registry.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "trellis_host_calls",
            "Host calls made by plugins, by call and result (ok or the error code returned)",
            metrics.calls.clone(),
        );
        registry.register(
            "trellis_host_call_bytes",
            "Bytes handed back to plugins by host calls (objects read, write answers)",
            metrics.bytes.clone(),
        );
        registry.register(
            "trellis_writes",
            "Writes asked for by plugins: issued (accepted by the server), elided (the cache \
             already showed the result), denied (not granted), failed (sent and refused or lost), \
             invalid (malformed, not sent)",
            metrics.writes.clone(),
        );
        registry.register(
            "trellis_events",
            "Kubernetes Events asked for by plugins, by result",
            metrics.events.clone(),
        );
        registry.register(
            "trellis_guest_log_lines",
            "Log lines written by plugins (after the log budget; dropped lines not counted)",
            metrics.logs.clone(),
        );
        metrics
    }

    /// The series of one plugin (created on first use).
    pub(crate) fn plugin(&self, plugin: &str) -> PluginMetrics {
        PluginMetrics {
            families: self.clone(),
            plugin: plugin.to_string(),
            calls: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
            bytes: std::array::from_fn(|_| OnceLock::new()),
            writes: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
            events: std::array::from_fn(|_| OnceLock::new()),
            logs: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Removes every series of `plugin` (when the plugin is removed from the host).
    pub fn forget_plugin(&self, plugin: &str) {
        let plugin = plugin.to_string();
        // Families have no "remove where": rebuild each label set that can exist.
        for &call in Call::ALL {
            self.bytes.remove(&BytesLabels {
                plugin: plugin.clone(),
                call,
            });
            for &result in CallResult::ALL {
                self.calls.remove(&CallLabels {
                    plugin: plugin.clone(),
                    call,
                    result,
                });
            }
        }
        for &verb in WriteVerb::ALL {
            for &result in WriteResult::ALL {
                self.writes.remove(&WriteLabels {
                    plugin: plugin.clone(),
                    verb,
                    result,
                });
            }
        }
        for &result in EventResult::ALL {
            self.events.remove(&EventLabels {
                plugin: plugin.clone(),
                result,
            });
        }
        for &level in LogLevel::ALL {
            self.logs.remove(&LogLabels {
                plugin: plugin.clone(),
                level,
            });
        }
    }
}

const CALLS: usize = Call::ALL.len();
const CALL_RESULTS: usize = CallResult::ALL.len();
const WRITE_VERBS: usize = WriteVerb::ALL.len();
const WRITE_RESULTS: usize = WriteResult::ALL.len();
const EVENT_RESULTS: usize = EventResult::ALL.len();
const LOG_LEVELS: usize = LogLevel::ALL.len();

/// One plugin's series, each resolved on first use.
pub(crate) struct PluginMetrics {
    families: HostCallMetrics,
    plugin: String,
    calls: [[OnceLock<Counter>; CALL_RESULTS]; CALLS],
    bytes: [OnceLock<Counter>; CALLS],
    writes: [[OnceLock<Counter>; WRITE_RESULTS]; WRITE_VERBS],
    events: [OnceLock<Counter>; EVENT_RESULTS],
    logs: [OnceLock<Counter>; LOG_LEVELS],
}

impl PluginMetrics {
    pub(crate) fn call(&self, call: Call, result: CallResult) {
        self.calls[call as usize][result as usize]
            .get_or_init(|| {
                self.families.calls.get_or_create_owned(&CallLabels {
                    plugin: self.plugin.clone(),
                    call,
                    result,
                })
            })
            .inc();
    }

    pub(crate) fn bytes(&self, call: Call, bytes: u64) {
        if bytes == 0 {
            return;
        }
        self.bytes[call as usize]
            .get_or_init(|| {
                self.families.bytes.get_or_create_owned(&BytesLabels {
                    plugin: self.plugin.clone(),
                    call,
                })
            })
            .inc_by(bytes);
    }

    pub(crate) fn write(&self, verb: WriteVerb, result: WriteResult) {
        self.writes[verb as usize][result as usize]
            .get_or_init(|| {
                self.families.writes.get_or_create_owned(&WriteLabels {
                    plugin: self.plugin.clone(),
                    verb,
                    result,
                })
            })
            .inc();
    }

    pub(crate) fn event(&self, result: EventResult) {
        self.events[result as usize]
            .get_or_init(|| {
                self.families.events.get_or_create_owned(&EventLabels {
                    plugin: self.plugin.clone(),
                    result,
                })
            })
            .inc();
    }

    pub(crate) fn log(&self, level: Level) {
        let level = LogLevel::from(level);
        self.logs[level as usize]
            .get_or_init(|| {
                self.families.logs.get_or_create_owned(&LogLabels {
                    plugin: self.plugin.clone(),
                    level,
                })
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    fn text(registry: &Registry) -> String {
        let mut out = String::new();
        encode(&mut out, registry).unwrap();
        out
    }

    #[test]
    fn series_appear_on_first_use_and_count_each_increment() {
        let mut registry = Registry::default();
        let metrics = HostCallMetrics::register(&mut registry);
        let plugin = metrics.plugin("web");
        assert!(
            !text(&registry).contains("plugin=\"web\""),
            "no series before use"
        );
        plugin.call(Call::Get, CallResult::Ok);
        plugin.call(Call::Get, CallResult::Ok);
        plugin.call(Call::Apply, CallResult::Forbidden);
        plugin.bytes(Call::Get, 120);
        plugin.write(WriteVerb::Apply, WriteResult::Elided);
        plugin.event(EventResult::Emitted);
        plugin.log(Level::Warn);
        let out = text(&registry);
        for line in [
            "trellis_host_calls_total{plugin=\"web\",call=\"get\",result=\"ok\"} 2",
            "trellis_host_calls_total{plugin=\"web\",call=\"apply\",result=\"forbidden\"} 1",
            "trellis_host_call_bytes_total{plugin=\"web\",call=\"get\"} 120",
            "trellis_writes_total{plugin=\"web\",verb=\"apply\",result=\"elided\"} 1",
            "trellis_events_total{plugin=\"web\",result=\"emitted\"} 1",
            "trellis_guest_log_lines_total{plugin=\"web\",level=\"warn\"} 1",
        ] {
            assert!(out.contains(line), "missing {line:?} in\n{out}");
        }
        metrics.forget_plugin("web");
        assert!(
            !text(&registry).contains("plugin=\"web\""),
            "series removed"
        );
    }
}
