//! Two hosts on one Lease (issue 7): only the leader reconciles while the standby keeps its
//! caches warm; when the leader stops and releases the lease, the standby takes over without
//! listing again; a leader whose lease writes fail stops reconciling and says so; and through
//! a release and a crash while objects keep changing, the devcluster's write log (each
//! replica's requests carry its own User-Agent) shows the replicas never writing at once and
//! each takeover bounded by the lease, on the server's clock.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use trellis_devcluster::FaultRule;
use trellis_devcluster::WriteRecord;
use trellis_e2e::cluster::Cluster;
use trellis_e2e::host::{Host, LEASE_DURATION, RETRY_PERIOD, elected};
use trellis_e2e::init_logging;
use trellis_e2e::objects::{
    annotate_namespace, defaulted_namespaces, enable_defaults, quota_pods, until_policy,
    until_quotas_of_round,
};
use trellis_e2e::wait::{PATIENCE, until};
use trellis_host::manager::PluginPhase;
use trellis_host::ops::dev::DEV_CONFIG;
use trellis_host::ops::leader::LeaderElector;

fn phases(host: &Host) -> Vec<PluginPhase> {
    host.stats().plugins.iter().map(|p| p.phase).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_reconciles_and_a_warm_standby_takes_over_without_relisting() {
    init_logging();
    let cluster = Cluster::with_dev_fixtures().await;
    let client = &cluster.client;
    let (elector_a, options) = elected(&cluster.client, "host-a");
    let a = Host::start_with(&cluster, DEV_CONFIG, options).await;
    a.running().await;
    let (elector_b, options) = elected(&cluster.client, "host-b");
    let b = Host::start_with(&cluster, DEV_CONFIG, options).await;
    until("host-b standing by", PATIENCE, || async {
        phases(&b)
            .iter()
            .all(|p| *p == PluginPhase::Standby)
            .then_some(())
    })
    .await;
    until_policy(client, "team-a", "defaults in team-a").await;
    // The standby's caches are warm and its queue full, but it reconciles nothing.
    let standby = b.stats();
    for plugin in &standby.plugins {
        assert_eq!(plugin.reconciles, 0, "{plugin:?}");
        assert!(plugin.objects > 0, "standby caches are warm: {plugin:?}");
    }

    // The leader stops (like `trellis run` on SIGTERM: workers first, then the lease).
    let lists_before = cluster.server.accounting();
    assert!(a.shutdown().await.drained());
    elector_a.release().await.expect("release");
    b.running().await;
    enable_defaults(client, "sandbox").await;
    until_policy(client, "sandbox", "the new leader reconciles").await;
    // Nothing changed Pods or Deployments meanwhile: any object served for them now would be
    // a relist (a paginated list, or a streaming list's initial events).
    let after = cluster.server.accounting();
    for resource in ["deployments.apps", "pods"] {
        assert_eq!(
            after.requests("list", resource),
            lists_before.requests("list", resource),
            "the standby listed {resource} again at takeover"
        );
        assert_eq!(
            after.watched(resource).objects,
            lists_before.watched(resource).objects,
            "the standby streamed {resource} again at takeover"
        );
    }

    // Lease writes fail: the leader gives up before its lease could expire, stops its
    // workers, and the manager reports it.
    cluster
        .server
        .add_fault(FaultRule::error(
            None,
            Some("leases.coordination.k8s.io"),
            500,
        ))
        .unwrap();
    tokio::time::timeout(PATIENCE, b.manager.leadership_lost())
        .await
        .expect("leadership lost in time");
    assert!(
        phases(&b).iter().all(|p| *p == PluginPhase::Stopped),
        "{:?}",
        phases(&b)
    );
    cluster.server.clear_faults();
    b.shutdown().await;
    let _ = elector_b.release().await;
}

/// Namespaces whose quota the churn keeps changing.
const CHURN: usize = 6;
const LEASES: &str = "leases.coordination.k8s.io";
/// Slack on top of what the election allows, for a loaded 2-core machine: the bound proves
/// that a takeover is bounded by the lease, not that it is fast.
const SLACK: Duration = Duration::from_secs(10);
/// How far the write log's clock may disagree with what a follower saw: a renewal is visible
/// to reads a moment before the server records its answer.
const VISIBILITY: Duration = Duration::from_millis(50);

/// Changes every churn namespace's quota, round after round (about ten a second), until
/// stopped; answers the last round written.
fn churn(client: kube::Client) -> (oneshot::Sender<()>, JoinHandle<usize>) {
    let (stop, mut stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut round = 0;
        loop {
            for i in 0..CHURN {
                annotate_namespace(
                    &client,
                    &format!("churn-{i}"),
                    "defaults.trellis.dev/quota",
                    &format!("pods={}", quota_pods(round, i)),
                )
                .await;
            }
            tokio::select! {
                _ = &mut stopped => return round,
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            round += 1;
        }
    });
    (stop, task)
}

/// One replica: its elector and its host, with a client that names it.
struct Replica {
    identity: &'static str,
    elector: LeaderElector,
    host: Host,
}

impl Replica {
    async fn start(cluster: &Cluster, identity: &'static str) -> Replica {
        let client = cluster.client_as(identity);
        let (elector, options) = elected(&client, identity);
        let host = Host::start_on(client, DEV_CONFIG, options).await;
        Replica {
            identity,
            elector,
            host,
        }
    }

    async fn standing_by(&self) {
        until(
            &format!("{} standing by", self.identity),
            PATIENCE,
            || async {
                phases(&self.host)
                    .iter()
                    .all(|p| *p == PluginPhase::Standby)
                    .then_some(())
            },
        )
        .await;
    }

    /// Waits until this replica has written, through its plugins, `more` objects beyond
    /// what it had written when called: it reconciles the churn.
    async fn reconciling(&self, cluster: &Cluster, more: usize) {
        let plugin_writes = || {
            cluster
                .writes_of(self.identity)
                .iter()
                .filter(|w| w.resource != LEASES && w.code < 300)
                .count()
        };
        let wanted = plugin_writes() + more;
        until(
            &format!("{} writing {more} more objects", self.identity),
            PATIENCE,
            || async { (plugin_writes() >= wanted).then_some(()) },
        )
        .await;
    }
}

/// Successful lease writes (acquire, renew, release) in a replica's writes.
fn lease_writes(writes: &[WriteRecord]) -> Vec<&WriteRecord> {
    writes
        .iter()
        .filter(|w| w.resource == LEASES && w.code < 300)
        .collect()
}

/// Asserts from the write log that every write `old` made (lease writes included) was
/// answered before `new` sent its first, and answers the gap between `old`'s last successful
/// lease write and `new`'s first (the takeover), on the server's clock.
fn handover(cluster: &Cluster, old: &str, new: &str) -> Duration {
    let old_writes = cluster.writes_of(old);
    let new_writes = cluster.writes_of(new);
    let old_last = old_writes
        .iter()
        .max_by_key(|w| w.finished_micros)
        .unwrap_or_else(|| panic!("{old} wrote nothing"));
    let new_first = new_writes
        .iter()
        .min_by_key(|w| w.started_micros)
        .unwrap_or_else(|| panic!("{new} wrote nothing"));
    assert!(
        old_last.finished_micros < new_first.started_micros,
        "{old} and {new} wrote at once: {old}'s write {old_last:?} was answered after {new}'s \
         write {new_first:?} arrived"
    );
    assert!(
        old_writes
            .iter()
            .any(|w| w.resource != LEASES && w.code < 300),
        "{old} reconciled nothing, so its term proves nothing"
    );
    let released = lease_writes(&old_writes)
        .into_iter()
        .max_by_key(|w| w.finished_micros)
        .unwrap_or_else(|| panic!("{old} never wrote the lease"));
    let acquired = lease_writes(&new_writes)
        .into_iter()
        .min_by_key(|w| w.started_micros)
        .unwrap_or_else(|| panic!("{new} never wrote the lease"));
    assert_eq!(
        new_first.seq, acquired.seq,
        "{new}'s first write must be its claim of the lease: {new_first:?}"
    );
    Duration::from_micros(acquired.started_micros - released.finished_micros)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_never_write_at_once_through_a_release_and_a_crash_and_take_over_within_the_lease()
{
    init_logging();
    let cluster = Cluster::with_fixtures(&defaulted_namespaces("churn", CHURN)).await;
    let a = Replica::start(&cluster, "host-a").await;
    a.host.running().await;
    let b = Replica::start(&cluster, "host-b").await;
    b.standing_by().await;
    let (stop_churn, churning) = churn(cluster.client.clone());
    a.reconciling(&cluster, 2 * CHURN).await;
    assert_eq!(b.host.stats().reconciles(), 0, "the standby reconciled");

    // 1. Graceful: the leader stops its workers, then releases the lease.
    assert!(a.host.shutdown().await.drained());
    a.elector.release().await.expect("release");
    b.host.running().await;
    b.reconciling(&cluster, 2 * CHURN).await;
    let released_to_acquired = handover(&cluster, "host-a", "host-b");
    // A released lease is free at once: the standby's next attempt takes it.
    let bound = RETRY_PERIOD.mul_f64(2.2) + SLACK;
    assert!(
        released_to_acquired <= bound,
        "host-b took {released_to_acquired:?} after the release (bound {bound:?})"
    );

    // 2. A crash: host-b's workers and elector vanish without releasing the lease.
    let c = Replica::start(&cluster, "host-c").await;
    c.standing_by().await;
    b.reconciling(&cluster, CHURN).await;
    assert_eq!(c.host.stats().reconciles(), 0, "the standby reconciled");
    drop(b.host);
    b.elector.abort().await;
    c.host.running().await;
    c.reconciling(&cluster, 2 * CHURN).await;
    let expiry_to_acquired = handover(&cluster, "host-b", "host-c");
    // Never before the lease expired (as host-c saw the last renewal), and within the lease
    // plus the follower's jittered retry.
    assert!(
        expiry_to_acquired + VISIBILITY >= LEASE_DURATION,
        "host-c took the lease {expiry_to_acquired:?} after host-b's last renewal, before it \
         expired ({LEASE_DURATION:?})"
    );
    let bound = LEASE_DURATION + RETRY_PERIOD.mul_f64(2.2) + SLACK;
    assert!(
        expiry_to_acquired <= bound,
        "host-c took {expiry_to_acquired:?} after host-b's last renewal (bound {bound:?})"
    );
    eprintln!(
        "takeover after a release: {released_to_acquired:?}; after a crash: \
         {expiry_to_acquired:?} since the last renewal (lease {LEASE_DURATION:?})"
    );

    // Nothing was lost across the two handovers: every namespace ends at its last quota.
    stop_churn.send(()).expect("the churn runs");
    let last = churning.await.expect("the churn task");
    until_quotas_of_round(&cluster.client, "churn", CHURN, last).await;
    let lease = kube::Api::<Lease>::namespaced(cluster.client.clone(), "default")
        .get("trellis")
        .await
        .expect("the lease");
    let spec = lease.spec.expect("a lease spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("host-c"));
    assert_eq!(spec.lease_transitions, Some(2), "{spec:?}");
    assert!(c.host.shutdown().await.drained());
    c.elector.release().await.expect("release");
}
