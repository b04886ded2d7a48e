//! Keys waiting for a time: requeue-after and backoff retries.
//!
//! Contract: a key in the delay set becomes due at its `due` instant; keys due at the same
//! instant come out in the order they were scheduled. Entries are indexed by `(due, seq)`, the
//! same pair the key's entry records, so rescheduling or cancelling removes the old entry
//! exactly: no stale timers (client-go's delaying queue keeps one per `AddAfter` until it
//! fires, and a cancelled requeue far in the future would pin memory until then).
//!
//! Nothing here sleeps. Due keys are moved out whenever the queue is touched, and idle workers
//! sleep until [`DelaySet::next_due`], so no background task or timer per key is needed.

use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// The longest delay the queue accepts; longer ones (a plugin asking to requeue in 500 years)
/// are clamped so instant arithmetic cannot overflow. kube-runtime clamps at six months.
pub const MAX_DELAY: Duration = Duration::from_secs(365 * 24 * 3600);

/// `now + delay`, with the delay clamped to [`MAX_DELAY`].
pub(crate) fn due_after(now: Instant, delay: Duration) -> Instant {
    now + delay.min(MAX_DELAY)
}

/// Keys ordered by due time.
#[derive(Debug)]
pub(crate) struct DelaySet<K> {
    items: BTreeMap<(Instant, u64), K>,
}

impl<K> Default for DelaySet<K> {
    fn default() -> Self {
        Self {
            items: BTreeMap::new(),
        }
    }
}

impl<K> DelaySet<K> {
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn insert(&mut self, due: Instant, seq: u64, key: K) {
        self.items.insert((due, seq), key);
    }

    /// Removes the entry scheduled as `(due, seq)`, returning its key.
    pub(crate) fn remove(&mut self, due: Instant, seq: u64) -> Option<K> {
        self.items.remove(&(due, seq))
    }

    /// When the earliest key is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.items.first_key_value().map(|((due, _), _)| *due)
    }

    /// Removes and returns the earliest key if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, u64, K)> {
        if self.next_due()? > now {
            return None;
        }
        self.items
            .pop_first()
            .map(|((due, seq), key)| (due, seq, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_due_then_schedule_order_and_only_when_due() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut d = DelaySet::default();
        d.insert(ms(20), 1, "b");
        d.insert(ms(10), 2, "a");
        d.insert(ms(20), 3, "c");
        assert_eq!(d.next_due(), Some(ms(10)));
        assert!(d.pop_due(ms(9)).is_none());
        assert_eq!(d.pop_due(ms(10)).map(|x| x.2), Some("a"));
        assert!(d.pop_due(ms(19)).is_none());
        assert_eq!(d.pop_due(ms(25)).map(|x| x.2), Some("b"));
        assert_eq!(d.pop_due(ms(25)).map(|x| x.2), Some("c"));
        assert!(d.pop_due(ms(100)).is_none());
        assert_eq!(d.len(), 0);
    }

    #[test]
    fn remove_is_exact() {
        let t0 = Instant::now();
        let mut d = DelaySet::default();
        d.insert(t0, 1, "a");
        d.insert(t0, 2, "a");
        assert_eq!(d.remove(t0, 1), Some("a"));
        assert_eq!(d.remove(t0, 1), None);
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn huge_delays_are_clamped_not_overflowing() {
        let now = Instant::now();
        assert_eq!(due_after(now, Duration::MAX), now + MAX_DELAY);
        assert_eq!(
            due_after(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
    }
}
