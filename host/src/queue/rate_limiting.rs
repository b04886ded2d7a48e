//! The retry gate: due retries wait here for a token from the retry bucket.
//!
//! Contract: a retry becomes runnable only when it is due (its backoff elapsed) *and* it has a
//! token from the retry bucket; tokens go to due retries in the order they became due. This is
//! the combination client-go builds with `MaxOf(exponential, bucket)`, with one difference: the
//! token is spent when the retry actually proceeds, not reserved when it is scheduled, so a
//! retry overtaken by an event (or dropped at shutdown) costs nothing, and a burst of 1000
//! failures still drains at the bucket's rate instead of reserving ten minutes of tokens ahead.
//!
//! Retries are throttled, fresh events are not: only keys that arrive as retries pass the gate.
//! When the bucket is empty the gate records when the next token comes, so idle workers sleep
//! exactly until then instead of polling.

use super::fairness::Slot;
use super::limiters::TokenBucket;
use std::collections::VecDeque;
use tokio::time::Instant;

/// Due retries (key ids in the queue) waiting for tokens.
#[derive(Debug)]
pub(crate) struct RetryGate<T> {
    bucket: Option<TokenBucket>,
    waiting: VecDeque<Slot<T>>,
    live: usize,
    /// The bucket said no until then; not asked again before.
    blocked_until: Option<Instant>,
}

impl<T> RetryGate<T> {
    /// A gate on `bucket`; without a bucket the gate is disabled and retries skip it.
    pub(crate) fn new(bucket: Option<TokenBucket>) -> Self {
        Self {
            bucket,
            waiting: VecDeque::new(),
            live: 0,
            blocked_until: None,
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.bucket.is_some()
    }

    /// Retries waiting for a token.
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    pub(crate) fn push(&mut self, slot: Slot<T>) {
        self.live += 1;
        self.waiting.push_back(slot);
    }

    /// One waiting retry left the gate some other way (an event overtook it); its slot stays
    /// behind as stale until reached or compacted.
    pub(crate) fn unlink(&mut self) {
        self.live = self.live.saturating_sub(1);
    }

    /// True when stale slots dominate and [`RetryGate::compact`] is worth its O(n).
    pub(crate) fn wants_compaction(&self) -> bool {
        let stale = self.waiting.len().saturating_sub(self.live);
        stale > 1024 && stale > self.live
    }

    /// Drops the slots `live` rejects, keeping order.
    pub(crate) fn compact(&mut self, live: impl FnMut(&Slot<T>) -> bool) {
        self.waiting.retain(live);
    }

    /// When a waiting retry can next be admitted, if any is waiting.
    pub(crate) fn next_admission(&self, now: Instant) -> Option<Instant> {
        (self.live > 0).then(|| self.blocked_until.map_or(now, |t| t.max(now)))
    }

    /// Admits the next live waiting retry if the bucket has a token. `live` recognises live
    /// slots; stale ones are discarded without spending a token.
    pub(crate) fn admit_one(
        &mut self,
        now: Instant,
        mut live: impl FnMut(&Slot<T>) -> bool,
    ) -> Option<Slot<T>> {
        let bucket = self.bucket.as_ref()?;
        if self.blocked_until.is_some_and(|t| now < t) {
            return None;
        }
        self.blocked_until = None;
        loop {
            let front = self.waiting.front()?;
            if !live(front) {
                self.waiting.pop_front();
                continue;
            }
            match bucket.try_acquire() {
                Ok(()) => {
                    self.live = self.live.saturating_sub(1);
                    return self.waiting.pop_front();
                }
                Err(next_token) => {
                    self.blocked_until = Some(next_token);
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::config::RateLimit;
    use std::time::Duration;

    fn gate(qps: f64, burst: u32) -> RetryGate<&'static str> {
        RetryGate::new(TokenBucket::new(&RateLimit { qps, burst }, Instant::now()))
    }

    #[tokio::test(start_paused = true)]
    async fn admits_in_order_while_tokens_last_then_reports_next_token() {
        let t0 = Instant::now();
        let mut g = gate(10.0, 2);
        for (seq, key) in ["a", "b", "c"].into_iter().enumerate() {
            g.push(Slot {
                id: key,
                seq: seq as u64,
            });
        }
        assert_eq!(g.admit_one(t0, |_| true).unwrap().id, "a");
        assert_eq!(g.admit_one(t0, |_| true).unwrap().id, "b");
        assert!(g.admit_one(t0, |_| true).is_none());
        assert_eq!(g.next_admission(t0), Some(t0 + Duration::from_millis(100)));
        tokio::time::advance(Duration::from_millis(100)).await;
        let t1 = Instant::now();
        assert_eq!(g.admit_one(t1, |_| true).unwrap().id, "c");
        assert_eq!(g.next_admission(t1), None);
    }

    #[tokio::test(start_paused = true)]
    async fn stale_slots_spend_no_token() {
        let t0 = Instant::now();
        let mut g = gate(1.0, 1);
        g.push(Slot {
            id: "stale",
            seq: 1,
        });
        g.push(Slot { id: "live", seq: 2 });
        g.unlink(); // "stale" was overtaken by an event
        assert_eq!(g.admit_one(t0, |s| s.id != "stale").unwrap().id, "live");
        assert_eq!(g.live(), 0);
    }

    #[test]
    fn compaction_only_when_stale_dominates() {
        let mut g: RetryGate<u32> = RetryGate::new(None);
        for n in 0..3000 {
            g.push(Slot {
                id: n,
                seq: u64::from(n),
            });
        }
        for _ in 0..2000 {
            g.unlink();
        }
        assert!(g.wants_compaction());
        g.compact(|s| s.id >= 2000);
        assert!(!g.wants_compaction());
        assert_eq!(g.waiting.len(), 1000);
        assert_eq!(g.live(), 1000);
    }

    #[test]
    fn disabled_gate_admits_nothing() {
        let mut g: RetryGate<&str> = RetryGate::new(None);
        assert!(!g.enabled());
        assert!(g.admit_one(Instant::now(), |_| true).is_none());
    }
}
