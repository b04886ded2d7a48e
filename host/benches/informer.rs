//! Informer benchmark: memory and time to sync 100k realistic Pods, ours against
//! kube-runtime's reflector stores, and event-to-enqueue latency at a sustained update rate.
//!
//! ```sh
//! cargo bench -p trellis-host --bench informer
//! # smaller: INFORMER_BENCH_PODS=10000 INFORMER_BENCH_SECONDS=5 cargo bench -p trellis-host --bench informer
//! # latency only, more rounds: INFORMER_BENCH_PODS=0 INFORMER_BENCH_ROUNDS=5 cargo bench ...
//! ```
//!
//! One devcluster (in this process, on its own runtime) holds the Pods; each sync variant runs
//! in a child process (this binary, `--child <variant> <url> <pods>`) so that its heap and peak
//! RSS are its own. A counting global allocator gives exact heap bytes (current and peak);
//! RSS comes from /proc/self/status. Results are printed as a markdown table.

#[path = "common/env.rs"]
mod common_env;

use common_env::env;
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, reflector, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use serde_json::json;
use trellis_devcluster::{DevCluster, DevClusterOptions};
use trellis_host::cache::ObjectKey;
use trellis_host::informer::{InformerOptions, Informers, KeySink, Priority, Role, WatchConfig};

#[path = "../tests/support/runtime.rs"]
mod runtime;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: forwards to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const NAMESPACE: &str = "bench";

const VARIANTS: [(&str, &str); 7] = [
    ("trellis", "trellis cache, streaming list (default)"),
    ("trellis-paginated", "trellis cache, paginated list"),
    ("trellis-metadata", "trellis cache, metadataOnly"),
    (
        "store-pod",
        "reflector Store<Pod>, paginated (kube default)",
    ),
    (
        "store-pod-streaming",
        "reflector Store<Pod>, streaming list",
    ),
    (
        "store-pod-stripped",
        "reflector Store<Pod>, managedFields cleared",
    ),
    ("store-dynamic", "reflector Store<DynamicObject>, paginated"),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--child") {
        let variant = &args[at + 1];
        let url = &args[at + 2];
        let pods: usize = args[at + 3].parse().expect("pod count");
        child(variant, url, pods);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    parent();
}

// ---------------------------------------------------------------------------------------------
// Parent: the devcluster, the children, the latency runs.

fn parent() {
    let pods = env("INFORMER_BENCH_PODS", 100_000);
    let seconds = env("INFORMER_BENCH_SECONDS", 10);
    let rate = env("INFORMER_BENCH_RATE", 500);
    let rounds = env("INFORMER_BENCH_ROUNDS", 3);
    let server = runtime::multi_thread(2);
    let cluster = server.block_on(async {
        DevCluster::start(DevClusterOptions {
            namespaces: vec![NAMESPACE.into(), "latency".into(), "default".into()],
            ..DevClusterOptions::default()
        })
        .await
        .expect("devcluster")
    });
    let started = Instant::now();
    cluster.seed_pods(NAMESPACE, pods).expect("seed");
    println!(
        "informer benchmark: {pods} Pods seeded in {:.1}s; latency at {rate} updates/s for {seconds}s",
        started.elapsed().as_secs_f64()
    );
    if pods > 0 {
        sync_section(&cluster, pods);
    }
    latency_section(&cluster, rate, seconds, rounds);
}

fn sync_section(cluster: &DevCluster, pods: usize) {
    println!("\n## Sync of {pods} Pods (each variant in its own process)\n");
    println!(
        "| variant | time to sync | heap after sync | bytes/Pod | peak heap during sync | peak RSS growth |"
    );
    println!("|---|---|---|---|---|---|");
    let exe = std::env::current_exe().unwrap();
    let mut results: HashMap<String, SyncResult> = HashMap::new();
    for (variant, label) in VARIANTS {
        let output = Command::new(&exe)
            .args(["--child", variant, cluster.url(), &pods.to_string()])
            .output()
            .expect("child runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let Some(line) = stdout.lines().find(|l| l.starts_with('{')) else {
            eprintln!(
                "variant {variant} failed: {}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            continue;
        };
        let r: SyncResult = serde_json::from_str(line).unwrap();
        println!(
            "| {label} | {:.2} s | {:.0} MiB | {:.0} | {:.0} MiB | {:.0} MiB |",
            r.seconds,
            mib(r.heap),
            r.heap as f64 / r.objects as f64,
            mib(r.peak_heap),
            mib(r.peak_rss.saturating_sub(r.rss_before)),
        );
        results.insert(variant.to_string(), r);
    }
    if let (Some(ours), Some(pod), Some(dynamic)) = (
        results.get("trellis"),
        results.get("store-pod"),
        results.get("store-dynamic"),
    ) {
        println!("\nRatios, trellis (streaming) / peer:\n");
        println!("| peer | bytes per object | time to sync | peak heap | peak RSS growth |");
        println!("|---|---|---|---|---|");
        for (name, peer) in [("Store<Pod>", pod), ("Store<DynamicObject>", dynamic)]
            .into_iter()
            .chain(
                results
                    .get("store-pod-streaming")
                    .map(|p| ("Store<Pod> streaming", p)),
            )
        {
            println!(
                "| {name} | {:.2}x | {:.2}x | {:.2}x | {:.2}x |",
                ours.heap as f64 / peer.heap as f64,
                ours.seconds / peer.seconds,
                ours.peak_heap as f64 / peer.peak_heap as f64,
                ours.peak_rss.saturating_sub(ours.rss_before) as f64
                    / peer.peak_rss.saturating_sub(peer.rss_before) as f64,
            );
        }
    }
}

fn latency_section(cluster: &DevCluster, rate: usize, seconds: usize, rounds: usize) {
    println!(
        "\n## Event-to-enqueue latency, {rate} updates/s for {seconds}s over 1000 ConfigMaps\n"
    );
    println!(
        "Write sent (client side) -> key handed to the sink. The kube-runtime row is the same"
    );
    println!(
        "path to the reflector's output stream (where a kube-runtime Controller would enqueue).\n"
    );
    println!(
        "| consumer | keys | write-to-enqueue median | p99 | max | informer handling per event |"
    );
    println!("|---|---|---|---|---|---|");
    let host = runtime::multi_thread(2);
    host.block_on(async {
        let client = cluster.client().unwrap();
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "latency");
        for i in 0..1000 {
            let cm: ConfigMap = serde_json::from_value(json!({
                "metadata": {"name": format!("cm-{i}"), "labels": {"app": "bench"}},
                "data": {"value": "0"}
            }))
            .unwrap();
            api.create(&PostParams::default(), &cm).await.unwrap();
        }
        // Rounds alternate the consumers, so a slow phase of the machine or of a connection
        // shows in every consumer's rows rather than in one.
        for round in 1..=rounds {
            for subscribers in [1, 10] {
                let samples = latency_trellis(client.clone(), subscribers, rate, seconds).await;
                report(
                    &format!("round {round}: trellis, {subscribers} subscriber(s)"),
                    samples,
                );
            }
            let samples = latency_reflector(client.clone(), rate, seconds).await;
            report(&format!("round {round}: kube-runtime reflector"), samples);
        }
    });
    drop(host);
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn report(label: &str, (mut samples, handling): (Vec<Duration>, Option<Handling>)) {
    samples.sort_unstable();
    if samples.is_empty() {
        println!("| {label} | 0 | - | - | - | - |");
        return;
    }
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let handling = handling.map_or("-".to_string(), |h| {
        format!(
            "mean {:.1} µs, p50 ≤ {:.0} µs, p99 ≤ {:.0} µs ({} events)",
            h.sum / h.count * 1e6,
            h.quantile(0.5) * 1e6,
            h.quantile(0.99) * 1e6,
            h.count
        )
    });
    println!(
        "| {label} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {handling} |",
        samples.len(),
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3
    );
}

static RUN: AtomicUsize = AtomicUsize::new(0);

/// When each ConfigMap's latest patch was sent.
type Sends = Arc<Mutex<HashMap<String, Instant>>>;

/// Sends `rate` merge patches per second for `seconds`, round-robin over cm-0..cm-999.
async fn drive(client: Client, sends: Sends, rate: usize, seconds: usize) {
    let api: Api<ConfigMap> = Api::namespaced(client, "latency");
    let permits = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    for i in 0..rate * seconds {
        tick.tick().await;
        let permit = permits.clone().acquire_owned().await.unwrap();
        let (api, sends) = (api.clone(), sends.clone());
        tasks.push(tokio::spawn(async move {
            let name = format!("cm-{}", i % 1000);
            sends.lock().insert(name.clone(), Instant::now());
            // A value no earlier run wrote: a write that changes nothing has no event.
            let patch = json!({"data": {"value": format!("{run}-{i}")}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
            drop(permit);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Let the last events arrive.
    tokio::time::sleep(Duration::from_secs(1)).await;
}

struct LatencySink {
    sends: Sends,
    samples: Mutex<Vec<Duration>>,
}

impl KeySink for LatencySink {
    fn enqueue(&self, key: ObjectKey, priority: Priority) {
        let now = Instant::now();
        if priority == Priority::Normal
            && let Some(sent) = self.sends.lock().get(key.name())
        {
            self.samples
                .lock()
                .push(now.saturating_duration_since(*sent));
        }
    }
}

async fn latency_trellis(
    client: Client,
    subscribers: usize,
    rate: usize,
    seconds: usize,
) -> (Vec<Duration>, Option<Handling>) {
    let sends: Sends = Arc::default();
    let mut registry = Registry::default();
    let informers = Informers::new(client.clone(), &mut registry, InformerOptions::default());
    let config: WatchConfig =
        serde_norway::from_str("apiVersion: v1\nkind: ConfigMap\nnamespaces: [latency]\n").unwrap();
    let mut sinks = Vec::new();
    let mut subscriptions = Vec::new();
    for i in 0..subscribers {
        let sink = Arc::new(LatencySink {
            sends: sends.clone(),
            samples: Mutex::default(),
        });
        let subscription = informers
            .subscribe(&format!("plugin-{i}"), &config, Role::Primary, sink.clone())
            .await
            .unwrap();
        subscription.wait_synced().await.unwrap();
        sinks.push(sink);
        subscriptions.push(subscription);
    }
    let before = Handling::read(&registry);
    drive(client, sends, rate, seconds).await;
    let handling = Handling::read(&registry).since(&before);
    drop(subscriptions);
    let samples = sinks
        .iter()
        .flat_map(|s| std::mem::take(&mut *s.samples.lock()))
        .collect();
    (samples, Some(handling))
}

/// The informer's `trellis_informer_event_handling_seconds` histogram: time from a watch
/// event reaching the informer task to its keys handed to every sink.
#[derive(Default)]
struct Handling {
    buckets: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
}

impl Handling {
    fn read(registry: &Registry) -> Self {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        let mut out = Handling::default();
        for line in text
            .lines()
            .filter(|l| l.starts_with("trellis_informer_event_handling_seconds"))
        {
            let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
                continue;
            };
            if line.starts_with("trellis_informer_event_handling_seconds_sum") {
                out.sum = value;
            } else if line.starts_with("trellis_informer_event_handling_seconds_count") {
                out.count = value;
            } else if let Some(le) = line.split("le=\"").nth(1).and_then(|r| r.split('"').next()) {
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                out.buckets.push((le, value));
            }
        }
        out
    }

    fn since(&self, before: &Handling) -> Handling {
        Handling {
            buckets: self
                .buckets
                .iter()
                .zip(before.buckets.iter().chain(std::iter::repeat(&(0.0, 0.0))))
                .map(|((le, now), (_, then))| (*le, now - then))
                .collect(),
            sum: self.sum - before.sum,
            count: self.count - before.count,
        }
    }

    /// The upper bound of the bucket holding quantile `q`.
    fn quantile(&self, q: f64) -> f64 {
        self.buckets
            .iter()
            .find(|(_, cumulative)| *cumulative >= q * self.count)
            .map_or(f64::NAN, |(le, _)| *le)
    }
}

async fn latency_reflector(
    client: Client,
    rate: usize,
    seconds: usize,
) -> (Vec<Duration>, Option<Handling>) {
    let sends: Sends = Arc::default();
    let samples: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "latency");
    let (store, writer) = reflector::store();
    let consumer = {
        let (sends, samples) = (sends.clone(), samples.clone());
        tokio::spawn(
            reflector(writer, watcher(api, watcher::Config::default()))
                .applied_objects()
                .for_each(move |cm| {
                    let now = Instant::now();
                    if let Ok(cm) = cm
                        && let Some(sent) = sends.lock().get(&cm.name_any())
                    {
                        samples.lock().push(now.saturating_duration_since(*sent));
                    }
                    futures::future::ready(())
                }),
        )
    };
    store.wait_until_ready().await.unwrap();
    // The initial objects were applied before any send: they were not recorded.
    drive(client, sends, rate, seconds).await;
    consumer.abort();
    let collected = std::mem::take(&mut *samples.lock());
    (collected, None)
}

// ---------------------------------------------------------------------------------------------
// Children: one sync each.

#[derive(serde::Serialize, serde::Deserialize)]
struct SyncResult {
    objects: usize,
    seconds: f64,
    heap: usize,
    peak_heap: usize,
    rss_before: usize,
    peak_rss: usize,
}

fn status_kib(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
        * 1024
}

fn child(variant: &str, url: &str, pods: usize) {
    let runtime = runtime::multi_thread(2);
    let result = runtime.block_on(async {
        let client = Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
        // Warm the client (connection, TLS-free HTTP) so it is not counted.
        let _ = Api::<Pod>::namespaced(client.clone(), NAMESPACE)
            .list(&kube::api::ListParams::default().limit(1))
            .await;
        let rss_before = status_kib("VmRSS:");
        let heap_before = CURRENT.load(Ordering::Relaxed);
        PEAK.store(heap_before, Ordering::Relaxed);
        let started = Instant::now();
        let (objects, keep) = sync(variant, client).await;
        let seconds = started.elapsed().as_secs_f64();
        let heap = CURRENT.load(Ordering::Relaxed) - heap_before;
        let peak_heap = PEAK.load(Ordering::Relaxed) - heap_before;
        let peak_rss = status_kib("VmHWM:");
        assert_eq!(objects, pods, "{variant} synced every Pod");
        drop(keep);
        SyncResult {
            objects,
            seconds,
            heap,
            peak_heap,
            rss_before,
            peak_rss,
        }
    });
    println!("{}", serde_json::to_string(&result).unwrap());
    // Exit without tearing down the stores: the measurement is done.
    std::process::exit(0);
}

/// Syncs `variant`; returns the object count and whatever keeps the cache alive.
async fn sync(variant: &str, client: Client) -> (usize, Box<dyn std::any::Any>) {
    match variant {
        "trellis" | "trellis-paginated" | "trellis-metadata" => {
            let mut registry = Registry::default();
            let informers = Informers::new(client, &mut registry, InformerOptions::default());
            let extra = match variant {
                "trellis-paginated" => "initialList: paginated\n",
                "trellis-metadata" => "metadataOnly: true\n",
                _ => "",
            };
            let config: WatchConfig = serde_norway::from_str(&format!(
                "apiVersion: v1\nkind: Pod\nnamespaces: [{NAMESPACE}]\n{extra}"
            ))
            .unwrap();
            struct Null;
            impl KeySink for Null {
                fn enqueue(&self, _: ObjectKey, _: Priority) {}
            }
            let subscription = informers
                .subscribe("bench", &config, Role::Primary, Arc::new(Null))
                .await
                .unwrap();
            subscription.wait_synced().await.unwrap();
            let objects = subscription.cache().len();
            (objects, Box::new((informers, subscription)))
        }
        "store-pod" | "store-pod-streaming" | "store-pod-stripped" => {
            let api: Api<Pod> = Api::namespaced(client, NAMESPACE);
            let config = if variant == "store-pod-streaming" {
                watcher::Config::default().streaming_lists()
            } else {
                watcher::Config::default()
            };
            let (store, writer) = reflector::store();
            let strip = variant == "store-pod-stripped";
            let stream = watcher(api, config).modify(move |pod| {
                if strip {
                    pod.managed_fields_mut().clear();
                }
            });
            let task =
                tokio::spawn(reflector(writer, stream).for_each(|_| futures::future::ready(())));
            store.wait_until_ready().await.unwrap();
            (store.len(), Box::new((store, task)))
        }
        "store-dynamic" => {
            let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Pod"));
            let api: Api<DynamicObject> = Api::namespaced_with(client, NAMESPACE, &resource);
            let writer = Writer::new(resource);
            let store = writer.as_reader();
            let task = tokio::spawn(
                reflector(writer, watcher(api, watcher::Config::default()))
                    .for_each(|_| futures::future::ready(())),
            );
            store.wait_until_ready().await.unwrap();
            (store.len(), Box::new((store, task)))
        }
        other => panic!("unknown variant {other}"),
    }
}
