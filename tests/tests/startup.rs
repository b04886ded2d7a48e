//! Starting a host on a config the cluster cannot serve: a startup error names the file, the
//! plugin and the field and nothing is reconciled; a watch the server rejects fails only its
//! plugin; a watch that cannot sync in time is reported on /readyz and recovers.

use std::time::Duration;

use trellis_e2e::cluster::Cluster;
use trellis_e2e::host::Host;
use trellis_e2e::init_logging;
use trellis_e2e::objects::policy;
use trellis_e2e::wait::{PATIENCE, until};
use trellis_host::manager::{ManagerOptions, PluginPhase, StartError};
use trellis_host::ops::dev::DEV_CONFIG;
use trellis_host::ops::health::Health;

fn with_health() -> (ManagerOptions, Health) {
    let health = Health::default();
    let mut options = ManagerOptions::new("e2e");
    options.health = Some(health.clone());
    (options, health)
}

fn trellis_writes(cluster: &Cluster) -> usize {
    cluster
        .server
        .writes()
        .iter()
        .filter(|w| {
            w.manager == "trellis-namespace-defaults" || w.manager == "trellis-deployment-summary"
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kind_or_a_broken_component_stops_the_host_before_anything_reconciles() {
    init_logging();
    let cluster = Cluster::with_dev_fixtures().await;

    // The second plugin reads a kind the server does not serve; the first is fine.
    let unknown = DEV_CONFIG
        .replace("kind: Pod\n", "kind: Pd\n")
        .replace("{apiVersion: v1, kind: Pod}", "{apiVersion: v1, kind: Pd}");
    let error = Host::try_start(&cluster, &unknown, ManagerOptions::new("e2e"))
        .await
        .err()
        .expect("the host must not start");
    let message = error.to_string();
    assert!(matches!(error, StartError::Watch { .. }), "{message}");
    assert!(error.is_config(), "{message}");
    assert!(
        message.contains("trellis.yaml: plugins[1] (deployment-summary).secondary[0]: "),
        "{message}"
    );
    assert!(message.contains("Pd"), "{message}");

    // A component that is not a component.
    let (options, _) = with_health();
    let broken = DEV_CONFIG.replace(
        "component: namespace-defaults.wasm",
        "component: trellis.yaml",
    );
    let error = Host::try_start(&cluster, &broken, options)
        .await
        .err()
        .expect("the host must not start");
    let message = error.to_string();
    assert!(matches!(error, StartError::Component { .. }), "{message}");
    assert!(
        message.contains("plugins[0] (namespace-defaults).component: "),
        "{message}"
    );

    // Neither start reconciled anything (namespace-defaults was prepared in the first).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(trellis_writes(&cluster), 0);
    assert!(policy(&cluster.client, "team-a").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_watch_fails_only_its_plugin_and_says_why_on_readyz() {
    init_logging();
    let cluster = Cluster::with_dev_fixtures().await;
    let rejected = DEV_CONFIG.replace(
        "        kind: Pod\n",
        "        kind: Pod\n        fieldSelector: spec.bogus=x\n",
    );
    assert_ne!(rejected, DEV_CONFIG);
    let (options, health) = with_health();
    let host = Host::start_with(&cluster, &rejected, options).await;
    until("deployment-summary failed", PATIENCE, || async {
        (host.stats().plugin("deployment-summary")?.phase == PluginPhase::Failed).then_some(())
    })
    .await;
    let readiness = health.ready();
    assert!(!readiness.ready);
    let line = readiness
        .report
        .lines()
        .find(|l| l.starts_with("[-]plugin:deployment-summary"))
        .unwrap_or_else(|| panic!("{}", readiness.report));
    assert!(line.contains("rejected by the API server"), "{line}");
    assert!(line.contains("spec.bogus"), "{line}");
    // The other plugin runs and reconciles.
    until("namespace-defaults reconciles", PATIENCE, || async {
        policy(&cluster.client, "team-a").await.map(|_| ())
    })
    .await;
    assert_eq!(
        host.stats().plugin("namespace-defaults").unwrap().phase,
        PluginPhase::Running
    );
    assert!(
        health
            .ready()
            .report
            .contains("[+]plugin:namespace-defaults")
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_that_cannot_sync_in_time_is_reported_and_its_plugin_starts_once_it_does() {
    init_logging();
    let cluster = Cluster::with_dev_fixtures().await;
    cluster.fail_pod_lists();
    let config = format!("host:\n  cacheSyncTimeoutSeconds: 1\n{DEV_CONFIG}");
    let (options, health) = with_health();
    let host = Host::start_with(&cluster, &config, options).await;
    let line = until("the stall on /readyz", PATIENCE, || async {
        health
            .ready()
            .report
            .lines()
            .find(|l| l.starts_with("[-]plugin:deployment-summary") && l.contains("did not sync"))
            .map(str::to_string)
    })
    .await;
    assert!(line.contains("within 1s"), "{line}");
    assert_eq!(
        host.stats().plugin("deployment-summary").unwrap().phase,
        PluginPhase::Syncing
    );
    assert_eq!(
        host.stats()
            .plugin("deployment-summary")
            .unwrap()
            .reconciles,
        0
    );

    cluster.server.clear_faults();
    until("deployment-summary running", PATIENCE, || async {
        (host.stats().plugin("deployment-summary")?.phase == PluginPhase::Running).then_some(())
    })
    .await;
    until("ready", PATIENCE, || async {
        health.ready().ready.then_some(())
    })
    .await;
    host.shutdown().await;
}
