//! The native backend: the imports served by the [`Harness`](crate::testing::Harness) running
//! the code on this thread, so plugin code is tested with plain `cargo test`.
//!
//! Each call first takes a failure the test queued for it; otherwise it asks the fake cache and
//! records successful writes. Outside a harness every call is `unavailable` with a message
//! saying how to run plugin code natively; logs still go to stderr.

use serde_json::Value;

use super::{HostError, HostResult};
use crate::testing::{LogLine, Operation, RecordedEvent, State, Write, with_active};
use crate::{ErrorCode, EventType, Gvk, Level, ObjectKey, ObjectRef};

const NO_HARNESS: &str = "no trellis_guest::testing::Harness is running this code: on the native target, \
     call plugin code through Harness::reconcile or Harness::run";

fn call<T>(operation: Operation, f: impl FnOnce(&mut State) -> HostResult<T>) -> HostResult<T> {
    with_active(|state| match state.take_fault(operation) {
        Some(fault) => Err(fault),
        None => f(state),
    })
    .unwrap_or_else(|| Err(HostError::new(ErrorCode::Unavailable, NO_HARNESS)))
}

fn text(object: &Value) -> String {
    object.to_string()
}

/// The text a plugin sent, for the record; the store has already rejected text that is not JSON.
fn sent(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

pub(crate) fn get(kind: &Gvk, key: &ObjectKey) -> HostResult<Option<String>> {
    call(Operation::Get, |s| {
        Ok(s.cache.get(kind, key).as_ref().map(text))
    })
}

pub(crate) fn list(
    kind: &Gvk,
    namespace: Option<&str>,
    selector: Option<&str>,
) -> HostResult<Vec<String>> {
    call(Operation::List, |s| {
        Ok(s.cache
            .list(kind, namespace, selector)?
            .iter()
            .map(text)
            .collect())
    })
}

pub(crate) fn lookup(kind: &Gvk, index: &str, value: &str) -> HostResult<Vec<String>> {
    call(Operation::Lookup, |s| {
        Ok(s.cache
            .lookup(kind, index, value)?
            .iter()
            .map(text)
            .collect())
    })
}

pub(crate) fn apply(object: &str, force: bool) -> HostResult<String> {
    call(Operation::Apply, |s| {
        let result = s.cache.apply(object)?;
        s.writes.push(Write::Apply {
            object: sent(object),
            force,
        });
        Ok(text(&result))
    })
}

pub(crate) fn patch_status(kind: &Gvk, key: &ObjectKey, merge_patch: &str) -> HostResult<String> {
    call(Operation::PatchStatus, |s| {
        let result = s.cache.patch_status(kind, key, merge_patch)?;
        s.writes.push(Write::PatchStatus {
            kind: kind.clone(),
            key: key.clone(),
            patch: sent(merge_patch),
        });
        Ok(text(&result))
    })
}

pub(crate) fn create(object: &str) -> HostResult<String> {
    call(Operation::Create, |s| {
        let result = s.cache.create(object)?;
        s.writes.push(Write::Create {
            object: sent(object),
        });
        Ok(text(&result))
    })
}

pub(crate) fn delete(kind: &Gvk, key: &ObjectKey) -> HostResult<()> {
    call(Operation::Delete, |s| {
        s.cache.delete(kind, key)?;
        s.writes.push(Write::Delete {
            kind: kind.clone(),
            key: key.clone(),
        });
        Ok(())
    })
}

pub(crate) fn emit(
    kind: &Gvk,
    key: &ObjectKey,
    event_type: EventType,
    reason: &str,
    note: &str,
) -> HostResult<()> {
    call(Operation::Event, |s| {
        s.events.push(RecordedEvent {
            regarding: ObjectRef::new(kind.clone(), key.clone()),
            event_type,
            reason: reason.to_owned(),
            note: note.to_owned(),
        });
        Ok(())
    })
}

pub(crate) fn log(level: Level, message: &str, fields: &[(String, String)]) {
    // Also to stderr, which the test runner captures and shows for failing tests.
    let rendered: String = fields.iter().map(|(k, v)| format!(" {k}={v}")).collect();
    eprintln!("{} {message}{rendered}", level.as_str());
    with_active(|s| {
        s.logs.push(LogLine {
            level,
            message: message.to_owned(),
            fields: fields.to_vec(),
        })
    });
}
