//! The imports at the JSON-text level, for plugins that already hold JSON or want to send
//! exactly the bytes they wrote (the typed API in the crate root is built on these).
//!
//! Each function is one host call, charged to the call's budget. Errors name the operation
//! and its object, e.g. `apply v1 ConfigMap default/x: forbidden: ...`.

use crate::backend::{self, HostError};
use crate::{Error, EventType, Gvk, Level, ObjectKey, ObjectRef};

fn failed(operation: impl FnOnce() -> String) -> impl FnOnce(HostError) -> Error {
    move |e| Error::host(operation(), e.code, e.message)
}

/// Names an object given as JSON text for an error message, as far as the text allows.
fn describe_object(object: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(object) {
        Ok(value) => match ObjectRef::of_json(&value) {
            Some(r) => r.to_string(),
            None => "an object without apiVersion, kind or metadata.name".to_owned(),
        },
        Err(_) => "an object that is not valid JSON".to_owned(),
    }
}

/// The object with this key in the host's cache, or `None`.
pub fn get(kind: &Gvk, key: &ObjectKey) -> Result<Option<String>, Error> {
    backend::get(kind, key).map_err(failed(|| format!("get {kind} {key}")))
}

/// Objects of a kind in one namespace (all readable ones when `None`), filtered by a label
/// selector in full Kubernetes syntax (all objects when `None`), ordered by namespace then name.
pub fn list(
    kind: &Gvk,
    namespace: Option<&str>,
    label_selector: Option<&str>,
) -> Result<Vec<String>, Error> {
    backend::list(kind, namespace, label_selector).map_err(failed(|| {
        let mut op = format!("list {kind}");
        if let Some(ns) = namespace {
            op.push_str(&format!(" in namespace {ns}"));
        }
        if let Some(selector) = label_selector {
            op.push_str(&format!(" with selector {selector:?}"));
        }
        op
    }))
}

/// Objects of a kind whose index `index` holds `value` (see [`crate::index`]).
pub fn lookup(kind: &Gvk, index: &str, value: &str) -> Result<Vec<String>, Error> {
    backend::lookup(kind, index, value)
        .map_err(failed(|| format!("lookup {kind} by {index}={value}")))
}

/// Server-side apply of a (partial) object under the plugin's field manager; `force` takes
/// over fields owned by other managers. Returns the object as the server returned it.
pub fn apply(object: &str, force: bool) -> Result<String, Error> {
    backend::apply(object, force).map_err(failed(|| format!("apply {}", describe_object(object))))
}

/// JSON merge patch of the status subresource. Returns the patched object.
pub fn patch_status(kind: &Gvk, key: &ObjectKey, merge_patch: &str) -> Result<String, Error> {
    backend::patch_status(kind, key, merge_patch)
        .map_err(failed(|| format!("patch status of {kind} {key}")))
}

/// Creates an object (`metadata.name` or `metadata.generateName`). Returns the created object.
pub fn create(object: &str) -> Result<String, Error> {
    backend::create(object).map_err(failed(|| format!("create {}", describe_object(object))))
}

/// Deletes an object; an object already gone is `not-found`.
pub fn delete(kind: &Gvk, key: &ObjectKey) -> Result<(), Error> {
    backend::delete(kind, key).map_err(failed(|| format!("delete {kind} {key}")))
}

/// Records a Kubernetes Event about `regarding`.
pub fn emit_event(
    regarding: &ObjectRef,
    event_type: EventType,
    reason: &str,
    note: &str,
) -> Result<(), Error> {
    backend::emit(&regarding.kind, &regarding.key, event_type, reason, note)
        .map_err(failed(|| format!("event {reason} about {regarding}")))
}

/// Writes one structured log line. Never fails: past the plugin's log budget the host drops
/// lines and counts them.
pub fn log(level: Level, message: &str, fields: &[(String, String)]) {
    backend::log(level, message, fields)
}
