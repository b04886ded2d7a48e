//! Cache reads (`get`, `list`, `lookup`): answered from the plugin's caches only, never from
//! the API server, and only inside the plugin's read grants.
//!
//! Order of checks, the same for every read: the kind must be granted (else `forbidden`), the
//! plugin must have a cache of it (else `forbidden`, naming the missing watch), the key or
//! namespace must fit the kind's scope (else `invalid`), the namespace must be granted (else
//! `forbidden`). A read across namespaces under a grant that names namespaces answers from
//! those namespaces only — the others are not an error, just not visible.
//!
//! Answers are the cached JSON text, copied once into the `String` the sandbox hands to the
//! guest, never parsed or re-serialized. A list or lookup stops building as soon as its answer
//! would not fit the bytes left in the call's budget (`max_bytes`) and answers
//! `budget-exceeded`: a guest cannot make the host copy 100k objects to then refuse them.

use std::collections::BTreeSet;
use std::sync::Arc;

use trellis_selector::LabelSelector;

use crate::cache::{CacheError, Gvk, NAMESPACE, ObjectKey, ObjectRef};
use crate::permissions::{Permissions, Scope};
use crate::sandbox::{ErrorCode, HostError};

use super::caches::{KindCache, ReadableCaches};
use super::denial::{denied, invalid};
use super::metrics::Call;

/// What a list element costs the guest beyond its text — the sandbox's own accounting
/// (`sandbox::imports`), so that stopping early here never refuses an answer the sandbox
/// would have accepted.
const LIST_ELEMENT_OVERHEAD: u64 = 8;

/// One plugin's reads.
pub(crate) struct Reader {
    plugin: Arc<str>,
    permissions: Arc<Permissions>,
    caches: Arc<ReadableCaches>,
}

/// A read that passed the kind checks.
struct Granted<'a> {
    cache: &'a KindCache,
    scope: Scope<'a>,
}

impl Reader {
    pub(crate) fn new(
        plugin: Arc<str>,
        permissions: Arc<Permissions>,
        caches: Arc<ReadableCaches>,
    ) -> Self {
        Self {
            plugin,
            permissions,
            caches,
        }
    }

    /// The kind is granted and cached.
    fn granted(
        &self,
        call: Call,
        kind: &Gvk,
        namespace: Option<&str>,
    ) -> Result<Granted<'_>, HostError> {
        let Some(scope) = self.permissions.read_scope(kind) else {
            return Err(denied(
                &self.plugin,
                call,
                kind,
                namespace,
                "the kind is not granted for reading",
            ));
        };
        let Some(cache) = self.caches.get(kind) else {
            return Err(denied(
                &self.plugin,
                call,
                kind,
                namespace,
                "the kind is granted but no watch of this plugin caches it",
            ));
        };
        if !cache.namespaced && matches!(scope, Scope::Namespaces(_)) {
            return Err(denied(
                &self.plugin,
                call,
                kind,
                namespace,
                "the kind is cluster-scoped and the grant names namespaces, which never cover \
                 cluster-scoped objects",
            ));
        }
        Ok(Granted { cache, scope })
    }

    /// The namespace fits the kind's scope and the grant.
    fn namespace_allowed(
        &self,
        call: Call,
        kind: &Gvk,
        granted: &Granted<'_>,
        namespace: Option<&str>,
        field: &str,
    ) -> Result<(), HostError> {
        match (granted.cache.namespaced, namespace) {
            (true, None) if call == Call::Get => {
                return Err(invalid(format!(
                    "{} {kind}: {field} is missing; the kind is namespaced",
                    call.as_str()
                )));
            }
            (false, Some(ns)) => {
                return Err(invalid(format!(
                    "{} {kind}: {field} is {ns:?}, but the kind is cluster-scoped",
                    call.as_str()
                )));
            }
            _ => {}
        }
        if namespace.is_some() && !granted.scope.covers(namespace) {
            return Err(denied(
                &self.plugin,
                call,
                kind,
                namespace,
                "the namespace is not granted for reading",
            ));
        }
        Ok(())
    }

    /// `cache.get`.
    pub(crate) fn get(&self, kind: &Gvk, key: &ObjectKey) -> Result<Option<String>, HostError> {
        let namespace = key.namespace();
        let granted = self.granted(Call::Get, kind, namespace)?;
        self.namespace_allowed(Call::Get, kind, &granted, namespace, "key.namespace")?;
        Ok(granted
            .cache
            .cache
            .get(key)
            .map(|o| o.json().as_str().to_string()))
    }

    /// `cache.list`.
    pub(crate) fn list(
        &self,
        kind: &Gvk,
        namespace: Option<&str>,
        label_selector: Option<&str>,
        max_bytes: u64,
    ) -> Result<Vec<String>, HostError> {
        let granted = self.granted(Call::List, kind, namespace)?;
        self.namespace_allowed(Call::List, kind, &granted, namespace, "namespace")?;
        let selector = match label_selector.filter(|s| !s.trim().is_empty()) {
            None => LabelSelector::everything(),
            Some(text) => LabelSelector::parse(text)
                .map_err(|e| invalid(format!("list {kind}: labelSelector {text:?}: {e}")))?,
        };
        let cache = &granted.cache.cache;
        let found: Vec<ObjectRef> = match (namespace, granted.scope) {
            (Some(ns), _) => cache.list(Some(ns), &selector),
            (None, Scope::All) => cache.list(None, &selector),
            (None, Scope::Namespaces(list)) => {
                // Sorted and deduplicated, so the concatenation keeps the contract's order
                // (namespace, then name).
                let namespaces: BTreeSet<&str> = list.iter().map(String::as_str).collect();
                namespaces
                    .into_iter()
                    .flat_map(|ns| cache.list(Some(ns), &selector))
                    .collect()
            }
        };
        answer(Call::List, kind, found, max_bytes)
    }

    /// `cache.lookup`.
    pub(crate) fn lookup(
        &self,
        kind: &Gvk,
        index: &str,
        value: &str,
        max_bytes: u64,
    ) -> Result<Vec<String>, HostError> {
        let by_namespace = index == NAMESPACE;
        let namespace = by_namespace.then_some(value);
        let granted = self.granted(Call::Lookup, kind, namespace)?;
        if by_namespace {
            self.namespace_allowed(Call::Lookup, kind, &granted, namespace, "value")?;
        }
        let found = granted
            .cache
            .cache
            .lookup(index, value)
            .map_err(|e| match e {
                CacheError::NoSuchIndex { .. } => {
                    HostError::new(ErrorCode::NotFound, format!("lookup: {e}"))
                }
                CacheError::BadLabelValue { .. } => {
                    invalid(format!("lookup {kind} by index {index:?}: {e}"))
                }
            })?;
        let visible = found
            .into_iter()
            .filter(|o| granted.scope.covers(o.key().namespace()))
            .collect();
        answer(Call::Lookup, kind, visible, max_bytes)
    }
}

/// The objects' JSON, or `budget-exceeded` as soon as it would not fit `max_bytes`.
fn answer(
    call: Call,
    kind: &Gvk,
    objects: Vec<ObjectRef>,
    max_bytes: u64,
) -> Result<Vec<String>, HostError> {
    let mut bytes = 0u64;
    let mut out = Vec::with_capacity(objects.len());
    for object in &objects {
        let json = object.json().as_str();
        bytes += json.len() as u64 + LIST_ELEMENT_OVERHEAD;
        if bytes > max_bytes {
            return Err(HostError::new(
                ErrorCode::BudgetExceeded,
                format!(
                    "{} {kind}: the answer ({} objects) exceeds the {max_bytes} bytes left in \
                     this call's budget",
                    call.as_str(),
                    objects.len()
                ),
            ));
        }
        out.push(json.to_string());
    }
    Ok(out)
}
