//! The key index: from a key's hash tag to the ids of the records that may hold it.
//!
//! Why not `hashbrown::HashTable<Id>` (round 3): with a million keys the index is far bigger
//! than the caches, so its cost is cache misses, and hashbrown's layout pays two per operation:
//! one for the control bytes and one for the bucket, which lives in a separate array. Removing a
//! key (every finish) and proving a key new (every add of a new key) each missed twice, and
//! growing the table read every record's stored hash, a random access per key.
//!
//! This index is one array of 8-byte slots, each an id and a 32-bit tag of the key's hash, with
//! linear probing. So:
//! * an operation touches one cache line in the common case (eight slots per line; the load
//!   stays at or below 3/4, where a probe averages under three slots);
//! * a probe rejects a slot by its tag without touching the record; only a tag match (for a
//!   lookup by key) reads the record to compare keys;
//! * the home slot is the top bits of a multiplicative hash of the tag, so slots are ordered by
//!   home and doubling the table maps each run to the same place in a twice-as-long array:
//!   growth is a sequential pass over both arrays and never reads a record;
//! * [`Index::prefetch`] can pull a key's line in ahead of time (a take prefetches the line the
//!   finish of a later key will need), because the home slot is computable from the tag alone.
//!
//! Removal shifts later slots of the run back (no tombstones), so probe lengths depend only on
//! the current load, not on history.

use super::table::Id;

/// A key's 32-bit tag: the foldhash of the key, folded.
pub(crate) type Tag = u32;

/// Folds a 64-bit hash into a tag (all 64 bits contribute).
pub(crate) fn tag_of(hash: u64) -> Tag {
    (hash ^ (hash >> 32)) as Tag
}

/// Hints the CPU to fetch the cache line holding `value` into all cache levels; a no-op on
/// targets without a prefetch instruction.
pub(crate) fn prefetch_line<T>(value: &T) {
    let ptr: *const T = value;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults and changes no program state, and the
    // pointer comes from a reference anyway. SSE is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(ptr.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

/// Marks an empty slot; [`Index::insert`] refuses it as an id.
pub(crate) const NO_ID: Id = Id::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(8))]
struct Slot {
    id: Id,
    tag: Tag,
}

const EMPTY: Slot = Slot { id: NO_ID, tag: 0 };

/// Slots of the smallest non-empty index.
const MIN_SLOTS: usize = 16;

/// Ids by tag, for the key table.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// A power of two long, or empty.
    slots: Vec<Slot>,
    /// Occupied slots.
    len: usize,
    /// `64 - log2(slots.len())`: the home of a tag is the top bits of its scrambled value.
    shift: u32,
}

impl Index {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slot a tag's probe starts at (the table is not empty).
    fn home(&self, tag: Tag) -> usize {
        // Fibonacci hashing: a multiply spreads the tag's bits into the top ones, which are
        // kept; equal tags share a home, and homes grow with the scrambled tag.
        ((u64::from(tag).wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> self.shift) as usize
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The position of the first slot of `tag`'s probe that `hit` accepts, before the probe
    /// reaches an empty slot.
    fn probe(&self, tag: Tag, mut hit: impl FnMut(Slot) -> bool) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mut i = self.home(tag);
        loop {
            let slot = self.slots[i];
            if slot.id == NO_ID {
                return None;
            }
            if hit(slot) {
                return Some(i);
            }
            i = (i + 1) & self.mask();
        }
    }

    /// Ids whose tag is `tag`, in probe order, until `accept` takes one.
    pub(crate) fn find(&self, tag: Tag, mut accept: impl FnMut(Id) -> bool) -> Option<Id> {
        let i = self.probe(tag, |slot| slot.tag == tag && accept(slot.id))?;
        Some(self.slots[i].id)
    }

    /// Adds `id` under `tag` (the caller knows it is absent). Ids must be below [`NO_ID`].
    pub(crate) fn insert(&mut self, tag: Tag, id: Id) {
        debug_assert_ne!(id, NO_ID);
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        self.place(Slot { id, tag });
        self.len += 1;
    }

    /// Puts `slot` in the first free slot of its probe (there is one: the load is below 1).
    fn place(&mut self, slot: Slot) {
        let mask = self.mask();
        let mut i = self.home(slot.tag);
        while self.slots[i].id != NO_ID {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
    }

    /// Removes `id`, filed under `tag`; false if it is not there.
    pub(crate) fn remove(&mut self, tag: Tag, id: Id) -> bool {
        let Some(mut hole) = self.probe(tag, |slot| slot.id == id) else {
            return false;
        };
        let mask = self.mask();
        // Backward-shift deletion: move each later slot of the run whose home is at or before
        // the hole (cyclically) into it, so every remaining id stays reachable from its home.
        let mut i = hole;
        loop {
            i = (i + 1) & mask;
            let slot = self.slots[i];
            if slot.id == NO_ID {
                break;
            }
            let home = self.home(slot.tag);
            // Distance from home to i, and from hole to i, cyclically: the slot may move back
            // to the hole only if the hole lies between its home and where it is now.
            if (i.wrapping_sub(home) & mask) >= (i.wrapping_sub(hole) & mask) {
                self.slots[hole] = slot;
                hole = i;
            }
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
        true
    }

    /// Hints the CPU to fetch the cache line where a probe for `tag` starts.
    pub(crate) fn prefetch(&self, tag: Tag) {
        if self.slots.is_empty() {
            return;
        }
        prefetch_line(&self.slots[self.home(tag)]);
    }

    /// Doubles the slots (or allocates the first ones). Homes are ordered by scrambled tag, so
    /// the old slots, read in order, land in nearly ascending positions of the new array.
    fn grow(&mut self) {
        let new_len = (self.slots.len() * 2).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; new_len]);
        self.shift = 64 - new_len.trailing_zeros();
        // A run that wraps past the end starts at the array's tail and continues at its head;
        // reinserting from the first empty slot on keeps every run's order.
        let start = old.iter().position(|s| s.id == NO_ID).unwrap_or(0);
        for k in 0..old.len() {
            let slot = old[(start + k) % old.len()];
            if slot.id != NO_ID {
                self.place(slot);
            }
        }
    }

    /// An empty index releases its storage if it has more than `keep` slots (a drained burst
    /// does not pin its memory). Does nothing while ids remain.
    pub(crate) fn release_if_empty(&mut self, keep: usize) {
        if self.len == 0 && self.slots.len() > keep {
            self.slots = Vec::new();
            self.shift = 0;
        }
    }

    /// Slots allocated (for tests of the memory bound).
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Every id reachable from its home through a run with no gap, and the count right.
    fn check_invariants(index: &Index) {
        let occupied = index.slots.iter().filter(|s| s.id != NO_ID).count();
        assert_eq!(occupied, index.len);
        if index.slots.is_empty() {
            return;
        }
        for (i, slot) in index.slots.iter().enumerate() {
            if slot.id == NO_ID {
                continue;
            }
            let mut j = index.home(slot.tag);
            while j != i {
                assert_ne!(index.slots[j].id, NO_ID, "gap between home and slot {i}");
                j = (j + 1) & index.mask();
            }
        }
    }

    #[test]
    fn finds_inserted_ids_and_not_removed_ones() {
        let mut index = Index::default();
        assert_eq!(index.find(7, |_| true), None);
        assert!(!index.remove(7, 1));
        for id in 0..10_000u32 {
            index.insert(
                tag_of(u64::from(id).wrapping_mul(0xABCD_1234_5678_9EF1)),
                id,
            );
        }
        check_invariants(&index);
        assert_eq!(index.len(), 10_000);
        let tag = |id: u32| tag_of(u64::from(id).wrapping_mul(0xABCD_1234_5678_9EF1));
        for id in 0..10_000u32 {
            assert_eq!(index.find(tag(id), |i| i == id), Some(id));
        }
        for id in (0..10_000u32).step_by(2) {
            assert!(index.remove(tag(id), id));
            assert!(!index.remove(tag(id), id), "double remove");
        }
        check_invariants(&index);
        for id in 0..10_000u32 {
            let found = index.find(tag(id), |i| i == id);
            assert_eq!(found, (id % 2 == 1).then_some(id));
        }
    }

    #[test]
    fn equal_tags_are_told_apart_by_the_caller() {
        let mut index = Index::default();
        for id in 0..100 {
            index.insert(42, id);
        }
        check_invariants(&index);
        for id in 0..100 {
            assert_eq!(index.find(42, |i| i == id), Some(id));
        }
        assert!(index.remove(42, 50));
        assert_eq!(index.find(42, |i| i == 50), None);
        assert_eq!(index.find(42, |i| i == 99), Some(99));
        check_invariants(&index);
    }

    #[test]
    fn runs_that_wrap_around_the_end_survive_removal_and_growth() {
        // Tags whose home is the last slot of a 16-slot table, found by search.
        let mut probe = Index::default();
        probe.insert(0, 0);
        let last: Vec<Tag> = (0..u32::MAX)
            .filter(|&t| probe.home(t) == probe.mask())
            .take(14)
            .collect();
        let mut index = Index::default();
        // 11 fit in 16 slots (load <= 3/4): one run from the last slot around to slot 9.
        for (id, &tag) in last[..11].iter().enumerate() {
            index.insert(tag, id as Id);
            check_invariants(&index);
        }
        assert_eq!(index.capacity(), MIN_SLOTS);
        assert!(index.remove(last[0], 0), "the run's head, at the last slot");
        check_invariants(&index);
        assert_eq!(index.find(last[10], |i| i == 10), Some(10));
        index.insert(last[0], 0);
        for (id, &tag) in last.iter().enumerate().skip(11) {
            index.insert(tag, id as Id);
            check_invariants(&index);
        }
        assert!(index.capacity() > MIN_SLOTS, "grew with a wrapped run");
        for (id, &tag) in last.iter().enumerate() {
            assert_eq!(index.find(tag, |i| i == id as Id), Some(id as Id));
        }
        for (id, &tag) in last.iter().enumerate().step_by(3) {
            assert!(index.remove(tag, id as Id));
            check_invariants(&index);
        }
    }

    #[test]
    fn an_emptied_index_releases_storage_beyond_the_reserve() {
        let mut index = Index::default();
        for id in 0..5000 {
            index.insert(id, id);
        }
        index.release_if_empty(1024);
        assert_eq!(index.len(), 5000, "not empty: nothing released");
        for id in 0..5000 {
            assert!(index.remove(id, id));
        }
        index.release_if_empty(1024);
        assert_eq!((index.len(), index.capacity()), (0, 0));
        assert_eq!(index.find(3, |_| true), None);
        assert!(!index.remove(3, 3));
        index.insert(3, 3);
        assert_eq!(index.find(3, |i| i == 3), Some(3));
        assert!(index.remove(3, 3));
        index.release_if_empty(1024);
        assert_eq!(index.capacity(), MIN_SLOTS, "small tables are kept");
        check_invariants(&index);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8),
        Remove(u8),
    }

    proptest! {
        /// Against a map, with tags from a tiny range so runs collide, wrap and shift.
        #[test]
        fn behaves_like_a_map(ops in prop::collection::vec(
            prop_oneof![
                (0u8..200).prop_map(Op::Insert),
                (0u8..200).prop_map(Op::Remove),
            ],
            0..600,
        )) {
            let tag = |k: u8| Tag::from(k % 23).wrapping_mul(0x0100_0193);
            let mut index = Index::default();
            let mut model: HashMap<u8, Id> = HashMap::new();
            let mut next_id = 0;
            for op in ops {
                match op {
                    Op::Insert(k) => {
                        if let std::collections::hash_map::Entry::Vacant(v) = model.entry(k) {
                            index.insert(tag(k), next_id);
                            v.insert(next_id);
                            next_id += 1;
                        }
                    }
                    Op::Remove(k) => {
                        let id = model.remove(&k);
                        prop_assert_eq!(index.remove(tag(k), id.unwrap_or(NO_ID - 1)), id.is_some());
                    }
                }
                check_invariants(&index);
                prop_assert_eq!(index.len(), model.len());
            }
            for (k, id) in &model {
                prop_assert_eq!(index.find(tag(*k), |i| i == *id), Some(*id));
            }
        }
    }
}
