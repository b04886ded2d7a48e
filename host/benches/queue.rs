//! Work-queue benchmarks, with kube-runtime's scheduler path as the peer in the same run.
//!
//! `cargo bench -p trellis-host --bench queue` (results and their reading: docs/benchmarks/queue.md)
//!
//! Workloads, all on 1M distinct keys (`QUEUE_BENCH_KEYS` overrides, for a quick look):
//! * `add_take_done`: add every key, then W workers take and finish them all (W = 1 on a
//!   current-thread runtime; W = 2 and 8 on a two-thread runtime, the producer running
//!   concurrently). Variants: fairness on, metrics on.
//! * peers: kube-runtime's `scheduler` (the dedup-and-delay queue inside every kube-rs
//!   controller) fed and drained with the same keys, and the full `applier` (scheduler + runner
//!   with concurrency W + a store lookup per key, the path a kube-rs `Controller` runs).
//! * `hot_duplicates`: 1M adds cycling over 100 keys (dedup path), then the 100 are taken.
//! * `single_thread_cpu`: the single-threaded rows again (ours with W = 1, and the scheduler),
//!   timed by the thread's CPU clock instead of the wall clock. A current-thread runtime runs
//!   everything on the calling thread, so this is the CPU the workload used, whatever else the
//!   shared machine was doing; criterion's "throughput" is then keys per CPU-second.
//! * memory per queued key, counted by a global allocator (printed, not a criterion bench).
//!
//! The reconcile itself is empty: this measures the queue, not the work.

#[path = "common/env.rs"]
mod common_env;

use common_env::env;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::scheduler::{ScheduleRequest, scheduler};
use kube::runtime::{applier, watcher};
use prometheus_client::registry::Registry;
use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use trellis_host::queue::{ObjectKey, QueueConfig, QueueMetrics, WorkQueue};

// ------------------------------------------------------------------ counting allocator

/// Counts net allocated bytes while `COUNTING` is on; otherwise costs one relaxed load.
struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static NET_BYTES: AtomicIsize = AtomicIsize::new(0);

fn count(delta: isize) {
    if COUNTING.load(Relaxed) {
        NET_BYTES.fetch_add(delta, Relaxed);
    }
}

// SAFETY: every call forwards to `System` with the caller's arguments unchanged; the only
// addition is bookkeeping on an atomic, which cannot affect the allocation.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: forwarded contract of `GlobalAlloc::alloc`.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: forwarded contract of `GlobalAlloc::alloc_zeroed`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: forwarded contract of `GlobalAlloc::dealloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: forwarded contract of `GlobalAlloc::realloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Net bytes allocated by `f` (and still held when it returns, with its result).
fn net_bytes<R>(f: impl FnOnce() -> R) -> (R, isize) {
    NET_BYTES.store(0, Relaxed);
    COUNTING.store(true, Relaxed);
    let r = f();
    COUNTING.store(false, Relaxed);
    (r, NET_BYTES.load(Relaxed))
}

// --------------------------------------------------------------------------- workloads

const NAMESPACES: usize = 1000;

fn key_count() -> usize {
    env("QUEUE_BENCH_KEYS", 1_000_000)
}

/// Keys as the host makes them: shared kind and namespace strings, a name per object.
fn keys(n: usize) -> Vec<ObjectKey> {
    let kind: Arc<str> = "ConfigMap".into();
    let namespaces: Vec<Arc<str>> = (0..NAMESPACES).map(|i| format!("ns-{i}").into()).collect();
    (0..n)
        .map(|i| ObjectKey {
            kind: kind.clone(),
            namespace: Some(namespaces[i % NAMESPACES].clone()),
            name: format!("object-{i}").into(),
        })
        .collect()
}

/// CPU time consumed by the calling thread so far.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `f` and returns the calling thread's CPU time it took (for single-threaded runs).
fn cpu_time_of(f: impl FnOnce()) -> Duration {
    let start = thread_cpu();
    f();
    thread_cpu().saturating_sub(start)
}

fn runtime(workers: usize) -> Runtime {
    if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }
}

fn config(fairness: bool) -> QueueConfig {
    let mut cfg = QueueConfig::new("bench");
    cfg.fairness = fairness;
    cfg
}

/// Adds every key while `workers` tasks take and finish them all.
fn trellis_add_take_done(
    rt: &Runtime,
    queue: WorkQueue<ObjectKey>,
    keys: &[ObjectKey],
    workers: usize,
) -> Duration {
    rt.block_on(async {
        let n = keys.len();
        let finished = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..workers)
            .map(|_| {
                let (q, finished) = (queue.clone(), finished.clone());
                tokio::spawn(async move {
                    while let Some(guard) = q.next().await {
                        guard.done();
                        if finished.fetch_add(1, Relaxed) + 1 == n {
                            q.close();
                        }
                    }
                })
            })
            .collect();
        for key in keys {
            queue.add(key.clone());
        }
        for t in tasks {
            t.await.unwrap();
        }
        let elapsed = start.elapsed();
        assert_eq!(finished.load(Relaxed), n);
        elapsed
    })
}

/// kube-runtime's scheduler: the same keys in (due now), the same keys out.
fn kube_scheduler_add_take(rt: &Runtime, keys: &[ObjectKey], expect: usize) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        let now = tokio::time::Instant::now();
        let requests = futures::stream::iter(keys.iter().map(|k| ScheduleRequest {
            message: k.clone(),
            run_at: now,
        }))
        // The scheduler ends (dropping what it holds) when its input ends; keep it open.
        .chain(futures::stream::pending());
        let mut out = std::pin::pin!(scheduler(requests));
        for _ in 0..expect {
            out.next().await.unwrap();
        }
        start.elapsed()
    })
}

/// A kube-runtime store with one ConfigMap per key, and the matching object refs.
fn kube_store(keys: &[ObjectKey]) -> (Store<ConfigMap>, Vec<ObjectRef<ConfigMap>>) {
    let (reader, mut writer) = reflector::store::<ConfigMap>();
    writer.apply_watcher_event(&watcher::Event::Init);
    let mut refs = Vec::with_capacity(keys.len());
    for k in keys {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(k.name.to_string()),
                namespace: k.namespace.as_deref().map(str::to_owned),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        };
        refs.push(ObjectRef::from_obj(&cm));
        writer.apply_watcher_event(&watcher::Event::InitApply(cm));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    // The writer must outlive the reader's readiness; leak it (one per bench run).
    std::mem::forget(writer);
    (reader, refs)
}

/// kube-runtime's applier (scheduler + runner, `concurrency` reconciles at once, a store read
/// per key) reconciling every key once.
fn kube_applier(
    rt: &Runtime,
    store: Store<ConfigMap>,
    refs: Vec<ObjectRef<ConfigMap>>,
    concurrency: u16,
) -> Duration {
    rt.block_on(async {
        let n = refs.len();
        let start = Instant::now();
        let input = futures::stream::iter(refs.into_iter().map(Ok::<_, Infallible>))
            .chain(futures::stream::pending());
        let results = applier(
            |_obj, _ctx: Arc<()>| {
                std::future::ready(Ok::<_, std::io::Error>(Action::await_change()))
            },
            |_obj, _err, _ctx| Action::await_change(),
            Arc::new(()),
            store,
            input,
            ControllerConfig::default().concurrency(concurrency),
        );
        let mut results = std::pin::pin!(results);
        for _ in 0..n {
            results.next().await.unwrap().unwrap();
        }
        start.elapsed()
    })
}

// ------------------------------------------------------------------------- benchmarks

fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
    elements: usize,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(elements as u64));
    g
}

fn add_take_done(c: &mut Criterion) {
    let n = key_count();
    let keys = keys(n);
    let (store, refs) = kube_store(&keys);
    let mut registry = Registry::default();
    let metrics = QueueMetrics::register(&mut registry);
    let mut g = group(c, "add_take_done", n);
    for workers in [1, 2, 8] {
        let rt = runtime(workers);
        g.bench_function(format!("trellis/workers={workers}"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let q = WorkQueue::new(config(false)).unwrap();
                        trellis_add_take_done(&rt, q, &keys, workers)
                    })
                    .sum()
            })
        });
        g.bench_function(format!("kube_applier/concurrency={workers}"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| kube_applier(&rt, store.clone(), refs.clone(), workers as u16))
                    .sum()
            })
        });
    }
    let rt = runtime(1);
    g.bench_function("trellis/workers=1/fairness", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let q = WorkQueue::new(config(true)).unwrap();
                    trellis_add_take_done(&rt, q, &keys, 1)
                })
                .sum()
        })
    });
    g.bench_function("trellis/workers=1/metrics", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let q = WorkQueue::with_metrics(config(false), &metrics).unwrap();
                    trellis_add_take_done(&rt, q, &keys, 1)
                })
                .sum()
        })
    });
    g.bench_function("kube_scheduler/add_take", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| kube_scheduler_add_take(&rt, &keys, n))
                .sum()
        })
    });
    g.finish();
}

/// Builds one variant's queue.
type MakeQueue = fn(&QueueMetrics) -> WorkQueue<ObjectKey>;

/// The single-threaded rows timed by CPU time (see the module docs).
fn single_thread_cpu(c: &mut Criterion) {
    let n = key_count();
    let keys = keys(n);
    let rt = runtime(1);
    let mut registry = Registry::default();
    let metrics = QueueMetrics::register(&mut registry);
    let mut g = group(c, "single_thread_cpu", n);
    let variants: [(&str, MakeQueue); 3] = [
        ("trellis/workers=1", |_| {
            WorkQueue::new(config(false)).unwrap()
        }),
        ("trellis/workers=1/fairness", |_| {
            WorkQueue::new(config(true)).unwrap()
        }),
        ("trellis/workers=1/metrics", |m| {
            WorkQueue::with_metrics(config(false), m).unwrap()
        }),
    ];
    for (name, make) in variants {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let q = make(&metrics);
                        cpu_time_of(|| {
                            trellis_add_take_done(&rt, q, &keys, 1);
                        })
                    })
                    .sum()
            })
        });
    }
    g.bench_function("kube_scheduler/add_take", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    cpu_time_of(|| {
                        kube_scheduler_add_take(&rt, &keys, n);
                    })
                })
                .sum()
        })
    });
    g.finish();
}

fn hot_duplicates(c: &mut Criterion) {
    let n = key_count();
    let hot = keys(100);
    let stream: Vec<ObjectKey> = (0..n).map(|i| hot[i % hot.len()].clone()).collect();
    let rt = runtime(1);
    let mut g = group(c, "hot_duplicates", n);
    g.bench_function("trellis", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let q = WorkQueue::new(config(false)).unwrap();
                    let start = Instant::now();
                    for key in &stream {
                        q.add(key.clone());
                    }
                    let mut taken = 0;
                    while let Some(g) = q.try_next() {
                        g.done();
                        taken += 1;
                    }
                    assert_eq!(taken, hot.len());
                    start.elapsed()
                })
                .sum()
        })
    });
    g.bench_function("kube_scheduler", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| kube_scheduler_add_take(&rt, &stream, hot.len()))
                .sum()
        })
    });
    g.finish();
}

/// Prints net heap bytes per queued key (keys pre-built; their clones share strings).
fn memory(_c: &mut Criterion) {
    let n = key_count();
    let keys = keys(n);
    let per_key = |bytes: isize| bytes as f64 / n as f64;
    let report = |what: &str, bytes: isize| {
        println!("memory/{what}: {:.1} bytes per queued key", per_key(bytes))
    };

    for (what, fairness, delayed) in [
        ("trellis/ready", false, false),
        ("trellis/ready/fairness", true, false),
        ("trellis/waiting(add_after)", false, true),
    ] {
        let q = WorkQueue::new(config(fairness)).unwrap();
        let ((), bytes) = net_bytes(|| {
            for key in &keys {
                if delayed {
                    q.add_after(key.clone(), Duration::from_secs(3600));
                } else {
                    q.add(key.clone());
                }
            }
        });
        assert_eq!(q.stats().keys, n);
        report(what, bytes);
    }

    let rt = runtime(1);
    rt.block_on(async {
        let run_at = tokio::time::Instant::now() + Duration::from_secs(3600);
        let requests = futures::stream::iter(keys.iter().map(|k| ScheduleRequest {
            message: k.clone(),
            run_at,
        }))
        .chain(futures::stream::pending());
        let (sched, bytes) = net_bytes(|| {
            let mut sched = Box::pin(scheduler(requests));
            // One poll ingests every request and finds nothing due.
            assert!(futures::FutureExt::now_or_never(sched.next()).is_none());
            sched
        });
        report("kube_scheduler/waiting", bytes);
        drop(sched);
    });
}

criterion_group!(
    benches,
    memory,
    add_take_done,
    single_thread_cpu,
    hot_duplicates
);
criterion_main!(benches);
