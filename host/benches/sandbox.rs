//! What a guest call costs: a fresh instance + call + drop (what the worker does for every key)
//! against a reused instance (what invariant 3 forbids; measured only as the floor).
//!
//! The guest is the real `misbehave` component in mode `ok`, reconciling a realistic ~5 KB Pod
//! (managedFields stripped, as the host caches it) that carries `data.mode: ok`: the guest
//! parses the whole object with serde_json and answers `done`, so the number includes lowering
//! 5 KB into the guest and the guest's JSON parse.
//!
//! Criterion reports its usual estimates; a second pass times calls one by one and prints the
//! median and p99, which criterion does not.
//!
//! Run: `cargo bench -p trellis-host --bench sandbox` (results in docs/benchmarks/sandbox.md).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use serde_json::json;
use trellis_host::sandbox::{
    Action, EngineConfig, Gvk, HostError, ObjectKey, Outcome, Plugin, PluginHost, ReconcileRequest,
    ReusedInstance, Sandbox, async_trait,
};

#[path = "common/stats.rs"]
mod common_stats;
#[path = "../tests/support/components.rs"]
mod components;
#[path = "../tests/support/read_only_host.rs"]
mod read_only_host;

use common_stats::nearest_rank;
use components::load_on;
use read_only_host::{Lists, ReadOnly, Reads};

/// A host with an empty cache that refuses writes (`ReadOnly`): the `ok` mode calls none of it.
struct EmptyHost;

#[async_trait]
impl Reads for EmptyHost {
    const REFUSAL: &'static str = "benchmark host";
    const LISTS: Lists = Lists::Empty;

    async fn get(&self, _: &Gvk, _: &ObjectKey) -> Result<Option<String>, HostError> {
        Ok(None)
    }
}

/// A Pod as a kubelet-managed Deployment replica looks in the cache: two containers with
/// env, probes, resources, mounts, and a full status. About 5 KB of JSON.
fn pod() -> serde_json::Value {
    let container = |name: &str, image: &str, port: u16| {
        json!({
            "name": name,
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
            "env": [
                {"name": "RUST_LOG", "value": "info,hyper=warn"},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}},
                {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "web-db", "key": "url"}}}
            ],
            "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"}, "initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http", "scheme": "HTTP"}, "periodSeconds": 5, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
            "volumeMounts": [
                {"name": "config", "mountPath": "/etc/web", "readOnly": true},
                {"name": "kube-api-access-7xk2p", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}
            ],
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}}
        })
    };
    let status = |name: &str, image: &str| {
        json!({
            "name": name, "image": image, "imageID": format!("{image}@sha256:9b2c3f1e0a7d5c4b8e6f2a1d3c5b7e9f0a2c4e6b8d0f1a3c5e7b9d1f3a5c7e9b"),
            "containerID": "containerd://4f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0",
            "ready": true, "started": true, "restartCount": 0,
            "state": {"running": {"startedAt": "2025-11-20T10:15:02Z"}},
            "lastState": {}
        })
    };
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-7d9c6b5f8-x2klq",
            "generateName": "web-7d9c6b5f8-",
            "namespace": "shop",
            "uid": "0b6b5c1e-4f4a-4c2e-9a57-2d1f6c3e8b90",
            "resourceVersion": "48213377",
            "creationTimestamp": "2025-11-20T10:14:55Z",
            "labels": {"app.kubernetes.io/name": "web", "app.kubernetes.io/part-of": "shop", "pod-template-hash": "7d9c6b5f8", "tier": "frontend"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-11-20T10:14:50Z", "prometheus.io/scrape": "true", "prometheus.io/port": "8080"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9c6b5f8", "uid": "5e0c2d7a-1b3f-4e6a-8c9d-0f1e2a3b4c5d", "controller": true, "blockOwnerDeletion": true}]
        },
        // The guest's mode, in the field it reads; the rest is the Pod.
        "data": {"mode": "ok"},
        "spec": {
            "containers": [container("web", "registry.example.com/shop/web:1.42.0", 8080), container("sidecar", "registry.example.com/infra/envoy:1.31.2", 9901)],
            "volumes": [
                {"name": "config", "configMap": {"name": "web-config", "defaultMode": 420}},
                {"name": "kube-api-access-7xk2p", "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
                ]}}
            ],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "web", "serviceAccount": "web", "nodeName": "worker-3",
            "securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ],
            "priority": 0, "enableServiceLinks": true, "preemptionPolicy": "PreemptLowerPriority"
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2025-11-20T10:15:01Z"},
                {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2025-11-20T10:14:55Z"},
                {"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2025-11-20T10:15:12Z"},
                {"type": "ContainersReady", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2025-11-20T10:15:12Z"},
                {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2025-11-20T10:14:55Z"}
            ],
            "hostIP": "10.0.3.17", "hostIPs": [{"ip": "10.0.3.17"}],
            "podIP": "10.244.3.41", "podIPs": [{"ip": "10.244.3.41"}],
            "startTime": "2025-11-20T10:14:55Z",
            "containerStatuses": [status("web", "registry.example.com/shop/web:1.42.0"), status("sidecar", "registry.example.com/infra/envoy:1.31.2")],
            "qosClass": "Burstable"
        }
    })
}

fn request() -> ReconcileRequest {
    let pod = pod();
    ReconcileRequest {
        kind: Gvk {
            group: String::new(),
            version: "v1".into(),
            kind: "Pod".into(),
        },
        key: ObjectKey {
            namespace: Some("shop".into()),
            name: pod["metadata"]["name"].as_str().unwrap().into(),
        },
        object: Some(pod.to_string()),
    }
}

struct Setup {
    runtime: tokio::runtime::Runtime,
    plugin: Plugin,
    host: Arc<dyn PluginHost>,
}

fn setup() -> Setup {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sandbox = Sandbox::new(EngineConfig::default()).unwrap();
    let plugin = load_on(&sandbox, &trellis_plugin_bundle::MISBEHAVE);
    Setup {
        runtime,
        plugin,
        host: Arc::new(ReadOnly(EmptyHost)),
    }
}

impl Setup {
    fn fresh(&self, request: &ReconcileRequest) -> Outcome {
        self.runtime
            .block_on(self.plugin.reconcile(self.host.clone(), request))
            .outcome
    }

    fn reused(&self) -> ReusedInstance {
        self.runtime
            .block_on(
                self.plugin
                    .reused_instance_for_benchmarks(self.host.clone()),
            )
            .unwrap()
    }

    fn call_reused(&self, instance: &mut ReusedInstance, request: &ReconcileRequest) -> Action {
        self.runtime.block_on(instance.reconcile(request)).unwrap()
    }
}

fn percentiles(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| nearest_rank(&samples, q).unwrap_or_default();
    println!(
        "{name}: n={} median={:.1} µs p99={:.1} µs max={:.1} µs",
        samples.len(),
        at(0.5).as_nanos() as f64 / 1000.0,
        at(0.99).as_nanos() as f64 / 1000.0,
        at(1.0).as_nanos() as f64 / 1000.0,
    );
}

fn timed(mut f: impl FnMut()) -> Vec<Duration> {
    (0..SAMPLES)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect()
}

const SAMPLES: usize = 20_000;

fn main() {
    let setup = setup();
    let pod = request();
    let size = pod.object.as_ref().unwrap().len();
    assert!(
        (4500..6000).contains(&size),
        "the Pod is {size} bytes, not about 5 KB"
    );
    // The same key with no object (deleted): the guest answers `done` without parsing
    // anything, which isolates the sandbox's own cost from the guest's JSON work.
    let deleted = ReconcileRequest {
        object: None,
        ..pod.clone()
    };
    let cases = [("5KB-pod", &pod), ("no-object", &deleted)];
    for (name, request) in cases {
        // The call must be what we think it is; its fuel is the guest's instruction count.
        let report = setup
            .runtime
            .block_on(setup.plugin.reconcile(setup.host.clone(), request));
        assert_eq!(report.outcome, Outcome::Ok(Action::Done));
        println!(
            "{name}: fuel used per call (instantiation included): {}",
            report.fuel_used
        );
    }

    let mut criterion = Criterion::default().configure_from_args();
    for (name, request) in cases {
        let mut reused = setup.reused();
        let mut group = criterion.benchmark_group(format!("sandbox/{name}"));
        group.bench_function("fresh instance + call + drop", |b| {
            b.iter(|| black_box(setup.fresh(request)))
        });
        group.bench_function("reused instance, call only", |b| {
            b.iter(|| black_box(setup.call_reused(&mut reused, request)))
        });
        group.finish();
    }

    // Call-by-call timings for the median and p99, which criterion does not report.
    for (name, request) in cases {
        percentiles(
            &format!("{name}: fresh instance + call + drop"),
            timed(|| {
                black_box(setup.fresh(request));
            }),
        );
        let mut reused = setup.reused();
        percentiles(
            &format!("{name}: reused instance, call only"),
            timed(|| {
                black_box(setup.call_reused(&mut reused, request));
            }),
        );
    }

    criterion.final_summary();
}
