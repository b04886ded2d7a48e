//! The two rate limiters: per-key exponential backoff, and token buckets.
//!
//! * [`Backoff`] is client-go's per-item exponential limiter as pure arithmetic: the delay after
//!   the n-th consecutive failure is `base * 2^(n-1)`, capped, optionally with jitter. The
//!   failure count itself lives in the key's queue entry (see `entry.rs`), so it is freed with
//!   the entry and cannot leak the way client-go's failure map does when `Forget` is missed.
//! * [`TokenBucket`] wraps governor's GCRA limiter (no hand-written bucket) on tokio time (see
//!   `clock.rs`). It is used twice: on retries (client-go's bucket, 10 qps / burst 100) and,
//!   optionally, on every take (a true per-plugin limit on reconciles per second).
//!
//! Unlike client-go, which *reserves* a bucket slot when a retry is scheduled, the queue asks
//! the bucket when a retry is due (see `rate_limiting.rs`): a retry that an event overtakes, or
//! that is forgotten, never spends a token.

use super::clock::TokioClock;
use super::config::{BackoffConfig, RateLimit};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use rand::Rng;
use std::num::NonZeroU32;
use std::time::Duration;
use tokio::time::Instant;

/// Per-key exponential backoff arithmetic.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    jitter: f64,
}

impl Backoff {
    /// Backoff from a validated config.
    pub fn new(cfg: &BackoffConfig) -> Self {
        Self {
            base: cfg.base,
            cap: cfg.cap,
            jitter: cfg.jitter,
        }
    }

    /// The delay before retrying a key that has now failed `failures` times in a row
    /// (1 for the first failure). Never panics and never exceeds the cap, whatever the count.
    pub fn delay(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1);
        let raw = 1u32
            .checked_shl(exponent)
            .and_then(|factor| self.base.checked_mul(factor))
            .map_or(self.cap, |d| d.min(self.cap));
        if self.jitter <= 0.0 {
            return raw;
        }
        let fraction = rand::rng().random_range(0.0..=self.jitter);
        Duration::try_from_secs_f64(raw.as_secs_f64() * fraction)
            .ok()
            .and_then(|extra| raw.checked_add(extra))
            .map_or(self.cap, |d| d.min(self.cap))
    }
}

type Governor = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Nanos>>;

/// A token bucket on tokio time.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    limiter: Governor,
    clock: TokioClock,
}

impl TokenBucket {
    /// A full bucket for `limit`, reading time relative to `base`. `None` if the rate cannot be
    /// represented (config validation rules such rates out first).
    pub(crate) fn new(limit: &RateLimit, base: Instant) -> Option<Self> {
        let period = Duration::try_from_secs_f64(1.0 / limit.qps).ok()?;
        let quota = Quota::with_period(period)?.allow_burst(NonZeroU32::new(limit.burst)?);
        let clock = TokioClock::new(base);
        Some(Self {
            limiter: RateLimiter::direct_with_clock(quota, clock),
            clock,
        })
    }

    /// Takes one token, or reports the earliest instant one will be available.
    pub(crate) fn try_acquire(&self) -> Result<(), Instant> {
        self.limiter
            .check()
            .map_err(|not_until| self.clock.to_instant(not_until.earliest_possible()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff(base_ms: u64, cap_ms: u64, jitter: f64) -> Backoff {
        Backoff::new(&BackoffConfig {
            base: Duration::from_millis(base_ms),
            cap: Duration::from_millis(cap_ms),
            jitter,
        })
    }

    #[test]
    fn doubles_from_base_per_failure() {
        let b = Backoff::new(&BackoffConfig::default());
        let ms = |n| b.delay(n).as_millis();
        assert_eq!(ms(1), 5);
        assert_eq!(ms(2), 10);
        assert_eq!(ms(3), 20);
        assert_eq!(ms(10), 5 * 512);
    }

    #[test]
    fn caps_and_never_overflows() {
        let b = Backoff::new(&BackoffConfig::default());
        // 5 ms * 2^17 = 655 s < 1000 s; 2^18 would be 1310 s.
        assert_eq!(b.delay(18), Duration::from_millis(5 << 17));
        assert_eq!(b.delay(19), Duration::from_secs(1000));
        for n in [20, 31, 32, 33, 64, 1000, u32::MAX] {
            assert_eq!(b.delay(n), Duration::from_secs(1000), "failures = {n}");
        }
        let huge = Backoff::new(&BackoffConfig {
            base: Duration::from_secs(u64::MAX / 4),
            cap: Duration::MAX,
            jitter: 1.0,
        });
        assert_eq!(huge.delay(40), Duration::MAX);
        assert!(huge.delay(1) >= Duration::from_secs(u64::MAX / 4));
    }

    #[test]
    fn zero_failures_is_treated_as_the_first() {
        assert_eq!(backoff(7, 100, 0.0).delay(0), Duration::from_millis(7));
    }

    #[test]
    fn jitter_stays_between_delay_and_delay_plus_fraction_and_under_cap() {
        let b = backoff(100, 1_000, 0.5);
        let mut saw_extra = false;
        for _ in 0..500 {
            let d = b.delay(1);
            assert!(
                d >= Duration::from_millis(100) && d <= Duration::from_millis(150),
                "{d:?}"
            );
            saw_extra |= d > Duration::from_millis(100);
            let capped = b.delay(5); // 1600 ms raw, capped at 1000 ms before and after jitter
            assert_eq!(capped, Duration::from_millis(1_000));
        }
        assert!(saw_extra, "jitter 0.5 never added anything in 500 draws");
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_burst_then_refills_at_rate() {
        let start = Instant::now();
        let bucket = TokenBucket::new(
            &RateLimit {
                qps: 10.0,
                burst: 3,
            },
            start,
        )
        .unwrap();
        for _ in 0..3 {
            bucket.try_acquire().unwrap();
        }
        let next = bucket.try_acquire().unwrap_err();
        assert_eq!(next, start + Duration::from_millis(100));
        // A denied attempt spends nothing: still exactly one token at +100 ms.
        tokio::time::advance(Duration::from_millis(99)).await;
        assert!(bucket.try_acquire().is_err());
        tokio::time::advance(Duration::from_millis(1)).await;
        bucket.try_acquire().unwrap();
        assert!(bucket.try_acquire().is_err());
        // After a long quiet period the bucket holds `burst` tokens, not more.
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..3 {
            bucket.try_acquire().unwrap();
        }
        assert!(bucket.try_acquire().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn sustained_rate_matches_qps() {
        let bucket = TokenBucket::new(
            &RateLimit {
                qps: 10.0,
                burst: 1,
            },
            Instant::now(),
        )
        .unwrap();
        let mut granted = 0;
        // 10 s in 1 ms steps: burst 1 + 10 qps * 10 s.
        for _ in 0..10_000 {
            if bucket.try_acquire().is_ok() {
                granted += 1;
            }
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert!((100..=101).contains(&granted), "granted {granted}");
    }

    #[tokio::test(start_paused = true)]
    async fn fractional_rate() {
        let start = Instant::now();
        let bucket = TokenBucket::new(&RateLimit { qps: 0.5, burst: 1 }, start).unwrap();
        bucket.try_acquire().unwrap();
        assert_eq!(
            bucket.try_acquire().unwrap_err(),
            start + Duration::from_secs(2)
        );
    }

    #[test]
    fn unrepresentable_rates_are_refused_not_panicking() {
        let now = Instant::now();
        assert!(TokenBucket::new(&RateLimit { qps: 1.0, burst: 0 }, now).is_none());
        assert!(
            TokenBucket::new(
                &RateLimit {
                    qps: 1e12,
                    burst: 1
                },
                now
            )
            .is_none()
        );
        assert!(
            TokenBucket::new(
                &RateLimit {
                    qps: f64::NAN,
                    burst: 1
                },
                now
            )
            .is_none()
        );
    }
}
