//! The informer cache: a compact, indexed store of one watch's objects.
//!
//! One [`Cache`] per informer (per distinct watch spec). The informer's task is its only
//! writer; readers are plugin host calls (`get`, `list`, `lookup` in the WIT contract) running
//! on worker threads, so the store sits behind a read-write lock held only for the length of a
//! map operation — a reader never waits on the network, and the writer never waits on a guest.
//!
//! What an object costs: its transformed JSON as shared bytes ([`JsonText`]) plus the parsed
//! fields in [`Metadata`] and the values of declared indexes — no parsed tree. Reads hand out
//! `Arc<CachedObject>`, whose JSON the host passes to the guest without re-serializing.
//!
//! Indexes: `namespace` (the primary map's order), `owner` (controller owner UID), `label`
//! (`key=value`) and the ones declared in config by [`JsonPath`]. They are maintained on every
//! insert, replace and delete by one function that enumerates an object's entries, so an
//! update that changes an indexed field moves the object between postings atomically (under
//! the write lock) and a delete leaves nothing behind.

mod index;
mod key;
mod object;
mod path;
mod store;

use std::collections::BTreeSet;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::value::RawValue;
use trellis_selector::{LabelOperator, LabelSelector};

pub use index::{BUILT_IN as BUILT_IN_INDEXES, IndexSpec, LABEL, NAMESPACE, OWNER};
pub use key::{Gvk, ObjectKey};
pub use object::{
    CachedObject, ControllerRef, JsonText, LabelSet, Metadata, ObjectError, ObjectRef,
};
pub use path::{JsonPath, PathError, Step};
pub(crate) use path::{elements as path_elements, entries as path_entries};

use store::Store;

/// Why a read was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    #[error("no index {index:?} for {kind}; available: {available}")]
    NoSuchIndex {
        kind: String,
        index: String,
        available: String,
    },
    #[error("label index values are key=value, got {value:?}")]
    BadLabelValue { value: String },
}

/// What an upsert did: the stored object, and the one it replaced.
#[derive(Debug)]
pub struct Upserted {
    pub new: ObjectRef,
    pub old: Option<ObjectRef>,
}

/// A compact, indexed store of the objects of one kind seen by one watch spec.
#[derive(Debug)]
pub struct Cache {
    kind: Gvk,
    indexes: Vec<IndexSpec>,
    store: RwLock<Store>,
}

impl Cache {
    pub fn new(kind: Gvk, indexes: Vec<IndexSpec>) -> Self {
        let store = RwLock::new(Store::new(indexes.len()));
        Self {
            kind,
            indexes,
            store,
        }
    }

    pub fn kind(&self) -> &Gvk {
        &self.kind
    }

    /// The declared index names (built-ins not included).
    pub fn declared_indexes(&self) -> impl Iterator<Item = &str> {
        self.indexes.iter().map(|i| i.name.as_str())
    }

    pub fn len(&self) -> usize {
        self.store.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate memory held by the cached objects (JSON, parsed fields, map entries).
    pub fn bytes(&self) -> usize {
        self.store.read().bytes()
    }

    pub fn get(&self, key: &ObjectKey) -> Option<ObjectRef> {
        self.store.read().get(key).cloned()
    }

    /// Every key, in order. What a late subscriber or a resync replays.
    pub fn keys(&self) -> Vec<ObjectKey> {
        self.store
            .read()
            .list(None)
            .map(|o| o.key().clone())
            .collect()
    }

    /// Objects in `namespace` (all when `None`) matching `selector`, ordered by namespace then
    /// name. When the selector pins a label to one or a few values, the label index supplies
    /// the candidates instead of a scan.
    pub fn list(&self, namespace: Option<&str>, selector: &LabelSelector) -> Vec<ObjectRef> {
        let store = self.store.read();
        let narrowest = selector
            .requirements()
            .iter()
            .filter(|r| {
                matches!(
                    r.operator(),
                    LabelOperator::Equals | LabelOperator::DoubleEquals | LabelOperator::In
                )
            })
            .min_by_key(|r| r.values().len());
        let in_namespace = |o: &ObjectRef| namespace.is_none() || o.key().namespace() == namespace;
        match narrowest {
            Some(requirement) => {
                let mut found: Vec<ObjectRef> = requirement
                    .values()
                    .iter()
                    .flat_map(|value| store.by_label(requirement.key(), value))
                    .filter(|o| in_namespace(o) && selector.matches(o.labels()))
                    .collect();
                found.sort_unstable_by(|a, b| a.key().cmp(b.key()));
                found.dedup_by(|a, b| a.key() == b.key());
                found
            }
            None => store
                .list(namespace)
                .filter(|o| selector.matches(o.labels()))
                .cloned()
                .collect(),
        }
    }

    /// Objects whose index `index` holds `value`, ordered by namespace then name.
    pub fn lookup(&self, index: &str, value: &str) -> Result<Vec<ObjectRef>, CacheError> {
        let store = self.store.read();
        match index {
            NAMESPACE => Ok(store.list(Some(value)).cloned().collect()),
            OWNER => Ok(store.by_owner(value)),
            LABEL => {
                let (key, label) =
                    value
                        .split_once('=')
                        .ok_or_else(|| CacheError::BadLabelValue {
                            value: value.to_string(),
                        })?;
                Ok(store.by_label(key, label))
            }
            declared => {
                let position = self.indexes.iter().position(|i| i.name == declared);
                position
                    .map(|i| store.by_declared(i, value))
                    .ok_or_else(|| {
                        let available: BTreeSet<&str> = BUILT_IN_INDEXES
                            .into_iter()
                            .chain(self.declared_indexes())
                            .collect();
                        CacheError::NoSuchIndex {
                            kind: self.kind.to_string(),
                            index: declared.to_string(),
                            available: available.into_iter().collect::<Vec<_>>().join(", "),
                        }
                    })
            }
        }
    }

    /// Builds the object to store: `source` is the object as the server sent it (indexes see
    /// every field, whatever the transform keeps), `json` what the cache keeps and hands out.
    pub fn build(&self, source: &RawValue, meta: Metadata, json: JsonText) -> CachedObject {
        let index_values = self
            .indexes
            .iter()
            .map(|index| {
                let mut values = index.path.scalars(source);
                values.sort_unstable();
                values.dedup();
                values
            })
            .collect();
        CachedObject::new(meta, json, index_values)
    }

    /// Inserts or replaces.
    pub fn upsert(&self, object: CachedObject) -> Upserted {
        let new = Arc::new(object);
        let old = self.store.write().upsert(new.clone());
        Upserted { new, old }
    }

    /// Whether `namespace` (any namespace when `None`) holds an object.
    pub fn has_any(&self, namespace: Option<&str>) -> bool {
        self.store.read().has_any(namespace)
    }

    pub fn remove(&self, key: &ObjectKey) -> Option<ObjectRef> {
        self.store.write().remove(key)
    }

    /// After a relist of `namespace` (everything when `None`): removes the objects the list no
    /// longer had — the ghosts of deletes missed while the watch was down — and returns them.
    pub fn remove_unless(
        &self,
        namespace: Option<&str>,
        keep: impl FnMut(&ObjectKey) -> bool,
    ) -> Vec<ObjectRef> {
        self.store.write().remove_unless(namespace, keep)
    }
}

#[cfg(test)]
mod tests;
