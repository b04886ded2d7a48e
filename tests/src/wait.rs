//! Waiting for the system to get somewhere, with generous bounds.

use std::future::Future;
use std::time::Duration;

/// How long a test waits for something that normally takes well under a second. Generous on
/// purpose: a loaded 2-core CI machine runs the whole suite at once.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `check` every 50 ms until it returns `Some`, or fails after `within` with `what`
/// and the last state `describe` gives.
pub async fn until<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
