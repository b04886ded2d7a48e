//! A plugin that loops forever on every call runs beside a healthy plugin on the same host:
//! the healthy plugin's write-to-reconcile latency (the Pod's write to the Deployment's
//! annotation write, on the devcluster's clock) and the event path's latency (sending the write
//! to its key's enqueue, seen by a probe sink sharing the informer) stay within 1.5x of their
//! values without the bad plugin, compared as ratios of medians within
//! this one test run (alternating runs with and without it, many samples each). The bound is
//! generous and proves isolation ("bounded"), not speed.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::json;
use trellis_devcluster::WriteRecord;
use trellis_e2e::cluster::Cluster;
use trellis_e2e::host::Host;
use trellis_e2e::init_logging;
use trellis_e2e::objects::patch_pod_status;
use trellis_e2e::wait::{PATIENCE, until};
use trellis_host::cache::ObjectKey;
use trellis_host::informer::{KeySink, Priority, Role, WatchConfig};

const HEALTHY: &str = r#"
  - name: deployment-summary
    component: deployment-summary.wasm
    watch: {apiVersion: apps/v1, kind: Deployment, namespaces: [app]}
    secondary:
      - {apiVersion: v1, kind: Pod, namespaces: [app], mapping: {label: app}}
    workers: 2
    permissions:
      read:
        - {apiVersion: apps/v1, kind: Deployment, namespaces: [app]}
        - {apiVersion: v1, kind: Pod, namespaces: [app]}
      write:
        - {apiVersion: apps/v1, kind: Deployment, namespaces: [app], verbs: [apply]}
"#;

/// Loops on every call until its deadline; retried at once (backoff capped at 20 ms, no
/// retry bucket), so its workers are always busy spinning.
const LOOPING: &str = r#"
  - name: misbehave
    component: misbehave.wasm
    watch: {apiVersion: v1, kind: ConfigMap, namespaces: [chaos]}
    workers: 4
    budgets: {deadlineMs: 500}
    queue:
      backoff: {baseMs: 5, capMs: 20}
      retryLimit: null
    permissions:
      read:
        - {apiVersion: v1, kind: ConfigMap, namespaces: [chaos]}
"#;

const FIXTURES: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {namespace: app, name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web}]}
---
apiVersion: v1
kind: Pod
metadata: {namespace: app, name: web-1, labels: {app: web}}
spec: {containers: [{name: web, image: web}]}
status:
  phase: Running
  conditions: [{type: Ready, status: "True"}]
  containerStatuses: [{name: web, image: web, imageID: "", ready: true, restartCount: 0}]
"#;

/// Samples per run; two runs of each kind.
const SAMPLES: usize = 25;

fn chaos_fixtures() -> String {
    (0..8)
        .map(|i| format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{namespace: chaos, name: spin-{i}}}\ndata: {{mode: loop}}\n"))
        .collect()
}

/// Records when each key reached it: subscribed to the same watch as the healthy plugin's
/// Pods (an equal spec shares the informer), it sees the event path's output.
#[derive(Default)]
struct Probe {
    seen: Mutex<Vec<(ObjectKey, Instant)>>,
}

impl KeySink for Probe {
    fn enqueue(&self, key: ObjectKey, _priority: Priority) {
        self.seen.lock().unwrap().push((key, Instant::now()));
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// One run: `SAMPLES` Pod restarts, each timed from the Pod's status write to the
/// Deployment's annotation write (both on the devcluster's clock), and from sending the write
/// to the key's enqueue on the Pod informer's event path. Returns both, in ms.
async fn run(cluster: &Cluster, config: &str, restarts: &mut u32) -> (Vec<f64>, Vec<f64>) {
    let host = Host::start(cluster, config).await;
    let probe = Arc::new(Probe::default());
    let mut pods = WatchConfig::new("v1", "Pod");
    pods.namespaces = vec!["app".into()];
    let _probe = host
        .manager
        .informers()
        .subscribe("probe", &pods, Role::Primary, probe.clone())
        .await
        .expect("probe subscription");
    let client = &cluster.client;
    if config.contains("misbehave") {
        until("the looping plugin failing", PATIENCE, || async {
            (host.stats().plugin("misbehave")?.errors >= 4).then_some(())
        })
        .await;
    }
    let mut latencies = Vec::with_capacity(SAMPLES);
    let mut enqueues = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        *restarts += 1;
        let before = cluster.server.writes().len();
        let sent = Instant::now();
        patch_pod_status(
            client,
            "app",
            "web-1",
            json!({"containerStatuses": [{"name": "web", "image": "web", "imageID": "",
                "ready": true, "restartCount": *restarts}]}),
        )
        .await;
        let (trigger, reaction): (WriteRecord, WriteRecord) =
            until("the summary written", PATIENCE, || async {
                let writes = cluster.server.writes();
                let new = &writes[before..];
                let trigger = new.iter().find(|w| w.name == "web-1" && w.code < 300)?;
                let reaction = new.iter().find(|w| {
                    w.manager == "trellis-deployment-summary" && w.seq > trigger.seq && w.code < 300
                })?;
                Some((trigger.clone(), reaction.clone()))
            })
            .await;
        latencies.push(
            reaction
                .started_micros
                .saturating_sub(trigger.finished_micros) as f64
                / 1000.0,
        );
        let enqueued = until("the probe's key", PATIENCE, || async {
            let seen = probe.seen.lock().unwrap();
            seen.iter().find(|(_, at)| *at > sent).map(|(_, at)| *at)
        })
        .await;
        enqueues.push((enqueued - sent).as_secs_f64() * 1000.0);
    }
    let shutdown = host.shutdown().await;
    assert!(shutdown.plugins[0].drained(), "{shutdown:?}");
    (latencies, enqueues)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_plugin_does_not_slow_a_healthy_one_or_the_event_path() {
    init_logging();
    let cluster = Cluster::with_fixtures(&format!("{FIXTURES}{}", chaos_fixtures())).await;
    let alone = format!("plugins:{HEALTHY}");
    let beside = format!("plugins:{HEALTHY}{LOOPING}");
    let mut restarts = 0;
    let (mut write_alone, mut write_beside) = (Vec::new(), Vec::new());
    let (mut event_alone, mut event_beside) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let (latencies, events) = run(&cluster, &alone, &mut restarts).await;
        write_alone.extend(latencies);
        event_alone.extend(events);
        let (latencies, events) = run(&cluster, &beside, &mut restarts).await;
        write_beside.extend(latencies);
        event_beside.extend(events);
    }
    let (alone_ms, beside_ms) = (median(&mut write_alone), median(&mut write_beside));
    let (event_alone_ms, event_beside_ms) = (median(&mut event_alone), median(&mut event_beside));
    eprintln!(
        "write-to-reconcile median: alone {alone_ms:.2} ms, beside a looping plugin {beside_ms:.2} ms \
         (ratio {:.2}); write-to-enqueue median: alone {event_alone_ms:.2} ms, beside {event_beside_ms:.2} ms \
         (ratio {:.2})",
        beside_ms / alone_ms,
        event_beside_ms / event_alone_ms
    );
    // A ratio of sub-millisecond medians is noise, not signal: below 1 ms the bound is 1.5 ms.
    let bound = |alone: f64| (alone * 1.5).max(1.5);
    assert!(
        beside_ms <= bound(alone_ms),
        "write-to-reconcile latency {beside_ms:.2} ms beside the looping plugin vs {alone_ms:.2} ms alone"
    );
    assert!(
        event_beside_ms <= bound(event_alone_ms),
        "write-to-enqueue {event_beside_ms:.2} ms beside the looping plugin vs {event_alone_ms:.2} ms alone"
    );
}
