//! Two priority levels, and aging so the low one never starves.
//!
//! Events from an initial list, a relist or a periodic resync carry no news: they enter at
//! [`Priority::Low`], so a restart with 100k objects does not delay a fresh change, which
//! enters at [`Priority::Normal`] (controller-runtime's priority queue does the same). So do
//! the echoes of a plugin's own writes (`worker/echoes.rs`).
//!
//! Strict priority starves: controller-runtime users report low-priority keys stuck for 30+
//! minutes behind a steady stream of normal ones. So low keys *age*. Contract:
//! * While the oldest ready low key has waited less than the aging bound, normal keys go first.
//! * Once it has waited at least the bound, and normal keys are also ready, takes alternate:
//!   low, normal, low, ... So aged low keys get at least half of the takes, and normal keys
//!   keep at least half too.
//! * With no normal key ready, low keys are served whatever their age.
//!
//! Bound (fairness off): a low key that became ready at `t` with `n` low keys ahead of it is
//! taken no later than the `2(n+1)`-th take after `t + aging`. Alternation rather than a plain
//! promotion into the normal FIFO is deliberate: promoting 100k aged keys would put a fresh
//! change behind all of them, which is the delay low priority exists to avoid; with alternation
//! a fresh change waits for at most one aged key.
//!
//! With fairness on, the low level is served round-robin across namespaces, so the key served
//! on a low turn is the next in round-robin order rather than the oldest; every low key is
//! still reached within a bounded number of low turns.

use super::fairness::{ReadyFifo, Slot};
use std::collections::BTreeMap;
use std::hash::Hash;
use std::time::Duration;
use tokio::time::Instant;

/// How urgent a key is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Initial list, relist and resync events: no news, only a check.
    Low,
    /// Real changes, requeues and retries.
    Normal,
}

impl Priority {
    /// The `priority` label value controller-runtime uses (`handler.LowPriority` is -100).
    pub fn label(self) -> &'static str {
        match self {
            Priority::Normal => "0",
            Priority::Low => "-100",
        }
    }
}

/// Compact a level once it holds more than this many stale slots and more stale than live.
const COMPACT_MIN_STALE: usize = 1024;

#[derive(Debug)]
struct Level<G, T> {
    fifo: ReadyFifo<G, T>,
    live: usize,
}

/// Which level the next take serves, and whether that is an aged low turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Choice {
    pub(crate) priority: Priority,
    aged_turn: bool,
}

/// The two ready levels with aging, holding items `T` (key ids) of groups `G` (namespaces).
#[derive(Debug)]
pub(crate) struct Levels<G, T> {
    normal: Level<G, T>,
    low: Level<G, T>,
    /// Live low placements by seq (= arrival order), with the time each became ready: the first
    /// entry is the oldest low key, whatever order the (possibly fair) FIFO serves them in.
    low_since: BTreeMap<u64, Instant>,
    aging: Duration,
    last_was_aged_turn: bool,
}

impl<G: Clone + Eq + Hash, T> Levels<G, T> {
    pub(crate) fn new(fair: bool, aging: Duration) -> Self {
        Self {
            normal: Level {
                fifo: ReadyFifo::new(fair),
                live: 0,
            },
            low: Level {
                fifo: ReadyFifo::new(fair),
                live: 0,
            },
            low_since: BTreeMap::new(),
            aging,
            last_was_aged_turn: false,
        }
    }

    fn level(&mut self, p: Priority) -> &mut Level<G, T> {
        match p {
            Priority::Normal => &mut self.normal,
            Priority::Low => &mut self.low,
        }
    }

    /// Ready keys at `p`.
    pub(crate) fn live(&self, p: Priority) -> usize {
        match p {
            Priority::Normal => self.normal.live,
            Priority::Low => self.low.live,
        }
    }

    /// Places `id` (of `group`) at the back of level `p`.
    pub(crate) fn push(&mut self, p: Priority, group: &G, id: T, seq: u64, since: Instant) {
        if p == Priority::Low {
            self.low_since.insert(seq, since);
        }
        let level = self.level(p);
        level.live += 1;
        level.fifo.push(group, Slot { id, seq });
    }

    /// The placement `seq` at `p` no longer counts; its slot stays behind as stale.
    pub(crate) fn unlink(&mut self, p: Priority, seq: u64) {
        if p == Priority::Low {
            self.low_since.remove(&seq);
        }
        let level = self.level(p);
        level.live = level.live.saturating_sub(1);
    }

    /// True when level `p` is mostly stale slots and should be compacted.
    pub(crate) fn wants_compaction(&self, p: Priority) -> bool {
        let level = match p {
            Priority::Normal => &self.normal,
            Priority::Low => &self.low,
        };
        let stale = level.fifo.len() - level.live.min(level.fifo.len());
        stale > COMPACT_MIN_STALE && stale > level.live
    }

    /// Drops the slots of level `p` that `live` rejects.
    pub(crate) fn compact(&mut self, p: Priority, live: impl FnMut(&Slot<T>) -> bool) {
        self.level(p).fifo.retain(live);
    }

    /// Which level the next take should serve, if any key is ready. `now` is asked only when
    /// both levels have ready keys (to see whether the oldest low key has aged).
    pub(crate) fn choose(&self, now: impl FnOnce() -> Instant) -> Option<Choice> {
        let normal = self.normal.live > 0;
        let low = self.low.live > 0;
        let pick = |priority, aged_turn| {
            Some(Choice {
                priority,
                aged_turn,
            })
        };
        match (normal, low) {
            (false, false) => None,
            (true, false) => pick(Priority::Normal, false),
            (false, true) => pick(Priority::Low, false),
            (true, true) => {
                let aged = self.low_since.first_key_value().is_some_and(|(_, since)| {
                    now().saturating_duration_since(*since) >= self.aging
                });
                if aged && !self.last_was_aged_turn {
                    pick(Priority::Low, true)
                } else {
                    pick(Priority::Normal, false)
                }
            }
        }
    }

    /// The slot `n` places behind the front of level `p`, if cheap to tell (see
    /// `ReadyFifo::peek`); a prefetch hint, possibly stale.
    pub(crate) fn peek(&self, p: Priority, n: usize) -> Option<&Slot<T>> {
        match p {
            Priority::Normal => self.normal.fifo.peek(n),
            Priority::Low => self.low.fifo.peek(n),
        }
    }

    /// Takes the next live slot of the chosen level; `accept` recognises live slots (and may
    /// act on them). Returns `None` only if the level's live count was wrong.
    pub(crate) fn pop<R>(
        &mut self,
        choice: Choice,
        accept: impl FnMut(&Slot<T>) -> Option<R>,
    ) -> Option<(Slot<T>, R)> {
        let level = self.level(choice.priority);
        let (slot, r) = level.fifo.pop_accepted(accept)?;
        level.live = level.live.saturating_sub(1);
        if choice.priority == Priority::Low {
            self.low_since.remove(&slot.seq);
        }
        self.last_was_aged_turn = choice.aged_turn;
        Some((slot, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, PartialEq, Eq, Hash, Debug)]
    struct Key(u32);

    type L = Levels<(), Key>;

    fn take(levels: &mut L, now: Instant) -> Option<(Priority, u32)> {
        let choice = levels.choose(|| now)?;
        let (slot, ()) = levels.pop(choice, |_| Some(()))?;
        Some((choice.priority, slot.id.0))
    }

    #[test]
    fn labels_match_controller_runtime() {
        assert_eq!(Priority::Normal.label(), "0");
        assert_eq!(Priority::Low.label(), "-100");
        assert!(Priority::Normal > Priority::Low);
    }

    #[test]
    fn normal_goes_first_until_low_has_aged() {
        let t0 = Instant::now();
        let aging = Duration::from_secs(60);
        let mut l: L = Levels::new(false, aging);
        l.push(Priority::Low, &(), Key(100), 1, t0);
        l.push(Priority::Normal, &(), Key(1), 2, t0);
        l.push(Priority::Normal, &(), Key(2), 3, t0);
        assert_eq!(take(&mut l, t0), Some((Priority::Normal, 1)));
        assert_eq!(
            take(&mut l, t0 + Duration::from_secs(59)),
            Some((Priority::Normal, 2))
        );
        assert_eq!(
            take(&mut l, t0 + Duration::from_secs(59)),
            Some((Priority::Low, 100))
        );
        assert_eq!(take(&mut l, t0), None);
    }

    #[test]
    fn aged_low_alternates_with_normal() {
        let t0 = Instant::now();
        let mut l: L = Levels::new(false, Duration::from_secs(60));
        for n in 0..3 {
            l.push(Priority::Low, &(), Key(100 + n), u64::from(n), t0);
        }
        for n in 0..4 {
            l.push(Priority::Normal, &(), Key(n), 10 + u64::from(n), t0);
        }
        let later = t0 + Duration::from_secs(60);
        let order: Vec<_> = std::iter::from_fn(|| take(&mut l, later)).collect();
        use Priority::{Low, Normal};
        assert_eq!(
            order,
            [
                (Low, 100),
                (Normal, 0),
                (Low, 101),
                (Normal, 1),
                (Low, 102),
                (Normal, 2),
                (Normal, 3)
            ]
        );
    }

    #[test]
    fn aging_uses_the_oldest_live_low_key_not_a_stale_one() {
        let t0 = Instant::now();
        let mut l: L = Levels::new(false, Duration::from_secs(60));
        l.push(Priority::Low, &(), Key(100), 1, t0);
        l.push(
            Priority::Low,
            &(),
            Key(101),
            2,
            t0 + Duration::from_secs(30),
        );
        l.push(Priority::Normal, &(), Key(1), 3, t0);
        // Key 100 was raised away: only key 101 (30 s younger) counts for aging.
        l.unlink(Priority::Low, 1);
        let at = t0 + Duration::from_secs(70);
        assert_eq!(l.choose(|| at).unwrap().priority, Priority::Normal);
        assert_eq!(l.live(Priority::Low), 1);
    }

    #[test]
    fn compaction_only_when_stale_dominates() {
        let t0 = Instant::now();
        let mut l: L = Levels::new(false, Duration::from_secs(60));
        for n in 0..3000u32 {
            l.push(Priority::Low, &(), Key(n), u64::from(n), t0);
        }
        for n in 0..1000u32 {
            l.unlink(Priority::Low, u64::from(n));
        }
        assert!(!l.wants_compaction(Priority::Low), "1000 stale of 3000");
        for n in 1000..2000u32 {
            l.unlink(Priority::Low, u64::from(n));
        }
        assert!(l.wants_compaction(Priority::Low), "2000 stale, 1000 live");
        l.compact(Priority::Low, |s| s.seq >= 2000);
        assert!(!l.wants_compaction(Priority::Low));
        let first = take(&mut l, t0).unwrap();
        assert_eq!(first, (Priority::Low, 2000));
    }
}
