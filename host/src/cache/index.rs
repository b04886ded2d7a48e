//! Secondary indexes: value -> the objects holding it.
//!
//! Postings are slot numbers in the store (4 bytes each), not keys or objects: an index entry
//! per object per label would otherwise cost more than the object's parsed fields. Most values
//! are held by one or a few objects (a pod name label, an owner UID), so a posting list starts
//! as a small vector and becomes a set only when it grows.

use std::collections::{BTreeSet, HashMap};

use super::path::JsonPath;

/// The built-in index names a plugin can query besides the declared ones.
pub const NAMESPACE: &str = "namespace";
pub const OWNER: &str = "owner";
pub const LABEL: &str = "label";
pub const BUILT_IN: [&str; 3] = [NAMESPACE, OWNER, LABEL];

/// An index declared in config: a name plugins look it up by, and the path of the values.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IndexSpec {
    pub name: String,
    pub path: JsonPath,
}

/// Above this many members a posting list switches from a vector to a set.
const FEW: usize = 16;

#[derive(Debug)]
enum Postings {
    Few(Vec<u32>),
    Many(BTreeSet<u32>),
}

impl Postings {
    fn insert(&mut self, slot: u32) {
        match self {
            Self::Few(v) if v.contains(&slot) => {}
            Self::Few(v) if v.len() < FEW => v.push(slot),
            Self::Few(v) => {
                let mut set: BTreeSet<u32> = v.drain(..).collect();
                set.insert(slot);
                *self = Self::Many(set);
            }
            Self::Many(s) => {
                s.insert(slot);
            }
        }
    }

    /// Removes `slot`; true when the list is now empty.
    fn remove(&mut self, slot: u32) -> bool {
        match self {
            Self::Few(v) => {
                v.retain(|s| *s != slot);
                v.is_empty()
            }
            Self::Many(s) => {
                s.remove(&slot);
                s.is_empty()
            }
        }
    }

    fn slots(&self) -> Vec<u32> {
        match self {
            Self::Few(v) => v.clone(),
            Self::Many(s) => s.iter().copied().collect(),
        }
    }
}

/// One index: value -> slots.
#[derive(Debug, Default)]
pub(crate) struct Index {
    postings: HashMap<Box<str>, Postings>,
}

impl Index {
    pub(crate) fn insert(&mut self, value: &str, slot: u32) {
        match self.postings.get_mut(value) {
            Some(postings) => postings.insert(slot),
            None => {
                self.postings
                    .insert(value.into(), Postings::Few(vec![slot]));
            }
        }
    }

    pub(crate) fn remove(&mut self, value: &str, slot: u32) {
        if let Some(postings) = self.postings.get_mut(value)
            && postings.remove(slot)
        {
            self.postings.remove(value);
        }
    }

    pub(crate) fn slots(&self, value: &str) -> Vec<u32> {
        self.postings
            .get(value)
            .map(Postings::slots)
            .unwrap_or_default()
    }

    /// How many distinct values the index holds.
    #[cfg(test)]
    pub(crate) fn values(&self) -> usize {
        self.postings.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postings_grow_from_few_to_many_and_empty_values_are_dropped() {
        let mut index = Index::default();
        for slot in 0..40 {
            index.insert("v", slot);
            index.insert("v", slot); // idempotent
        }
        index.insert("w", 7);
        let mut got = index.slots("v");
        got.sort_unstable();
        assert_eq!(got, (0..40).collect::<Vec<_>>());
        for slot in 0..40 {
            index.remove("v", slot);
        }
        assert!(index.slots("v").is_empty());
        assert_eq!(index.values(), 1, "the emptied value is gone, w remains");
        index.remove("w", 8);
        assert_eq!(
            index.slots("w"),
            [7],
            "removing a slot that is not there changes nothing"
        );
        index.remove("w", 7);
        assert_eq!(index.values(), 0);
        index.remove("never", 1);
    }
}
