//! [`PluginHost`]: what a guest's imports do, implemented outside the sandbox.
//!
//! The sandbox owns the guest side of every import (budget accounting, log caps, tracing) and
//! forwards what is left to this trait; the `hostcalls` module (issue 6) implements it over the
//! real cache and API server with the plugin's permissions, tests implement it in memory. The
//! split keeps invariant 4 (a guest's budget covers what it makes the host do) in one place: an
//! implementation is only reached for calls the budget admitted, and is never asked to enforce
//! a budget itself.
//!
//! Implementations must be cancel-safe: when a call reaches its deadline while a host call is
//! pending, the sandbox drops that future.
//!
//! Implement it with `#[trellis_host::sandbox::async_trait]` on the impl block.

use super::bindings::trellis::plugin::{events, log, types};

/// The attribute implementations put on their `impl PluginHost` block (async methods in an
/// object-safe trait), re-exported so implementers need no extra dependency.
pub use wasmtime_wasi::async_trait;

pub use events::EventType;
pub use log::Level;
pub use types::{Action, ErrorCode, Gvk, HostError, ObjectKey, ReconcileError, ReconcileRequest};

/// A structured log line as the sandbox wrote it to tracing, after truncation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord<'a> {
    pub level: Level,
    pub message: &'a str,
    pub fields: &'a [(String, String)],
    /// True when the message or fields were cut to fit the log budget.
    pub truncated: bool,
}

/// The host services behind a guest's imports, for one plugin.
///
/// Read answers are JSON strings exactly as cached. `max_bytes` on list-like reads is the byte
/// budget left in this call: an implementation may stop building an answer larger than that
/// and return `budget-exceeded` (the sandbox refuses it anyway, and spends the budget, so a
/// guest cannot make the host build it again).
#[async_trait]
pub trait PluginHost: Send + Sync {
    /// `cache.get`.
    async fn get(&self, kind: &Gvk, key: &ObjectKey) -> Result<Option<String>, HostError>;

    /// `cache.list`.
    async fn list(
        &self,
        kind: &Gvk,
        namespace: Option<&str>,
        label_selector: Option<&str>,
        max_bytes: u64,
    ) -> Result<Vec<String>, HostError>;

    /// `cache.lookup`.
    async fn lookup(
        &self,
        kind: &Gvk,
        index: &str,
        value: &str,
        max_bytes: u64,
    ) -> Result<Vec<String>, HostError>;

    /// `writes.apply`.
    async fn apply(&self, object: &str, force: bool) -> Result<String, HostError>;

    /// `writes.patch-status`.
    async fn patch_status(
        &self,
        kind: &Gvk,
        key: &ObjectKey,
        merge_patch: &str,
    ) -> Result<String, HostError>;

    /// `writes.create`.
    async fn create(&self, object: &str) -> Result<String, HostError>;

    /// `writes.delete`.
    async fn delete(&self, kind: &Gvk, key: &ObjectKey) -> Result<(), HostError>;

    /// `events.emit`. `note` is already cut to 1 KiB.
    async fn emit_event(
        &self,
        regarding_kind: &Gvk,
        regarding: &ObjectKey,
        event_type: EventType,
        reason: &str,
        note: &str,
    ) -> Result<(), HostError>;

    /// `log.log`, after the sandbox has charged, truncated and written the line to tracing
    /// with the plugin and key attached. Not called for dropped lines. The default does
    /// nothing more; override it to record logs elsewhere (a test harness, metrics).
    fn log(&self, record: &LogRecord<'_>) {
        let _ = record;
    }
}

impl HostError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}
