//! Nothing is lost on faults (DESIGN invariant 6): during a burst of updates the devcluster
//! drops every watch, expires the watch history (410 Gone, relists) and answers 429 and 500,
//! and at the end every object's latest state has been reconciled, exactly as without faults.

use std::time::Duration;

use trellis_devcluster::FaultRule;
use trellis_e2e::cluster::Cluster;
use trellis_e2e::host::Host;
use trellis_e2e::objects::{
    annotate_namespace, defaulted_namespaces, hard, quota, quota_pods, until_quotas_of_round,
};
use trellis_e2e::wait::{PATIENCE, until};
use trellis_e2e::{init_logging, metrics};
use trellis_host::ops::dev::DEV_CONFIG;

const NAMESPACES: usize = 24;
const ROUNDS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_updates_through_dropped_watches_expired_history_and_errors_ends_converged() {
    init_logging();
    let cluster = Cluster::with_fixtures(&defaulted_namespaces("load", NAMESPACES)).await;
    let host = Host::start(&cluster, DEV_CONFIG).await;
    let client = &cluster.client;
    for i in 0..NAMESPACES {
        let namespace = format!("load-{i}");
        until(&format!("the quota of {namespace}"), PATIENCE, || async {
            quota(client, &namespace).await.map(|_| ())
        })
        .await;
    }

    // Errors on the plugin's writes (500: not retried by the client, so the plugin's retry
    // and backoff handle them) and on the informers' requests.
    cluster
        .server
        .add_fault(FaultRule::error(Some("patch"), Some("resourcequotas"), 500).fraction(0.25))
        .unwrap();
    cluster
        .server
        .add_fault(
            FaultRule::error(Some("list"), None, 429)
                .retry_after(1)
                .times(3),
        )
        .unwrap();
    cluster
        .server
        .add_fault(FaultRule::error(Some("watch"), Some("namespaces"), 500).times(2))
        .unwrap();
    for round in 0..ROUNDS {
        for i in 0..NAMESPACES {
            annotate_namespace(
                client,
                &format!("load-{i}"),
                "defaults.trellis.dev/quota",
                &format!("pods={}", quota_pods(round, i)),
            )
            .await;
        }
        match round {
            1 => cluster.server.close_watches(None),
            2 => {
                cluster.server.expire_history(None);
                cluster.server.close_watches(None);
            }
            3 => cluster.server.close_watches(Some("resourcequotas")),
            4 => cluster.server.expire_history(Some("namespaces")),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.server.clear_faults();

    let last = ROUNDS - 1;
    until_quotas_of_round(client, "load", NAMESPACES, last).await;
    // Exactly as without faults: the default quota with the last override, nothing else.
    for i in 0..NAMESPACES {
        let mut resources = hard(&quota(client, &format!("load-{i}")).await.unwrap());
        resources.sort();
        assert_eq!(
            resources,
            vec![
                ("persistentvolumeclaims".to_string(), "10".to_string()),
                ("pods".to_string(), quota_pods(last, i)),
                ("requests.storage".to_string(), "100Gi".to_string()),
                ("services.loadbalancers".to_string(), "0".to_string()),
                ("services.nodeports".to_string(), "0".to_string()),
            ]
        );
    }
    let text = host.metrics();
    let failed = metrics::sum(
        &text,
        "trellis_writes_total",
        &[("plugin", "namespace-defaults"), ("result", "failed")],
    );
    let relists = metrics::sum(&text, "trellis_informer_relists_total", &[]);
    let restarts = metrics::sum(&text, "trellis_informer_watch_restarts_total", &[]);
    eprintln!(
        "faults survived: {failed} failed writes retried, {relists} relists, {restarts} watch restarts"
    );
    assert!(failed >= 1.0, "the 500s reached the plugin's writes");
    assert!(relists >= 1.0, "the expired history forced a relist");
    assert!(host.shutdown().await.drained());
}
