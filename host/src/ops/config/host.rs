//! The `host` section: process-wide settings, validated into [`HostSettings`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{Faults, FieldPath};
use super::guests;
use super::names::{dns1123_label, dns1123_subdomain};
use super::raw::{RawHost, RawLeaderElection};
use super::readable_file;
use crate::sandbox::EngineConfig;
use crate::worker::GuestSettings;

/// Settings of the host process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSettings {
    /// Where /metrics, /healthz, /readyz and /debug/pprof/heap are served; `None`: nowhere.
    pub metrics_address: Option<SocketAddr>,
    /// An explicit kubeconfig file (absolute); `None`: like kubectl ($KUBECONFIG, in-cluster,
    /// ~/.kube/config).
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context; `None`: its current context.
    pub context: Option<String>,
    /// A watch not synced by then is reported (on /readyz and in logs).
    pub cache_sync_timeout: Duration,
    /// How long held keys get to finish on SIGTERM.
    pub shutdown_timeout: Duration,
    /// The one wasmtime engine's settings, validated.
    pub engine: EngineConfig,
    /// `None`: no election (a single replica).
    pub leader_election: Option<LeaderElection>,
    /// Where guests run, on how many threads, at which nice value (`host.guests`).
    pub guests: GuestSettings,
}

/// Leader election on a coordination.k8s.io Lease. Durations satisfy
/// `retry_period < renew_deadline < lease_duration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderElection {
    pub lease_name: String,
    /// `None`: the pod's namespace ($POD_NAMESPACE), else `default`; see
    /// [`LeaderElection::lease_namespace_or`].
    pub lease_namespace: Option<String>,
    /// `None`: $POD_NAME, else the hostname (resolved by the leader-election code at start).
    pub identity: Option<String>,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaderElection {
    /// The Lease's namespace: the configured one, else `pod_namespace` (the caller passes
    /// $POD_NAMESPACE, or the namespace `trellis rbac` was asked for), else `default`.
    pub fn lease_namespace_or(&self, pod_namespace: Option<&str>) -> String {
        self.lease_namespace
            .as_deref()
            .or(pod_namespace.filter(|ns| !ns.is_empty()))
            .unwrap_or("default")
            .to_string()
    }
}

/// Checks the `host` section at `base`; relative paths are resolved against `dir`. Returns the
/// settings even when some are wrong (the plugins' budgets are still checked against the
/// engine), so callers must look at `faults`.
pub(crate) fn validate(
    raw: RawHost,
    base: &FieldPath,
    dir: &Path,
    faults: &mut Faults,
) -> HostSettings {
    let metrics_address = match raw.metrics_address.as_deref() {
        None | Some("") => None,
        Some(text) => match text.parse::<SocketAddr>() {
            Ok(address) => Some(address),
            Err(_) => {
                faults.push(
                    base.key("metricsAddress"),
                    format!(
                        "{text:?} is not an IP address and port (e.g. 127.0.0.1:9090, \
                         0.0.0.0:9090, [::]:9090); \"\" turns the endpoint off"
                    ),
                );
                None
            }
        },
    };
    let kubeconfig = raw.kubeconfig.map(|path| {
        let path = dir.join(path);
        if let Err(why) = readable_file(&path) {
            faults.push(base.key("kubeconfig"), why);
        }
        path
    });
    if raw.context.as_deref() == Some("") {
        faults.push(
            base.key("context"),
            "must not be empty; leave it out (or null) for the kubeconfig's current context",
        );
    }
    if raw.cache_sync_timeout_seconds == 0 {
        faults.push(
            base.key("cacheSyncTimeoutSeconds"),
            "must be at least 1 (the default is 120)",
        );
    }
    if let Err(e) = raw.engine.validate() {
        faults.push(base.join(e.field), e.problem);
    }
    let leader_election = raw
        .leader_election
        .map(|raw| leader_election(raw, &base.key("leaderElection"), faults));
    let guests = guests::validate(raw.guests, &base.key("guests"), faults);
    HostSettings {
        metrics_address,
        kubeconfig,
        context: raw.context,
        cache_sync_timeout: Duration::from_secs(raw.cache_sync_timeout_seconds),
        shutdown_timeout: Duration::from_secs(raw.shutdown_timeout_seconds),
        engine: raw.engine,
        leader_election,
        guests,
    }
}

fn leader_election(
    raw: RawLeaderElection,
    base: &FieldPath,
    faults: &mut Faults,
) -> LeaderElection {
    if let Err(why) = dns1123_subdomain(&raw.lease_name) {
        faults.push(base.key("leaseName"), why);
    }
    if let Some(namespace) = &raw.lease_namespace
        && let Err(why) = dns1123_label(namespace)
    {
        faults.push(base.key("leaseNamespace"), why);
    }
    if raw.identity.as_deref().is_some_and(|i| i.trim().is_empty()) {
        faults.push(
            base.key("identity"),
            "must not be empty; leave it out (or null) for $POD_NAME or the hostname",
        );
    }
    let durations = [
        ("leaseDurationSeconds", raw.lease_duration_seconds),
        ("renewDeadlineSeconds", raw.renew_deadline_seconds),
        ("retryPeriodSeconds", raw.retry_period_seconds),
    ];
    for (field, value) in durations {
        if value == 0 {
            faults.push(base.key(field), "must be at least 1");
        }
    }
    // client-go's rules: a leader renews before its lease runs out, retrying in between.
    if raw.renew_deadline_seconds >= raw.lease_duration_seconds {
        faults.push(
            base.key("renewDeadlineSeconds"),
            format!(
                "{} must be less than leaseDurationSeconds ({}): a leader must give up before \
                 others may take the lease",
                raw.renew_deadline_seconds, raw.lease_duration_seconds
            ),
        );
    }
    if raw.retry_period_seconds >= raw.renew_deadline_seconds {
        faults.push(
            base.key("retryPeriodSeconds"),
            format!(
                "{} must be less than renewDeadlineSeconds ({}): a leader retries renewing \
                 within its deadline",
                raw.retry_period_seconds, raw.renew_deadline_seconds
            ),
        );
    }
    LeaderElection {
        lease_name: raw.lease_name,
        lease_namespace: raw.lease_namespace,
        identity: raw.identity,
        lease_duration: Duration::from_secs(raw.lease_duration_seconds),
        renew_deadline: Duration::from_secs(raw.renew_deadline_seconds),
        retry_period: Duration::from_secs(raw.retry_period_seconds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(namespace: Option<&str>) -> LeaderElection {
        LeaderElection {
            lease_name: "trellis".into(),
            lease_namespace: namespace.map(Into::into),
            identity: None,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    #[test]
    fn the_lease_namespace_is_configured_else_the_pods_else_default() {
        assert_eq!(lease(Some("ops")).lease_namespace_or(Some("pod-ns")), "ops");
        assert_eq!(lease(None).lease_namespace_or(Some("pod-ns")), "pod-ns");
        assert_eq!(lease(None).lease_namespace_or(Some("")), "default");
        assert_eq!(lease(None).lease_namespace_or(None), "default");
    }
}
