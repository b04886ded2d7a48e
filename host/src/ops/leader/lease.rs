//! The Lease object: the records an elector writes, what it has observed, and the three API
//! calls it makes (get, create, replace with a resourceVersion precondition).
//!
//! Expiry is judged the way client-go judges it: by how long *this* replica has seen the
//! record unchanged, on its own monotonic clock, never by comparing the record's `renewTime`
//! with the local wall clock. Replicas' clocks differ; a skewed clock must not let a follower
//! take a lease early. A follower's observation is taken after the read that saw a renewal
//! returned, so it is later than the renewal was written, which is later than the leader's own
//! record of when it sent it: the follower's expiry can never come before the leader's.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::time::Instant;

/// The field manager of every lease write, so an audit log (or the devcluster's write log)
/// tells election traffic apart.
pub(super) const FIELD_MANAGER: &str = "trellis-leader-election";

/// The lease duration written on release (client-go's `ReleaseOnCancel`): the record stays,
/// without a holder, so anyone may take it at once.
const RELEASED_LEASE_SECONDS: i32 = 1;

/// The spec that claims the lease for `identity`, continuing `previous` (if any): a renewal
/// keeps the acquire time and transition count; a takeover starts a new term.
pub(super) fn claim(
    previous: Option<&LeaseSpec>,
    identity: &str,
    lease_seconds: i32,
    now: Timestamp,
) -> LeaseSpec {
    let now = MicroTime(now);
    let base = previous.cloned().unwrap_or_default();
    let renewing = base.holder_identity.as_deref() == Some(identity);
    let transitions = match previous {
        None => 0,
        Some(_) if renewing => base.lease_transitions.unwrap_or(0),
        Some(_) => base.lease_transitions.unwrap_or(0).saturating_add(1),
    };
    LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(lease_seconds),
        acquire_time: if renewing {
            base.acquire_time.clone().or_else(|| Some(now.clone()))
        } else {
            Some(now.clone())
        },
        renew_time: Some(now),
        lease_transitions: Some(transitions),
        ..base
    }
}

/// The spec that gives the lease up: no holder, a one-second duration, the term's count kept.
pub(super) fn released(previous: &LeaseSpec, now: Timestamp) -> LeaseSpec {
    let now = MicroTime(now);
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(RELEASED_LEASE_SECONDS),
        acquire_time: Some(now.clone()),
        renew_time: Some(now),
        ..previous.clone()
    }
}

/// The lease as last read or written, and when its spec was first seen in this form.
#[derive(Debug, Clone)]
pub(super) struct Observed {
    pub(super) lease: Lease,
    seen_at: Instant,
}

impl Observed {
    /// Records `lease`, read or written at `now`. The clock restarts only when the spec
    /// changed: a metadata edit (a label, an annotation) is not a renewal.
    pub(super) fn update(previous: Option<Observed>, lease: Lease, now: Instant) -> Observed {
        let seen_at = match previous {
            Some(previous) if previous.lease.spec == lease.spec => previous.seen_at,
            _ => now,
        };
        Observed { lease, seen_at }
    }

    pub(super) fn spec(&self) -> Option<&LeaseSpec> {
        self.lease.spec.as_ref()
    }

    pub(super) fn holder(&self) -> Option<&str> {
        self.spec()
            .and_then(|spec| spec.holder_identity.as_deref())
            .filter(|holder| !holder.is_empty())
    }

    /// The other replica that validly holds the lease at `now`, if any. A lease without a
    /// holder, or held by us, or not renewed for its duration, can be taken.
    pub(super) fn held_by_other(
        &self,
        identity: &str,
        default_duration: Duration,
        now: Instant,
    ) -> Option<&str> {
        let holder = self.holder().filter(|holder| *holder != identity)?;
        let duration = self
            .spec()
            .and_then(|spec| spec.lease_duration_seconds)
            .and_then(|seconds| u64::try_from(seconds).ok())
            .map_or(default_duration, Duration::from_secs);
        (now < self.seen_at + duration).then_some(holder)
    }
}

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub(super) enum WriteError {
    /// Someone else wrote first (409: the resourceVersion moved, or the lease now exists).
    #[error("another writer changed the lease first (409 Conflict)")]
    Conflict,
    /// The lease was deleted under us (404 on replace).
    #[error("the lease was deleted (404)")]
    Gone,
    #[error(transparent)]
    Api(#[from] kube::Error),
}

impl WriteError {
    fn classify(error: kube::Error) -> Self {
        match &error {
            kube::Error::Api(status) if status.code == 409 => WriteError::Conflict,
            kube::Error::Api(status) if status.code == 404 => WriteError::Gone,
            _ => WriteError::Api(error),
        }
    }
}

/// One Lease, by name, in one namespace.
#[derive(Clone)]
pub(super) struct LeaseApi {
    api: Api<Lease>,
    name: String,
    params: PostParams,
}

impl LeaseApi {
    pub(super) fn new(client: Client, namespace: &str, name: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            params: PostParams {
                dry_run: false,
                field_manager: Some(FIELD_MANAGER.to_string()),
            },
        }
    }

    pub(super) async fn get(&self) -> Result<Option<Lease>, kube::Error> {
        self.api.get_opt(&self.name).await
    }

    /// Creates the lease; fails with `Conflict` if it exists already.
    pub(super) async fn create(&self, spec: LeaseSpec) -> Result<Lease, WriteError> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
        };
        self.api
            .create(&self.params, &lease)
            .await
            .map_err(WriteError::classify)
    }

    /// Replaces `current`'s spec, on condition that nobody wrote since it was read: the
    /// resourceVersion in its metadata is the precondition.
    pub(super) async fn replace(
        &self,
        current: &Lease,
        spec: LeaseSpec,
    ) -> Result<Lease, WriteError> {
        let lease = Lease {
            metadata: current.metadata.clone(),
            spec: Some(spec),
        };
        self.api
            .replace(&self.name, &self.params, &lease)
            .await
            .map_err(WriteError::classify)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn lease(spec: LeaseSpec, version: &str) -> Lease {
        Lease {
            metadata: ObjectMeta {
                resource_version: Some(version.into()),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
        }
    }

    #[test]
    fn a_new_lease_starts_at_transition_zero() {
        let spec = claim(None, "a", 15, at(0));
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(spec.lease_transitions, Some(0));
        assert_eq!(spec.acquire_time, Some(MicroTime(at(0))));
        assert_eq!(spec.renew_time, Some(MicroTime(at(0))));
    }

    #[test]
    fn a_renewal_keeps_the_term_and_a_takeover_starts_one() {
        let first = claim(None, "a", 15, at(0));
        let renewed = claim(Some(&first), "a", 15, at(2));
        assert_eq!(renewed.acquire_time, Some(MicroTime(at(0))));
        assert_eq!(renewed.renew_time, Some(MicroTime(at(2))));
        assert_eq!(renewed.lease_transitions, Some(0));

        let taken = claim(Some(&renewed), "b", 10, at(30));
        assert_eq!(taken.holder_identity.as_deref(), Some("b"));
        assert_eq!(taken.acquire_time, Some(MicroTime(at(30))));
        assert_eq!(taken.lease_duration_seconds, Some(10));
        assert_eq!(taken.lease_transitions, Some(1));
    }

    #[test]
    fn release_clears_the_holder_and_keeps_the_count() {
        let held = claim(Some(&claim(None, "a", 15, at(0))), "b", 15, at(20));
        let released = released(&held, at(25));
        assert_eq!(released.holder_identity, None);
        assert_eq!(released.lease_duration_seconds, Some(1));
        assert_eq!(released.lease_transitions, Some(1));
        // Taking a released lease is a new term.
        let retaken = claim(Some(&released), "b", 15, at(26));
        assert_eq!(retaken.lease_transitions, Some(2));
        assert_eq!(retaken.acquire_time, Some(MicroTime(at(26))));
    }

    #[test]
    fn other_fields_of_the_spec_survive() {
        let previous = LeaseSpec {
            strategy: Some("OldestEmulationVersion".into()),
            preferred_holder: Some("c".into()),
            ..claim(None, "a", 15, at(0))
        };
        let taken = claim(Some(&previous), "b", 15, at(20));
        assert_eq!(taken.strategy.as_deref(), Some("OldestEmulationVersion"));
        assert_eq!(taken.preferred_holder.as_deref(), Some("c"));
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_counts_from_when_the_spec_last_changed_here() {
        let lease_duration = Duration::from_secs(15);
        let start = Instant::now();
        let held = claim(None, "a", 15, at(0));
        let seen = Observed::update(None, lease(held.clone(), "1"), start);
        assert_eq!(seen.held_by_other("b", lease_duration, start), Some("a"));
        // We are the holder: nothing stops us.
        assert_eq!(seen.held_by_other("a", lease_duration, start), None);

        // A metadata-only change (new resourceVersion, same spec) is not a renewal.
        let later = start + Duration::from_secs(10);
        let seen = Observed::update(Some(seen), lease(held.clone(), "2"), later);
        assert_eq!(seen.held_by_other("b", lease_duration, later), Some("a"));
        let expired = start + lease_duration;
        assert_eq!(seen.held_by_other("b", lease_duration, expired), None);

        // A renewal restarts the clock, whatever its renewTime says.
        let renewed = claim(Some(&held), "a", 15, at(-3600));
        let seen = Observed::update(Some(seen), lease(renewed, "3"), expired);
        assert_eq!(seen.held_by_other("b", lease_duration, expired), Some("a"));
        assert_eq!(
            seen.held_by_other("b", lease_duration, expired + lease_duration),
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_or_empty_lease_is_free_and_the_records_duration_wins() {
        let now = Instant::now();
        let released = released(&claim(None, "a", 15, at(0)), at(1));
        let seen = Observed::update(None, lease(released, "1"), now);
        assert_eq!(seen.holder(), None);
        assert_eq!(seen.held_by_other("b", Duration::from_secs(15), now), None);

        let empty = Observed::update(None, lease(LeaseSpec::default(), "1"), now);
        assert_eq!(empty.held_by_other("b", Duration::from_secs(15), now), None);

        // The holder's duration, not ours, decides.
        let short = claim(None, "a", 2, at(0));
        let seen = Observed::update(None, lease(short, "1"), now);
        let later = now + Duration::from_secs(2);
        assert_eq!(
            seen.held_by_other("b", Duration::from_secs(15), later),
            None
        );
    }
}
