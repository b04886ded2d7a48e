//! The queue's clocks: a lazily read "now" for queue operations, and governor's rate limiters
//! driven from tokio's clock.
//!
//! [`Now`]: reading the clock is a few percent of an add+take+done (three `clock_gettime` calls
//! per key in round 3's profile), and most operations do not need the time: with no delayed or
//! gated keys, no low-priority keys and no metrics, an add, a take and a finish never look at
//! it. So an operation gets a `Now` that reads tokio's clock the first time something asks, and
//! at most once, so that one operation sees one instant. It is read under the queue's lock, as
//! before, so the state sees time move forward only.
//!
//! governor reads time through its own `Clock` trait, and its default clock is the real
//! monotonic clock. The queue measures every other delay with `tokio::time::Instant`, so under
//! `#[tokio::test(start_paused = true)]` delays are deterministic; a token bucket on the real
//! clock would not be. [`TokioClock`] closes that gap: it reports tokio time as nanoseconds
//! since a fixed base instant, so with a paused runtime the buckets refill exactly when the test
//! advances time, and in production it is the same monotonic clock as everything else.

use governor::clock::Clock;
use governor::nanos::Nanos;
use std::time::Duration;
use tokio::time::Instant;

/// The current time for one queue operation, read on first use.
#[derive(Debug)]
pub(crate) struct Now {
    at: Option<Instant>,
}

impl Now {
    /// Reads tokio's clock if and when asked.
    pub(crate) fn lazy() -> Self {
        Self { at: None }
    }

    /// The time (the clock is read now if it has not been yet).
    pub(crate) fn get(&mut self) -> Instant {
        *self.at.get_or_insert_with(Instant::now)
    }

    /// Whether the clock was read (for tests of when it is).
    #[cfg(test)]
    pub(crate) fn was_read(&self) -> bool {
        self.at.is_some()
    }
}

/// A governor clock reading `tokio::time::Instant`, relative to `base`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TokioClock {
    base: Instant,
}

impl TokioClock {
    /// A clock whose zero is `base`; instants before `base` read as zero.
    pub(crate) fn new(base: Instant) -> Self {
        Self { base }
    }

    /// Converts one of this clock's readings back to a tokio instant.
    pub(crate) fn to_instant(self, nanos: Nanos) -> Instant {
        self.base + Duration::from(nanos)
    }
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(Instant::now().saturating_duration_since(self.base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_paused_tokio_time() {
        let base = Instant::now();
        let clock = TokioClock::new(base);
        assert_eq!(Duration::from(clock.now()), Duration::ZERO);
        tokio::time::advance(Duration::from_millis(250)).await;
        assert_eq!(Duration::from(clock.now()), Duration::from_millis(250));
        assert_eq!(
            clock.to_instant(clock.now()),
            base + Duration::from_millis(250)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn now_reads_the_clock_once_on_first_use() {
        let mut now = Now::lazy();
        assert!(!now.was_read());
        tokio::time::advance(Duration::from_millis(10)).await;
        let first = now.get();
        assert!(now.was_read());
        assert_eq!(first, Instant::now());
        tokio::time::advance(Duration::from_millis(10)).await;
        assert_eq!(now.get(), first, "one operation sees one instant");
    }

    #[tokio::test(start_paused = true)]
    async fn instants_before_base_read_as_zero() {
        let clock = TokioClock::new(Instant::now() + Duration::from_secs(5));
        assert_eq!(Duration::from(clock.now()), Duration::ZERO);
    }
}
