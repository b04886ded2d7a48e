//! The election loop and the handle that stops it.
//!
//! States (one task per elector, the only writer of its state):
//!
//! - `Following { holder }`: not holding the lease. Every retry period (jittered by up to 1.2x,
//!   as client-go does, the first attempt at once) read the lease and claim it if it is absent,
//!   has no holder, is ours, or has not changed for its duration as seen here. A claim is a
//!   write with the read resourceVersion as precondition: of two replicas that both saw the
//!   lease free, the second gets 409 and keeps following. `holder` is who holds it as last seen
//!   (`None`: nobody, or not known yet).
//! - `Leading { renewed_at }`: holding the lease; `renewed_at` is when the last successful
//!   claim or renewal was *sent* (a write lands after it is sent, so others' expiry clocks start
//!   later than this). Every retry period, renew with the cached resourceVersion (one request;
//!   on 409, read and decide again). The renewal attempt and the wait before it are both cut off
//!   at `renewed_at + renew_deadline`: at that instant the elector publishes `Following`, which
//!   is `lease_duration - renew_deadline` before any other replica can see the lease expired.
//!   Seeing another holder on a read also ends leadership at once.
//!
//! The loop ends when the handle is released (the lease is then given up if we hold it),
//! aborted, or dropped (both without giving it up: the lease expires as after a crash).

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::config::{InvalidLeaderConfig, JITTER_FACTOR, LeaderConfig};
use super::lease::{LeaseApi, Observed, WriteError, claim, released};
use super::metrics::{LeaderMetrics, LeaseMetrics};

/// Who leads, as this replica sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// This replica holds the lease: it may reconcile.
    Leading,
    /// This replica does not hold the lease and must not reconcile. `holder` is the replica
    /// that holds it, as last seen; `None` when nobody does or it is not known (before the
    /// first read, after a failed renewal, after release).
    Following { holder: Option<String> },
}

impl Leadership {
    pub fn is_leading(&self) -> bool {
        matches!(self, Leadership::Leading)
    }
}

/// For logs and the `leader` readiness check: `leading`, `standby, leader is X`, or
/// `standby, no leader known`.
impl std::fmt::Display for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Leadership::Leading => f.write_str("leading"),
            Leadership::Following {
                holder: Some(holder),
            } => {
                write!(f, "standby, leader is {holder}")
            }
            Leadership::Following { holder: None } => f.write_str("standby, no leader known"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Following { holder: Option<String> },
    Leading { renewed_at: Instant },
}

impl State {
    fn leadership(&self) -> Leadership {
        match self {
            State::Following { holder } => Leadership::Following {
                holder: holder.clone(),
            },
            State::Leading { .. } => Leadership::Leading,
        }
    }
}

/// What one attempt to claim (acquire or renew) the lease came to.
enum Attempt {
    /// The lease is ours; the write that made it so was sent at `sent`.
    Claimed { sent: Instant },
    /// Another replica validly holds it.
    HeldBy(String),
    /// The API failed; nothing is known beyond what was before.
    Failed(String),
}

/// A running election for one Lease. Dropping it stops the election without giving the lease
/// up; call [`LeaderElector::release`] on an orderly shutdown.
pub struct LeaderElector {
    publisher: Publisher,
    task: Option<JoinHandle<Elector>>,
    leadership: watch::Receiver<Leadership>,
    lease: String,
    identity: String,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("lease", &self.lease)
            .field("identity", &self.identity)
            .field("leadership", &*self.leadership.borrow())
            .finish()
    }
}

/// Why the lease could not be given up on release. The lease then expires on its own after
/// its duration, as after a crash; nothing else is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("releasing lease {lease}: {source}")]
    Api {
        lease: String,
        #[source]
        source: kube::Error,
    },
    #[error("releasing lease {lease}: no answer within {after:?}")]
    Timeout { lease: String, after: Duration },
    #[error("releasing lease {lease}: it kept changing under us (409 twice)")]
    Conflict { lease: String },
    #[error("releasing lease {lease}: the election task panicked")]
    Panicked { lease: String },
}

impl LeaderElector {
    /// Validates `config` and starts electing on the current tokio runtime. The receiver starts
    /// at `Following { holder: None }` and changes on every transition.
    pub fn start(
        client: Client,
        config: LeaderConfig,
        metrics: &LeaderMetrics,
    ) -> Result<(LeaderElector, watch::Receiver<Leadership>), InvalidLeaderConfig> {
        config.validate()?;
        let (sender, receiver) = watch::channel(Leadership::Following { holder: None });
        let lease = format!("{}/{}", config.lease_namespace, config.lease_name);
        let metrics = metrics.for_lease(&config.lease_name);
        let publisher = Publisher {
            sender,
            metrics: metrics.clone(),
            cancel: CancellationToken::new(),
        };
        let elector = Elector {
            api: LeaseApi::new(client, &config.lease_namespace, &config.lease_name),
            metrics,
            observed: None,
            publisher: publisher.clone(),
            lease: lease.clone(),
            config,
        };
        let identity = elector.config.identity.clone();
        info!(%lease, %identity, "leader election starting");
        let task = tokio::spawn(elector.run());
        let handle = LeaderElector {
            publisher,
            task: Some(task),
            leadership: receiver.clone(),
            lease,
            identity,
        };
        Ok((handle, receiver))
    }

    /// Another receiver of the leadership state.
    pub fn leadership(&self) -> watch::Receiver<Leadership> {
        self.leadership.clone()
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Stops electing and gives the lease up if this replica holds it (client-go's
    /// `ReleaseOnCancel`: no holder, a one-second duration), so a standby takes over at its
    /// next attempt instead of after the lease expires. Publishes `Following` before the
    /// write; call it after this replica has stopped reconciling.
    pub async fn release(mut self) -> Result<(), ReleaseError> {
        let Some(elector) = self.stop().await else {
            return Err(ReleaseError::Panicked {
                lease: self.lease.clone(),
            });
        };
        let deadline = elector.config.renew_deadline;
        match timeout(deadline, elector.release()).await {
            Ok(result) => result,
            Err(_) => Err(ReleaseError::Timeout {
                lease: self.lease.clone(),
                after: deadline,
            }),
        }
    }

    /// Stops electing without giving the lease up, as a crash would: others take over once
    /// it expires. Publishes `Following`.
    pub async fn abort(mut self) {
        self.stop().await;
    }

    /// Ends the loop and hands back its state; `None` if the task panicked.
    async fn stop(&mut self) -> Option<Elector> {
        self.publisher.stop();
        let task = self.task.take()?;
        match task.await {
            Ok(elector) => Some(elector),
            Err(error) => {
                warn!(lease = %self.lease, %error, "leader election task failed");
                None
            }
        }
    }
}

impl Drop for LeaderElector {
    fn drop(&mut self) {
        self.publisher.stop();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Publishes transitions to consumers and metrics, and ends them: once stopped, nothing can
/// publish `Leading` again, even a task that finishes a claim while it is being stopped.
#[derive(Clone)]
struct Publisher {
    sender: watch::Sender<Leadership>,
    metrics: LeaseMetrics,
    cancel: CancellationToken,
}

impl Publisher {
    /// Publishes `next` if it changes what consumers see. The check of the stop flag runs
    /// under the channel's lock, which orders it against `stop`'s own publication.
    fn publish(&self, next: Leadership) {
        let mut was_leading = false;
        let leading = next.is_leading();
        let changed = self.sender.send_if_modified(|current| {
            if *current == next || (leading && self.cancel.is_cancelled()) {
                return false;
            }
            was_leading = current.is_leading();
            *current = next;
            true
        });
        if changed && was_leading != leading {
            self.metrics.leading(leading);
        }
    }

    /// Stops the loop and publishes `Following` for good.
    fn stop(&self) {
        self.cancel.cancel();
        self.publish(Leadership::Following { holder: None });
    }
}

/// The task's state: everything the loop reads and writes.
struct Elector {
    config: LeaderConfig,
    api: LeaseApi,
    metrics: LeaseMetrics,
    /// The lease as last read or written, with when its spec was first seen.
    observed: Option<Observed>,
    publisher: Publisher,
    /// `namespace/name`, for logs and errors.
    lease: String,
}

/// Stops the publisher if the election loop unwinds: a panicked loop renews nothing, so its
/// replica must stop believing it leads (the handle would otherwise keep `Leading` published
/// until someone calls `release` or drops it, long after the lease expired).
struct StopOnUnwind(Publisher);

impl Drop for StopOnUnwind {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop();
        }
    }
}

impl Elector {
    async fn run(mut self) -> Elector {
        let _unwind = StopOnUnwind(self.publisher.clone());
        let cancel = self.publisher.cancel.clone();
        let mut state = State::Following { holder: None };
        let mut wake = Instant::now();
        loop {
            if let State::Leading { renewed_at } = state {
                wake = wake.min(renewed_at + self.config.renew_deadline);
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                () = sleep_until(wake) => {}
            }
            let next = tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                next = self.step(&state) => next,
            };
            self.publisher.publish(next.leadership());
            state = next;
            wake = Instant::now() + self.wait(&state);
        }
        debug!(lease = %self.lease, "leader election loop stopped");
        self
    }

    /// Time until the next attempt: a retry period while leading, jittered while following.
    fn wait(&self, state: &State) -> Duration {
        let retry = self.config.retry_period;
        match state {
            State::Leading { .. } => retry,
            State::Following { .. } => retry.mul_f64(1.0 + rand::random::<f64>() * JITTER_FACTOR),
        }
    }

    async fn step(&mut self, state: &State) -> State {
        match state {
            State::Following { holder } => self.follow(holder).await,
            State::Leading { renewed_at } => self.renew(*renewed_at).await,
        }
    }

    async fn follow(&mut self, holder: &Option<String>) -> State {
        // An attempt that outlasts the renew deadline is useless: a claim sent that long ago
        // would already be due for renewal.
        let attempt = timeout(self.config.renew_deadline, self.claim(false)).await;
        match attempt {
            Ok(Attempt::Claimed { sent }) => {
                info!(lease = %self.lease, identity = %self.config.identity, "acquired the lease: leading");
                State::Leading { renewed_at: sent }
            }
            Ok(Attempt::HeldBy(other)) => {
                if holder.as_deref() != Some(other.as_str()) {
                    info!(lease = %self.lease, leader = %other, "following: another replica leads");
                }
                State::Following {
                    holder: Some(other),
                }
            }
            Ok(Attempt::Failed(error)) => {
                warn!(lease = %self.lease, %error, "could not acquire the lease; will retry");
                State::Following {
                    holder: holder.clone(),
                }
            }
            Err(_) => {
                warn!(lease = %self.lease, "acquiring the lease timed out; will retry");
                State::Following {
                    holder: holder.clone(),
                }
            }
        }
    }

    async fn renew(&mut self, renewed_at: Instant) -> State {
        let deadline = renewed_at + self.config.renew_deadline;
        // Past the deadline, no attempt at all: a write sent now could only land after this
        // replica stopped leading.
        let attempt = if Instant::now() >= deadline {
            None
        } else {
            timeout_at(deadline, self.claim(true)).await.ok()
        };
        match attempt {
            Some(Attempt::Claimed { sent }) => State::Leading { renewed_at: sent },
            Some(Attempt::HeldBy(other)) => {
                warn!(lease = %self.lease, leader = %other, "lost the lease to another replica: stopped leading");
                State::Following {
                    holder: Some(other),
                }
            }
            Some(Attempt::Failed(error)) => {
                self.metrics.renew_failed();
                warn!(lease = %self.lease, %error, "could not renew the lease; retrying until the renew deadline");
                State::Leading { renewed_at }
            }
            None => {
                self.metrics.renew_failed();
                warn!(
                    lease = %self.lease,
                    renew_deadline = ?self.config.renew_deadline,
                    "lease not renewed within the renew deadline: stopped leading"
                );
                State::Following { holder: None }
            }
        }
    }

    /// Reads the lease (or, when `cached`, starts from the last one seen) and writes a claim
    /// if nobody else validly holds it. A conflict means someone wrote in between: read again
    /// and decide again, once.
    async fn claim(&mut self, cached: bool) -> Attempt {
        let mut current = if cached { self.observed.clone() } else { None };
        for _ in 0..2 {
            let observed = match current.take() {
                Some(observed) => observed,
                None => match self.read().await {
                    Ok(Some(observed)) => observed,
                    Ok(None) => match self.create().await {
                        Ok(sent) => return Attempt::Claimed { sent },
                        Err(WriteError::Conflict) => continue,
                        Err(error) => return Attempt::Failed(error.to_string()),
                    },
                    Err(error) => return Attempt::Failed(error.to_string()),
                },
            };
            let now = Instant::now();
            let lease_duration = self.config.lease_duration;
            if let Some(holder) = observed.held_by_other(&self.config.identity, lease_duration, now)
            {
                return Attempt::HeldBy(holder.to_string());
            }
            let spec = claim(
                observed.spec(),
                &self.config.identity,
                self.config.lease_seconds(),
                Timestamp::now(),
            );
            let sent = Instant::now();
            match self.api.replace(&observed.lease, spec).await {
                Ok(lease) => {
                    self.observed = Some(Observed::update(Some(observed), lease, Instant::now()));
                    return Attempt::Claimed { sent };
                }
                Err(WriteError::Conflict) => {}
                Err(WriteError::Gone) => self.observed = None,
                Err(error) => return Attempt::Failed(error.to_string()),
            }
        }
        Attempt::Failed("the lease changed under every attempt (409)".to_string())
    }

    /// Reads the lease and records the observation, timed after the answer arrived.
    async fn read(&mut self) -> Result<Option<Observed>, kube::Error> {
        let lease = self.api.get().await?;
        let now = Instant::now();
        Ok(lease.map(|lease| {
            let observed = Observed::update(self.observed.take(), lease, now);
            self.observed = Some(observed.clone());
            observed
        }))
    }

    async fn create(&mut self) -> Result<Instant, WriteError> {
        let spec = claim(
            None,
            &self.config.identity,
            self.config.lease_seconds(),
            Timestamp::now(),
        );
        let sent = Instant::now();
        let lease = self.api.create(spec).await?;
        self.observed = Some(Observed::update(None, lease, Instant::now()));
        Ok(sent)
    }

    /// Gives the lease up if we hold it, reading it fresh: a claim cut off by the stop may
    /// have landed without our knowing.
    async fn release(mut self) -> Result<(), ReleaseError> {
        for _ in 0..2 {
            let observed = match self.read().await {
                Ok(Some(observed)) => observed,
                Ok(None) => return Ok(()),
                Err(source) => {
                    return Err(ReleaseError::Api {
                        lease: self.lease.clone(),
                        source,
                    });
                }
            };
            if observed.holder() != Some(self.config.identity.as_str()) {
                return Ok(());
            }
            let Some(spec) = observed.spec() else {
                return Ok(());
            };
            match self
                .api
                .replace(&observed.lease, released(spec, Timestamp::now()))
                .await
            {
                Ok(_) => {
                    info!(lease = %self.lease, identity = %self.config.identity, "released the lease");
                    return Ok(());
                }
                Err(WriteError::Conflict) => {}
                Err(WriteError::Gone) => return Ok(()),
                Err(WriteError::Api(source)) => {
                    return Err(ReleaseError::Api {
                        lease: self.lease.clone(),
                        source,
                    });
                }
            }
        }
        Err(ReleaseError::Conflict {
            lease: self.lease.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leadership_reads_as_the_readiness_detail() {
        assert_eq!(Leadership::Leading.to_string(), "leading");
        let following = Leadership::Following {
            holder: Some("trellis-5d8f-x2k4p".into()),
        };
        assert_eq!(
            following.to_string(),
            "standby, leader is trellis-5d8f-x2k4p"
        );
        assert!(!following.is_leading());
        let unknown = Leadership::Following { holder: None };
        assert_eq!(unknown.to_string(), "standby, no leader known");
    }

    #[tokio::test]
    async fn a_panicking_election_loop_publishes_following_and_never_leading_again() {
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = LeaderMetrics::register(&mut registry).for_lease("trellis");
        let (sender, receiver) = watch::channel(Leadership::Following { holder: None });
        let publisher = Publisher {
            sender,
            metrics,
            cancel: CancellationToken::new(),
        };
        publisher.publish(Leadership::Leading);
        assert!(receiver.borrow().is_leading());

        let inside = publisher.clone();
        let task = tokio::spawn(async move {
            let _unwind = StopOnUnwind(inside);
            panic!("a bug in the election loop");
        });
        assert!(task.await.unwrap_err().is_panic());
        assert_eq!(*receiver.borrow(), Leadership::Following { holder: None });
        publisher.publish(Leadership::Leading);
        assert!(
            !receiver.borrow().is_leading(),
            "a stopped publisher leads no more"
        );
    }

    #[tokio::test]
    async fn a_loop_that_ends_normally_leaves_the_publication_alone() {
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = LeaderMetrics::register(&mut registry).for_lease("trellis");
        let (sender, receiver) = watch::channel(Leadership::Following { holder: None });
        let publisher = Publisher {
            sender,
            metrics,
            cancel: CancellationToken::new(),
        };
        publisher.publish(Leadership::Leading);
        drop(StopOnUnwind(publisher.clone()));
        assert!(receiver.borrow().is_leading());
    }
}
