//! Waiting for a condition against a real server or a real runtime. The bound is generous: it
//! proves "happens", never "happens fast" (a loaded 2-core machine runs the suite).

#![allow(dead_code)] // each test binary uses a different part of it

use std::time::{Duration, Instant};

/// How long a wait may take before the test fails; never expected to be reached.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `check` until it yields; panics naming `what` after [`PATIENCE`].
pub async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
