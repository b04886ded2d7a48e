//! What configures one plugin's pool, its defaults and its validation.
//!
//! The values come from the plugin's entry in the host config (`workers`,
//! `degradedAfterSeconds`); the config loader builds a [`PoolConfig`] from them, and the pool
//! checks it again before spawning anything, so a bad value never becomes a pool with zero
//! workers or a plugin that is reported degraded after every single failure.

use std::time::Duration;

/// Workers per plugin when the config does not say.
pub const DEFAULT_WORKERS: usize = 4;

/// The most workers one plugin may have. Each worker holds at most one guest instance, and the
/// sandbox's instance pool (`engine.maxInstances`, default 64) is shared by every plugin.
pub const MAX_WORKERS: usize = 64;

/// How long every call must have failed before a plugin is reported degraded, by default.
pub const DEFAULT_DEGRADED_AFTER: Duration = Duration::from_secs(300);

/// Why a pool could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// A configuration value is out of range; `field` is its name in the plugin's config.
    #[error("plugin {plugin:?}: {field}: {problem}")]
    Invalid {
        plugin: String,
        field: &'static str,
        problem: String,
    },
    /// Another live pool already reports metrics for this plugin.
    #[error("plugin {plugin:?}: a worker pool for this plugin already reports metrics")]
    DuplicateMetrics { plugin: String },
    /// The queue handed to the pool belongs to another plugin (its metrics and logs would name
    /// the wrong one).
    #[error("plugin {plugin:?}: the work queue given to its pool belongs to plugin {queue:?}")]
    ForeignQueue { plugin: String, queue: String },
    /// The pool's own guest runtime could not start (threads could not be spawned).
    #[error("plugin {plugin:?}: cannot start its guest runtime: {message}")]
    Runtime { plugin: String, message: String },
    /// `Pool::start` was called outside a tokio runtime.
    #[error("plugin {plugin:?}: a worker pool must be started inside a tokio runtime")]
    NoRuntime { plugin: String },
}

/// One plugin's pool settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Concurrent reconciles (`workers`), 1..=[`MAX_WORKERS`].
    pub workers: usize,
    /// Failing every call this long makes the plugin degraded (`degradedAfterSeconds`).
    pub degraded_after: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            workers: DEFAULT_WORKERS,
            degraded_after: DEFAULT_DEGRADED_AFTER,
        }
    }
}

impl PoolConfig {
    /// Checks every field, naming the first at fault.
    pub fn validate(&self, plugin: &str) -> Result<(), PoolError> {
        let bad = |field, problem: String| PoolError::Invalid {
            plugin: plugin.to_string(),
            field,
            problem,
        };
        if !(1..=MAX_WORKERS).contains(&self.workers) {
            return Err(bad(
                "workers",
                format!("{} is outside 1..={MAX_WORKERS}", self.workers),
            ));
        }
        if self.degraded_after.is_zero() {
            return Err(bad(
                "degradedAfterSeconds",
                "must be at least 1 (a single failure is not degradation)".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let config = PoolConfig::default();
        assert_eq!(config.workers, 4);
        assert_eq!(config.degraded_after, Duration::from_secs(300));
        assert_eq!(config.validate("p"), Ok(()));
    }

    #[test]
    fn workers_out_of_range_name_the_field_and_plugin() {
        for workers in [0, MAX_WORKERS + 1] {
            let config = PoolConfig {
                workers,
                ..PoolConfig::default()
            };
            let err = config.validate("web").unwrap_err();
            let text = err.to_string();
            assert!(text.contains("\"web\""), "{text}");
            assert!(text.contains("workers"), "{text}");
            assert!(text.contains(&workers.to_string()), "{text}");
        }
        let edge = PoolConfig {
            workers: MAX_WORKERS,
            ..PoolConfig::default()
        };
        assert_eq!(edge.validate("web"), Ok(()));
    }

    #[test]
    fn zero_degraded_window_is_refused() {
        let config = PoolConfig {
            degraded_after: Duration::ZERO,
            ..PoolConfig::default()
        };
        let text = config.validate("web").unwrap_err().to_string();
        assert!(text.contains("degradedAfterSeconds"), "{text}");
    }
}
