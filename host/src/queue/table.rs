//! The key table: each key with pending or in-flight work, stored once and named by a small id.
//!
//! Why records with ids rather than a map from key to state: every structure that orders keys
//! (the ready FIFOs, the delay set, the retry gate) and every worker's guard refers to a key by
//! its record's [`Id`], a `u32` index. So
//! * the key is stored once, not once more in each structure it is placed in: a FIFO slot is
//!   16 bytes instead of a key clone, and placing or moving a key costs no reference counting;
//! * a take and a finish reach the record by index, with no hashing and no key comparison: only
//!   an add (and `forget` / `num_requeues`) hashes the key, once;
//! * the index (`index.rs`) holds ids with a 32-bit tag of the key's hash, and each record
//!   keeps its tag, so growing the index never reads a record and removing a key compares ids,
//!   not strings.
//!
//! Contract: an id names one record from [`KeyTable::insert`] until [`KeyTable::remove`]; after
//! that it may name another key. Structures that keep ids across time therefore also keep the
//! placement `seq` the record's entry holds, and treat a mismatch as stale (see `entry.rs`).
//! When the table empties, ids restart from zero and oversized storage is released, so a burst
//! of a million keys does not pin its memory after it drains.

use super::entry::Entry;
use super::index::{Index, NO_ID, Tag, tag_of};
use super::key::{KeyHasher, QueueKey};
use std::hash::BuildHasher;

/// A record's index in the table.
pub(crate) type Id = u32;

/// Storage kept when the table empties; anything beyond is released.
const KEEP_WHEN_EMPTY: usize = 1024;

/// One key and its state.
#[derive(Debug)]
pub(crate) struct Record<K> {
    pub(crate) key: K,
    /// The key's hash tag, so the index can remove it without re-hashing the key.
    tag: Tag,
    pub(crate) entry: Entry,
}

/// What [`KeyTable::lookup`] found.
pub(crate) enum Lookup<K> {
    /// The key has a record.
    Found(Id),
    /// The key has none; [`KeyTable::insert`] creates it.
    Vacant(Vacant<K>),
}

/// A key without a record, hashed once.
pub(crate) struct Vacant<K> {
    key: K,
    tag: Tag,
}

/// The id space is used up (four billion keys at once).
#[derive(Debug)]
pub(crate) struct Full;

/// Records by id, and an index from key to id.
#[derive(Debug)]
pub(crate) struct KeyTable<K> {
    index: Index,
    /// `None` for freed ids (listed in `free`).
    records: Vec<Option<Record<K>>>,
    free: Vec<Id>,
    hasher: KeyHasher,
}

impl<K> Default for KeyTable<K> {
    fn default() -> Self {
        Self {
            index: Index::default(),
            records: Vec::new(),
            free: Vec::new(),
            hasher: KeyHasher::default(),
        }
    }
}

impl<K: QueueKey> KeyTable<K> {
    /// Keys with a record.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    fn holds(&self, id: Id, key: &K) -> bool {
        self.get(id).is_some_and(|r| r.key == *key)
    }

    /// The id of `key`'s record, if it has one.
    pub(crate) fn find(&self, key: &K) -> Option<Id> {
        let tag = tag_of(self.hasher.hash_one(key));
        self.index.find(tag, |id| self.holds(id, key))
    }

    /// Finds `key`'s record, or hashes it ready for [`KeyTable::insert`].
    pub(crate) fn lookup(&self, key: K) -> Lookup<K> {
        let tag = tag_of(self.hasher.hash_one(&key));
        match self.index.find(tag, |id| self.holds(id, &key)) {
            Some(id) => Lookup::Found(id),
            None => Lookup::Vacant(Vacant { key, tag }),
        }
    }

    /// Creates the record of a key [`KeyTable::lookup`] found vacant (with nothing inserted
    /// since); `entry` builds its state, knowing its id.
    pub(crate) fn insert(
        &mut self,
        vacant: Vacant<K>,
        entry: impl FnOnce(Id, &K) -> Entry,
    ) -> Result<Id, Full> {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                let id = Id::try_from(self.records.len())
                    .ok()
                    .filter(|&id| id != NO_ID)
                    .ok_or(Full)?;
                self.records.push(None);
                id
            }
        };
        let Vacant { key, tag } = vacant;
        let entry = entry(id, &key);
        self.records[id as usize] = Some(Record { key, tag, entry });
        self.index.insert(tag, id);
        Ok(id)
    }

    pub(crate) fn get(&self, id: Id) -> Option<&Record<K>> {
        self.records.get(id as usize)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, id: Id) -> Option<&mut Record<K>> {
        self.records.get_mut(id as usize)?.as_mut()
    }

    /// Removes record `id`, returning its key; the id may then be reused.
    pub(crate) fn remove(&mut self, id: Id) -> Option<K> {
        let record = self.records.get_mut(id as usize)?.take()?;
        if !self.index.remove(record.tag, id) {
            tracing::error!(key = ?record.key, "key table index lost a record");
        }
        self.free.push(id);
        if self.index.is_empty() {
            self.restart();
        }
        Some(record.key)
    }

    /// Every record, in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Record<K>> {
        self.records.iter().flatten()
    }

    /// The table is empty: ids restart from zero (the most recently touched memory), and
    /// storage beyond a small reserve goes back to the allocator.
    fn restart(&mut self) {
        self.records.clear();
        self.free.clear();
        if self.records.capacity() > KEEP_WHEN_EMPTY {
            self.records.shrink_to(KEEP_WHEN_EMPTY);
            self.free.shrink_to(KEEP_WHEN_EMPTY);
        }
        // At most 3/4 full: room for the records kept.
        self.index.release_if_empty(2 * KEEP_WHEN_EMPTY);
    }

    /// Hints the CPU to fetch what removing record `id` will touch: its index line. A take
    /// calls this for a key a few places behind in the FIFO, so that key's finish finds the
    /// line in cache instead of waiting for it (the index of a large queue is beyond the cache).
    pub(crate) fn prefetch_removal(&self, id: Id) {
        if let Some(record) = self.get(id) {
            self.index.prefetch(record.tag);
        }
    }

    /// Hints the CPU to fetch record `id` (a take does this further ahead, so that
    /// [`KeyTable::prefetch_removal`] finds the record's tag in cache).
    pub(crate) fn prefetch_record(&self, id: Id) {
        if let Some(slot) = self.records.get(id as usize) {
            super::index::prefetch_line(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::entry::Phase;

    #[derive(Clone, PartialEq, Eq, Hash, Debug)]
    struct Key(u32);
    impl QueueKey for Key {
        type Group = ();
        fn group(&self) -> &() {
            &()
        }
    }

    fn entry(seq: u64) -> Entry {
        Entry {
            phase: Phase::Gated { seq },
            failures: 0,
        }
    }

    fn insert(t: &mut KeyTable<Key>, k: u32) -> Id {
        match t.lookup(Key(k)) {
            Lookup::Vacant(v) => t.insert(v, |_, _| entry(u64::from(k))).unwrap(),
            Lookup::Found(_) => panic!("{k} already present"),
        }
    }

    #[test]
    fn finds_by_key_and_reaches_records_by_id() {
        let mut t = KeyTable::default();
        let ids: Vec<Id> = (0..5000).map(|k| insert(&mut t, k)).collect();
        assert_eq!(t.len(), 5000);
        for (k, id) in (0..5000).zip(&ids) {
            assert_eq!(t.find(&Key(k)), Some(*id));
            assert!(matches!(t.lookup(Key(k)), Lookup::Found(found) if found == *id));
            assert_eq!(t.get(*id).unwrap().key, Key(k));
        }
        assert_eq!(t.find(&Key(5000)), None);
    }

    #[test]
    fn removed_ids_are_reused_and_never_found_under_the_old_key() {
        let mut t = KeyTable::default();
        let a = insert(&mut t, 1);
        let b = insert(&mut t, 2);
        assert_eq!(t.remove(a), Some(Key(1)));
        assert_eq!(t.remove(a), None, "double remove");
        assert_eq!(t.find(&Key(1)), None);
        let c = insert(&mut t, 3);
        assert_eq!(c, a, "freed id reused");
        assert_eq!(t.get(c).unwrap().key, Key(3));
        assert_eq!(t.find(&Key(2)), Some(b));
        assert_eq!(t.iter().count(), 2);
    }

    #[test]
    fn an_emptied_table_restarts_ids_and_releases_storage() {
        let mut t = KeyTable::default();
        let ids: Vec<Id> = (0..10_000).map(|k| insert(&mut t, k)).collect();
        for id in ids {
            t.remove(id);
        }
        assert_eq!(t.len(), 0);
        assert!(t.records.capacity() <= KEEP_WHEN_EMPTY);
        assert_eq!(insert(&mut t, 7), 0);
        assert_eq!(t.find(&Key(7)), Some(0));
    }
}
