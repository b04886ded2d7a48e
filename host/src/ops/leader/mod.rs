//! Leader election on a coordination.k8s.io/v1 Lease (issue 7), with client-go's semantics.
//!
//! Only the leader reconciles; standbys keep their caches warm so a failover does not relist.
//! The one property that matters is that two replicas never reconcile at once, so the design
//! is built around it:
//!
//! - A follower takes the lease only when it is absent, has no holder, or has not changed for
//!   its `leaseDurationSeconds` *as observed on the follower's own monotonic clock*: wall
//!   clocks of replicas differ and are never compared, so `renewTime` is informational. Every write
//!   carries the resourceVersion it read, so of two followers racing, one gets 409 and stays
//!   a follower.
//! - A leader that cannot renew gives up when `renewDeadline` has passed since its last
//!   successful renewal was sent, cutting off a hanging request if need be. Since
//!   `renewDeadline < leaseDuration` (validated), that is strictly before anyone else can see
//!   the lease expire: the gap is the time consumers have to stop reconciling after they see
//!   `Following`.
//! - On an orderly shutdown the leader releases the lease (no holder, one-second duration, as
//!   client-go's `ReleaseOnCancel` does) so a standby takes over at its next attempt.
//!
//! Limits, as in client-go: the guarantee assumes the replicas' clocks run at the same rate
//! (not that they agree), and deleting the Lease by hand lets a follower create a new one
//! while the leader still leads until its next renewal.
//!
//! ```no_run
//! # async fn example(client: kube::Client) -> anyhow::Result<()> {
//! use prometheus_client::registry::Registry;
//! use trellis_host::ops::leader::{LeaderConfig, LeaderElector, LeaderMetrics};
//!
//! let mut registry = Registry::default();
//! let metrics = LeaderMetrics::register(&mut registry);
//! let config = LeaderConfig::new("trellis", "trellis-system", "trellis-7d9f-abcde");
//! let (elector, mut leadership) = LeaderElector::start(client, config, &metrics)?;
//! while !leadership.borrow_and_update().is_leading() {
//!     leadership.changed().await?;
//! }
//! // ... reconcile while `leadership` says Leading; stop as soon as it does not ...
//! elector.release().await?;
//! # Ok(()) }
//! ```

mod config;
mod elector;
mod lease;
mod metrics;

pub use config::{
    InvalidLeaderConfig, LeaderConfig, LeaderConfigError, default_identity, default_namespace,
};
pub use elector::{LeaderElector, Leadership, ReleaseError};
pub use metrics::LeaderMetrics;
