//! The wasm32 backend: the component's imports, through the wit-bindgen bindings.
//!
//! This is the only module that names generated types; it converts them to and from the SDK's
//! own at the boundary.

use super::{HostError, HostResult};
use crate::__bindings::trellis::plugin::{cache, events, log, types, writes};
use crate::{ErrorCode, EventType, Gvk, Level, ObjectKey};

fn gvk(kind: &Gvk) -> types::Gvk {
    types::Gvk {
        group: kind.group.clone(),
        version: kind.version.clone(),
        kind: kind.kind.clone(),
    }
}

fn key(key: &ObjectKey) -> types::ObjectKey {
    types::ObjectKey {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
    }
}

fn host_error(e: types::HostError) -> HostError {
    let code = match e.code {
        types::ErrorCode::NotFound => ErrorCode::NotFound,
        types::ErrorCode::Conflict => ErrorCode::Conflict,
        types::ErrorCode::Forbidden => ErrorCode::Forbidden,
        types::ErrorCode::Invalid => ErrorCode::Invalid,
        types::ErrorCode::Unavailable => ErrorCode::Unavailable,
        types::ErrorCode::BudgetExceeded => ErrorCode::BudgetExceeded,
    };
    HostError::new(code, e.message)
}

pub(crate) fn get(kind: &Gvk, k: &ObjectKey) -> HostResult<Option<String>> {
    cache::get(&gvk(kind), &key(k)).map_err(host_error)
}

pub(crate) fn list(
    kind: &Gvk,
    namespace: Option<&str>,
    selector: Option<&str>,
) -> HostResult<Vec<String>> {
    cache::list(&gvk(kind), namespace, selector).map_err(host_error)
}

pub(crate) fn lookup(kind: &Gvk, index: &str, value: &str) -> HostResult<Vec<String>> {
    cache::lookup(&gvk(kind), index, value).map_err(host_error)
}

pub(crate) fn apply(object: &str, force: bool) -> HostResult<String> {
    writes::apply(object, force).map_err(host_error)
}

pub(crate) fn patch_status(kind: &Gvk, k: &ObjectKey, merge_patch: &str) -> HostResult<String> {
    writes::patch_status(&gvk(kind), &key(k), merge_patch).map_err(host_error)
}

pub(crate) fn create(object: &str) -> HostResult<String> {
    writes::create(object).map_err(host_error)
}

pub(crate) fn delete(kind: &Gvk, k: &ObjectKey) -> HostResult<()> {
    writes::delete(&gvk(kind), &key(k)).map_err(host_error)
}

pub(crate) fn emit(
    kind: &Gvk,
    k: &ObjectKey,
    event_type: EventType,
    reason: &str,
    note: &str,
) -> HostResult<()> {
    let event_type = match event_type {
        EventType::Normal => events::EventType::Normal,
        EventType::Warning => events::EventType::Warning,
    };
    events::emit(&gvk(kind), &key(k), event_type, reason, note).map_err(host_error)
}

pub(crate) fn log(level: Level, message: &str, fields: &[(String, String)]) {
    let level = match level {
        Level::Trace => log::Level::Trace,
        Level::Debug => log::Level::Debug,
        Level::Info => log::Level::Info,
        Level::Warn => log::Level::Warn,
        Level::Error => log::Level::Error,
    };
    log::log(level, message, fields);
}
