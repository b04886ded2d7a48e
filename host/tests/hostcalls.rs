//! Host calls against a real API server (the devcluster) with the real kube client, over caches
//! filled by real informer subscriptions: reads inside and outside the grants, writes with the
//! plugin's field manager, no-op elision proven by the server's write log, denied writes that
//! send nothing, invalid objects, server errors mapped to WIT codes, Events, and the real
//! sandbox running the namespace-defaults plugin over all of it.
//!
//! No assertion is about speed: waits poll a condition with a generous bound that only proves
//! the condition is reached at all.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::core::v1::ResourceQuota;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use trellis_devcluster::{DevCluster, FaultRule};
use trellis_host::cache::{self, Cache};
use trellis_host::hostcalls::{
    DEFAULT_REQUEST_TIMEOUT, HostCallMetrics, HostCalls, HostCallsConfig, HostIo, Kinds, OwnWrites,
    ReadableCaches,
};
use trellis_host::informer::{InformerOptions, Informers, Role, Subscription, WatchConfig};
use trellis_host::permissions::Permissions;
use trellis_host::queue::{Priority, QueueConfig, WorkQueue};
use trellis_host::sandbox::{
    Action, EngineConfig, ErrorCode, EventType, Gvk, HostError, ObjectKey, Outcome, PluginHost,
    ReconcileRequest, Sandbox,
};
use trellis_host::worker::QueueSink;

use support::cluster::{crd, create_crd, devcluster};
use support::components::load_on;
use support::keys::NoKeys;
use support::wait::eventually;

mod support;

// ---------------------------------------------------------------------------------------------
// Helpers

/// A devcluster, informers on it, and the host-call metrics, in one registry.
struct Fixture {
    cluster: DevCluster,
    client: Client,
    informers: Informers,
    registry: Registry,
    metrics: HostCallMetrics,
}

impl Fixture {
    async fn start() -> Self {
        let cluster = devcluster(&["default", "a", "b", "c"]).await;
        let client = cluster.client().expect("client");
        let mut registry = Registry::default();
        let informers = Informers::new(client.clone(), &mut registry, InformerOptions::default());
        let metrics = HostCallMetrics::register(&mut registry);
        Self {
            cluster,
            client,
            informers,
            registry,
            metrics,
        }
    }

    /// Plugin `web`'s synced subscription to the ConfigMaps of namespace `a`.
    async fn web_configmaps(&self) -> Subscription {
        self.watch("web", "{apiVersion: v1, kind: ConfigMap, namespaces: [a]}")
            .await
    }

    /// A synced subscription of `plugin` to the watch in `yaml`.
    async fn watch(&self, plugin: &str, yaml: &str) -> Subscription {
        let config: WatchConfig = serde_norway::from_str(yaml).expect("test watch parses");
        let subscription = self
            .informers
            .subscribe(plugin, &config, Role::Primary, Arc::new(NoKeys))
            .await
            .expect("subscribes");
        subscription.wait_synced().await.expect("syncs");
        subscription
    }

    /// The host calls of `plugin` with the permissions in `yaml`, reading `subscriptions`.
    fn host(&self, plugin: &str, permissions: &str, subscriptions: &[&Subscription]) -> HostCalls {
        self.host_with(
            plugin,
            permissions,
            subscriptions,
            self.client.clone(),
            DEFAULT_REQUEST_TIMEOUT,
            None,
        )
    }

    fn host_with(
        &self,
        plugin: &str,
        permissions: &str,
        subscriptions: &[&Subscription],
        client: Client,
        timeout: Duration,
        own_writes: Option<Arc<dyn OwnWrites>>,
    ) -> HostCalls {
        let permissions: Permissions =
            serde_norway::from_str(permissions).expect("test permissions parse");
        let mut caches = ReadableCaches::new();
        for subscription in subscriptions {
            caches
                .add_subscription(subscription)
                .expect("one cache per kind");
        }
        let mut config = HostCallsConfig::new(plugin, permissions, "host-1");
        config.request_timeout = timeout;
        config.own_writes = own_writes;
        // The test's runtime stands in for the host's I/O runtime.
        let io = HostIo::on(tokio::runtime::Handle::current());
        HostCalls::new(
            config,
            caches,
            client.clone(),
            Kinds::new(client, timeout, io.clone()),
            &self.metrics,
            io,
        )
    }

    /// Plugin `web`'s host calls with [`WRITE_CONFIGMAPS`], reading `subscriptions`, on a
    /// client that does not retry and with request timeout `timeout`.
    fn web_without_retries(&self, subscriptions: &[&Subscription], timeout: Duration) -> HostCalls {
        let client = self.client_without_retries();
        self.host_with(
            "web",
            WRITE_CONFIGMAPS,
            subscriptions,
            client,
            timeout,
            None,
        )
    }

    /// A client that does not retry 429/503/504, to see those answers.
    fn client_without_retries(&self) -> Client {
        let mut config = kube::Config::new(self.cluster.url().parse().unwrap());
        config.default_namespace = "default".to_string();
        config.default_retry = false;
        Client::try_from(config).unwrap()
    }

    /// The value of one series (0 when it does not exist yet).
    fn metric(&self, series: &str) -> u64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0)
    }

    fn writes_metric(&self, plugin: &str, verb: &str, result: &str) -> u64 {
        self.metric(&format!(
            "trellis_writes_total{{plugin=\"{plugin}\",verb=\"{verb}\",result=\"{result}\"}}"
        ))
    }

    /// Write requests the server received for `resource` since the last reset.
    fn writes_to(&self, resource: &str) -> Vec<trellis_devcluster::WriteRecord> {
        self.cluster
            .writes()
            .into_iter()
            .filter(|w| w.resource == resource)
            .collect()
    }

    async fn create_config_map(&self, namespace: &str, name: &str, labels: Value, data: Value) {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let cm: ConfigMap = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels}, "data": data,
        }))
        .unwrap();
        api.create(&PostParams::default(), &cm)
            .await
            .expect("create");
    }

    /// Another client than the plugin merge-patches the `data` of ConfigMap `a/name`; returns
    /// once `cache` shows the edit.
    async fn edit_elsewhere(&self, cache: &Cache, name: &str, data: Value) {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), "a");
        let edited = api
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "data": data })),
            )
            .await
            .unwrap();
        cache_shows(cache, &serde_json::to_string(&edited).unwrap()).await;
    }

    /// Serves events.k8s.io/v1 Event. The devcluster serves only core v1 Events; a CRD of the
    /// same group, version and kind stands in, which is all kube's Recorder needs.
    async fn serve_events_api(&self) {
        let version = json!({"schema": {"openAPIV3Schema": {
            "type": "object", "x-kubernetes-preserve-unknown-fields": true
        }}});
        create_crd(
            &self.client,
            &crd("events.k8s.io", "Event", "events", version),
        )
        .await;
    }
}

fn gvk(api_version: &str, kind: &str) -> Gvk {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Gvk {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
    }
}

fn key(namespace: Option<&str>, name: &str) -> ObjectKey {
    ObjectKey {
        namespace: namespace.map(str::to_string),
        name: name.into(),
    }
}

fn configmap_kind() -> Gvk {
    gvk("v1", "ConfigMap")
}

fn names(items: &[String]) -> Vec<String> {
    items
        .iter()
        .map(|text| {
            let v: Value = serde_json::from_str(text).unwrap();
            format!(
                "{}/{}",
                v["metadata"]["namespace"].as_str().unwrap(),
                v["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[track_caller]
fn expect_error<T: std::fmt::Debug>(
    answer: Result<T, HostError>,
    code: ErrorCode,
    needles: &[&str],
) {
    let error = answer.expect_err("an error");
    assert_eq!(error.code, code, "{}", error.message);
    for needle in needles {
        assert!(
            error.message.contains(needle),
            "{needle:?} not in {:?}",
            error.message
        );
    }
}

/// Applies `object` through `host` and waits until `subscription`'s cache shows the answer.
async fn applied_and_cached(host: &HostCalls, subscription: &Subscription, object: &str) {
    let answer = host.apply(object, true).await.unwrap();
    cache_shows(subscription.cache(), &answer).await;
}

/// Waits until `cache` shows `key` at the resourceVersion of `answer` (a write's answer).
async fn cache_shows(cache: &Cache, answer: &str) {
    let v: Value = serde_json::from_str(answer).unwrap();
    let rv = v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let key = cache::ObjectKey::new(
        v["metadata"]["namespace"].as_str(),
        v["metadata"]["name"].as_str().unwrap(),
    );
    eventually("the cache to show the write", || {
        cache
            .get(&key)
            .filter(|o| *o.meta().resource_version == *rv)
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Reads

const CONFIGMAPS_EVERYWHERE: &str = "
apiVersion: v1
kind: ConfigMap
indexes: [{name: holder, path: data.owner}]
";

#[tokio::test]
async fn reads_answer_from_the_cache_inside_the_grant() {
    let f = Fixture::start().await;
    for ns in ["a", "b", "c"] {
        f.create_config_map(
            ns,
            "web",
            json!({"app": "web", "tier": "front"}),
            json!({"owner": "alice"}),
        )
        .await;
        f.create_config_map(ns, "db", json!({"app": "db"}), json!({"owner": "bob"}))
            .await;
    }
    let configmaps = f.watch("web", CONFIGMAPS_EVERYWHERE).await;
    let secrets = f.watch("web", "{apiVersion: v1, kind: Secret}").await;
    let host = f.host(
        "web",
        "read: [{apiVersion: v1, kind: ConfigMap, namespaces: [b, a]}, {apiVersion: v1, kind: Namespace}]",
        &[&configmaps, &secrets],
    );
    let before = f.cluster.accounting();
    let cm = configmap_kind();

    // get: the stored bytes, as cached.
    let got = host
        .get(&cm, &key(Some("a"), "web"))
        .await
        .unwrap()
        .expect("cached");
    let cached = configmaps
        .cache()
        .get(&cache::ObjectKey::namespaced("a", "web"))
        .unwrap();
    assert_eq!(got, cached.json().as_str(), "handed back as stored");
    assert_eq!(
        host.get(&cm, &key(Some("a"), "missing")).await.unwrap(),
        None
    );
    expect_error(
        host.get(&cm, &key(Some("c"), "web")).await,
        ErrorCode::Forbidden,
        &["\"web\"", "\"c\"", "namespace is not granted"],
    );
    expect_error(
        host.get(&gvk("v1", "Secret"), &key(Some("a"), "x")).await,
        ErrorCode::Forbidden,
        &["Kind=Secret", "not granted"],
    );
    expect_error(
        host.get(&cm, &key(None, "web")).await,
        ErrorCode::Invalid,
        &["key.namespace is missing"],
    );
    expect_error(
        host.get(&gvk("v1", "Namespace"), &key(None, "a")).await,
        ErrorCode::Forbidden,
        &["no watch of this plugin caches it"],
    );

    // list: across namespaces only the granted ones, in namespace then name order.
    let all = host.list(&cm, None, None, u64::MAX).await.unwrap();
    assert_eq!(names(&all), ["a/db", "a/web", "b/db", "b/web"]);
    let front = host
        .list(&cm, None, Some("app=web,tier in (front)"), u64::MAX)
        .await
        .unwrap();
    assert_eq!(names(&front), ["a/web", "b/web"]);
    let not_web = host
        .list(&cm, Some("b"), Some("app!=web"), u64::MAX)
        .await
        .unwrap();
    assert_eq!(names(&not_web), ["b/db"]);
    expect_error(
        host.list(&cm, Some("c"), None, u64::MAX).await,
        ErrorCode::Forbidden,
        &["\"c\""],
    );
    expect_error(
        host.list(&cm, None, Some("app=web,"), u64::MAX).await,
        ErrorCode::Invalid,
        &[
            "labelSelector \"app=web,\"",
            "found '', expected: identifier after ','",
        ],
    );

    // lookup: built-in and declared indexes, filtered by the grant.
    let alice = host.lookup(&cm, "holder", "alice", u64::MAX).await.unwrap();
    assert_eq!(
        names(&alice),
        ["a/web", "b/web"],
        "c/web is outside the grant"
    );
    let labelled = host.lookup(&cm, "label", "app=db", u64::MAX).await.unwrap();
    assert_eq!(names(&labelled), ["a/db", "b/db"]);
    let in_b = host.lookup(&cm, "namespace", "b", u64::MAX).await.unwrap();
    assert_eq!(names(&in_b), ["b/db", "b/web"]);
    expect_error(
        host.lookup(&cm, "namespace", "c", u64::MAX).await,
        ErrorCode::Forbidden,
        &["\"c\""],
    );
    expect_error(
        host.lookup(&cm, "color", "red", u64::MAX).await,
        ErrorCode::NotFound,
        &[
            "no index \"color\"",
            "available: holder, label, namespace, owner",
        ],
    );
    expect_error(
        host.lookup(&cm, "label", "app", u64::MAX).await,
        ErrorCode::Invalid,
        &["key=value"],
    );

    // max_bytes: the answer must fit with the sandbox's 8 bytes per element.
    let exact: u64 = all.iter().map(|s| s.len() as u64 + 8).sum();
    assert_eq!(host.list(&cm, None, None, exact).await.unwrap().len(), 4);
    expect_error(
        host.list(&cm, None, None, exact - 1).await,
        ErrorCode::BudgetExceeded,
        &["exceeds the", "bytes left"],
    );
    expect_error(
        host.lookup(&cm, "holder", "alice", 10).await,
        ErrorCode::BudgetExceeded,
        &["lookup"],
    );

    // Nothing went to the API server, and denials were counted.
    let after = f.cluster.accounting();
    for verb in ["get", "list"] {
        assert_eq!(
            after.requests(verb, "configmaps"),
            before.requests(verb, "configmaps"),
            "reads are answered from the cache ({verb})"
        );
    }
    assert_eq!(
        f.metric("trellis_host_calls_total{plugin=\"web\",call=\"get\",result=\"forbidden\"}"),
        3
    );
    assert_eq!(
        f.metric("trellis_host_calls_total{plugin=\"web\",call=\"list\",result=\"ok\"}"),
        4
    );
    assert!(f.metric("trellis_host_call_bytes_total{plugin=\"web\",call=\"list\"}") > exact);
}

#[tokio::test]
async fn cluster_scoped_kinds_need_a_grant_without_namespaces() {
    let f = Fixture::start().await;
    let namespaces = f.watch("ns", "{apiVersion: v1, kind: Namespace}").await;
    let all = f.host(
        "ns",
        "read: [{apiVersion: v1, kind: Namespace}]",
        &[&namespaces],
    );
    let ns = gvk("v1", "Namespace");
    assert!(all.get(&ns, &key(None, "a")).await.unwrap().is_some());
    expect_error(
        all.get(&ns, &key(Some("a"), "a")).await,
        ErrorCode::Invalid,
        &["cluster-scoped"],
    );
    let listed = all.list(&ns, None, None, u64::MAX).await.unwrap();
    assert_eq!(listed.len(), 4);
    expect_error(
        all.list(&ns, Some("a"), None, u64::MAX).await,
        ErrorCode::Invalid,
        &["cluster-scoped"],
    );

    let narrow = f.host(
        "ns",
        "read: [{apiVersion: v1, kind: Namespace, namespaces: [a]}]",
        &[&namespaces],
    );
    expect_error(
        narrow.get(&ns, &key(None, "a")).await,
        ErrorCode::Forbidden,
        &["cluster-scoped"],
    );
    expect_error(
        narrow.list(&ns, None, None, u64::MAX).await,
        ErrorCode::Forbidden,
        &["cluster-scoped"],
    );
}

// ---------------------------------------------------------------------------------------------
// Writes

const WRITE_CONFIGMAPS: &str = "
read: [{apiVersion: v1, kind: ConfigMap}]
write: [{apiVersion: v1, kind: ConfigMap, verbs: [apply, create, delete]}]
";

fn applied(name: &str, labels: Value, data: Value) -> String {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "a", "labels": labels},
        "data": data,
    })
    .to_string()
}

#[tokio::test]
async fn apply_creates_then_updates_with_the_plugins_field_manager() {
    let f = Fixture::start().await;
    let configmaps = f.web_configmaps().await;
    let host = f.host("web", WRITE_CONFIGMAPS, &[&configmaps]);
    assert_eq!(host.field_manager(), "trellis-web");
    let created = host
        .apply(&applied("x", json!({"app": "x"}), json!({"k": "1"})), true)
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(f.client.clone(), "a");
    let server = api.get("x").await.unwrap();
    assert_eq!(server.data.unwrap()["k"], "1");
    let managers: Vec<String> = server
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|m| format!("{}:{}", m.manager.unwrap(), m.operation.unwrap()))
        .collect();
    assert_eq!(managers, ["trellis-web:Apply"]);
    let answer: Value = serde_json::from_str(&created).unwrap();
    assert_eq!(
        answer["metadata"]["name"], "x",
        "the server's answer is handed back"
    );

    host.apply(&applied("x", json!({"app": "x"}), json!({"k": "2"})), true)
        .await
        .unwrap();
    assert_eq!(api.get("x").await.unwrap().data.unwrap()["k"], "2");
    let patches = f.writes_to("configmaps");
    assert_eq!(patches.len(), 2);
    assert!(
        patches
            .iter()
            .all(|w| w.verb == "patch" && w.manager == "trellis-web"),
        "{patches:?}"
    );
    assert_eq!(
        (patches[0].code, patches[1].code),
        (201, 200),
        "created, then updated"
    );
    assert_eq!(f.writes_metric("web", "apply", "issued"), 2);
}

/// Waits for a key (the informer enqueues just after its cache shows the change), then takes
/// every ready key, noting its priority, and finishes it.
async fn drain(queue: &WorkQueue<trellis_host::queue::ObjectKey>) -> Vec<(String, Priority)> {
    eventually("a key in the queue", || {
        (queue.stats().keys > 0).then_some(())
    })
    .await;
    let mut taken = Vec::new();
    while let Some(guard) = queue.try_next() {
        taken.push((guard.key().name.to_string(), guard.priority()));
        guard.done();
    }
    taken
}

#[tokio::test]
async fn the_echo_of_an_own_write_is_queued_low_and_someone_elses_change_normal() {
    let f = Fixture::start().await;
    f.create_config_map("a", "mine", json!({}), json!({"k": "0"}))
        .await;
    // Wired as the manager does: the plugin's queue sink gets the watch's keys and is told of
    // the plugin's writes.
    let queue = WorkQueue::new(QueueConfig::new("web")).unwrap();
    let sink = Arc::new(QueueSink::new(
        queue.clone(),
        &cache::Gvk::new("", "v1", "ConfigMap"),
    ));
    let config: WatchConfig =
        serde_norway::from_str("{apiVersion: v1, kind: ConfigMap, namespaces: [a]}").unwrap();
    let configmaps = f
        .informers
        .subscribe("web", &config, Role::Primary, sink.clone())
        .await
        .unwrap();
    configmaps.wait_synced().await.unwrap();
    assert_eq!(
        drain(&queue).await,
        [("mine".to_string(), Priority::Low)],
        "the initial list"
    );
    let host = f.host_with(
        "web",
        WRITE_CONFIGMAPS,
        &[&configmaps],
        f.client.clone(),
        DEFAULT_REQUEST_TIMEOUT,
        Some(sink.clone()),
    );

    applied_and_cached(
        &host,
        &configmaps,
        &applied("mine", json!({}), json!({"k": "1"})),
    )
    .await;
    assert_eq!(
        drain(&queue).await,
        [("mine".to_string(), Priority::Low)],
        "the echo of the plugin's own apply is reconciled, at low priority"
    );

    f.edit_elsewhere(configmaps.cache(), "mine", json!({"k": "2"}))
        .await;
    assert_eq!(
        drain(&queue).await,
        [("mine".to_string(), Priority::Normal)],
        "someone else's change is news"
    );

    // A created object is not cached before the write: not tracked, its arrival is news.
    host.apply(&applied("new", json!({}), json!({"k": "1"})), true)
        .await
        .unwrap();
    assert_eq!(drain(&queue).await, [("new".to_string(), Priority::Normal)]);
}

/// A single-threaded runtime standing in for one plugin's guest threads.
fn guest_runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("a guest runtime")
}

/// Every plugin's writes share the kube client and its pooled connections, and a connection's
/// task runs on the runtime that opened it. Requests run on the host calls' I/O runtime, so
/// plugin A's guest threads being busy (here: blocked outright, as by a guest that never
/// yields) cannot stall plugin B's write on a connection A's write happened to open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_guest_thread_does_not_stall_writes_sent_from_elsewhere() {
    let f = Fixture::start().await;
    let configmaps = f.web_configmaps().await;
    let host = Arc::new(f.host("web", WRITE_CONFIGMAPS, &[&configmaps]));
    let first = guest_runtime("guest-a");
    let second = guest_runtime("guest-b");

    let writer = host.clone();
    first
        .spawn(async move {
            let object = applied("from-a", json!({}), json!({"k": "1"}));
            writer.apply(&object, true).await
        })
        .await
        .unwrap()
        .expect("the first write, which opens the client's connection");
    let (release, blocked) = std::sync::mpsc::channel::<()>();
    let (is_blocked, until_blocked) = tokio::sync::oneshot::channel();
    first.spawn(async move {
        is_blocked.send(()).unwrap();
        let _ = blocked.recv();
    });
    until_blocked.await.unwrap();

    let writer = host.clone();
    let answer = second
        .spawn(async move {
            let object = applied("from-b", json!({}), json!({"k": "2"}));
            writer.apply(&object, true).await
        })
        .await
        .unwrap();
    release.send(()).unwrap();
    answer.expect("a write from another runtime while guest-a's thread is blocked");
    let api: Api<ConfigMap> = Api::namespaced(f.client.clone(), "a");
    assert_eq!(api.get("from-b").await.unwrap().data.unwrap()["k"], "2");
    first.shutdown_background();
    second.shutdown_background();
}

#[tokio::test]
async fn an_identical_apply_is_elided_but_a_removal_is_sent() {
    let f = Fixture::start().await;
    let configmaps = f.web_configmaps().await;
    let host = f.host("web", WRITE_CONFIGMAPS, &[&configmaps]);
    let both = applied("x", json!({"app": "x", "extra": "yes"}), json!({"k": "1"}));
    applied_and_cached(&host, &configmaps, &both).await;
    f.cluster.reset_accounting();

    // Same intent, and the cache shows it: nothing is sent; the cached object is the answer.
    let again = host.apply(&both, true).await.unwrap();
    assert!(
        f.cluster.writes().is_empty(),
        "no request: {:?}",
        f.cluster.writes()
    );
    assert_eq!(f.cluster.accounting().requests("patch", "configmaps"), 0);
    let cached = configmaps
        .cache()
        .get(&cache::ObjectKey::namespaced("a", "x"))
        .unwrap();
    assert_eq!(again, cached.json().as_str());
    assert_eq!(f.writes_metric("web", "apply", "elided"), 1);

    // Dropping a label: the applied object is contained in the cached one, but server-side
    // apply removes fields the manager stops applying, so this one must be sent.
    let fewer = applied("x", json!({"app": "x"}), json!({"k": "1"}));
    let removed = host.apply(&fewer, true).await.unwrap();
    assert_eq!(f.writes_to("configmaps").len(), 1, "the removal was sent");
    let api: Api<ConfigMap> = Api::namespaced(f.client.clone(), "a");
    let labels = api.get("x").await.unwrap().metadata.labels.unwrap();
    assert!(
        !labels.contains_key("extra"),
        "the server removed it: {labels:?}"
    );
    assert_eq!(f.writes_metric("web", "apply", "elided"), 1);

    // Someone else changes a field the plugin applies: once the cache shows it, the same
    // intent is sent again and restores it.
    cache_shows(configmaps.cache(), &removed).await;
    f.edit_elsewhere(configmaps.cache(), "x", json!({"k": "edited"}))
        .await;
    host.apply(&fewer, true).await.unwrap();
    assert_eq!(api.get("x").await.unwrap().data.unwrap()["k"], "1");
    assert_eq!(f.writes_to("configmaps").len(), 3, "edit + restoring apply");
}

#[tokio::test]
async fn a_failed_apply_forgets_its_intent() {
    let f = Fixture::start().await;
    let configmaps = f.web_configmaps().await;
    let host = f.web_without_retries(&[&configmaps], DEFAULT_REQUEST_TIMEOUT);
    let object = applied("x", json!({}), json!({"k": "1"}));
    applied_and_cached(&host, &configmaps, &object).await;
    // A different intent fails on the server: the outcome is unknown to the host, so the
    // first intent is no longer "the last one applied" and cannot be elided.
    f.cluster
        .add_fault(FaultRule::error(Some("patch"), Some("configmaps"), 500).times(1))
        .unwrap();
    expect_error(
        host.apply(&applied("x", json!({}), json!({"k": "2"})), true)
            .await,
        ErrorCode::Unavailable,
        &["500"],
    );
    f.cluster.reset_accounting();
    host.apply(&object, true).await.unwrap();
    assert_eq!(f.writes_to("configmaps").len(), 1, "sent, not elided");
    assert_eq!(f.writes_metric("web", "apply", "failed"), 1);
    assert_eq!(f.writes_metric("web", "apply", "elided"), 0);
}

#[tokio::test]
async fn an_apply_dropped_at_the_deadline_leaves_no_intent_behind() {
    let f = Fixture::start().await;
    let configmaps = f.web_configmaps().await;
    let host = f.host("web", WRITE_CONFIGMAPS, &[&configmaps]);
    let object = applied("x", json!({}), json!({"k": "1"}));
    applied_and_cached(&host, &configmaps, &object).await;
    // The sandbox drops a host call's future at the call's deadline; here a slow server and
    // a short timeout around the call do the same. Whether the dropped apply reached the
    // server is unknown, so the earlier intent must not be trusted any more.
    f.cluster
        .add_fault(
            FaultRule::latency(Some("patch"), Some("configmaps"), Duration::from_secs(2)).times(1),
        )
        .unwrap();
    let other = applied("x", json!({}), json!({"k": "2"}));
    let dropped = tokio::time::timeout(Duration::from_millis(100), host.apply(&other, true)).await;
    assert!(dropped.is_err(), "the call was cut off: {dropped:?}");
    f.cluster.clear_faults();
    f.cluster.reset_accounting();
    host.apply(&object, true).await.unwrap();
    let sent = f.writes_to("configmaps");
    assert!(
        sent.iter()
            .any(|w| w.manager == "trellis-web" && w.code == 200),
        "the first intent was sent again, not elided: {sent:?}"
    );
    assert_eq!(f.writes_metric("web", "apply", "elided"), 0);
}

#[tokio::test]
async fn patch_status_is_elided_when_it_changes_nothing() {
    let f = Fixture::start().await;
    let version = json!({
        "schema": {"openAPIV3Schema": {"type": "object", "properties": {
            "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}, "seen": {"type": "integer"}}}
        }}},
        "subresources": {"status": {}}
    });
    create_crd(&f.client, &crd("example.com", "Widget", "widgets", version)).await;
    let widgets = f
        .watch("w", "{apiVersion: example.com/v1, kind: Widget}")
        .await;
    let host = f.host(
        "w",
        "read: [{apiVersion: example.com/v1, kind: Widget}]\nwrite: [{apiVersion: example.com/v1, kind: Widget, verbs: [create, patchStatus]}]",
        &[&widgets],
    );
    let widget = gvk("example.com/v1", "Widget");
    host.create(&json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "namespace": "a"}, "spec": {"size": 1}}).to_string())
        .await
        .unwrap();
    let w1 = key(Some("a"), "w1");
    let patched = host
        .patch_status(&widget, &w1, r#"{"status":{"ready":true,"seen":1}}"#)
        .await
        .unwrap();
    let answer: Value = serde_json::from_str(&patched).unwrap();
    assert_eq!(answer["status"]["ready"], true);
    cache_shows(widgets.cache(), &patched).await;
    f.cluster.reset_accounting();

    host.patch_status(&widget, &w1, r#"{"status":{"ready":true}}"#)
        .await
        .unwrap();
    host.patch_status(&widget, &w1, r#"{"status":{"absent":null}}"#)
        .await
        .unwrap();
    assert!(
        f.cluster.writes().is_empty(),
        "no-op patches are not sent: {:?}",
        f.cluster.writes()
    );
    assert_eq!(f.writes_metric("w", "patch_status", "elided"), 2);

    let changed = host
        .patch_status(&widget, &w1, r#"{"status":{"ready":false}}"#)
        .await
        .unwrap();
    let answer: Value = serde_json::from_str(&changed).unwrap();
    assert_eq!(answer["status"], json!({"ready": false, "seen": 1}));
    let sent = f.writes_to("widgets.example.com/status");
    assert_eq!(sent.len(), 1, "{:?}", f.cluster.writes());
    assert_eq!(sent[0].manager, "trellis-w");
    expect_error(
        host.patch_status(
            &widget,
            &key(Some("a"), "nope"),
            r#"{"status":{"ready":true}}"#,
        )
        .await,
        ErrorCode::NotFound,
        &["patch-status", "nope"],
    );
}

#[tokio::test]
async fn denied_writes_send_nothing() {
    let f = Fixture::start().await;
    let configmaps = f.watch("web", "{apiVersion: v1, kind: ConfigMap}").await;
    let host = f.host(
        "web",
        "read: [{apiVersion: v1, kind: ConfigMap}]\nwrite: [{apiVersion: v1, kind: ConfigMap, verbs: [apply], namespaces: [a]}]",
        &[&configmaps],
    );
    f.create_config_map("b", "x", json!({}), json!({})).await;
    f.cluster.reset_accounting();
    let cm = configmap_kind();
    let in_b = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "b"}}).to_string();
    expect_error(
        host.apply(&in_b, true).await,
        ErrorCode::Forbidden,
        &["\"web\"", "apply", "\"b\"", "namespace is not granted"],
    );
    expect_error(
        host.create(&in_b).await,
        ErrorCode::Forbidden,
        &["not granted for create"],
    );
    expect_error(
        host.delete(&cm, &key(Some("a"), "x")).await,
        ErrorCode::Forbidden,
        &["not granted for delete"],
    );
    expect_error(
        host.patch_status(&cm, &key(Some("a"), "x"), "{}").await,
        ErrorCode::Forbidden,
        &["patchStatus"],
    );
    let secret =
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "a"}})
            .to_string();
    expect_error(
        host.apply(&secret, true).await,
        ErrorCode::Forbidden,
        &["Kind=Secret"],
    );

    assert!(
        f.cluster.writes().is_empty(),
        "nothing reached the server: {:?}",
        f.cluster.writes()
    );
    let requests = f.cluster.accounting().requests;
    assert!(
        requests.keys().all(|r| r.starts_with("watch ")),
        "only the informer's watch: {requests:?}"
    );
    assert_eq!(f.writes_metric("web", "apply", "denied"), 2);
    assert_eq!(f.writes_metric("web", "create", "denied"), 1);
    assert_eq!(f.writes_metric("web", "delete", "denied"), 1);
    assert_eq!(f.writes_metric("web", "patch_status", "denied"), 1);
}

#[tokio::test]
async fn invalid_writes_name_the_field_at_fault() {
    let f = Fixture::start().await;
    let host = f.host(
        "web",
        "write:\n- {apiVersion: v1, kind: ConfigMap, verbs: [apply, create, delete, patchStatus]}\n- {apiVersion: v1, kind: Namespace, verbs: [apply]}\n- {apiVersion: example.com/v9, kind: Gadget, verbs: [apply]}",
        &[],
    );
    let cases: [(&str, &[&str]); 6] = [
        ("{", &["apply: the object is not valid JSON"]),
        (
            r#"{"kind":"ConfigMap","metadata":{"name":"x"}}"#,
            &["apply: apiVersion is missing"],
        ),
        (
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"namespace":"a"}}"#,
            &["apply: metadata.name is missing"],
        ),
        (
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#,
            &["metadata.namespace is missing; the kind is namespaced"],
        ),
        (
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"x","namespace":"a"}}"#,
            &["metadata.namespace is \"a\", but the kind is cluster-scoped"],
        ),
        (
            r#"{"apiVersion":"example.com/v9","kind":"Gadget","metadata":{"name":"x","namespace":"a"}}"#,
            &["does not serve example.com/v9, Kind=Gadget"],
        ),
    ];
    for (object, needles) in cases {
        expect_error(host.apply(object, true).await, ErrorCode::Invalid, needles);
    }
    assert!(
        f.cluster.writes().is_empty(),
        "none was sent: {:?}",
        f.cluster.writes()
    );
    assert_eq!(f.writes_metric("web", "apply", "invalid"), 6);

    // What only the server knows comes back as `invalid` with the server's message.
    let unknown_field = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"a"},"dat":{}}"#;
    expect_error(
        host.apply(unknown_field, true).await,
        ErrorCode::Invalid,
        &["unknown field", "dat"],
    );
    expect_error(
        host.create(unknown_field).await,
        ErrorCode::Invalid,
        &["unknown field", "dat"],
    );
    expect_error(
        host.create(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"namespace":"a"}}"#)
            .await,
        ErrorCode::Invalid,
        &["create: metadata.name (or metadata.generateName) is missing"],
    );
    expect_error(
        host.patch_status(&configmap_kind(), &key(Some("a"), "x"), "[1]")
            .await,
        ErrorCode::Invalid,
        &["merge patch must be a JSON object"],
    );
    expect_error(
        host.patch_status(&configmap_kind(), &key(Some("a"), "x"), r#"{"status":{}}"#)
            .await,
        ErrorCode::Invalid,
        &["no status subresource"],
    );
    expect_error(
        host.delete(&configmap_kind(), &key(None, "x")).await,
        ErrorCode::Invalid,
        &["key.namespace is missing"],
    );
    expect_error(
        host.delete(&configmap_kind(), &key(Some("a"), "gone"))
            .await,
        ErrorCode::NotFound,
        &["delete", "a/gone", "not found"],
    );
    let generated = host
        .create(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"namespace":"a","generateName":"gen-"}}"#)
        .await
        .unwrap();
    let generated: Value = serde_json::from_str(&generated).unwrap();
    assert!(
        generated["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("gen-")
    );
}

#[tokio::test]
async fn server_errors_map_to_wit_codes_with_the_servers_message() {
    let f = Fixture::start().await;
    let host = f.web_without_retries(&[], DEFAULT_REQUEST_TIMEOUT);
    let object = applied("x", json!({}), json!({"k": "1"}));
    for (code, expected) in [
        (409, ErrorCode::Conflict),
        (429, ErrorCode::Unavailable),
        (500, ErrorCode::Unavailable),
        (503, ErrorCode::Unavailable),
    ] {
        f.cluster
            .add_fault(FaultRule::error(Some("patch"), Some("configmaps"), code).times(1))
            .unwrap();
        expect_error(
            host.apply(&object, true).await,
            expected,
            &["apply /v1, Kind=ConfigMap a/x", &code.to_string()],
        );
    }
    assert_eq!(f.writes_metric("web", "apply", "failed"), 4);
    host.apply(&object, true).await.unwrap();
    // Real server answers, not injected ones.
    expect_error(
        host.create(&object).await,
        ErrorCode::Conflict,
        &["already exists", "AlreadyExists"],
    );
    let elsewhere = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "nowhere"}}).to_string();
    expect_error(
        host.apply(&elsewhere, true).await,
        ErrorCode::NotFound,
        &["namespaces \"nowhere\" not found"],
    );
    // A field owned by another manager, applied without force.
    let api: Api<ConfigMap> = Api::namespaced(f.client.clone(), "a");
    api.patch(
        "x",
        &PatchParams::apply("alice").force(),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"k": "alice"}})),
    )
    .await
    .unwrap();
    expect_error(
        host.apply(&object, false).await,
        ErrorCode::Conflict,
        &["conflict with \"alice\""],
    );
    host.apply(&object, true)
        .await
        .expect("force takes it over");
    host.delete(&configmap_kind(), &key(Some("a"), "x"))
        .await
        .unwrap();
    expect_error(
        host.delete(&configmap_kind(), &key(Some("a"), "x")).await,
        ErrorCode::NotFound,
        &["not found"],
    );
}

#[tokio::test]
async fn a_slow_server_is_cut_off_by_the_request_timeout() {
    let f = Fixture::start().await;
    let host = f.web_without_retries(&[], Duration::from_millis(300));
    // Discovery first, so the latency hits the write itself.
    host.apply(&applied("x", json!({}), json!({})), true)
        .await
        .unwrap();
    f.cluster
        .add_fault(
            FaultRule::latency(Some("patch"), Some("configmaps"), Duration::from_secs(30)).times(1),
        )
        .unwrap();
    expect_error(
        host.apply(&applied("x", json!({}), json!({"k": "1"})), true)
            .await,
        ErrorCode::Unavailable,
        &["no answer from the API server within 300ms"],
    );
}

// ---------------------------------------------------------------------------------------------
// Events

#[tokio::test]
async fn events_are_recorded_with_the_plugin_as_reporting_controller() {
    let f = Fixture::start().await;
    f.serve_events_api().await;
    f.create_config_map("a", "x", json!({}), json!({})).await;
    let configmaps = f.watch("web", "{apiVersion: v1, kind: ConfigMap}").await;
    let host = f.host_with(
        "web",
        "read: [{apiVersion: v1, kind: ConfigMap, namespaces: [a]}]",
        &[&configmaps],
        f.client_without_retries(),
        DEFAULT_REQUEST_TIMEOUT,
        None,
    );
    assert_eq!(host.reporting_controller(), "trellis.dev/web");
    let cm = configmap_kind();
    // The same event twice: the second is a repeat.
    for _ in 0..2 {
        host.emit_event(
            &cm,
            &key(Some("a"), "x"),
            EventType::Warning,
            "Broken",
            "it broke",
        )
        .await
        .unwrap();
    }

    let events: Api<K8sEvent> = Api::namespaced(f.client.clone(), "a");
    let list = events.list(&Default::default()).await.unwrap().items;
    assert_eq!(
        list.len(),
        1,
        "a repeat is aggregated into one Event: {list:?}"
    );
    let event = &list[0];
    assert_eq!(
        event.reporting_controller.as_deref(),
        Some("trellis.dev/web")
    );
    assert_eq!(event.reporting_instance.as_deref(), Some("host-1"));
    assert_eq!(event.reason.as_deref(), Some("Broken"));
    assert_eq!(event.note.as_deref(), Some("it broke"));
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(event.series.as_ref().map(|s| s.count), Some(2));
    let regarding = event.regarding.as_ref().unwrap();
    let uid = configmaps
        .cache()
        .get(&cache::ObjectKey::namespaced("a", "x"))
        .unwrap()
        .meta()
        .uid
        .clone();
    assert_eq!(regarding.kind.as_deref(), Some("ConfigMap"));
    assert_eq!(regarding.name.as_deref(), Some("x"));
    assert_eq!(regarding.uid.as_deref(), uid.as_deref());
    assert_eq!(
        f.metric("trellis_events_total{plugin=\"web\",result=\"emitted\"}"),
        2
    );

    // Not readable: forbidden; a bad reason: invalid.
    expect_error(
        host.emit_event(&cm, &key(Some("b"), "x"), EventType::Normal, "R", "")
            .await,
        ErrorCode::Forbidden,
        &["may only be about objects the plugin may read"],
    );
    expect_error(
        host.emit_event(&cm, &key(Some("a"), "x"), EventType::Normal, "", "")
            .await,
        ErrorCode::Invalid,
        &["reason is empty"],
    );
    expect_error(
        host.emit_event(
            &cm,
            &key(Some("a"), "x"),
            EventType::Normal,
            &"R".repeat(129),
            "",
        )
        .await,
        ErrorCode::Invalid,
        &["at most 128"],
    );
    let muted = f.host(
        "muted",
        "read: [{apiVersion: v1, kind: ConfigMap}]\nevents: false",
        &[&configmaps],
    );
    expect_error(
        muted
            .emit_event(&cm, &key(Some("a"), "x"), EventType::Normal, "R", "")
            .await,
        ErrorCode::Forbidden,
        &["events: false"],
    );

    // A failing Event write is logged and counted, never the guest's error.
    f.cluster
        .add_fault(FaultRule::error(Some("create"), Some("events.events.k8s.io"), 500).times(1))
        .unwrap();
    host.emit_event(&cm, &key(Some("a"), "x"), EventType::Normal, "Other", "")
        .await
        .expect("not fatal");
    assert_eq!(
        f.metric("trellis_events_total{plugin=\"web\",result=\"failed\"}"),
        1
    );
    assert_eq!(
        f.metric("trellis_events_total{plugin=\"web\",result=\"denied\"}"),
        1,
        "the muted plugin is another series"
    );
}

// ---------------------------------------------------------------------------------------------
// Through the real sandbox

const NAMESPACE_DEFAULTS_PERMISSIONS: &str = "
read:
  - {apiVersion: v1, kind: Namespace}
  - {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy}
  - {apiVersion: v1, kind: ResourceQuota}
write:
  - {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, verbs: [apply, delete]}
  - {apiVersion: v1, kind: ResourceQuota, verbs: [apply, delete]}
";

#[tokio::test]
async fn namespace_defaults_converges_then_a_second_pass_sends_nothing() {
    let f = Fixture::start().await;
    f.serve_events_api().await;
    let namespaces = f
        .watch("namespace-defaults", "{apiVersion: v1, kind: Namespace}")
        .await;
    let managed = "labelSelector: app.kubernetes.io/managed-by=trellis-namespace-defaults";
    let policies = f
        .watch(
            "namespace-defaults",
            &format!("{{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, {managed}}}"),
        )
        .await;
    let quotas = f
        .watch(
            "namespace-defaults",
            &format!("{{apiVersion: v1, kind: ResourceQuota, {managed}}}"),
        )
        .await;
    let host: Arc<dyn PluginHost> = Arc::new(f.host(
        "namespace-defaults",
        NAMESPACE_DEFAULTS_PERMISSIONS,
        &[&namespaces, &policies, &quotas],
    ));
    let sandbox = Sandbox::new(EngineConfig::default()).expect("sandbox");
    let plugin = load_on(&sandbox, &trellis_plugin_bundle::NAMESPACE_DEFAULTS);

    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(f.client.clone());
    let ns = serde_json::from_value(
        json!({"metadata": {"name": "team-a", "labels": {"trellis.dev/defaults": "enabled"}}}),
    )
    .unwrap();
    api.create(&PostParams::default(), &ns).await.unwrap();
    let team_a = cache::ObjectKey::cluster("team-a");
    let request = || {
        let object = namespaces
            .cache()
            .get(&team_a)
            .map(|o| o.json().as_str().to_string());
        ReconcileRequest {
            kind: gvk("v1", "Namespace"),
            key: key(None, "team-a"),
            object,
        }
    };
    eventually("the namespace in the cache", || {
        namespaces.cache().get(&team_a)
    })
    .await;

    let first = plugin.reconcile(host.clone(), &request()).await;
    assert!(
        matches!(first.outcome, Outcome::Ok(Action::Done)),
        "{:?}",
        first.outcome
    );
    let policy: Api<NetworkPolicy> = Api::namespaced(f.client.clone(), "team-a");
    let quota: Api<ResourceQuota> = Api::namespaced(f.client.clone(), "team-a");
    let written_policy = policy
        .get("trellis-default-deny")
        .await
        .expect("policy applied");
    let written_quota = quota.get("trellis-defaults").await.expect("quota applied");
    for managers in [
        written_policy.metadata.managed_fields,
        written_quota.metadata.managed_fields,
    ] {
        let names: Vec<_> = managers
            .unwrap()
            .into_iter()
            .filter_map(|m| m.manager)
            .collect();
        assert_eq!(names, ["trellis-namespace-defaults"]);
    }
    let events: Api<K8sEvent> = Api::namespaced(f.client.clone(), "default");
    let recorded = events.list(&Default::default()).await.unwrap().items;
    assert!(
        recorded
            .iter()
            .any(|e| e.reason.as_deref() == Some("DefaultsCreated")
                && e.reporting_controller.as_deref() == Some("trellis.dev/namespace-defaults")),
        "{recorded:?}"
    );
    assert_eq!(f.writes_metric("namespace-defaults", "apply", "issued"), 2);
    assert!(
        f.metric("trellis_guest_log_lines_total{plugin=\"namespace-defaults\",level=\"info\"}")
            >= 1,
        "the plugin's log lines are counted"
    );

    // The caches catch up with what was written; the second pass then writes nothing.
    let policy_rv = written_policy.metadata.resource_version.unwrap();
    let quota_rv = written_quota.metadata.resource_version.unwrap();
    eventually("the cache to show the policy", || {
        policies
            .cache()
            .get(&cache::ObjectKey::namespaced(
                "team-a",
                "trellis-default-deny",
            ))
            .filter(|o| *o.meta().resource_version == *policy_rv)
    })
    .await;
    eventually("the cache to show the quota", || {
        quotas
            .cache()
            .get(&cache::ObjectKey::namespaced("team-a", "trellis-defaults"))
            .filter(|o| *o.meta().resource_version == *quota_rv)
    })
    .await;
    f.cluster.reset_accounting();
    let second = plugin.reconcile(host.clone(), &request()).await;
    assert!(
        matches!(second.outcome, Outcome::Ok(Action::Done)),
        "{:?}",
        second.outcome
    );
    assert!(
        f.cluster.writes().is_empty(),
        "no request on a converged namespace: {:?}",
        f.cluster.writes()
    );
    assert_eq!(
        f.writes_metric("namespace-defaults", "apply", "issued"),
        2,
        "nothing more issued"
    );
    // Every write the plugin still asked for (its own checks usually skip them) was elided.
    assert_eq!(
        u64::from(second.usage.writes),
        f.writes_metric("namespace-defaults", "apply", "elided"),
    );
}

#[tokio::test]
async fn malformed_writes_from_a_real_guest_are_invalid_and_send_nothing() {
    let f = Fixture::start().await;
    let host: Arc<dyn PluginHost> = Arc::new(f.host("misbehave", WRITE_CONFIGMAPS, &[]));
    let sandbox = Sandbox::new(EngineConfig::default()).expect("sandbox");
    let plugin = load_on(&sandbox, &trellis_plugin_bundle::MISBEHAVE);
    let object = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"namespace": "a", "name": "bad", "uid": "u", "resourceVersion": "1"},
        "data": {"mode": "invalid-write"},
    });
    let request = ReconcileRequest {
        kind: configmap_kind(),
        key: key(Some("a"), "bad"),
        object: Some(object.to_string()),
    };
    let report = plugin.reconcile(host, &request).await;
    assert!(
        matches!(report.outcome, Outcome::Ok(Action::Done)),
        "every variant was invalid: {:?}",
        report.outcome
    );
    assert!(f.cluster.writes().is_empty(), "{:?}", f.cluster.writes());
    assert_eq!(f.writes_metric("misbehave", "apply", "invalid"), 4);
    assert_eq!(f.writes_metric("misbehave", "create", "invalid"), 1);
    assert_eq!(f.writes_metric("misbehave", "patch_status", "invalid"), 1);
}
