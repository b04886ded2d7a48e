//! A plugin writing outside its grant: the guest gets `forbidden`, nothing reaches the API
//! server (devcluster accounting and write log), and the operator sees it (a counter and a
//! warning naming the plugin, the kind and the namespace).

use std::io::Write;
use std::sync::{Arc, Mutex};

use trellis_e2e::cluster::Cluster;
use trellis_e2e::host::Host;
use trellis_e2e::metrics;
use trellis_e2e::objects::until_policy;
use trellis_e2e::wait::{PATIENCE, until};

/// namespace-defaults may apply NetworkPolicies but not ResourceQuotas.
const CONFIG: &str = r#"
plugins:
  - name: namespace-defaults
    component: namespace-defaults.wasm
    watch: {apiVersion: v1, kind: Namespace}
    secondary:
      - apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        labelSelector: app.kubernetes.io/managed-by=trellis-namespace-defaults
        mapping: {controllerOwner: true}
      - apiVersion: v1
        kind: ResourceQuota
        labelSelector: app.kubernetes.io/managed-by=trellis-namespace-defaults
        mapping: {controllerOwner: true}
    permissions:
      read:
        - {apiVersion: v1, kind: Namespace}
        - {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy}
        - {apiVersion: v1, kind: ResourceQuota}
      write:
        - {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, verbs: [apply, delete]}
      events: true
"#;

const FIXTURES: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: locked\n  labels: {trellis.dev/defaults: enabled}\n";

/// Everything logged at WARN and above, for the whole test binary (one test).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_outside_the_grant_is_forbidden_counted_logged_and_never_sent() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let cluster = Cluster::with_fixtures(FIXTURES).await;
    let host = Host::start(&cluster, CONFIG).await;
    let client = &cluster.client;

    until("a denied write counted", PATIENCE, || async {
        let text = host.metrics();
        let denied = metrics::sum(
            &text,
            "trellis_writes_total",
            &[("plugin", "namespace-defaults"), ("result", "denied")],
        );
        (denied >= 1.0).then_some(())
    })
    .await;
    // The granted write went through.
    until_policy(client, "locked", "the NetworkPolicy").await;

    let accounting = cluster.server.accounting();
    for verb in ["create", "update", "patch", "delete"] {
        assert_eq!(
            accounting.requests(verb, "resourcequotas"),
            0,
            "a {verb} of resourcequotas reached the server"
        );
    }
    assert!(
        !cluster
            .server
            .writes()
            .iter()
            .any(|w| w.resource == "resourcequotas"),
        "the write log shows a ResourceQuota write"
    );
    let errors = host.stats().plugin("namespace-defaults").unwrap().errors;
    assert!(errors >= 1, "the guest's failed reconcile is counted");

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let warning = logs
        .lines()
        .find(|line| line.contains("WARN") && line.contains("ResourceQuota"))
        .unwrap_or_else(|| panic!("no warning about the denied write:\n{logs}"));
    assert!(warning.contains("namespace-defaults"), "{warning}");
    assert!(warning.contains("locked"), "{warning}");
    assert!(host.shutdown().await.drained());
}
