//! Kubernetes Events about objects.
//!
//! The contract says an event is never worth failing a reconcile for (the host may drop or
//! aggregate them), so [`event`] swallows failures after logging them; [`try_event`] is there
//! for the rare plugin that must know.

use crate::{Error, EventType, Level, ObjectRef, raw};

/// Records an event about `regarding`. `reason` is a short UpperCamelCase word (`Created`,
/// `QuotaInvalid`), `note` a human sentence (the host truncates it to 1 KiB). A failure is
/// logged at warn level and otherwise ignored.
pub fn event(regarding: &ObjectRef, event_type: EventType, reason: &str, note: &str) {
    if let Err(e) = try_event(regarding, event_type, reason, note) {
        raw::log(
            Level::Warn,
            "event not recorded",
            &[("error".to_owned(), e.to_string())],
        );
    }
}

/// Records an event, reporting failures (`forbidden`, `budget-exceeded`).
pub fn try_event(
    regarding: &ObjectRef,
    event_type: EventType,
    reason: &str,
    note: &str,
) -> Result<(), Error> {
    raw::emit_event(regarding, event_type, reason, note)
}
