//! Leader election settings and their validation.
//!
//! The rules are client-go's (`NewLeaderElector`): the lease must outlive the renew deadline,
//! because the gap between them is the time a leader that can no longer renew has to stop
//! reconciling before anyone else may take the lease; and the renew deadline must leave room
//! for more than one jittered retry. Unlike client-go, periods below a second are allowed
//! (tests use them); the lease duration alone must be whole seconds, because that is all a
//! Lease can store.

use std::time::Duration;

/// client-go's `JitterFactor`: a follower waits between 1 and 2.2 retry periods between
/// attempts, so replicas started together do not all ask at once.
pub(super) const JITTER_FACTOR: f64 = 1.2;

/// Where the lease is and who we are, and the three durations of client-go's algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderConfig {
    /// Name of the coordination.k8s.io/v1 Lease (`leaseName`).
    pub lease_name: String,
    /// Namespace of the Lease (`leaseNamespace`).
    pub lease_namespace: String,
    /// This replica's holder identity (`identity`); must be unique among replicas, which pod
    /// names are.
    pub identity: String,
    /// How long a lease stays valid after its last renewal, as observed by the others
    /// (`leaseDurationSeconds`, default 15 s). Whole seconds.
    pub lease_duration: Duration,
    /// How long a leader keeps leading without a successful renewal (`renewDeadlineSeconds`,
    /// default 10 s).
    pub renew_deadline: Duration,
    /// Time between attempts to acquire or renew (`retryPeriodSeconds`, default 2 s).
    pub retry_period: Duration,
}

impl LeaderConfig {
    /// controller-runtime's defaults: 15 s lease, 10 s renew deadline, 2 s retry period.
    pub fn new(
        lease_name: impl Into<String>,
        lease_namespace: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            lease_name: lease_name.into(),
            lease_namespace: lease_namespace.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Every problem at once, each naming the setting at fault.
    pub fn validate(&self) -> Result<(), InvalidLeaderConfig> {
        let mut problems = Vec::new();
        if let Err(why) = dns_subdomain(&self.lease_name) {
            problems.push(LeaderConfigError::LeaseName {
                name: self.lease_name.clone(),
                why,
            });
        }
        if let Err(why) = dns_label(&self.lease_namespace) {
            problems.push(LeaderConfigError::LeaseNamespace {
                namespace: self.lease_namespace.clone(),
                why,
            });
        }
        if self.identity.trim().is_empty() {
            problems.push(LeaderConfigError::EmptyIdentity);
        }
        let lease = self.lease_duration;
        if lease < Duration::from_secs(1)
            || lease.subsec_nanos() != 0
            || lease_seconds(lease).is_none()
        {
            problems.push(LeaderConfigError::LeaseDuration {
                lease_duration: lease,
            });
        }
        if self.renew_deadline.is_zero() {
            problems.push(LeaderConfigError::ZeroDuration {
                field: "renewDeadlineSeconds",
            });
        } else if self.renew_deadline >= lease {
            problems.push(LeaderConfigError::RenewDeadlineNotBelowLease {
                renew_deadline: self.renew_deadline,
                lease_duration: lease,
            });
        }
        if self.retry_period.is_zero() {
            problems.push(LeaderConfigError::ZeroDuration {
                field: "retryPeriodSeconds",
            });
        } else if self.renew_deadline.as_secs_f64()
            <= JITTER_FACTOR * self.retry_period.as_secs_f64()
        {
            problems.push(LeaderConfigError::RetryPeriodTooLong {
                retry_period: self.retry_period,
                renew_deadline: self.renew_deadline,
            });
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(InvalidLeaderConfig(problems))
        }
    }

    /// The lease duration as the Lease stores it (validated: whole seconds that fit an i32).
    pub(super) fn lease_seconds(&self) -> i32 {
        lease_seconds(self.lease_duration).unwrap_or(i32::MAX)
    }
}

fn lease_seconds(duration: Duration) -> Option<i32> {
    i32::try_from(duration.as_secs()).ok()
}

/// The identity a replica uses when the config names none: `$POD_NAME` (set from the
/// downward API in our manifests), else the host name, which in a pod is the pod name too.
pub fn default_identity() -> Option<String> {
    std::env::var("POD_NAME")
        .ok()
        .filter(|name| !name.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|name| name.trim().to_string())
                .filter(|name| !name.is_empty())
        })
}

/// The Lease namespace when the config names none: the pod's (`$POD_NAMESPACE`), else
/// `default`.
pub fn default_namespace() -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|namespace| !namespace.trim().is_empty())
        .unwrap_or_else(|| "default".to_string())
}

/// One problem with a [`LeaderConfig`], named by its config key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaderConfigError {
    #[error("leaderElection.leaseName {name:?} is not a valid Lease name: {why}")]
    LeaseName { name: String, why: &'static str },
    #[error("leaderElection.leaseNamespace {namespace:?} is not a valid namespace: {why}")]
    LeaseNamespace {
        namespace: String,
        why: &'static str,
    },
    #[error("leaderElection.identity is empty; every replica needs a unique identity")]
    EmptyIdentity,
    #[error(
        "leaderElection.leaseDurationSeconds must be a whole number of seconds, at least 1 \
         (a Lease stores seconds), not {lease_duration:?}"
    )]
    LeaseDuration { lease_duration: Duration },
    #[error("leaderElection.{field} must be greater than zero")]
    ZeroDuration { field: &'static str },
    #[error(
        "leaderElection.renewDeadlineSeconds ({renew_deadline:?}) must be less than \
         leaseDurationSeconds ({lease_duration:?}): a leader that cannot renew must stop \
         before another replica may take the lease"
    )]
    RenewDeadlineNotBelowLease {
        renew_deadline: Duration,
        lease_duration: Duration,
    },
    #[error(
        "leaderElection.renewDeadlineSeconds ({renew_deadline:?}) must be more than 1.2 x \
         retryPeriodSeconds ({retry_period:?}), so a leader gets more than one try to renew"
    )]
    RetryPeriodTooLong {
        retry_period: Duration,
        renew_deadline: Duration,
    },
}

/// Every problem found by [`LeaderConfig::validate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid leader election config: {}", join(.0))]
pub struct InvalidLeaderConfig(pub Vec<LeaderConfigError>);

fn join(problems: &[LeaderConfigError]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// RFC 1123 subdomain, the rule for most object names (Leases included).
fn dns_subdomain(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > 253 {
        return Err("it is longer than 253 characters");
    }
    name.split('.').try_for_each(|part| {
        label_chars(part).map_err(|_| {
            "it must consist of lower case alphanumeric characters, '-' or '.', and must start \
             and end with an alphanumeric character"
        })
    })
}

/// RFC 1123 label, the rule for namespace names.
fn dns_label(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > 63 {
        return Err("it is longer than 63 characters");
    }
    label_chars(name)
}

fn label_chars(part: &str) -> Result<(), &'static str> {
    let bytes = part.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let ok = !bytes.is_empty()
        && bytes.iter().all(|b| alnum(b) || *b == b'-')
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum);
    if ok {
        Ok(())
    } else {
        Err(
            "it must consist of lower case alphanumeric characters or '-', and must start and \
             end with an alphanumeric character",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LeaderConfig {
        LeaderConfig::new("trellis", "trellis-system", "pod-a")
    }

    #[test]
    fn defaults_are_controller_runtimes_and_valid() {
        let config = config();
        assert_eq!(config.lease_duration, Duration::from_secs(15));
        assert_eq!(config.renew_deadline, Duration::from_secs(10));
        assert_eq!(config.retry_period, Duration::from_secs(2));
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.lease_seconds(), 15);
    }

    #[test]
    fn short_test_durations_are_valid() {
        let config = LeaderConfig {
            lease_duration: Duration::from_secs(2),
            renew_deadline: Duration::from_millis(1500),
            retry_period: Duration::from_millis(200),
            ..config()
        };
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn renew_deadline_must_be_below_the_lease() {
        let config = LeaderConfig {
            renew_deadline: Duration::from_secs(15),
            ..config()
        };
        let err = config.validate().unwrap_err();
        assert_eq!(
            err.0,
            vec![LeaderConfigError::RenewDeadlineNotBelowLease {
                renew_deadline: Duration::from_secs(15),
                lease_duration: Duration::from_secs(15),
            }]
        );
        assert!(err.to_string().contains("renewDeadlineSeconds"), "{err}");
    }

    #[test]
    fn retry_period_must_leave_room_for_retries() {
        let config = LeaderConfig {
            retry_period: Duration::from_secs(9),
            ..config()
        };
        assert!(matches!(
            config.validate().unwrap_err().0[..],
            [LeaderConfigError::RetryPeriodTooLong { .. }]
        ));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let config = LeaderConfig {
            lease_name: "Trellis_Lease".into(),
            lease_namespace: "-bad".into(),
            identity: " ".into(),
            lease_duration: Duration::from_millis(2500),
            renew_deadline: Duration::ZERO,
            retry_period: Duration::ZERO,
        };
        let problems = config.validate().unwrap_err().0;
        assert!(
            matches!(
                problems[..],
                [
                    LeaderConfigError::LeaseName { .. },
                    LeaderConfigError::LeaseNamespace { .. },
                    LeaderConfigError::EmptyIdentity,
                    LeaderConfigError::LeaseDuration { .. },
                    LeaderConfigError::ZeroDuration {
                        field: "renewDeadlineSeconds"
                    },
                    LeaderConfigError::ZeroDuration {
                        field: "retryPeriodSeconds"
                    },
                ]
            ),
            "{problems:?}"
        );
    }

    #[test]
    fn lease_durations_the_lease_cannot_store_are_rejected() {
        for lease_duration in [
            Duration::ZERO,
            Duration::from_millis(999),
            Duration::from_secs(u64::from(u32::MAX)),
        ] {
            let config = LeaderConfig {
                lease_duration,
                ..config()
            };
            assert!(
                config
                    .validate()
                    .unwrap_err()
                    .0
                    .contains(&LeaderConfigError::LeaseDuration { lease_duration }),
                "{lease_duration:?}"
            );
        }
    }

    #[test]
    fn names_follow_the_api_servers_rules() {
        assert!(dns_subdomain("trellis.example-1").is_ok());
        assert!(dns_subdomain("").is_err());
        assert!(dns_subdomain("a..b").is_err());
        assert!(dns_subdomain(&"a".repeat(254)).is_err());
        assert!(dns_label("trellis-system").is_ok());
        assert!(dns_label("a.b").is_err());
        assert!(dns_label(&"a".repeat(64)).is_err());
        assert!(dns_label("ends-").is_err());
    }
}
