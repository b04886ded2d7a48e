//! Typed writes through the host.
//!
//! The host sends each write to the API server after a permission check, under the plugin's
//! field manager `trellis-<plugin name>`. Prefer [`apply`] (server-side apply) for objects the
//! plugin owns: it states the desired fields and nothing else, so it never overwrites what
//! other controllers or users set, and repeating it is harmless. [`apply`] forces ownership of
//! conflicting fields, as controllers normally should (a field the plugin is responsible for
//! must not stay stuck because someone `kubectl edit`ed it); [`apply_with`] with
//! `force: false` turns such fields into a `conflict` error instead.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cache::decode;
use crate::{Error, Gvk, Kind, ObjectKey, ObjectRef, json, raw};

fn encode<T: Serialize>(object: &T, what: &str) -> Result<(serde_json::Value, String), Error> {
    let value = serde_json::to_value(object).map_err(|e| Error::encode(what, e))?;
    let text = serde_json::to_string(&value).map_err(|e| Error::encode(what, e))?;
    Ok((value, text))
}

fn written_kind(value: &serde_json::Value) -> Gvk {
    ObjectRef::of_json(value)
        .map(|r| r.kind)
        .unwrap_or_else(|| Gvk::new("", "", "object"))
}

/// Server-side apply with force. `object` is the desired partial object with apiVersion,
/// kind, metadata.name and, for namespaced kinds, metadata.namespace. Returns the object as
/// the server returned it.
///
/// Server-side apply states the fields the plugin is responsible for and nothing else, so it
/// never overwrites what other controllers or users set, and repeating it is harmless. It
/// forces ownership of conflicting fields, as controllers normally should: a field the plugin
/// is responsible for must not stay stuck because someone `kubectl edit`ed it. Use
/// [`apply_with`] and `force: false` to get a `conflict` error instead, and
/// [`apply_if_changed`] to skip writes the cache shows are not needed.
pub fn apply<K: Serialize + DeserializeOwned>(object: &K) -> Result<K, Error> {
    apply_with(object, true)
}

/// Server-side apply, choosing whether to force ownership of conflicting fields.
pub fn apply_with<K: Serialize + DeserializeOwned>(object: &K, force: bool) -> Result<K, Error> {
    let (value, text) = encode(object, "the object to apply")?;
    let returned = raw::apply(&text, force)?;
    decode(&returned, &written_kind(&value), &|| "apply".to_owned())
}

/// The outcome of [`apply_if_changed`], with the object as it is now.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied<K> {
    /// The object did not exist; it was applied.
    Created(K),
    /// The object existed with different values; it was applied.
    Updated(K),
    /// The cache already held every field with the desired value; nothing was written.
    Unchanged(K),
}

impl<K> Applied<K> {
    pub fn object(&self) -> &K {
        match self {
            Applied::Created(k) | Applied::Updated(k) | Applied::Unchanged(k) => k,
        }
    }

    pub fn into_object(self) -> K {
        match self {
            Applied::Created(k) | Applied::Updated(k) | Applied::Unchanged(k) => k,
        }
    }

    /// Whether a write was sent.
    pub fn is_written(&self) -> bool {
        !matches!(self, Applied::Unchanged(_))
    }
}

/// Server-side apply with force, but only when the cache does not already show the desired
/// state (see [`json::contains`] for what counts as "already"). This is how a reconciler stays
/// idempotent: reconciling an unchanged object writes nothing, so its own writes do not keep
/// re-triggering it. Costs one cache read, plus the write when needed.
pub fn apply_if_changed<K: Serialize + DeserializeOwned>(object: &K) -> Result<Applied<K>, Error> {
    let (desired, text) = encode(object, "the object to apply")?;
    let Some(target) = ObjectRef::of_json(&desired) else {
        return Err(Error::permanent(
            "apply_if_changed: the object has no apiVersion, kind or metadata.name",
        ));
    };
    let current = raw::get(&target.kind, &target.key)?;
    if let Some(text) = &current {
        let value: serde_json::Value = decode(text, &target.kind, &|| format!("get {target}"))?;
        if json::contains(&value, &desired) {
            // Decoded from the text again rather than from `value`: `K` then has one
            // deserializer instantiation (from a string) instead of two, which keeps
            // components smaller (see docs/benchmarks/guest-sizes.md).
            let object = decode(text, &target.kind, &|| format!("get {target}"))?;
            return Ok(Applied::Unchanged(object));
        }
    }
    let returned = raw::apply(&text, true)?;
    let object = decode(&returned, &target.kind, &|| format!("apply {target}"))?;
    Ok(match current {
        Some(_) => Applied::Updated(object),
        None => Applied::Created(object),
    })
}

/// JSON merge patch of the status subresource of an existing object of kind `K`.
pub fn patch_status<'a, K: Kind + DeserializeOwned>(
    namespace: impl Into<Option<&'a str>>,
    name: &str,
    merge_patch: &impl Serialize,
) -> Result<K, Error> {
    patch_status_as(&K::gvk(), namespace, name, merge_patch)
}

/// [`patch_status`] with an explicit kind, decoding into any serde type.
pub fn patch_status_as<'a, T: DeserializeOwned>(
    kind: &Gvk,
    namespace: impl Into<Option<&'a str>>,
    name: &str,
    merge_patch: &impl Serialize,
) -> Result<T, Error> {
    let key = ObjectKey::new(namespace, name);
    let (_, patch) = encode(merge_patch, "the status patch")?;
    let returned = raw::patch_status(kind, &key, &patch)?;
    decode(&returned, kind, &|| format!("patch status of {kind} {key}"))
}

/// Creates an object (with `metadata.name` or `metadata.generateName`); `conflict` when it
/// already exists. Returns the created object.
pub fn create<K: Serialize + DeserializeOwned>(object: &K) -> Result<K, Error> {
    let (value, text) = encode(object, "the object to create")?;
    let returned = raw::create(&text)?;
    decode(&returned, &written_kind(&value), &|| "create".to_owned())
}

/// Deletes the object of kind `K` with this namespace and name; `not-found` when it is gone.
pub fn delete<'a, K: Kind>(namespace: impl Into<Option<&'a str>>, name: &str) -> Result<(), Error> {
    raw::delete(&K::gvk(), &ObjectKey::new(namespace, name))
}
