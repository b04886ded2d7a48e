//! Refusing a host call for want of a grant: one place, so every denial looks the same to the
//! guest (`forbidden`, naming what was asked) and to the operator (a `warn!` naming the plugin,
//! the call, the kind and the namespace — the operator must see a plugin reaching outside its
//! grant, which is a bug in the plugin or in its config).

use crate::cache::Gvk;
use crate::sandbox::{ErrorCode, HostError};

use super::metrics::Call;

/// Logs the denial and builds the guest's `forbidden` answer. `why` completes "plugin P may
/// not <call> <kind> in <namespace>: ..." (e.g. "the kind is not granted").
pub(crate) fn denied(
    plugin: &str,
    call: Call,
    kind: &Gvk,
    namespace: Option<&str>,
    why: &str,
) -> HostError {
    let place = match namespace {
        Some(ns) => format!("in namespace {ns:?}"),
        None => "cluster-wide".to_string(),
    };
    tracing::warn!(
        plugin,
        call = call.as_str(),
        kind = %kind,
        namespace = namespace.unwrap_or(""),
        "host call denied: {why}"
    );
    HostError::new(
        ErrorCode::Forbidden,
        format!(
            "plugin {plugin:?} may not {} {kind} {place}: {why}",
            call.as_str()
        ),
    )
}

/// A malformed request, naming the field at fault.
pub(crate) fn invalid(message: impl Into<String>) -> HostError {
    HostError::new(ErrorCode::Invalid, message)
}
