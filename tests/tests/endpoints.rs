//! /metrics and /readyz of hosts served the way `trellis run` serves them (leader election,
//! the manager, the ops HTTP server), scraped over HTTP: every metric issue 7 names is
//! exposed, and the counters move as work happens; /readyz is not ready while a cache
//! syncs, even on a standby, with a detail naming the plugin and the watch, and ready as
//! leader or as a warm standby.

use std::net::SocketAddr;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use trellis_e2e::cluster::Cluster;
use trellis_e2e::host::{Host, elected};
use trellis_e2e::metrics::{has, sum};
use trellis_e2e::objects::{annotate_namespace, enable_defaults, policy, until_policy};
use trellis_e2e::wait::{PATIENCE, until};
use trellis_e2e::{http, init_logging};
use trellis_host::ops::dev::DEV_CONFIG;
use trellis_host::ops::health::Health;
use trellis_host::ops::http::OpsServer;
use trellis_host::ops::leader::LeaderElector;

/// A replica as `trellis run` assembles one: elector, manager, ops server.
struct Served {
    host: Host,
    elector: LeaderElector,
    server: OpsServer,
    address: SocketAddr,
}

impl Served {
    async fn start(cluster: &Cluster, identity: &str, yaml: &str) -> Served {
        let client = cluster.client_as(identity);
        let (elector, mut options) = elected(&client, identity);
        let health = Health::default();
        options.health = Some(health.clone());
        let host = Host::start_on(client, yaml, options).await;
        let server = OpsServer::start(
            "127.0.0.1:0".parse().unwrap(),
            host.manager.registry(),
            health,
            &CancellationToken::new(),
        )
        .await
        .expect("the ops server");
        let address = server.local_addr();
        Served {
            host,
            elector,
            server,
            address,
        }
    }

    async fn scrape(&self) -> String {
        let (code, body) = http::get(self.address, "/metrics").await;
        assert_eq!(code, 200, "{body}");
        body
    }

    /// `/readyz?verbose`: the code and the per-check report.
    async fn readiness(&self) -> (u16, String) {
        http::get(self.address, "/readyz?verbose").await
    }

    async fn stop(self) {
        assert!(self.host.shutdown().await.drained());
        self.elector.release().await.expect("release");
        self.server.stop().await.expect("the ops server stops");
    }
}

/// misbehave on the ConfigMaps of `chaos` and `granted`, allowed to apply ConfigMaps in
/// `granted` only: a flood of one apply in `chaos` is denied, one in `granted` is issued
/// (and elided when repeated: the cache shows it), an `error` object fails for good.
const MISBEHAVE: &str = r#"
  - name: misbehave
    component: misbehave.wasm
    watch: {apiVersion: v1, kind: ConfigMap, namespaces: [chaos, granted]}
    workers: 2
    permissions:
      read:
        - {apiVersion: v1, kind: ConfigMap, namespaces: [chaos, granted]}
      write:
        - {apiVersion: v1, kind: ConfigMap, namespaces: [granted], verbs: [apply]}
"#;

fn apply_once() -> serde_json::Value {
    json!({"mode": "host-call-flood", "call": "apply", "count": "1", "on-error": "continue"})
}

async fn create_config_map(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    data: serde_json::Value,
) {
    let map: ConfigMap = serde_json::from_value(
        json!({"metadata": {"namespace": namespace, "name": name}, "data": data}),
    )
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &map)
        .await
        .expect("create a ConfigMap");
}

async fn chaos_objects(client: &kube::Client) {
    for name in ["chaos", "granted"] {
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .expect("create a namespace");
    }
    create_config_map(client, "chaos", "denied", apply_once()).await;
    create_config_map(
        client,
        "chaos",
        "failing",
        json!({"mode": "error", "message": "failing on purpose", "retryable": "false"}),
    )
    .await;
    create_config_map(client, "granted", "repeat", apply_once()).await;
}

/// Every metric issue 7 names, as exposed (counters with `_total`, histograms by their
/// `_count`), with labels at least one series must carry.
const EXPOSED: &[(&str, &[(&str, &str)])] = &[
    // The workqueue_* family (controller-runtime's names and labels).
    (
        "workqueue_depth",
        &[("name", "namespace-defaults"), ("priority", "0")],
    ),
    ("workqueue_adds_total", &[("name", "namespace-defaults")]),
    (
        "workqueue_queue_duration_seconds_count",
        &[("name", "namespace-defaults")],
    ),
    (
        "workqueue_work_duration_seconds_count",
        &[("name", "namespace-defaults")],
    ),
    (
        "workqueue_unfinished_work_seconds",
        &[("name", "namespace-defaults")],
    ),
    (
        "workqueue_longest_running_processor_seconds",
        &[("name", "namespace-defaults")],
    ),
    ("workqueue_retries_total", &[("name", "misbehave")]),
    // controller-runtime's reconcile metrics.
    (
        "controller_runtime_reconcile_total",
        &[("controller", "namespace-defaults"), ("result", "success")],
    ),
    (
        "controller_runtime_reconcile_total",
        &[("controller", "misbehave"), ("result", "error")],
    ),
    (
        "controller_runtime_reconcile_total",
        &[("result", "requeue_after")],
    ),
    (
        "controller_runtime_reconcile_errors_total",
        &[("controller", "misbehave")],
    ),
    (
        "controller_runtime_reconcile_time_seconds_count",
        &[("controller", "namespace-defaults")],
    ),
    (
        "controller_runtime_max_concurrent_reconciles",
        &[("controller", "namespace-defaults")],
    ),
    (
        "controller_runtime_active_workers",
        &[("controller", "namespace-defaults")],
    ),
    // Guest outcomes by class, fuel, duration.
    (
        "trellis_guest_outcomes_total",
        &[("plugin", "namespace-defaults"), ("outcome", "done")],
    ),
    (
        "trellis_guest_outcomes_total",
        &[("outcome", "out_of_fuel")],
    ),
    ("trellis_guest_outcomes_total", &[("outcome", "deadline")]),
    (
        "trellis_guest_outcomes_total",
        &[("outcome", "out_of_memory")],
    ),
    (
        "trellis_guest_outcomes_total",
        &[
            ("plugin", "misbehave"),
            ("outcome", "guest_error_permanent"),
        ],
    ),
    (
        "trellis_guest_fuel_used_count",
        &[("plugin", "namespace-defaults")],
    ),
    (
        "trellis_guest_duration_seconds_count",
        &[("plugin", "namespace-defaults")],
    ),
    ("trellis_plugin_degraded", &[("plugin", "misbehave")]),
    // Host calls and bytes by kind of call; writes issued and denied (series appear with
    // their first occurrence: `elided` is checked once a no-op reconcile happened, below).
    (
        "trellis_host_calls_total",
        &[
            ("plugin", "namespace-defaults"),
            ("call", "get"),
            ("result", "ok"),
        ],
    ),
    (
        "trellis_host_calls_total",
        &[("plugin", "namespace-defaults"), ("call", "apply")],
    ),
    (
        "trellis_host_call_bytes_total",
        &[("plugin", "namespace-defaults"), ("call", "apply")],
    ),
    (
        "trellis_writes_total",
        &[("plugin", "namespace-defaults"), ("result", "issued")],
    ),
    (
        "trellis_writes_total",
        &[("plugin", "misbehave"), ("result", "denied")],
    ),
    // Cache objects and bytes; watch restarts and relists.
    (
        "trellis_informer_cache_objects",
        &[("kind", "networking.k8s.io/v1/NetworkPolicy")],
    ),
    ("trellis_informer_cache_bytes", &[("kind", "v1/Namespace")]),
    (
        "trellis_informer_watch_restarts_total",
        &[("kind", "v1/Namespace")],
    ),
    (
        "trellis_informer_relists_total",
        &[("kind", "v1/Namespace")],
    ),
    // Leader status.
    ("leader_election_master_status", &[("name", "trellis")]),
    ("trellis_leader_transitions_total", &[("name", "trellis")]),
];

/// Series that must grow between two scrapes when a Namespace is enabled (new objects
/// written), misbehave repeats an apply (elided) and every watch is dropped with its
/// history expired (restarts, relists).
const GROWING: &[(&str, &[(&str, &str)])] = &[
    ("workqueue_adds_total", &[("name", "namespace-defaults")]),
    (
        "workqueue_queue_duration_seconds_count",
        &[("name", "namespace-defaults")],
    ),
    (
        "workqueue_work_duration_seconds_count",
        &[("name", "namespace-defaults")],
    ),
    (
        "controller_runtime_reconcile_total",
        &[("controller", "namespace-defaults"), ("result", "success")],
    ),
    (
        "controller_runtime_reconcile_time_seconds_count",
        &[("controller", "namespace-defaults")],
    ),
    (
        "trellis_guest_outcomes_total",
        &[("plugin", "namespace-defaults"), ("outcome", "done")],
    ),
    (
        "trellis_guest_fuel_used_count",
        &[("plugin", "namespace-defaults")],
    ),
    (
        "trellis_guest_fuel_used_sum",
        &[("plugin", "namespace-defaults")],
    ),
    (
        "trellis_guest_duration_seconds_count",
        &[("plugin", "namespace-defaults")],
    ),
    (
        "trellis_host_calls_total",
        &[("plugin", "namespace-defaults")],
    ),
    (
        "trellis_host_call_bytes_total",
        &[("plugin", "namespace-defaults")],
    ),
    (
        "trellis_writes_total",
        &[("plugin", "namespace-defaults"), ("result", "issued")],
    ),
    (
        "trellis_writes_total",
        &[("plugin", "misbehave"), ("result", "elided")],
    ),
    (
        "trellis_informer_cache_objects",
        &[("kind", "networking.k8s.io/v1/NetworkPolicy")],
    ),
    (
        "trellis_informer_cache_bytes",
        &[("kind", "networking.k8s.io/v1/NetworkPolicy")],
    ),
    (
        "trellis_informer_watch_restarts_total",
        &[("kind", "v1/Namespace")],
    ),
    (
        "trellis_informer_relists_total",
        &[("kind", "v1/Namespace")],
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_every_name_of_issue_7_and_move_as_work_happens() {
    init_logging();
    let cluster = Cluster::with_dev_fixtures().await;
    chaos_objects(&cluster.client).await;
    let a = Served::start(&cluster, "host-a", &format!("{DEV_CONFIG}{MISBEHAVE}")).await;
    a.host.running().await;
    until("the first pass done", PATIENCE, || async {
        policy(&cluster.client, "team-a").await?;
        let text = a.scrape().await;
        let denied = sum(
            &text,
            "trellis_writes_total",
            &[("plugin", "misbehave"), ("result", "denied")],
        );
        let failed = sum(
            &text,
            "controller_runtime_reconcile_errors_total",
            &[("controller", "misbehave")],
        );
        // chaos/denied, chaos/failing, granted/repeat and the ConfigMap its apply wrote.
        let cached = sum(
            &text,
            "trellis_informer_cache_objects",
            &[("kind", "v1/ConfigMap")],
        );
        (denied >= 1.0 && failed >= 1.0 && cached >= 4.0).then_some(())
    })
    .await;
    a.host.settled("namespace-defaults", 1).await;

    let before = a.scrape().await;
    let missing: Vec<String> = EXPOSED
        .iter()
        .filter(|(name, labels)| !has(&before, name, labels))
        .map(|(name, labels)| format!("{name}{labels:?}"))
        .collect();
    assert!(missing.is_empty(), "not exposed: {missing:#?}\n{before}");
    assert_eq!(
        sum(
            &before,
            "leader_election_master_status",
            &[("name", "trellis")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &before,
            "controller_runtime_max_concurrent_reconciles",
            &[("controller", "misbehave")]
        ),
        2.0,
        "the configured workers"
    );

    // Work: a new Namespace to default, a no-op touch of a defaulted one, and every watch
    // dropped with its history gone (the informers restart and relist).
    enable_defaults(&cluster.client, "sandbox").await;
    annotate_namespace(&cluster.client, "team-a", "example.com/touched", "yes").await;
    // The same apply again: the cache shows its result, so the host does not send it.
    Api::<ConfigMap>::namespaced(cluster.client.clone(), "granted")
        .patch(
            "repeat",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"touched": "yes"}})),
        )
        .await
        .expect("touch granted/repeat");
    until_policy(&cluster.client, "sandbox", "defaults in sandbox").await;
    cluster.server.expire_history(None);
    cluster.server.close_watches(None);

    let mut still = Vec::new();
    let grown = tokio::time::timeout(PATIENCE, async {
        loop {
            let after = a.scrape().await;
            still = GROWING
                .iter()
                .filter(|(name, labels)| sum(&after, name, labels) <= sum(&before, name, labels))
                .map(|(name, labels)| format!("{name}{labels:?}"))
                .collect();
            if still.is_empty() {
                return after;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("did not grow: {still:#?}"));
    // What did not happen does not move: the healthy plugin never failed.
    assert_eq!(
        sum(
            &grown,
            "controller_runtime_reconcile_errors_total",
            &[("controller", "namespace-defaults")]
        ),
        0.0
    );
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_synced_caches_on_a_standby_too_and_names_what_is_not_ready() {
    init_logging();
    let cluster = Cluster::with_dev_fixtures().await;
    let a = Served::start(&cluster, "host-a", DEV_CONFIG).await;
    a.host.running().await;
    let (code, report) = a.readiness().await;
    assert_eq!(code, 200, "{report}");
    assert!(
        report.contains("[+]plugin:namespace-defaults ok: running"),
        "{report}"
    );
    assert_eq!(
        http::get(a.address, "/healthz").await,
        (200, "ok".to_string())
    );

    // A second replica whose Pod watch cannot list: a standby without a warm cache.
    cluster.fail_pod_lists();
    let config = format!("host:\n  cacheSyncTimeoutSeconds: 1\n{DEV_CONFIG}");
    let b = Served::start(&cluster, "host-b", &config).await;
    let report = until("host-b not ready, saying why", PATIENCE, || async {
        let (code, report) = b.readiness().await;
        (code == 503 && report.contains("did not sync")).then_some(report)
    })
    .await;
    let line = report
        .lines()
        .find(|l| l.starts_with("[-]plugin:deployment-summary"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(line.contains("Pod"), "the watch is named: {line}");
    assert!(report.ends_with("readyz check failed\n"), "{report}");
    // Its other plugin's caches are warm: that part is ready, as a standby.
    assert!(
        report.contains("[+]plugin:namespace-defaults ok: standby: caches warm, host-a leads"),
        "{report}"
    );
    // Alive all the same: the kubelet must not restart it.
    assert_eq!(http::get(b.address, "/healthz").await.0, 200);

    cluster.server.clear_faults();
    let report = until("host-b ready as a warm standby", PATIENCE, || async {
        let (code, report) = b.readiness().await;
        (code == 200).then_some(report)
    })
    .await;
    for plugin in ["namespace-defaults", "deployment-summary"] {
        assert!(
            report.contains(&format!(
                "[+]plugin:{plugin} ok: standby: caches warm, host-a leads"
            )),
            "{report}"
        );
    }
    assert_eq!(b.host.stats().reconciles(), 0);
    let text = b.scrape().await;
    assert_eq!(
        sum(
            &text,
            "leader_election_master_status",
            &[("name", "trellis")]
        ),
        0.0
    );
    b.stop().await;
    a.stop().await;
}
