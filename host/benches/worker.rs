//! Where should guests run? The host's runtime, one guest runtime shared by every plugin, or a
//! runtime per plugin, measured.
//!
//! ```sh
//! cargo bench -p trellis-host --bench worker
//! # knobs: WORKER_BENCH_ROUNDS=3 WORKER_BENCH_SECONDS=5 WORKER_BENCH_LOOPERS=0,4,16 \
//! #        WORKER_BENCH_KEYS=20000 cargo bench -p trellis-host --bench worker
//! ```
//!
//! **Event path under looping guests.** The host runtime (2 worker threads, like the 2-core
//! machine) runs the event path: a task receiving "watch events" from a plain thread (standing
//! in for the network) every 5 ms and handing each key to a healthy plugin's `QueueSink`, as
//! the informer task does. Meanwhile a second plugin's pool keeps N workers busy with the
//! misbehave `loop` mode, which spins until its 1 s deadline and is retried at once. Measured:
//! * event -> enqueue: from the send on the event thread to the key being in the queue (the
//!   event path's own latency: DESIGN invariant 1);
//! * event -> guest running: from the send to the healthy plugin's guest making its first host
//!   call (`slow-host-call` with count 1 on its own key), i.e. the healthy plugin's reaction
//!   time.
//!
//! **Throughput of a cheap guest.** `WORKER_BENCH_KEYS` keys queued up front, a pool of 4
//! workers with the misbehave `ok` mode (parse the object, answer done); reconciles per second
//! until the queue is empty.
//!
//! Executors (`GuestExecutor`): `host` (the workers run on the host runtime), `shared` (one
//! 2-thread guest runtime for both plugins), `per-plugin` (a 2-thread runtime per pool),
//! `per-plugin-1` (a 1-thread runtime per pool). Each
//! round runs every executor, in a rotating order, each on fresh runtimes, so drift in machine
//! load hits all alike. Results are printed as markdown tables.

#[path = "common/env.rs"]
mod common_env;
#[path = "common/stats.rs"]
mod common_stats;

use common_env::env;
use common_stats::{median, nearest_rank};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use serde_json::json;
use trellis_host::cache::{self, Cache};
use trellis_host::informer::{KeySink, Priority};
use trellis_host::queue::{self, QueueConfig, QueueMetrics, WorkQueue};
use trellis_host::sandbox::{self, Budgets, EngineConfig, HostError, Plugin, Sandbox, async_trait};
use trellis_host::worker::{
    DedicatedRuntime, GuestExecutor, Nice, Pool, PoolConfig, PoolSpec, Target, WorkerMetrics,
};

#[path = "../tests/support/components.rs"]
mod components;
#[path = "../tests/support/configmap_cache.rs"]
mod configmap_cache;
#[path = "../tests/support/read_only_host.rs"]
mod read_only_host;
#[path = "../tests/support/runtime.rs"]
mod runtime;

use components::load_as;
use configmap_cache::{cached_json, configmap_cache, put_configmap};
use read_only_host::{ReadOnly, Reads};

const EVENT_INTERVAL: Duration = Duration::from_millis(5);
const RUNTIME_THREADS: usize = 2;

fn put(cache: &Cache, name: &str, data: serde_json::Value) {
    put_configmap(cache, "bench", name, data);
}

/// Reads from the cache; records when each probe key's guest first calls in. Writes are
/// refused (`ReadOnly`): the benchmark's plugins only read.
struct BenchHost {
    cache: Arc<Cache>,
    sent: Mutex<HashMap<String, Instant>>,
    reacted: Mutex<Vec<Duration>>,
}

#[async_trait]
impl Reads for BenchHost {
    const REFUSAL: &'static str = "reads only";

    async fn get(
        &self,
        _: &sandbox::Gvk,
        key: &sandbox::ObjectKey,
    ) -> Result<Option<String>, HostError> {
        let now = Instant::now();
        if let Some(sent) = self.sent.lock().remove(&key.name) {
            self.reacted.lock().push(now - sent);
        }
        Ok(cached_json(&self.cache, key))
    }
}

/// What every run starts from: worker and queue metrics, an empty ConfigMap cache and the
/// host over it.
fn world() -> (
    WorkerMetrics,
    QueueMetrics,
    Arc<Cache>,
    Arc<ReadOnly<BenchHost>>,
) {
    let mut registry = Registry::default();
    let cache = Arc::new(configmap_cache());
    let host = Arc::new(ReadOnly(BenchHost {
        cache: cache.clone(),
        sent: Mutex::new(HashMap::new()),
        reacted: Mutex::new(Vec::new()),
    }));
    (
        WorkerMetrics::register(&mut registry),
        QueueMetrics::register(&mut registry),
        cache,
        host,
    )
}

struct Plugins {
    healthy: Plugin,
    looper: Plugin,
}

fn load(sandbox: &Sandbox, name: &str, budgets: Budgets) -> Plugin {
    load_as(sandbox, name, &trellis_plugin_bundle::MISBEHAVE, budgets)
}

/// A queue retrying at once: loopers go straight back to spinning.
fn eager_queue(plugin: &str, metrics: &QueueMetrics) -> WorkQueue<queue::ObjectKey> {
    let mut config = QueueConfig::new(plugin);
    config.backoff.base = Duration::from_millis(1);
    config.backoff.cap = Duration::from_millis(1);
    config.retry_limit = None;
    WorkQueue::with_metrics(config, metrics).unwrap()
}

fn host_runtime() -> tokio::runtime::Runtime {
    runtime::multi_thread(RUNTIME_THREADS)
}

/// The executors compared: the host runtime; one dedicated runtime shared by every plugin;
/// a dedicated runtime per plugin.
/// `per-plugin-1`: a 1-thread runtime per pool.
const EXECUTORS: [&str; 4] = ["host", "shared", "per-plugin", "per-plugin-1"];

/// The executor of one run: the same value for every pool of the run, so "shared" is one
/// runtime for both plugins and "per-plugin" starts one per pool.
fn executor(name: &str) -> GuestExecutor {
    match name {
        "host" => GuestExecutor::Host,
        "shared" => GuestExecutor::Shared(DedicatedRuntime::new(RUNTIME_THREADS).unwrap()),
        "per-plugin-1" => GuestExecutor::PerPlugin {
            threads: 1,
            nice: Nice::DEFAULT,
        },
        _ => GuestExecutor::PerPlugin {
            threads: RUNTIME_THREADS,
            nice: Nice::DEFAULT,
        },
    }
}

#[derive(Default)]
struct Latencies {
    enqueue: Vec<Duration>,
    reacted: Vec<Duration>,
    events: usize,
}

fn latency_run(plugins: &Plugins, executor_name: &str, loopers: usize, seconds: u64) -> Latencies {
    let runtime = host_runtime();
    let executor = executor(executor_name);
    runtime.block_on(async {
        let (metrics, queue_metrics, cache, host) = world();
        let start = |plugin: &Plugin, workers| {
            let spec = PoolSpec {
                target: Target {
                    plugin: plugin.clone(),
                    host: host.clone(),
                },
                queue: eager_queue(plugin.name(), &queue_metrics),
                primary: cache.clone(),
                config: PoolConfig {
                    workers,
                    ..PoolConfig::default()
                },
            };
            Pool::start(spec, &metrics, &executor).unwrap()
        };
        let healthy = start(&plugins.healthy, 2);
        let looper = (loopers > 0).then(|| start(&plugins.looper, loopers));
        if let Some(looper) = &looper {
            for n in 0..loopers {
                let name = format!("loop-{n}");
                put(&cache, &name, json!({"mode": "loop"}));
                looper
                    .queue()
                    .add(queue::ObjectKey::namespaced("ConfigMap", "bench", &name));
            }
        }
        let events = (seconds * 1000 / EVENT_INTERVAL.as_millis() as u64) as usize;
        for i in 0..events {
            let name = format!("probe-{i}");
            put(
                &cache,
                &name,
                json!({"mode": "slow-host-call", "target": name, "count": "1"}),
            );
        }
        // Let the loopers start spinning.
        tokio::time::sleep(Duration::from_millis(200)).await;

        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
        let source_host = host.clone();
        let source = std::thread::spawn(move || {
            let begin = Instant::now();
            for i in 0..events {
                let due = begin + EVENT_INTERVAL * i as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let sent = Instant::now();
                source_host.sent.lock().insert(format!("probe-{i}"), sent);
                tx.send((i, sent)).unwrap();
            }
        });
        let sink = healthy.sink();
        let event_path = tokio::spawn(async move {
            let mut enqueue = Vec::with_capacity(events);
            while let Some((i, sent)) = rx.recv().await {
                sink.enqueue(
                    cache::ObjectKey::namespaced("bench", &format!("probe-{i}")),
                    Priority::Normal,
                );
                enqueue.push(sent.elapsed());
            }
            enqueue
        });
        let enqueue = event_path.await.unwrap();
        source.join().unwrap();
        // Let the last probes reach their guests.
        let settle = Instant::now();
        while host.reacted.lock().len() < events && settle.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        healthy.shutdown(Duration::ZERO).await;
        if let Some(looper) = &looper {
            looper.shutdown(Duration::ZERO).await;
        }
        let reacted = std::mem::take(&mut *host.reacted.lock());
        Latencies {
            enqueue,
            reacted,
            events,
        }
    })
}

fn throughput_run(plugin: &Plugin, executor_name: &str, keys: usize) -> f64 {
    let runtime = host_runtime();
    let executor = executor(executor_name);
    runtime.block_on(async {
        let (metrics, queue_metrics, cache, host) = world();
        let queue = eager_queue(plugin.name(), &queue_metrics);
        for n in 0..keys {
            let name = format!("cm-{n}");
            put(
                &cache,
                &name,
                json!({"mode": "ok", "payload": "x".repeat(512)}),
            );
            queue.add(queue::ObjectKey::namespaced("ConfigMap", "bench", &name));
        }
        let began = Instant::now();
        let pool = Pool::start(
            PoolSpec {
                target: Target {
                    plugin: plugin.clone(),
                    host,
                },
                queue: queue.clone(),
                primary: cache,
                config: PoolConfig {
                    workers: 4,
                    ..PoolConfig::default()
                },
            },
            &metrics,
            &executor,
        )
        .unwrap();
        while queue.stats().keys > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let elapsed = began.elapsed();
        pool.shutdown(Duration::ZERO).await;
        keys as f64 / elapsed.as_secs_f64()
    })
}

fn show(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.0} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}

fn summary(samples: &mut [Duration]) -> String {
    samples.sort_unstable();
    format!(
        "{} | {} | {}",
        show(nearest_rank(samples, 0.5).unwrap_or_default()),
        show(nearest_rank(samples, 0.99).unwrap_or_default()),
        show(samples.last().copied().unwrap_or_default())
    )
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let rounds: usize = env("WORKER_BENCH_ROUNDS", 3);
    let seconds: u64 = env("WORKER_BENCH_SECONDS", 5);
    let keys: usize = env("WORKER_BENCH_KEYS", 20_000);
    let loopers: Vec<usize> = env::<String>("WORKER_BENCH_LOOPERS", "0,4,16".into())
        .split(',')
        .map(|n| {
            n.trim().parse().unwrap_or_else(|_| {
                panic!("WORKER_BENCH_LOOPERS: {n:?} is not a count of looping plugins")
            })
        })
        .collect();
    let sandbox = Sandbox::new(EngineConfig::default()).unwrap();
    let plugins = Plugins {
        healthy: load(&sandbox, "healthy", Budgets::default()),
        looper: load(
            &sandbox,
            "looper",
            Budgets {
                fuel: u64::MAX / 2,
                deadline_ms: 1000,
                ..Budgets::default()
            },
        ),
    };
    let executors = EXECUTORS;

    let mut latencies: HashMap<(usize, &'static str), Latencies> = HashMap::new();
    for round in 0..rounds {
        for &n in &loopers {
            // Rotate which executor goes first, so none always runs on a warmer machine.
            let mut order = executors;
            order.rotate_left(round % executors.len());
            for name in order {
                let run = latency_run(&plugins, name, n, seconds);
                eprintln!(
                    "round {round}: {n} loopers, {name}: {} events, {} reached their guest",
                    run.events,
                    run.reacted.len()
                );
                let entry = latencies.entry((n, name)).or_default();
                entry.enqueue.extend(run.enqueue);
                entry.reacted.extend(run.reacted);
                entry.events += run.events;
            }
        }
    }
    let mut throughput: HashMap<&'static str, Vec<f64>> = HashMap::new();
    for round in 0..rounds {
        for name in executors {
            let rate = throughput_run(&plugins.healthy, name, keys);
            eprintln!("round {round}: throughput {name}: {rate:.0}/s");
            throughput.entry(name).or_default().push(rate);
        }
    }

    println!(
        "\n### Event path while N workers of another plugin loop ({rounds} rounds x {seconds} s, \
         one event per {} ms, host runtime {RUNTIME_THREADS} threads, each dedicated runtime {RUNTIME_THREADS})\n",
        EVENT_INTERVAL.as_millis()
    );
    println!(
        "| looping workers | executor | events | event->enqueue p50 | p99 | max | \
         event->guest running p50 | p99 | max | reached |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &n in &loopers {
        for name in executors {
            let l = latencies.get_mut(&(n, name)).unwrap();
            let reached = l.reacted.len();
            println!(
                "| {n} | {name} | {} | {} | {} | {reached} |",
                l.events,
                summary(&mut l.enqueue),
                summary(&mut l.reacted)
            );
        }
    }
    println!("\n### Cheap guest throughput ({keys} keys, 4 workers, {rounds} rounds)\n");
    println!("| executor | reconciles/s per round | median |");
    println!("|---|---|---|");
    for name in executors {
        let rates = &throughput[name];
        let shown: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
        println!(
            "| {name} | {} | {:.0} |",
            shown.join(", "),
            median(rates.clone()).expect("at least one round")
        );
    }
}
