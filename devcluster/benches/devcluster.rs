//! The devcluster benchmark: can it hold 100k Pods and keep up with the host's benchmarks?
//!
//! `cargo bench -p trellis-devcluster --bench devcluster` (results: docs/benchmarks/devcluster.md)
//!
//! Measures, in one process on the machine's two cores (server and clients share them, so
//! every number includes the client's cost):
//! - memory (RSS) to hold N realistic Pods (~5 KB JSON each, managedFields included) and
//!   the time to seed them;
//! - a full paginated list (500 per page) with the kube client, typed;
//! - a streaming list (watch with sendInitialEvents) to its initial-events-end bookmark;
//! - watch event delivery to 1 and to 10 watchers: E events are written, then each watcher
//!   replays them from the version before (history delivery, the server's fan-out path), as
//!   raw lines and as typed kube events;
//! - patches per second: merge patches from 8 concurrent kube clients.
//!
//! Environment: `DEVCLUSTER_BENCH_PODS` (default 100000), `DEVCLUSTER_BENCH_EVENTS` (20000),
//! `DEVCLUSTER_BENCH_PATCHES` (10000).

use std::time::{Duration, Instant};

use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use serde_json::json;
use trellis_devcluster::{DevCluster, DevClusterOptions};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident memory of this process, in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn rate(count: usize, elapsed: Duration) -> String {
    format!("{:.0}/s", count as f64 / elapsed.as_secs_f64())
}

async fn paginated_list(api: &Api<Pod>) -> usize {
    let mut total = 0;
    let mut token: Option<String> = None;
    loop {
        let mut params = ListParams::default().limit(500);
        if let Some(t) = &token {
            params = params.continue_token(t);
        }
        let page = api.list(&params).await.expect("list page");
        total += page.items.len();
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return total;
        }
    }
}

async fn streaming_list(api: &Api<Pod>) -> usize {
    let mut stream = api
        .watch(&WatchParams::streaming_lists(), "0")
        .await
        .expect("streaming list")
        .boxed();
    let mut total = 0;
    while let Some(event) = stream.try_next().await.expect("watch event") {
        match event {
            WatchEvent::Added(_) => total += 1,
            WatchEvent::Bookmark(b)
                if b.metadata
                    .annotations
                    .contains_key("k8s.io/initial-events-end") =>
            {
                return total;
            }
            _ => {}
        }
    }
    total
}

/// Replays `events` events after `rv` as raw lines (the server's cost plus line splitting).
async fn raw_watcher(client: kube::Client, rv: u64, events: usize) -> usize {
    let request = axum::http::Request::get(format!(
        "/api/v1/namespaces/burst/pods?watch=true&resourceVersion={rv}&timeoutSeconds=600"
    ))
    .body(Vec::new())
    .unwrap();
    let reader = client.request_stream(request).await.expect("raw watch");
    let mut lines = reader.lines();
    let mut seen = 0;
    while seen < events {
        match lines.next().await {
            Some(Ok(_)) => seen += 1,
            _ => break,
        }
    }
    seen
}

/// Replays `events` events after `rv` as typed kube watch events.
async fn typed_watcher(api: Api<Pod>, rv: u64, events: usize) -> usize {
    let mut stream = api
        .watch(
            &WatchParams::default().disable_bookmarks().timeout(600),
            &rv.to_string(),
        )
        .await
        .expect("watch")
        .boxed();
    let mut seen = 0;
    while seen < events {
        match stream.try_next().await {
            Ok(Some(WatchEvent::Added(_) | WatchEvent::Modified(_))) => seen += 1,
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    seen
}

async fn fan_out(
    cluster: &DevCluster,
    client: &kube::Client,
    rv: u64,
    events: usize,
    watchers: usize,
    typed: bool,
) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            if typed {
                typed_watcher(Api::namespaced(client, "burst"), rv, events).await
            } else {
                raw_watcher(client, rv, events).await
            }
        }));
    }
    let mut delivered = 0;
    for task in tasks {
        delivered += task.await.expect("watcher task");
    }
    let elapsed = started.elapsed();
    assert_eq!(
        delivered,
        events * watchers,
        "every watcher saw every event"
    );
    let kind = if typed { "typed Pod" } else { "raw lines" };
    println!(
        "watch delivery, {watchers:>2} watcher(s), {kind:<9}: {delivered} events in {:.2?} = {} total, {} per watcher",
        elapsed,
        rate(delivered, elapsed),
        rate(events, elapsed)
    );
    let _ = cluster;
}

/// Concurrent clients for the patch benchmarks.
const WORKERS: usize = 8;

/// Runs `patch(client, worker, i, name)` for `i` in `0..patches`, spread over `WORKERS`
/// concurrent tasks (worker `w` takes every `WORKERS`th patch from `w`), each on a Pod of
/// `names` in turn, with a clone of `client` each; returns how many ran and how long all took.
async fn timed_patches<C, F, Fut>(
    client: &C,
    names: &[String],
    patches: usize,
    patch: F,
) -> (usize, Duration)
where
    C: Clone + Send + 'static,
    F: Fn(C, usize, usize, String) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let client = client.clone();
        let names = names.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            for i in (w..patches).step_by(WORKERS) {
                patch(client.clone(), w, i, names[i % names.len()].clone()).await;
                done += 1;
            }
            done
        }));
    }
    let mut done = 0;
    for task in tasks {
        done += task.await.expect("patch task");
    }
    (done, started.elapsed())
}

/// `patches` patches on distinct Pods from 8 concurrent kube clients: JSON merge patches, or
/// server-side apply with one field manager per client.
async fn patch_rate(api: &Api<Pod>, names: &[String], patches: usize, apply: bool) {
    let (done, elapsed) = timed_patches(api, names, patches, move |api, w, i, name| async move {
        if apply {
            let config = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": name, "annotations": {format!("bench/{w}"): i.to_string()}}});
            let params = PatchParams::apply(&format!("bench-{w}"));
            api.patch(&name, &params, &Patch::Apply(config))
                .await
                .expect("apply");
        } else {
            let patch =
                Patch::Merge(json!({"metadata": {"annotations": {"bench/n": i.to_string()}}}));
            api.patch(&name, &PatchParams::default(), &patch)
                .await
                .expect("patch");
        }
    })
    .await;
    let kind = if apply {
        "server-side apply"
    } else {
        "merge patch"
    };
    println!(
        "{kind} ({WORKERS} concurrent kube clients, typed responses): {done} in {elapsed:.2?} ({})",
        rate(done, elapsed)
    );
}

/// Merge patches whose responses are read as bytes, not decoded: the server's share.
async fn raw_patch_rate(client: &kube::Client, names: &[String], patches: usize) {
    let (done, elapsed) = timed_patches(client, names, patches, |client, _, i, name| async move {
        let body = json!({"metadata": {"annotations": {"bench/raw": i.to_string()}}});
        let request = axum::http::Request::patch(format!("/api/v1/namespaces/default/pods/{name}"))
            .header("content-type", "application/merge-patch+json")
            .body(serde_json::to_vec(&body).unwrap())
            .unwrap();
        client.request_text(request).await.expect("raw patch");
    })
    .await;
    println!(
        "merge patch ({WORKERS} concurrent clients, responses not decoded): {done} in {elapsed:.2?} ({})",
        rate(done, elapsed)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let pods = env("DEVCLUSTER_BENCH_PODS", 100_000);
    let events = env("DEVCLUSTER_BENCH_EVENTS", 20_000);
    let patches = env("DEVCLUSTER_BENCH_PATCHES", 10_000);
    println!("devcluster benchmark: {pods} pods, {events} watch events, {patches} patches");

    let cluster = DevCluster::start(DevClusterOptions {
        history: events + patches + 1000,
        ..DevClusterOptions::default()
    })
    .await
    .expect("devcluster");
    let client = cluster.client().expect("client");
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");

    let before = rss_mib();
    let started = Instant::now();
    cluster.seed_pods("default", pods).expect("seed");
    let seeded = started.elapsed();
    let after = rss_mib();
    let sample = api
        .list(&ListParams::default().limit(100))
        .await
        .expect("sample");
    let json_bytes: usize = sample
        .items
        .iter()
        .map(|p| serde_json::to_vec(p).map(|v| v.len()).unwrap_or(0))
        .sum::<usize>()
        / sample.items.len().max(1);
    println!(
        "seed: {pods} pods in {seeded:.2?} ({}); pod JSON ~{json_bytes} B; RSS {before:.0} MiB -> {after:.0} MiB (+{:.0} MiB, {:.1} KiB/pod)",
        rate(pods, seeded),
        after - before,
        (after - before) * 1024.0 / pods as f64
    );

    let started = Instant::now();
    let listed = paginated_list(&api).await;
    let elapsed = started.elapsed();
    assert_eq!(listed, pods);
    println!(
        "paginated list (limit 500, typed): {listed} pods in {elapsed:.2?} ({})",
        rate(listed, elapsed)
    );

    let started = Instant::now();
    let streamed = streaming_list(&api).await;
    let elapsed = started.elapsed();
    assert_eq!(streamed, pods);
    println!(
        "streaming list (sendInitialEvents, typed): {streamed} pods in {elapsed:.2?} ({})",
        rate(streamed, elapsed)
    );
    println!("RSS after the lists: {:.0} MiB", rss_mib());

    // Watch delivery: write `events` Pods, then replay them to watchers.
    let rv = cluster.resource_version();
    let started = Instant::now();
    cluster.seed_pods("burst", events).expect("burst");
    println!(
        "burst: {events} events written in {:.2?}",
        started.elapsed()
    );
    for typed in [false, true] {
        for watchers in [1, 10] {
            fan_out(&cluster, &client, rv, events, watchers, typed).await;
        }
    }

    let names: Vec<String> = api
        .list(&ListParams::default().limit(patches.min(pods) as u32))
        .await
        .expect("names")
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    for apply in [false, true] {
        patch_rate(&api, &names, patches, apply).await;
    }
    raw_patch_rate(&client, &names, patches).await;
    println!("final RSS: {:.0} MiB", rss_mib());
    cluster.stop().await;
}
