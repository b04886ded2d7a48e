//! Drives governor's rate limiters from tokio's clock.
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
    async fn instants_before_base_read_as_zero() {
        let clock = TokioClock::new(Instant::now() + Duration::from_secs(5));
        assert_eq!(Duration::from(clock.now()), Duration::ZERO);
    }
}
