//! Whether an informer's cache is complete, as a small state machine published on a
//! `tokio::sync::watch` channel (the informer's task writes, subscriptions read).
//!
//! ```text
//!            all scopes listed                      
//! Syncing ─────────────────────────────▶ Synced   (final: later relists keep serving the cache)
//!    │  sync timeout          ▲
//!    ▼                        │ all scopes listed
//! Stalled ────────────────────┘          (still retrying; /readyz shows why)
//!    │
//! Syncing/Stalled ── server rejected the watch (400/422) ──▶ Failed  (final: task stopped)
//! ```
//!
//! Workers start only once the caches they read are `Synced`; `Stalled` and `Failed` carry
//! the last error the watch saw, so the host's message says why (forbidden, bad selector,
//! unreachable server) rather than only "timed out".

use std::fmt;
use std::time::Duration;

use tokio::sync::watch;

/// An informer's sync state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncStatus {
    /// The initial list is in progress.
    Syncing { last_error: Option<String> },
    /// Every namespace watched has been listed once; the cache is complete.
    Synced { took: Duration },
    /// Not synced within the configured timeout. Still retrying.
    Stalled {
        waited: Duration,
        last_error: Option<String>,
    },
    /// The API server rejected the watch (e.g. an unsupported field selector). Stopped.
    Failed { message: String },
}

impl SyncStatus {
    pub fn is_synced(&self) -> bool {
        matches!(self, Self::Synced { .. })
    }
}

/// Why a subscription's cache is not usable, from the subscribing plugin's point of view.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin {plugin:?}: watch of {watch} {reason}")]
pub struct SyncError {
    pub plugin: String,
    /// The watch spec, as shown in logs (kind, namespaces, selectors).
    pub watch: String,
    pub reason: SyncFailure,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncFailure {
    TimedOut {
        waited: Duration,
        last_error: Option<String>,
    },
    Rejected {
        message: String,
    },
    /// The informer stopped (host shutdown) before syncing.
    Stopped,
}

impl fmt::Display for SyncFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimedOut { waited, last_error } => {
                write!(f, "did not sync within {}s", waited.as_secs_f64().round())?;
                match last_error {
                    Some(error) => write!(f, "; last error: {error}"),
                    None => f.write_str("; no error seen (slow server or a very large list?)"),
                }
            }
            Self::Rejected { message } => write!(f, "was rejected by the API server: {message}"),
            Self::Stopped => f.write_str("stopped before it synced"),
        }
    }
}

/// Waits until `status` is final or stalled: `Ok` when synced.
pub(crate) async fn wait(mut status: watch::Receiver<SyncStatus>) -> Result<Duration, SyncFailure> {
    loop {
        let outcome = match &*status.borrow_and_update() {
            SyncStatus::Synced { took } => Some(Ok(*took)),
            SyncStatus::Stalled { waited, last_error } => Some(Err(SyncFailure::TimedOut {
                waited: *waited,
                last_error: last_error.clone(),
            })),
            SyncStatus::Failed { message } => Some(Err(SyncFailure::Rejected {
                message: message.clone(),
            })),
            SyncStatus::Syncing { .. } => None,
        };
        if let Some(outcome) = outcome {
            return outcome;
        }
        if status.changed().await.is_err() {
            return Err(SyncFailure::Stopped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_resolves_on_synced_stalled_failed_and_stop() {
        let (tx, rx) = watch::channel(SyncStatus::Syncing { last_error: None });
        let waiter = tokio::spawn(wait(rx.clone()));
        tx.send_replace(SyncStatus::Syncing {
            last_error: Some("boom".into()),
        });
        tx.send_replace(SyncStatus::Synced {
            took: Duration::from_secs(2),
        });
        assert_eq!(waiter.await.unwrap(), Ok(Duration::from_secs(2)));

        tx.send_replace(SyncStatus::Stalled {
            waited: Duration::from_secs(30),
            last_error: Some("forbidden".into()),
        });
        let failure = wait(rx.clone()).await.unwrap_err();
        assert_eq!(
            failure.to_string(),
            "did not sync within 30s; last error: forbidden"
        );

        tx.send_replace(SyncStatus::Failed {
            message: "field label not supported: spec.x".into(),
        });
        let error = SyncError {
            plugin: "web".into(),
            watch: "/v1, Kind=Pod".into(),
            reason: wait(rx.clone()).await.unwrap_err(),
        };
        assert_eq!(
            error.to_string(),
            "plugin \"web\": watch of /v1, Kind=Pod was rejected by the API server: field label not supported: spec.x"
        );

        let (tx, rx) = watch::channel(SyncStatus::Syncing { last_error: None });
        drop(tx);
        assert_eq!(wait(rx).await, Err(SyncFailure::Stopped));
    }
}
