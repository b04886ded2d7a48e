//! Per-plugin queue configuration, its client-go defaults, and its validation.
//!
//! Every plugin gets its own queue, configured from the plugin's config. The defaults match
//! client-go's default controller rate limiter (per-key exponential backoff 5 ms .. 1000 s, and
//! a 10 qps / burst 100 token bucket on retries), so an operator moving a controller from
//! client-go or controller-runtime gets the behaviour they know. Validation runs before a queue
//! exists and names the offending field, because these values come from user-written config.

use std::time::Duration;
use thiserror::Error;

/// Why a queue could not be built.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum QueueError {
    /// A configuration value is out of range; `field` is its path in [`QueueConfig`].
    #[error("invalid queue config for plugin {plugin:?}: {field}: {problem}")]
    Invalid {
        /// The plugin whose configuration is at fault.
        plugin: String,
        /// The field, e.g. `backoff.base` or `retry_limit.qps`.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// Another live queue already reports metrics under the same labels.
    #[error("a queue named {name:?} for plugin {plugin:?} is already registered for metrics")]
    DuplicateMetrics {
        /// The `plugin` label.
        plugin: String,
        /// The `name`/`controller` label.
        name: String,
    },
}

/// Per-key exponential backoff for failed keys (client-go's `ItemExponentialFailureRateLimiter`).
#[derive(Clone, Debug, PartialEq)]
pub struct BackoffConfig {
    /// Delay after the first failure; doubles with each further failure. Default 5 ms.
    pub base: Duration,
    /// Upper bound on the delay. Default 1000 s.
    pub cap: Duration,
    /// Extra random delay as a fraction of the computed delay, in `[0, 1]`; `0.25` adds up to
    /// 25 %. Default 0 (client-go has none); the result never exceeds `cap`.
    pub jitter: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(5),
            cap: Duration::from_secs(1000),
            jitter: 0.0,
        }
    }
}

/// A token bucket: `qps` tokens per second, at most `burst` saved up.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimit {
    /// Sustained rate in tokens per second; fractions allowed (0.5 = one every 2 s).
    pub qps: f64,
    /// Tokens available at once after a quiet period.
    pub burst: u32,
}

impl RateLimit {
    /// client-go's default bucket on retries: 10 qps, burst 100.
    pub fn client_go_retries() -> Self {
        Self {
            qps: 10.0,
            burst: 100,
        }
    }
}

/// Everything that configures one plugin's queue.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueConfig {
    /// The controller name, reported as the `name` and `controller` metric labels (as
    /// controller-runtime does).
    pub name: String,
    /// The plugin, reported as the `plugin` metric label.
    pub plugin: String,
    /// Backoff for keys whose reconcile failed.
    pub backoff: BackoffConfig,
    /// Token bucket that retries pass before they run; `None` lets retries through unthrottled.
    pub retry_limit: Option<RateLimit>,
    /// Token bucket on every take, whatever the reason: a true global limit on reconciles per
    /// second for this plugin. Off by default (client-go has none).
    pub overall_limit: Option<RateLimit>,
    /// How long a low-priority key may wait before it is served alongside normal keys (see
    /// `priority.rs`). Default 60 s.
    pub aging: Duration,
    /// Round-robin between fairness groups (namespaces) within a priority. Off by default: it
    /// costs throughput (see docs/benchmarks/queue.md).
    pub fairness: bool,
}

/// The default aging bound: a low-priority key waits at most this long before it gets at least
/// every other take. See docs/queue.md for why 60 s.
pub const DEFAULT_AGING: Duration = Duration::from_secs(60);

impl QueueConfig {
    /// The client-go defaults for a plugin whose controller name is the plugin name.
    pub fn new(plugin: impl Into<String>) -> Self {
        let plugin = plugin.into();
        Self {
            name: plugin.clone(),
            plugin,
            backoff: BackoffConfig::default(),
            retry_limit: Some(RateLimit::client_go_retries()),
            overall_limit: None,
            aging: DEFAULT_AGING,
            fairness: false,
        }
    }

    /// Checks every field, naming the first one at fault.
    pub fn validate(&self) -> Result<(), QueueError> {
        let bad = |field: &'static str, problem: String| QueueError::Invalid {
            plugin: self.plugin.clone(),
            field,
            problem,
        };
        if self.plugin.is_empty() {
            return Err(bad("plugin", "must not be empty".into()));
        }
        if self.name.is_empty() {
            return Err(bad("name", "must not be empty".into()));
        }
        let b = &self.backoff;
        if b.base.is_zero() {
            return Err(bad("backoff.base", "must be greater than zero".into()));
        }
        if b.cap < b.base {
            return Err(bad(
                "backoff.cap",
                format!("{:?} is below backoff.base {:?}", b.cap, b.base),
            ));
        }
        if !(0.0..=1.0).contains(&b.jitter) {
            return Err(bad(
                "backoff.jitter",
                format!("{} is not a fraction in [0, 1]", b.jitter),
            ));
        }
        if let Some(limit) = &self.retry_limit {
            check_rate(limit, "retry_limit.qps", "retry_limit.burst")
                .map_err(|(f, p)| bad(f, p))?;
        }
        if let Some(limit) = &self.overall_limit {
            check_rate(limit, "overall_limit.qps", "overall_limit.burst")
                .map_err(|(f, p)| bad(f, p))?;
        }
        if self.aging.is_zero() {
            return Err(bad(
                "aging",
                "must be greater than zero (a zero bound would erase the low priority)".into(),
            ));
        }
        Ok(())
    }
}

/// The smallest refill period governor can represent is 1 ns; anything faster is a typo.
const MAX_QPS: f64 = 1e9;

fn check_rate(
    limit: &RateLimit,
    qps_field: &'static str,
    burst_field: &'static str,
) -> Result<(), (&'static str, String)> {
    if !(limit.qps.is_finite() && limit.qps > 0.0 && limit.qps <= MAX_QPS) {
        return Err((
            qps_field,
            format!("{} is not a rate in (0, {MAX_QPS}] per second", limit.qps),
        ));
    }
    if limit.burst == 0 {
        return Err((burst_field, "must be at least 1".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(cfg: &QueueConfig) -> &'static str {
        match cfg.validate() {
            Err(QueueError::Invalid { field, .. }) => field,
            other => panic!("expected an invalid-field error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_match_client_go() {
        let cfg = QueueConfig::new("p");
        assert_eq!(cfg.backoff.base, Duration::from_millis(5));
        assert_eq!(cfg.backoff.cap, Duration::from_secs(1000));
        assert_eq!(
            cfg.retry_limit,
            Some(RateLimit {
                qps: 10.0,
                burst: 100
            })
        );
        assert_eq!(cfg.overall_limit, None);
        assert!(!cfg.fairness);
        assert_eq!(cfg.name, "p");
        cfg.validate().unwrap();
    }

    #[test]
    fn each_bad_field_is_named() {
        let mut c = QueueConfig::new("p");
        c.plugin.clear();
        assert_eq!(field_of(&c), "plugin");

        let mut c = QueueConfig::new("p");
        c.name.clear();
        assert_eq!(field_of(&c), "name");

        let mut c = QueueConfig::new("p");
        c.backoff.base = Duration::ZERO;
        assert_eq!(field_of(&c), "backoff.base");

        let mut c = QueueConfig::new("p");
        c.backoff.cap = Duration::from_millis(1);
        assert_eq!(field_of(&c), "backoff.cap");

        for jitter in [-0.1, 1.5, f64::NAN] {
            let mut c = QueueConfig::new("p");
            c.backoff.jitter = jitter;
            assert_eq!(field_of(&c), "backoff.jitter");
        }

        for qps in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e12] {
            let mut c = QueueConfig::new("p");
            c.retry_limit = Some(RateLimit { qps, burst: 1 });
            assert_eq!(field_of(&c), "retry_limit.qps");
            let mut c = QueueConfig::new("p");
            c.overall_limit = Some(RateLimit { qps, burst: 1 });
            assert_eq!(field_of(&c), "overall_limit.qps");
        }

        let mut c = QueueConfig::new("p");
        c.retry_limit = Some(RateLimit { qps: 1.0, burst: 0 });
        assert_eq!(field_of(&c), "retry_limit.burst");
        let mut c = QueueConfig::new("p");
        c.overall_limit = Some(RateLimit { qps: 1.0, burst: 0 });
        assert_eq!(field_of(&c), "overall_limit.burst");

        let mut c = QueueConfig::new("p");
        c.aging = Duration::ZERO;
        assert_eq!(field_of(&c), "aging");
    }

    #[test]
    fn error_message_names_plugin_field_and_value() {
        let mut c = QueueConfig::new("cert-sync");
        c.backoff.jitter = 2.0;
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.contains("cert-sync"), "{msg}");
        assert!(msg.contains("backoff.jitter"), "{msg}");
        assert!(msg.contains('2'), "{msg}");
    }

    #[test]
    fn fractional_rates_and_disabled_limits_are_valid() {
        let mut c = QueueConfig::new("p");
        c.retry_limit = None;
        c.overall_limit = Some(RateLimit { qps: 0.5, burst: 1 });
        c.validate().unwrap();
    }
}
