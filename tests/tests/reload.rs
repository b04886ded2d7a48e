//! Hot reload of one plugin (issue 7) through `Manager::reload_plugin`: a valid new version
//! takes effect without a restart, an invalid one is rejected and the old keeps serving, new
//! grants take effect, and what a running pool cannot change is refused with the field named.

use trellis_e2e::host::dev_host;
use trellis_e2e::metrics;
use trellis_e2e::objects::{enable_defaults, policy, quota, until_policy};
use trellis_e2e::wait::{PATIENCE, until};
use trellis_host::manager::{ReloadError, Reloaded};
use trellis_host::ops::dev::DEV_CONFIG;

const PLUGIN: &str = "namespace-defaults";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_versions_take_effect_and_invalid_ones_leave_the_old_one_serving() {
    let (cluster, host) = dev_host().await;
    let client = &cluster.client;
    until_policy(client, "team-a", "defaults in team-a").await;
    let original = host.config.plugin(PLUGIN).unwrap().clone();

    // A broken component: refused, the old version keeps serving.
    let broken = host.dir.path().join("broken.wasm");
    std::fs::write(&broken, b"\0asm but not really").unwrap();
    let mut bad = original.clone();
    bad.component = broken.clone();
    let error = host.manager.reload_plugin(&bad).await.unwrap_err();
    assert!(matches!(error, ReloadError::Invalid(_)), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("plugins[0] (namespace-defaults).component"),
        "{message}"
    );
    assert!(message.contains("broken.wasm"), "{message}");
    assert!(message.contains("the running version is kept"), "{message}");
    enable_defaults(client, "sandbox").await;
    until_policy(client, "sandbox", "the old version still reconciles").await;

    // Another component takes effect at once: misbehave fails every Namespace (it has no
    // `data.mode`), so a newly labelled Namespace gets nothing and errors are counted.
    let errors_before = host.stats().plugin(PLUGIN).unwrap().errors;
    let mut other = original.clone();
    other.component = host.dir.path().join("misbehave.wasm");
    assert_eq!(
        host.manager.reload_plugin(&other).await.unwrap(),
        Reloaded::Component
    );
    enable_defaults(client, "legacy").await;
    until("the new version's failures", PATIENCE, || async {
        (host.stats().plugin(PLUGIN)?.errors > errors_before).then_some(())
    })
    .await;
    assert!(policy(client, "legacy").await.is_none());

    // Back to namespace-defaults, without the ResourceQuota write grant: new host services.
    let mut narrower = original.clone();
    narrower
        .permissions
        .write
        .retain(|grant| grant.kind != "ResourceQuota");
    assert_eq!(
        host.manager.reload_plugin(&narrower).await.unwrap(),
        Reloaded::HostServices
    );
    // legacy is reconciled again (its failure is retried): the policy is written, the quota
    // is denied by the new grants.
    until(
        "legacy's policy by the reloaded plugin",
        PATIENCE,
        || async { policy(client, "legacy").await.map(|_| ()) },
    )
    .await;
    until("the quota write denied", PATIENCE, || async {
        let denied = metrics::sum(
            &host.metrics(),
            "trellis_writes_total",
            &[("plugin", PLUGIN), ("result", "denied")],
        );
        (denied >= 1.0).then_some(())
    })
    .await;
    assert!(quota(client, "legacy").await.is_none());

    // What a running pool cannot change.
    let mut more_workers = original.clone();
    more_workers.workers += 1;
    let error = host.manager.reload_plugin(&more_workers).await.unwrap_err();
    assert!(
        matches!(
            error,
            ReloadError::NeedsRestart {
                field: "workers",
                ..
            }
        ),
        "{error}"
    );
    let mut renamed = original.clone();
    renamed.name = "nobody".into();
    let error = host.manager.reload_plugin(&renamed).await.unwrap_err();
    assert!(matches!(error, ReloadError::UnknownPlugin(_)), "{error}");

    assert!(host.shutdown().await.drained());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_files_reload_their_plugin_and_a_broken_config_is_rejected() {
    use trellis_host::manager::{FileReload, FileWatch};

    let (_cluster, host) = dev_host().await;
    let mut files = FileWatch::new(host.config.clone());
    assert_eq!(files.poll(&host.manager).await, vec![]);

    // Rewriting a file with the same bytes changes nothing.
    let component = host.dir.path().join("namespace-defaults.wasm");
    let original = std::fs::read(&component).unwrap();
    std::fs::write(&component, &original).unwrap();
    assert_eq!(files.poll(&host.manager).await, vec![]);

    // A new component in place: that plugin, and only it, is reloaded.
    std::fs::write(&component, trellis_plugin_bundle::MISBEHAVE.wasm).unwrap();
    assert_eq!(
        files.poll(&host.manager).await,
        vec![FileReload::Reloaded {
            plugin: PLUGIN.into(),
            how: Reloaded::Component
        }]
    );
    // A broken component: rejected, counted, the running version kept.
    std::fs::write(&component, b"not wasm").unwrap();
    let polled = files.poll(&host.manager).await;
    assert!(
        matches!(&polled[..], [FileReload::Rejected { plugin, error }]
            if plugin == PLUGIN && error.contains("the running version is kept")),
        "{polled:?}"
    );
    let text = host.metrics();
    assert_eq!(
        metrics::sum(
            &text,
            "trellis_plugin_reloads_total",
            &[("plugin", PLUGIN), ("result", "ok")]
        ),
        1.0
    );
    assert_eq!(
        metrics::sum(
            &text,
            "trellis_plugin_reloads_total",
            &[("plugin", PLUGIN), ("result", "rejected")]
        ),
        1.0
    );

    // The config file: a mistake is rejected with its errors; a new grant reloads.
    std::fs::write(&component, &original).unwrap();
    let config = host.dir.path().join("trellis.yaml");
    std::fs::write(
        &config,
        DEV_CONFIG.replace("kind: Deployment\n", "kind: Deployment\n    workers: 99\n"),
    )
    .unwrap();
    let polled = files.poll(&host.manager).await;
    assert!(
        matches!(&polled[..], [FileReload::ConfigRejected(errors)] if errors.contains("workers")),
        "{polled:?}"
    );
    std::fs::write(&config, DEV_CONFIG.replace("verbs: [apply, delete]}\n        - {apiVersion: v1, kind: ResourceQuota, verbs: [apply, delete]}", "verbs: [apply, delete]}")).unwrap();
    let polled = files.poll(&host.manager).await;
    assert_eq!(
        polled,
        vec![FileReload::Reloaded {
            plugin: PLUGIN.into(),
            how: Reloaded::HostServices
        }],
    );
    assert!(host.shutdown().await.drained());
}

/// Informers across a reload: a watch whose spec did not change is joined again (no new list or
/// watch request), a watch whose spec changed gets a new informer
/// and the old one's watch is closed once the old version lets go of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_unchanged_watches_and_replaces_changed_ones() {
    let (cluster, host) = dev_host().await;
    host.running().await;
    let accounting = || cluster.server.accounting();
    let before = accounting();
    for resource in ["networkpolicies.networking.k8s.io", "resourcequotas"] {
        assert_eq!(before.open_watches(resource), 1, "{resource}: {before:?}");
    }

    // Only the ResourceQuota watch's selector changes (and with it the host services).
    const QUOTA_WATCH: &str = "kind: ResourceQuota\n        labelSelector: app.kubernetes.io/managed-by=trellis-namespace-defaults\n";
    assert!(DEV_CONFIG.contains(QUOTA_WATCH), "the dev config changed");
    let changed = DEV_CONFIG.replace(
        QUOTA_WATCH,
        "kind: ResourceQuota\n        labelSelector: app.kubernetes.io/managed-by=trellis-namespace-defaults,tier!=frozen\n",
    );
    let path = host.dir.path().join("trellis.yaml");
    std::fs::write(&path, changed).unwrap();
    let config = trellis_host::ops::config::load(&path).expect("the changed config loads");
    assert_eq!(
        host.manager
            .reload_plugin(config.plugin(PLUGIN).unwrap())
            .await
            .unwrap(),
        Reloaded::HostServices
    );

    let quota_watch_closed = until("the old ResourceQuota watch closed", PATIENCE, || async {
        let now = accounting();
        (now.open_watches("resourcequotas") == 1).then_some(now)
    })
    .await;
    let after = quota_watch_closed;
    // The NetworkPolicy watch is the same informer: no new list or watch request (a new
    // informer's initial list would be one, streaming or paginated). Objects served on the
    // open watch are not compared: the plugin may still be writing its first policies.
    let policies = "networkpolicies.networking.k8s.io";
    assert_eq!(after.open_watches(policies), 1);
    for verb in ["list", "watch"] {
        assert_eq!(
            after.requests(verb, policies),
            before.requests(verb, policies),
            "{verb} {policies} after a reload that kept its spec"
        );
    }
    // The ResourceQuota watch is new: one more request listing or watching it.
    let requests = |s: &trellis_devcluster::Snapshot| {
        s.requests("list", "resourcequotas") + s.requests("watch", "resourcequotas")
    };
    assert!(
        requests(&after) > requests(&before),
        "no new ResourceQuota watch: {after:?}"
    );

    // The reloaded version still does its job through the new watch.
    enable_defaults(&cluster.client, "sandbox").await;
    until(
        "sandbox's quota through the new watch",
        PATIENCE,
        || async { quota(&cluster.client, "sandbox").await.map(|_| ()) },
    )
    .await;
    assert!(host.shutdown().await.drained());
}
