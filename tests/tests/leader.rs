//! Two hosts on one Lease (issue 7): only the leader reconciles while the standby keeps its
//! caches warm; when the leader stops and releases the lease, the standby takes over without
//! listing again; a leader whose lease writes fail stops reconciling and says so.

use std::time::Duration;

use prometheus_client::registry::Registry;
use trellis_devcluster::FaultRule;
use trellis_e2e::cluster::Cluster;
use trellis_e2e::host::Host;
use trellis_e2e::init_logging;
use trellis_e2e::objects::{label_namespace, policy};
use trellis_e2e::wait::{PATIENCE, until};
use trellis_host::manager::{ManagerOptions, PluginPhase};
use trellis_host::ops::dev::DEV_CONFIG;
use trellis_host::ops::leader::{LeaderConfig, LeaderElector, LeaderMetrics};

fn elector(cluster: &Cluster, identity: &str) -> (LeaderElector, ManagerOptions) {
    let mut registry = Registry::default();
    let metrics = LeaderMetrics::register(&mut registry);
    let mut config = LeaderConfig::new("trellis", "default", identity);
    config.lease_duration = Duration::from_secs(3);
    config.renew_deadline = Duration::from_secs(2);
    config.retry_period = Duration::from_millis(300);
    let (elector, leadership) =
        LeaderElector::start(cluster.client.clone(), config, &metrics).expect("leader config");
    let mut options = ManagerOptions::new(identity);
    options.registry = registry;
    options.leadership = Some(leadership);
    (elector, options)
}

fn phases(host: &Host) -> Vec<PluginPhase> {
    host.stats().plugins.iter().map(|p| p.phase).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_reconciles_and_a_warm_standby_takes_over_without_relisting() {
    init_logging();
    let cluster = Cluster::with_dev_fixtures().await;
    let client = &cluster.client;
    let (elector_a, options) = elector(&cluster, "host-a");
    let a = Host::start_with(&cluster, DEV_CONFIG, options).await;
    a.running().await;
    let (elector_b, options) = elector(&cluster, "host-b");
    let b = Host::start_with(&cluster, DEV_CONFIG, options).await;
    until("host-b standing by", PATIENCE, || async {
        phases(&b)
            .iter()
            .all(|p| *p == PluginPhase::Standby)
            .then_some(())
    })
    .await;
    until("defaults in team-a", PATIENCE, || async {
        policy(client, "team-a").await.map(|_| ())
    })
    .await;
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
    label_namespace(client, "sandbox", "trellis.dev/defaults", Some("enabled")).await;
    until("the new leader reconciles", PATIENCE, || async {
        policy(client, "sandbox").await.map(|_| ())
    })
    .await;
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
