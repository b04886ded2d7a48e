//! The unlocked data structure behind [`Cache`](super::Cache): objects in slots, a primary map
//! ordered by key, and the indexes.
//!
//! Slots give every object a 4-byte number for index postings; the primary map's order
//! (namespace, then name) makes the built-in namespace index a range scan and gives lists the
//! order the WIT contract promises.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::ops::Bound;

use super::index::Index;
use super::key::ObjectKey;
use super::object::{CachedObject, ObjectRef};

/// Memory the store spends per object beyond the object itself: its primary-map entry and slot.
const PER_OBJECT_OVERHEAD: usize = std::mem::size_of::<ObjectKey>()
    + std::mem::size_of::<u32>()
    + std::mem::size_of::<Option<ObjectRef>>();

#[derive(Debug)]
pub(crate) struct Store {
    by_key: BTreeMap<ObjectKey, u32>,
    slots: Vec<Option<ObjectRef>>,
    /// Free slots, lowest first: reusing low slots lets the table's tail empty out and shrink.
    free: BinaryHeap<Reverse<u32>>,
    owner: Index,
    label: Index,
    declared: Vec<Index>,
    bytes: usize,
}

impl Store {
    pub(crate) fn new(declared_indexes: usize) -> Self {
        Self {
            by_key: BTreeMap::new(),
            slots: Vec::new(),
            free: BinaryHeap::new(),
            owner: Index::default(),
            label: Index::default(),
            declared: (0..declared_indexes).map(|_| Index::default()).collect(),
            bytes: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn get(&self, key: &ObjectKey) -> Option<&ObjectRef> {
        self.by_key.get(key).and_then(|slot| self.slot(*slot))
    }

    fn slot(&self, slot: u32) -> Option<&ObjectRef> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// Inserts or replaces the object with the same key; returns the replaced one.
    pub(crate) fn upsert(&mut self, object: ObjectRef) -> Option<ObjectRef> {
        match self.by_key.get(object.key()) {
            Some(&slot) => {
                let old = self.slots[slot as usize].take();
                if let Some(old) = &old {
                    self.unindex(old, slot);
                }
                self.index(&object, slot);
                self.slots[slot as usize] = Some(object);
                old
            }
            None => {
                let slot = match self.free.pop() {
                    Some(Reverse(slot)) => slot,
                    None => {
                        self.slots.push(None);
                        u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
                    }
                };
                self.index(&object, slot);
                self.by_key.insert(object.key().clone(), slot);
                self.slots[slot as usize] = Some(object);
                None
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &ObjectKey) -> Option<ObjectRef> {
        let slot = self.by_key.remove(key)?;
        let old = self.slots[slot as usize].take()?;
        self.unindex(&old, slot);
        self.free.push(Reverse(slot));
        self.shrink_if_sparse();
        Some(old)
    }

    /// Removes every object in `namespace` (every object when `None`) for which `keep` is
    /// false; returns them in key order.
    pub(crate) fn remove_unless(
        &mut self,
        namespace: Option<&str>,
        mut keep: impl FnMut(&ObjectKey) -> bool,
    ) -> Vec<ObjectRef> {
        let doomed: Vec<ObjectKey> = self
            .range(namespace)
            .filter(|(key, _)| !keep(key))
            .map(|(key, _)| key.clone())
            .collect();
        doomed.iter().filter_map(|key| self.remove(key)).collect()
    }

    pub(crate) fn has_any(&self, namespace: Option<&str>) -> bool {
        self.range(namespace).next().is_some()
    }

    /// Objects in `namespace` (all when `None`), in key order.
    pub(crate) fn list<'a>(
        &'a self,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a ObjectRef> + 'a {
        self.range(namespace)
            .filter_map(|(_, slot)| self.slot(*slot))
    }

    fn range<'a>(
        &'a self,
        namespace: Option<&'a str>,
    ) -> Box<dyn Iterator<Item = (&'a ObjectKey, &'a u32)> + 'a> {
        match namespace {
            None => Box::new(self.by_key.iter()),
            Some(ns) => {
                let start = ObjectKey::namespaced(ns, "");
                Box::new(
                    self.by_key
                        .range((Bound::Included(start), Bound::Unbounded))
                        .take_while(move |(key, _)| key.namespace() == Some(ns)),
                )
            }
        }
    }

    pub(crate) fn by_owner(&self, uid: &str) -> Vec<ObjectRef> {
        self.resolve(self.owner.slots(uid))
    }

    pub(crate) fn by_label(&self, key: &str, value: &str) -> Vec<ObjectRef> {
        self.resolve(self.label.slots(&label_entry(key, value)))
    }

    pub(crate) fn by_declared(&self, index: usize, value: &str) -> Vec<ObjectRef> {
        self.declared
            .get(index)
            .map(|i| self.resolve(i.slots(value)))
            .unwrap_or_default()
    }

    /// Objects for slots, in key order.
    fn resolve(&self, slots: Vec<u32>) -> Vec<ObjectRef> {
        let mut objects: Vec<ObjectRef> = slots
            .into_iter()
            .filter_map(|s| self.slot(s).cloned())
            .collect();
        objects.sort_unstable_by(|a, b| a.key().cmp(b.key()));
        objects
    }

    fn index(&mut self, object: &CachedObject, slot: u32) {
        self.each_entry(object, |index, value| index.insert(value, slot));
        self.bytes += object.heap_size() + PER_OBJECT_OVERHEAD;
    }

    fn unindex(&mut self, object: &CachedObject, slot: u32) {
        self.each_entry(object, |index, value| index.remove(value, slot));
        self.bytes -= object.heap_size() + PER_OBJECT_OVERHEAD;
    }

    /// Calls `f` for every (index, value) entry an object has: one place decides what is
    /// indexed, so insertion and removal cannot disagree.
    fn each_entry(&mut self, object: &CachedObject, mut f: impl FnMut(&mut Index, &str)) {
        if let Some(owner) = &object.meta().controller {
            f(&mut self.owner, &owner.uid);
        }
        for (key, value) in object.labels().iter() {
            f(&mut self.label, &label_entry(key, value));
        }
        for (i, index) in self.declared.iter_mut().enumerate() {
            for value in object.index_values(i) {
                f(index, value);
            }
        }
    }

    /// Gives memory back after a mass delete: without this a cache that once held 100k objects
    /// keeps 100k slots forever. Only the empty tail can go (slots are never renumbered, as
    /// postings hold them), which is why free slots are reused lowest first.
    fn shrink_if_sparse(&mut self) {
        if self.by_key.is_empty() {
            self.slots = Vec::new();
            self.free = BinaryHeap::new();
        } else if self.free.len() > 1024 && self.free.len() > self.by_key.len() {
            while matches!(self.slots.last(), Some(None)) {
                self.slots.pop();
            }
            let len = self.slots.len();
            self.free.retain(|Reverse(s)| (*s as usize) < len);
            self.slots.shrink_to_fit();
            self.free.shrink_to_fit();
        }
    }

    #[cfg(test)]
    pub(crate) fn slots_len(&self) -> usize {
        self.slots.len()
    }

    #[cfg(test)]
    pub(crate) fn index_sizes(&self) -> (usize, usize, Vec<usize>) {
        (
            self.owner.values(),
            self.label.values(),
            self.declared.iter().map(Index::values).collect(),
        )
    }
}

/// Label index entries are `key=value`, the form plugins look them up by.
fn label_entry(key: &str, value: &str) -> String {
    format!("{key}={value}")
}
