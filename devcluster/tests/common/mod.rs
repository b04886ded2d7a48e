//! Helpers shared by the conformance tests.
#![allow(dead_code)]

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::core::Status;
use kube::{Client, Error};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use trellis_devcluster::{DevCluster, DevClusterOptions};

pub async fn start() -> (DevCluster, Client) {
    start_with(DevClusterOptions::default()).await
}

pub async fn start_with(options: DevClusterOptions) -> (DevCluster, Client) {
    let cluster = DevCluster::start(options).await.expect("devcluster starts");
    let client = cluster.client().expect("client builds");
    (cluster, client)
}

/// A cluster that keeps `history` watch events per resource: watches and continue tokens
/// from before them get 410.
pub async fn start_with_history(history: usize) -> (DevCluster, Client) {
    start_with(DevClusterOptions {
        history,
        ..DevClusterOptions::default()
    })
    .await
}

/// A client that does not retry 429/503/504 (kube's default does, with backoff), for tests
/// that look at those answers.
pub fn client_without_retries(cluster: &DevCluster) -> Client {
    let mut config = kube::Config::new(cluster.url().parse().unwrap());
    config.default_namespace = "default".to_string();
    config.default_retry = false;
    Client::try_from(config).unwrap()
}

pub fn configmap(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {"key": name}
    }))
    .unwrap()
}

pub fn pod(name: &str, labels: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "nginx"}]}
    }))
    .unwrap()
}

pub async fn namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    api.create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
}

/// Creates `object` with default parameters; the test fails if the server refuses it.
pub async fn create<K>(api: &Api<K>, object: &K) -> K
where
    K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    api.create(&PostParams::default(), object)
        .await
        .expect("created")
}

/// Applies a JSON merge patch with default parameters; the test fails if the server refuses it.
pub async fn merge<K>(api: &Api<K>, name: &str, patch: Value) -> K
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .expect("merge patch applied")
}

/// The resourceVersion of a fresh list: where a watch that misses nothing starts.
pub async fn list_version<K>(api: &Api<K>) -> String
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("lists carry a resourceVersion")
}

/// The names of `items`, in order (`""` for an object without one).
pub fn names<K: kube::Resource>(items: &[K]) -> Vec<String> {
    items
        .iter()
        .map(|o| o.meta().name.clone().unwrap_or_default())
        .collect()
}

/// A raw request, for what kube's typed API cannot send (bad bodies, odd content types).
pub fn raw_request(
    method: &str,
    path: &str,
    content_type: &str,
    body: impl Into<Vec<u8>>,
) -> axum::http::Request<Vec<u8>> {
    axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(body.into())
        .unwrap()
}

/// `GET path` as JSON.
pub async fn get_json(client: &Client, path: &str) -> Value {
    let request = axum::http::Request::get(path).body(Vec::new()).unwrap();
    client.request(request).await.unwrap()
}

/// Polls `done` until it holds, failing with `what` after a generous bound.
pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} within 20 s"));
}

/// The Status a request failed with.
pub fn status(error: Error) -> Status {
    match error {
        Error::Api(status) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Reads watch events until `n` arrived, failing after a generous bound.
pub async fn next_events<K>(
    stream: &mut (impl futures::Stream<Item = Result<WatchEvent<K>, Error>> + Unpin),
    n: usize,
) -> Vec<WatchEvent<K>> {
    let mut out = Vec::new();
    while out.len() < n {
        let event = tokio::time::timeout(Duration::from_secs(20), stream.try_next())
            .await
            .expect("watch event within 20 s")
            .expect("watch stream ok")
            .expect("watch stream still open");
        out.push(event);
    }
    out
}

/// A short description of an event: `ADDED a`, `BOOKMARK`, ...
pub fn describe<K: kube::Resource>(event: &WatchEvent<K>) -> String {
    match event {
        WatchEvent::Added(o) => format!("ADDED {}", o.meta().name.clone().unwrap_or_default()),
        WatchEvent::Modified(o) => {
            format!("MODIFIED {}", o.meta().name.clone().unwrap_or_default())
        }
        WatchEvent::Deleted(o) => format!("DELETED {}", o.meta().name.clone().unwrap_or_default()),
        WatchEvent::Bookmark(_) => "BOOKMARK".to_string(),
        WatchEvent::Error(e) => format!("ERROR {}", e.code),
    }
}

/// `describe` of each event, in order.
pub fn describe_all<K: kube::Resource>(events: &[WatchEvent<K>]) -> Vec<String> {
    events.iter().map(describe).collect()
}

pub async fn watch_from<K>(
    api: &Api<K>,
    params: &WatchParams,
    rv: &str,
) -> futures::stream::BoxStream<'static, Result<WatchEvent<K>, Error>>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    api.watch(params, rv).await.expect("watch starts").boxed()
}
