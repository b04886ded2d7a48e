//! Shared helpers for the end-to-end tests (tests/tests/*.rs): the real host library, a real
//! devcluster and the real example plugins, wired the way `trellis dev` and `trellis run`
//! wire them.
//!
//! - [`cluster`]: a devcluster seeded with fixtures (the built-in dev fixtures by default),
//!   its kube client, and views of its write log.
//! - [`wait`]: polling with generous bounds — the tests prove "eventually, and bounded", never
//!   "fast" (2 loaded cores run them).
//! - [`metrics`]: reading samples from the Prometheus text encoding, as a scraper would.

pub mod cluster;
pub mod host;
pub mod metrics;
pub mod objects;
pub mod wait;

/// Logs of the code under test, shown for failing tests (`RUST_LOG` filters, default warn).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
