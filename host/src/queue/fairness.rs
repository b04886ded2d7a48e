//! The ready FIFO of one priority level, optionally fair across groups (namespaces).
//!
//! Contract:
//! * Plain: one FIFO; keys are served in the order they became ready.
//! * Fair: one FIFO per group plus a ring of the groups that have ready keys. Each take serves
//!   the front key of the group at the head of the ring, then moves that group to the back.
//!   Keys of one group stay in FIFO order; between groups, a group with `n` ready keys waits at
//!   most `n` turns of the ring for its last key, however many keys other groups have. A group
//!   whose FIFO empties leaves the ring and its memory is freed, so namespaces that come and go
//!   do not accumulate.
//!
//! Both variants may hold *stale* slots: copies whose key has since moved (a priority raise, an
//! event overtaking a retry). The caller decides what is live by checking the slot's `seq`
//! against the key's entry; stale slots are discarded when reached and never use up a group's
//! turn. `priority.rs` counts live slots and compacts when stale ones dominate.
//!
//! Fairness is off by default: it costs one more hash lookup per add and take (measured in
//! docs/benchmarks/queue.md).

use super::key::KeyMap;
use std::collections::VecDeque;
use std::hash::Hash;

/// One placement of an item (in the queue: a key's table id) in a FIFO; `seq` identifies the
/// placement.
#[derive(Debug)]
pub(crate) struct Slot<T> {
    pub(crate) id: T,
    pub(crate) seq: u64,
}

/// A ready FIFO of items of groups `G`, plain or fair.
#[derive(Debug)]
pub(crate) enum ReadyFifo<G, T> {
    Plain(VecDeque<Slot<T>>),
    Fair(FairFifo<G, T>),
}

impl<G: Clone + Eq + Hash, T> ReadyFifo<G, T> {
    pub(crate) fn new(fair: bool) -> Self {
        if fair {
            ReadyFifo::Fair(FairFifo::default())
        } else {
            ReadyFifo::Plain(VecDeque::new())
        }
    }

    /// Slots held, stale ones included.
    pub(crate) fn len(&self) -> usize {
        match self {
            ReadyFifo::Plain(q) => q.len(),
            ReadyFifo::Fair(f) => f.len,
        }
    }

    /// Appends `slot`, whose item belongs to `group` (ignored when plain).
    pub(crate) fn push(&mut self, group: &G, slot: Slot<T>) {
        match self {
            ReadyFifo::Plain(q) => q.push_back(slot),
            ReadyFifo::Fair(f) => f.push(group, slot),
        }
    }

    /// Removes and returns the next slot that `accept` takes (returning `Some`), discarding the
    /// slots it rejects on the way as stale.
    pub(crate) fn pop_accepted<R>(
        &mut self,
        accept: impl FnMut(&Slot<T>) -> Option<R>,
    ) -> Option<(Slot<T>, R)> {
        match self {
            ReadyFifo::Plain(q) => pop_accepted_plain(q, accept),
            ReadyFifo::Fair(f) => f.pop_accepted(accept),
        }
    }

    /// The slot `n` places behind the front, if this FIFO can tell cheaply: plain FIFOs can;
    /// fair ones serve groups in turn, so they do not guess (`None`). Only a hint for
    /// prefetching: the slot may be stale.
    pub(crate) fn peek(&self, n: usize) -> Option<&Slot<T>> {
        match self {
            ReadyFifo::Plain(q) => q.get(n),
            ReadyFifo::Fair(_) => None,
        }
    }

    /// Keeps only the slots `keep` approves, preserving order.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Slot<T>) -> bool) {
        match self {
            ReadyFifo::Plain(q) => q.retain(|s| keep(s)),
            ReadyFifo::Fair(f) => f.retain(keep),
        }
    }
}

fn pop_accepted_plain<T, R>(
    queue: &mut VecDeque<Slot<T>>,
    mut accept: impl FnMut(&Slot<T>) -> Option<R>,
) -> Option<(Slot<T>, R)> {
    while let Some(front) = queue.front() {
        let accepted = accept(front);
        let slot = queue.pop_front()?;
        if let Some(r) = accepted {
            return Some((slot, r));
        }
    }
    None
}

/// Per-group FIFOs served round-robin.
#[derive(Debug)]
pub(crate) struct FairFifo<G, T> {
    /// Invariant: every group here has a non-empty FIFO and appears exactly once in `ring`.
    groups: KeyMap<G, VecDeque<Slot<T>>>,
    ring: VecDeque<G>,
    len: usize,
}

impl<G, T> Default for FairFifo<G, T> {
    fn default() -> Self {
        Self {
            groups: KeyMap::default(),
            ring: VecDeque::new(),
            len: 0,
        }
    }
}

impl<G: Clone + Eq + Hash, T> FairFifo<G, T> {
    fn push(&mut self, group: &G, slot: Slot<T>) {
        self.len += 1;
        if let Some(queue) = self.groups.get_mut(group) {
            queue.push_back(slot);
            return;
        }
        self.ring.push_back(group.clone());
        self.groups.insert(group.clone(), VecDeque::from([slot]));
    }

    fn pop_accepted<R>(
        &mut self,
        mut accept: impl FnMut(&Slot<T>) -> Option<R>,
    ) -> Option<(Slot<T>, R)> {
        loop {
            let group = self.ring.front()?;
            let Some(queue) = self.groups.get_mut(group) else {
                // Unreachable by the invariant; recover rather than spin.
                self.ring.pop_front();
                continue;
            };
            let mut found = None;
            while let Some(front) = queue.front() {
                let accepted = accept(front);
                let Some(slot) = queue.pop_front() else { break };
                self.len -= 1;
                if let Some(r) = accepted {
                    found = Some((slot, r));
                    break;
                }
            }
            if queue.is_empty() {
                if let Some(group) = self.ring.pop_front() {
                    self.groups.remove(&group);
                }
            } else if found.is_some() {
                self.ring.rotate_left(1);
            }
            if found.is_some() {
                return found;
            }
        }
    }

    fn retain(&mut self, mut keep: impl FnMut(&Slot<T>) -> bool) {
        self.groups.retain(|_, queue| {
            queue.retain(|s| keep(s));
            !queue.is_empty()
        });
        let groups = &self.groups;
        self.ring.retain(|g| groups.contains_key(g));
        self.len = self.groups.values().map(VecDeque::len).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, PartialEq, Eq, Hash, Debug)]
    struct Key(&'static str, u32);

    type Fifo = ReadyFifo<&'static str, Key>;

    fn push(fifo: &mut Fifo, key: Key, seq: u64) {
        let group = key.0;
        fifo.push(&group, Slot { id: key, seq });
    }

    fn fill(fifo: &mut Fifo, keys: &[(&'static str, u32)]) {
        for (seq, (g, n)) in keys.iter().enumerate() {
            push(fifo, Key(g, *n), seq as u64);
        }
    }

    fn drain(fifo: &mut Fifo) -> Vec<(&'static str, u32)> {
        std::iter::from_fn(|| fifo.pop_accepted(|_| Some(())))
            .map(|(s, ())| (s.id.0, s.id.1))
            .collect()
    }

    #[test]
    fn plain_is_fifo() {
        let mut f: Fifo = ReadyFifo::new(false);
        fill(&mut f, &[("a", 1), ("a", 2), ("b", 1), ("a", 3)]);
        assert_eq!(drain(&mut f), [("a", 1), ("a", 2), ("b", 1), ("a", 3)]);
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn fair_round_robins_groups_and_keeps_fifo_within_a_group() {
        let mut f: Fifo = ReadyFifo::new(true);
        fill(
            &mut f,
            &[
                ("a", 1),
                ("a", 2),
                ("a", 3),
                ("a", 4),
                ("b", 1),
                ("c", 1),
                ("b", 2),
            ],
        );
        assert_eq!(
            drain(&mut f),
            [
                ("a", 1),
                ("b", 1),
                ("c", 1),
                ("a", 2),
                ("b", 2),
                ("a", 3),
                ("a", 4)
            ]
        );
    }

    #[test]
    fn fairness_bound_small_group_is_not_starved_by_a_big_one() {
        let mut f: Fifo = ReadyFifo::new(true);
        for n in 0..50_000 {
            push(&mut f, Key("big", n), u64::from(n));
        }
        for n in 0..5 {
            push(&mut f, Key("small", n), 50_000 + u64::from(n));
        }
        let order = drain(&mut f);
        let last_small = order.iter().rposition(|(g, _)| *g == "small").unwrap();
        // 5 small keys need at most 5 turns each of 2 groups.
        assert!(
            last_small < 10,
            "last small key served at position {last_small}"
        );
        assert_eq!(order.len(), 50_005);
    }

    #[test]
    fn stale_slots_are_skipped_without_using_a_groups_turn() {
        let mut f: Fifo = ReadyFifo::new(true);
        fill(&mut f, &[("a", 1), ("a", 2), ("b", 1), ("b", 2)]);
        // ("a", 1) is stale; "a" must still be served first, with ("a", 2).
        let first = f.pop_accepted(|s| (s.id != Key("a", 1)).then_some(()));
        assert_eq!(first.unwrap().0.id, Key("a", 2));
        assert_eq!(drain(&mut f), [("b", 1), ("b", 2)]);
    }

    #[test]
    fn group_of_only_stale_slots_is_dropped() {
        let mut f: Fifo = ReadyFifo::new(true);
        fill(&mut f, &[("a", 1), ("b", 1)]);
        let got = f.pop_accepted(|s| (s.id.0 == "b").then_some(()));
        assert_eq!(got.unwrap().0.id, Key("b", 1));
        assert_eq!(f.len(), 0);
        assert!(f.pop_accepted(|_| Some(())).is_none());
        if let ReadyFifo::Fair(fair) = &f {
            assert!(fair.groups.is_empty() && fair.ring.is_empty());
        }
    }

    #[test]
    fn retain_keeps_order_and_frees_empty_groups() {
        for fair in [false, true] {
            let mut f: Fifo = ReadyFifo::new(fair);
            fill(&mut f, &[("a", 1), ("b", 1), ("a", 2), ("c", 1)]);
            f.retain(|s| s.id.0 != "b");
            assert_eq!(f.len(), 3);
            let expect: &[(&str, u32)] = if fair {
                &[("a", 1), ("c", 1), ("a", 2)]
            } else {
                &[("a", 1), ("a", 2), ("c", 1)]
            };
            assert_eq!(drain(&mut f), expect, "fair = {fair}");
        }
    }
}
