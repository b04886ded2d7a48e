//! Informers against a real API server (the devcluster) with the real kube client: scoping
//! proven by the server's accounting, watch faults, sharing and freeing, indexes, mapping,
//! predicates, sync states and metrics.
//!
//! No assertion is about speed: waits poll a condition with a generous bound that only proves
//! the condition is reached at all.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::client::{Body, ClientBuilder, DynBody};
use serde_json::json;
use trellis_devcluster::{DevCluster, FaultRule};
use trellis_host::cache::{Gvk, ObjectKey};
use trellis_host::informer::{
    InformerOptions, Priority, Role, SubscribeError, SyncFailure, SyncStatus,
};

use support::cluster::devcluster;
use support::informers::{cached_names, informers, subscribe, watch, watching};
use support::keys::Sink;
use support::metrics::{configmap_sample, metrics_text};
use support::wait::eventually;

mod support;

// ---------------------------------------------------------------------------------------------
// Helpers

async fn cluster() -> DevCluster {
    devcluster(&["default", "a", "b", "c"]).await
}

async fn create_config_map(
    api: &Api<ConfigMap>,
    name: &str,
    labels: serde_json::Value,
    data: serde_json::Value,
) {
    let cm: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": data,
    }))
    .unwrap();
    api.create(&PostParams::default(), &cm)
        .await
        .expect("create configmap");
}

async fn merge_patch<K>(api: &Api<K>, name: &str, patch: serde_json::Value)
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
}

/// Since the last accounting reset, the server answered no list of `resource` and sent
/// `objects` of them on watches (`why` says why that many).
fn assert_no_list_and_watched(cluster: &DevCluster, resource: &str, objects: u64, why: &str) {
    let accounting = cluster.accounting();
    assert_eq!(
        accounting.requests("list", resource),
        0,
        "no list: {accounting:#?}"
    );
    assert_eq!(
        accounting.watched(resource).objects,
        objects,
        "{why}: {accounting:#?}"
    );
}

/// The name devcluster's seeding gives Pod `i`.
fn seeded_pod(i: usize) -> String {
    format!("app-{}-{:x}-{i:06}", i % 20, 0x5f7c_9d00 + i % 20)
}

// ---------------------------------------------------------------------------------------------
// Scoping

/// Namespaces, labels and fields go to the server: the devcluster served only the matching
/// Pods, the cache holds exactly them, and objects that stop or start matching leave and
/// enter the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoping_sends_only_matching_objects_and_follows_objects_in_and_out() {
    let cluster = cluster().await;
    cluster.seed_pods("a", 300).unwrap();
    cluster.seed_pods("b", 300).unwrap();
    cluster.reset_accounting();
    // app-3 is i % 20 == 3, node-003 is i % 50 == 3: i % 100 == 3, three Pods per 300.
    let (_informers, _registry, subscription, sink) = watching(
        cluster.client().unwrap(),
        "apiVersion: v1\nkind: Pod\nnamespaces: [c, a]\nlabelSelector: app=app-3\nfieldSelector: spec.nodeName=node-003\n",
    )
    .await;
    let expected: Vec<String> = [3, 103, 203]
        .map(|i| format!("a/{}", seeded_pod(i)))
        .to_vec();
    assert_eq!(cached_names(&subscription), expected);
    let accounting = cluster.accounting();
    let served = accounting.listed("pods").objects + accounting.watched("pods").objects;
    assert_eq!(
        served, 3,
        "only the matching Pods crossed the wire: {accounting:#?}"
    );
    assert_eq!(
        accounting.requests("watch", "pods"),
        2,
        "one watch per namespace"
    );
    assert_eq!(
        accounting.requests("list", "pods"),
        0,
        "a streaming list, no list request"
    );
    let initial = sink.take();
    assert_eq!(initial.len(), 3);
    assert!(
        initial.iter().all(|(_, p)| *p == Priority::Low),
        "initial list is low priority"
    );

    // Pod 3 stops matching (label changed); Pod 53 (app-13, node-003) starts matching.
    let pods: Api<Pod> = Api::namespaced(cluster.client().unwrap(), "a");
    merge_patch(
        &pods,
        &seeded_pod(3),
        json!({"metadata": {"labels": {"app": "app-4"}}}),
    )
    .await;
    merge_patch(
        &pods,
        &seeded_pod(53),
        json!({"metadata": {"labels": {"app": "app-3"}}}),
    )
    .await;
    // A matching change in a namespace nobody watches never arrives.
    let pods_b: Api<Pod> = Api::namespaced(cluster.client().unwrap(), "b");
    merge_patch(
        &pods_b,
        &seeded_pod(3),
        json!({"metadata": {"labels": {"touched": "yes"}}}),
    )
    .await;
    let expected: Vec<String> = [53, 103, 203]
        .map(|i| format!("a/{}", seeded_pod(i)))
        .to_vec();
    eventually(
        "the cache to follow Pods in and out of the selector",
        || (cached_names(&subscription) == expected).then_some(()),
    )
    .await;
    assert!(
        sink.has(&format!("a/{}", seeded_pod(3)), Priority::Normal),
        "leaving is news"
    );
    assert!(
        sink.has(&format!("a/{}", seeded_pod(53)), Priority::Normal),
        "entering is news"
    );
    let accounting = cluster.accounting();
    assert_eq!(
        accounting.watched("pods").objects,
        5,
        "3 initial + the leaving Pod's DELETED + the entering Pod's ADDED: {accounting:#?}"
    );
    assert!(!sink.keys.lock().iter().any(|(k, _)| k.starts_with("b/")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_only_watches_receive_and_keep_only_metadata() {
    let cluster = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client().unwrap(), "a");
    let big = "x".repeat(20_000);
    create_config_map(&api, "big", json!({"app": "web"}), json!({"blob": big})).await;
    let (informers, _registry) = informers(cluster.client().unwrap(), InformerOptions::default());
    cluster.reset_accounting();
    let (meta, _) = subscribe(
        &informers,
        "p",
        "apiVersion: v1\nkind: ConfigMap\nnamespaces: [a]\nmetadataOnly: true\n",
    )
    .await;
    let metadata_bytes = cluster.accounting().watched("configmaps").bytes;
    let stored = meta
        .cache()
        .get(&ObjectKey::namespaced("a", "big"))
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(stored.json().as_str()).unwrap();
    assert_eq!(
        value["apiVersion"], "v1",
        "the real kind, not PartialObjectMetadata"
    );
    assert_eq!(value["kind"], "ConfigMap");
    assert_eq!(value["metadata"]["labels"]["app"], "web");
    assert!(value.get("data").is_none());
    assert!(
        value["metadata"].get("managedFields").is_none(),
        "stripped by default"
    );

    cluster.reset_accounting();
    let (full, _) = subscribe(
        &informers,
        "p",
        "apiVersion: v1\nkind: ConfigMap\nnamespaces: [a]\n",
    )
    .await;
    let full_bytes = cluster.accounting().watched("configmaps").bytes;
    assert!(
        full_bytes > 20_000 && metadata_bytes < 5_000,
        "metadata {metadata_bytes} B, full {full_bytes} B"
    );
    assert!(
        full.cache()
            .get(&ObjectKey::namespaced("a", "big"))
            .unwrap()
            .json()
            .as_str()
            .contains(&big)
    );
}

// ---------------------------------------------------------------------------------------------
// Faults

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_watch_resumes_from_its_resource_version_without_relisting() {
    let cluster = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client().unwrap(), "a");
    for i in 0..5 {
        create_config_map(&api, &format!("cm-{i}"), json!({}), json!({})).await;
    }
    let (_informers, registry, subscription, sink) = watching(
        cluster.client().unwrap(),
        "apiVersion: v1\nkind: ConfigMap\nnamespaces: [a]\n",
    )
    .await;
    sink.take();
    cluster.reset_accounting();
    cluster.close_watches(Some("configmaps"));
    create_config_map(&api, "cm-new", json!({}), json!({})).await;
    eventually("the new object after the watch dropped", || {
        subscription
            .cache()
            .get(&ObjectKey::namespaced("a", "cm-new"))
    })
    .await;
    assert_no_list_and_watched(
        &cluster,
        "configmaps",
        1,
        "only the new object was sent again",
    );
    assert!(
        cluster.accounting().requests("watch", "configmaps") >= 1,
        "the watch was resumed"
    );
    assert_eq!(sink.take(), [("a/cm-new".to_string(), Priority::Normal)]);
    assert_eq!(cached_names(&subscription).len(), 6);
    let text = metrics_text(&registry);
    assert_eq!(
        configmap_sample(&text, "trellis_informer_relists_total"),
        Some(0.0),
        "{text}"
    );
}

/// While the watch is down (watch requests failing), objects are deleted, changed and
/// created; then the history expires, so the resumed watch gets 410 and the informer relists.
/// The cache converges to the server's state: no ghost, nothing missing, the change applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_history_relists_and_converges_with_no_ghost_and_nothing_missing() {
    let cluster = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client().unwrap(), "a");
    for i in 0..10 {
        create_config_map(&api, &format!("cm-{i}"), json!({}), json!({"v": "1"})).await;
    }
    let (_informers, registry, subscription, sink) = watching(
        cluster.client().unwrap(),
        "apiVersion: v1\nkind: ConfigMap\nnamespaces: [a]\n",
    )
    .await;
    sink.take();

    cluster
        .add_fault(FaultRule::error(Some("watch"), Some("configmaps"), 503))
        .unwrap();
    cluster.close_watches(Some("configmaps"));
    for i in 1..4 {
        api.delete(&format!("cm-{i}"), &DeleteParams::default())
            .await
            .unwrap();
    }
    merge_patch(&api, "cm-4", json!({"data": {"v": "2"}})).await;
    create_config_map(&api, "cm-10", json!({}), json!({"v": "1"})).await;
    cluster.expire_history(Some("configmaps"));
    cluster.clear_faults();

    let expected: Vec<String> = [0, 4, 5, 6, 7, 8, 9, 10]
        .map(|i| format!("a/cm-{i}"))
        .to_vec();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    eventually("the cache to converge after the relist", || {
        (cached_names(&subscription) == expected_sorted).then_some(())
    })
    .await;
    let cm4 = subscription
        .cache()
        .get(&ObjectKey::namespaced("a", "cm-4"))
        .unwrap();
    assert!(
        cm4.json().as_str().contains(r#""v":"2""#),
        "the missed change is applied"
    );
    let server: Vec<String> = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|cm| format!("a/{}", cm.metadata.name.as_deref().unwrap()))
        .collect();
    assert_eq!(
        cached_names(&subscription),
        server,
        "the cache is the server's state"
    );

    let mut keys = sink.take();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    let expected_keys: Vec<(String, Priority)> = ["cm-1", "cm-10", "cm-2", "cm-3", "cm-4"]
        .map(|n| (format!("a/{n}"), Priority::Normal))
        .to_vec();
    assert_eq!(
        keys, expected_keys,
        "missed deletes, changes and creates are news; unchanged objects are not re-enqueued"
    );
    let text = metrics_text(&registry);
    assert_eq!(
        configmap_sample(&text, "trellis_informer_relists_total"),
        Some(1.0),
        "{text}"
    );
    assert!(configmap_sample(&text, "trellis_informer_watch_restarts_total").unwrap() >= 1.0);
}

/// A tower layer that answers streaming-list watches as a server without the WatchList
/// feature does (422 Invalid), and passes everything else to the devcluster.
#[derive(Clone)]
struct RefuseStreamingLists<S> {
    inner: S,
    refused: Arc<AtomicUsize>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S> tower::Service<http::Request<Body>> for RefuseStreamingLists<S>
where
    S: tower::Service<
            http::Request<Body>,
            Response = http::Response<Box<DynBody>>,
            Error = BoxError,
        >,
    S::Future: Send + 'static,
{
    type Response = http::Response<Box<DynBody>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request
            .uri()
            .query()
            .is_some_and(|q| q.contains("sendInitialEvents=true"))
        {
            self.refused.fetch_add(1, Ordering::SeqCst);
            let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 422, "reason": "Invalid",
                "message": "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled"});
            let body: Box<DynBody> = Box::new(
                http_body_util::Full::new(Bytes::from(status.to_string()))
                    .map_err(|never| -> BoxError { match never {} }),
            );
            let response = http::Response::builder()
                .status(422)
                .header("content-type", "application/json")
                .body(body)
                .unwrap();
            return Box::pin(async move { Ok(response) });
        }
        Box::pin(self.inner.call(request))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_refusing_streaming_lists_gets_paginated_lists() {
    let cluster = cluster().await;
    cluster.seed_pods("a", 1_200).unwrap();
    cluster.reset_accounting();
    let refused = Arc::new(AtomicUsize::new(0));
    let config = kube::Config::new(cluster.url().parse().unwrap());
    let layer_refused = refused.clone();
    let client = ClientBuilder::try_from(config)
        .unwrap()
        .with_layer(&tower::layer::layer_fn(move |inner| RefuseStreamingLists {
            inner,
            refused: layer_refused.clone(),
        }))
        .build();
    let (informers, _registry) = informers(client, InformerOptions::default());
    let (subscription, _) = subscribe(
        &informers,
        "p",
        "apiVersion: v1\nkind: Pod\nnamespaces: [a]\n",
    )
    .await;
    assert_eq!(subscription.cache().len(), 1_200);
    assert_eq!(
        refused.load(Ordering::SeqCst),
        1,
        "tried streaming once, then never again"
    );
    let accounting = cluster.accounting();
    assert_eq!(
        accounting.requests("list", "pods"),
        3,
        "1200 Pods in pages of 500: {accounting:#?}"
    );
    assert_eq!(accounting.listed("pods").objects, 1_200);

    // With pageSize 1000 a second informer needs two pages.
    cluster.reset_accounting();
    let (second, _) = subscribe(
        &informers,
        "p",
        "apiVersion: v1\nkind: Pod\nnamespaces: [a]\npageSize: 1000\n",
    )
    .await;
    assert_eq!(second.cache().len(), 1_200);
    assert_eq!(cluster.accounting().requests("list", "pods"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selector_the_server_rejects_fails_sync_quoting_the_server() {
    let cluster = cluster().await;
    let (informers, _registry) = informers(cluster.client().unwrap(), InformerOptions::default());
    let sink = Arc::new(Sink::default());
    let subscription = informers
        .subscribe(
            "web",
            &watch("apiVersion: v1\nkind: Pod\nfieldSelector: spec.bogus=x\n"),
            Role::Primary,
            sink,
        )
        .await
        .unwrap();
    let error = subscription.wait_synced().await.unwrap_err();
    let SyncFailure::Rejected { message } = &error.reason else {
        panic!("expected a rejection, got {error}");
    };
    assert!(
        message.contains("field label not supported: spec.bogus"),
        "{message}"
    );
    let shown = error.to_string();
    assert!(shown.starts_with("plugin \"web\": watch of /v1, Kind=Pod fields \"spec.bogus=x\" was rejected by the API server"), "{shown}");
    assert!(matches!(subscription.status(), SyncStatus::Failed { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_that_cannot_complete_is_reported_with_the_last_error_then_recovers() {
    let cluster = cluster().await;
    // 500, not 503: kube's client retries 429, 503 and 504 itself before the watcher sees them.
    cluster
        .add_fault(FaultRule::error(Some("watch"), Some("configmaps"), 500))
        .unwrap();
    let options = InformerOptions {
        sync_timeout: Duration::from_secs(3),
        ..InformerOptions::default()
    };
    let (informers, _registry) = informers(cluster.client().unwrap(), options);
    let subscription = informers
        .subscribe(
            "web",
            &watch("apiVersion: v1\nkind: ConfigMap\n"),
            Role::Primary,
            Arc::new(Sink::default()),
        )
        .await
        .unwrap();
    let error = subscription.wait_synced().await.unwrap_err();
    let SyncFailure::TimedOut {
        last_error: Some(last),
        ..
    } = &error.reason
    else {
        panic!("expected a timeout with the last error, got {error}");
    };
    assert!(last.contains("500"), "{last}");
    assert!(
        error.to_string().contains(
            "plugin \"web\": watch of /v1, Kind=ConfigMap did not sync within 3s; last error:"
        ),
        "{error}"
    );
    cluster.clear_faults();
    eventually(
        "the stalled informer to sync once the server recovers",
        || subscription.status().is_synced().then_some(()),
    )
    .await;
    subscription.wait_synced().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Startup errors

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kinds_and_bad_configs_are_errors_naming_the_plugin() {
    let cluster = cluster().await;
    let (informers, _registry) = informers(cluster.client().unwrap(), InformerOptions::default());
    // Plugin `web` subscribing to `yaml` as `role`, refused.
    let refused = async |yaml: &str, role: Role| {
        informers
            .subscribe("web", &watch(yaml), role, Arc::new(Sink::default()))
            .await
            .unwrap_err()
    };
    cluster.reset_accounting();
    let error = refused(
        "apiVersion: v1\nkind: Pod\nlabelSelector: 'a in'\ntransform: {drop: [metadata]}\n",
        Role::Primary,
    )
    .await;
    assert!(
        matches!(&error, SubscribeError::Config { errors, .. } if errors.len() == 2),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .starts_with("plugin \"web\": invalid watch: labelSelector: "),
        "{error}"
    );
    assert!(
        cluster.accounting().requests.is_empty(),
        "nothing was asked of the server"
    );

    for (yaml, kind) in [
        (
            "apiVersion: example.com/v1\nkind: Gadget\n",
            "example.com/v1, Kind=Gadget",
        ),
        ("apiVersion: v1\nkind: Gadget\n", "/v1, Kind=Gadget"),
        (
            "apiVersion: apps/v2\nkind: Deployment\n",
            "apps/v2, Kind=Deployment",
        ),
    ] {
        let error = refused(yaml, Role::Primary).await;
        assert!(
            matches!(error, SubscribeError::UnknownKind { .. }),
            "{error}"
        );
        let shown = error.to_string();
        assert!(
            shown.starts_with(&format!(
                "plugin \"web\": the API server does not serve {kind}"
            )),
            "{shown}"
        );
    }
    let error = refused(
        "apiVersion: v1\nkind: Namespace\nnamespaces: [a]\n",
        Role::Primary,
    )
    .await;
    assert_eq!(
        error.to_string(),
        "plugin \"web\": /v1, Kind=Namespace is cluster-scoped; a watch of it cannot name namespaces"
    );
    let error = refused(
        "apiVersion: v1\nkind: ConfigMap\n",
        Role::Secondary {
            primary: Gvk::new("apps", "v1", "Deployment"),
        },
    )
    .await;
    assert!(
        error
            .to_string()
            .contains("a secondary watch needs mapping"),
        "{error}"
    );
    let error = refused(
        "apiVersion: v1\nkind: ConfigMap\nmapping: {label: x}\n",
        Role::Primary,
    )
    .await;
    assert!(
        error
            .to_string()
            .contains("mapping is for secondary watches"),
        "{error}"
    );
    assert_eq!(
        informers.stats().informers,
        0,
        "no informer was started by a failed subscribe"
    );
}

// ---------------------------------------------------------------------------------------------
// Sharing and freeing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_specs_share_one_watch_late_subscribers_get_the_cache_and_the_last_leaving_frees_it()
{
    let cluster = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client().unwrap(), "a");
    for i in 0..3 {
        create_config_map(&api, &format!("cm-{i}"), json!({}), json!({})).await;
    }
    let (informers, registry) = informers(cluster.client().unwrap(), InformerOptions::default());
    cluster.reset_accounting();
    let (first, first_sink) = subscribe(
        &informers,
        "one",
        "apiVersion: v1\nkind: ConfigMap\nnamespaces: [a]\n",
    )
    .await;
    // Equal after normalization, with other predicates: the same informer.
    let (second, second_sink) = subscribe(
        &informers,
        "two",
        "apiVersion: v1\nkind: ConfigMap\nnamespaces: [a, a]\npredicates: [labels]\n",
    )
    .await;
    assert!(Arc::ptr_eq(first.cache(), second.cache()));
    let stats = informers.stats();
    assert_eq!(
        (stats.informers, stats.subscriptions, stats.objects),
        (1, 2, 3)
    );
    let accounting = cluster.accounting();
    assert_eq!(
        accounting.requests("watch", "configmaps"),
        1,
        "one watch for both: {accounting:#?}"
    );
    assert_eq!(accounting.open_watches("configmaps"), 1);
    let late: Vec<(String, Priority)> = (0..3)
        .map(|i| (format!("a/cm-{i}"), Priority::Low))
        .collect();
    assert_eq!(first_sink.take(), late, "initial list, low priority");
    assert_eq!(
        second_sink.take(),
        late,
        "the late subscriber got the cache, low priority"
    );
    let text = metrics_text(&registry);
    assert_eq!(
        configmap_sample(&text, "trellis_informer_subscribers"),
        Some(2.0)
    );
    assert_eq!(
        configmap_sample(&text, "trellis_informer_cache_objects"),
        Some(3.0)
    );

    // Each event fans out to both, through each one's predicates.
    merge_patch(&api, "cm-0", json!({"data": {"x": "1"}})).await;
    merge_patch(&api, "cm-1", json!({"metadata": {"labels": {"l": "1"}}})).await;
    eventually("both changes at the first plugin", || {
        (first_sink.keys.lock().len() == 2).then_some(())
    })
    .await;
    eventually("the label change at the second", || {
        second_sink.has("a/cm-1", Priority::Normal).then_some(())
    })
    .await;
    assert!(
        !second_sink.has("a/cm-0", Priority::Normal),
        "a data change does not pass the labels predicate"
    );

    let weak: Weak<_> = Arc::downgrade(first.cache());
    drop(first);
    assert_eq!(
        informers.stats().informers,
        1,
        "still needed by the second plugin"
    );
    create_config_map(&api, "cm-3", json!({}), json!({})).await;
    eventually("the remaining subscriber to still receive", || {
        second_sink.has("a/cm-3", Priority::Normal).then_some(())
    })
    .await;
    drop(second);
    let stats = informers.stats();
    assert_eq!(
        (stats.informers, stats.subscriptions, stats.bytes),
        (0, 0, 0)
    );
    eventually("the watch to close", || {
        (cluster.accounting().open_watches("configmaps") == 0).then_some(())
    })
    .await;
    eventually("the cache to be freed", || {
        (weak.strong_count() == 0).then_some(())
    })
    .await;
    let text = metrics_text(&registry);
    assert!(
        !text.contains("kind=\"v1/ConfigMap\""),
        "the informer's series are gone:\n{text}"
    );
}

/// 100 subscribe / sync / unsubscribe cycles leave the runtime's task count and the cache
/// memory where they were. The devcluster runs on its own runtime so only the host's tasks
/// are counted.
#[test]
fn a_hundred_subscription_cycles_leave_tasks_and_cache_memory_at_baseline() {
    let server = support::runtime::multi_thread(1);
    let cluster = server.block_on(cluster());
    cluster.seed_pods("a", 200).unwrap();
    let host = support::runtime::multi_thread(2);
    host.block_on(async {
        let (informers, _registry) = informers(cluster.client().unwrap(), InformerOptions::default());
        let alive = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
        let config = "apiVersion: v1\nkind: Pod\nnamespaces: [a]\nindexes: [{name: node, path: spec.nodeName}]\n";
        // Warm up: discovery is cached and the connection pool is filled once.
        drop(subscribe(&informers, "p", config).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let baseline = alive();

        let mut caches = Vec::new();
        for cycle in 0..100 {
            let (subscription, _) = subscribe(&informers, "p", config).await;
            assert_eq!(subscription.cache().len(), 200, "cycle {cycle}");
            assert!(informers.stats().bytes > 200 * 1_000, "cycle {cycle}: the cache holds the Pods");
            caches.push(Arc::downgrade(subscription.cache()));
        }
        let stats = informers.stats();
        assert_eq!((stats.informers, stats.subscriptions, stats.objects, stats.bytes), (0, 0, 0, 0));
        eventually("every cache to be freed", || caches.iter().all(|w| w.strong_count() == 0).then_some(())).await;
        let after = eventually("the task count to return to its baseline", || {
            let now = alive();
            (now <= baseline).then_some(now)
        })
        .await;
        assert!(after <= baseline, "{after} tasks alive, baseline {baseline}");
        eventually("the server to see every watch closed", || (cluster.accounting().open_watches("pods") == 0).then_some(())).await;
    });
    drop(host);
    drop(cluster);
}

// ---------------------------------------------------------------------------------------------
// Indexes, mapping, predicates, resync

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_follow_updates_that_change_the_indexed_field_and_deletes() {
    let cluster = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client().unwrap(), "a");
    let (_informers, _registry, subscription, _) = watching(cluster.client().unwrap(), "apiVersion: v1\nkind: ConfigMap\nnamespaces: [a]\nindexes: [{name: team, path: data.team}]\n").await;
    let owner = |uid: &str| json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": uid, "controller": true}]}});
    create_config_map(
        &api,
        "one",
        json!({"tier": "front"}),
        json!({"team": "red"}),
    )
    .await;
    create_config_map(
        &api,
        "two",
        json!({"tier": "front"}),
        json!({"team": "red"}),
    )
    .await;
    merge_patch(&api, "one", owner("uid-1")).await;
    let cache = subscription.cache().clone();
    let lookup = |index: &str, value: &str| -> Vec<String> {
        cache
            .lookup(index, value)
            .unwrap()
            .iter()
            .map(|o| o.key().to_string())
            .collect()
    };
    eventually("both indexed", || {
        (lookup("team", "red").len() == 2 && lookup("owner", "uid-1").len() == 1).then_some(())
    })
    .await;
    assert_eq!(lookup("label", "tier=front"), ["a/one", "a/two"]);
    assert_eq!(lookup("namespace", "a"), ["a/one", "a/two"]);

    merge_patch(
        &api,
        "one",
        json!({"data": {"team": "blue"}, "metadata": {"labels": {"tier": "back"}}}),
    )
    .await;
    merge_patch(&api, "one", owner("uid-2")).await;
    eventually("the update to move the object", || {
        (lookup("owner", "uid-2") == ["a/one"]).then_some(())
    })
    .await;
    assert_eq!(lookup("team", "red"), ["a/two"]);
    assert_eq!(lookup("team", "blue"), ["a/one"]);
    assert_eq!(lookup("label", "tier=front"), ["a/two"]);
    assert_eq!(lookup("label", "tier=back"), ["a/one"]);
    assert!(lookup("owner", "uid-1").is_empty());

    api.delete("one", &DeleteParams::default()).await.unwrap();
    eventually("the delete", || {
        lookup("team", "blue").is_empty().then_some(())
    })
    .await;
    assert!(lookup("owner", "uid-2").is_empty());
    assert!(lookup("label", "tier=back").is_empty());
    assert_eq!(lookup("namespace", "a"), ["a/two"]);
    let error = cache.lookup("colour", "x").unwrap_err();
    assert!(
        error
            .to_string()
            .contains("available: label, namespace, owner, team"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secondary_objects_reach_their_primary_keys() {
    let cluster = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client().unwrap(), "a");
    let (informers, _registry) = informers(cluster.client().unwrap(), InformerOptions::default());
    let sink = Arc::new(Sink::default());
    let config = watch(
        "apiVersion: v1\nkind: ConfigMap\nmapping: {controllerOwner: true, label: example.com/app}\n",
    );
    let role = Role::Secondary {
        primary: Gvk::new("apps", "v1", "Deployment"),
    };
    let subscription = informers
        .subscribe("p", &config, role, sink.clone())
        .await
        .unwrap();
    subscription.wait_synced().await.unwrap();
    create_config_map(
        &api,
        "by-label",
        json!({"example.com/app": "api"}),
        json!({}),
    )
    .await;
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "owned", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u", "controller": true}]}})).unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    create_config_map(&api, "unrelated", json!({}), json!({})).await;
    eventually("all three in the cache", || {
        (subscription.cache().len() >= 3).then_some(())
    })
    .await;
    // The label moves to another primary: both the old and the new one hear of it.
    merge_patch(
        &api,
        "by-label",
        json!({"metadata": {"labels": {"example.com/app": "db"}}}),
    )
    .await;
    eventually("the relabel", || {
        sink.has("a/db", Priority::Normal).then_some(())
    })
    .await;
    let keys = sink.take();
    assert_eq!(
        keys,
        [
            ("a/api", Priority::Normal),
            ("a/web", Priority::Normal),
            ("a/db", Priority::Normal),
            ("a/api", Priority::Normal)
        ]
        .map(|(k, p)| (k.to_string(), p))
        .to_vec(),
        "ConfigMaps map to Deployment keys; the unrelated one maps to none"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_replays_the_cache_at_low_priority_without_asking_the_server() {
    let cluster = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client().unwrap(), "a");
    create_config_map(&api, "cm", json!({}), json!({})).await;
    let (informers, _registry, _subscription, sink) = watching(
        cluster.client().unwrap(),
        "apiVersion: v1\nkind: ConfigMap\nnamespaces: [a]\nresyncSeconds: 1\n",
    )
    .await;
    let (_quiet, quiet_sink) = subscribe(
        &informers,
        "q",
        "apiVersion: v1\nkind: ConfigMap\nnamespaces: [a]\n",
    )
    .await;
    assert_eq!(sink.take(), [("a/cm".to_string(), Priority::Low)]);
    quiet_sink.take();
    cluster.reset_accounting();
    eventually("two resyncs", || {
        (sink.keys.lock().len() >= 2).then_some(())
    })
    .await;
    assert!(
        sink.take()
            .iter()
            .all(|k| *k == ("a/cm".to_string(), Priority::Low))
    );
    assert_no_list_and_watched(
        &cluster,
        "configmaps",
        0,
        "the cache was replayed, not the API",
    );
    assert!(
        quiet_sink.take().is_empty(),
        "resync is per subscription and off by default"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_keeps_objects_compact_and_as_transformed() {
    let cluster = cluster().await;
    cluster.seed_pods("a", 50).unwrap();
    let (informers, _registry, full, _) = watching(
        cluster.client().unwrap(),
        "apiVersion: v1\nkind: Pod\nnamespaces: [a]\ntransform: {keepManagedFields: true}\n",
    )
    .await;
    let (stripped, _) = subscribe(
        &informers,
        "p",
        "apiVersion: v1\nkind: Pod\nnamespaces: [a]\n",
    )
    .await;
    let (slim, _) = subscribe(
        &informers,
        "p",
        "apiVersion: v1\nkind: Pod\nnamespaces: [a]\ntransform: {keep: [spec.nodeName, status.phase]}\n",
    )
    .await;
    let key = ObjectKey::namespaced("a", &seeded_pod(7));
    let pod_full: serde_json::Value =
        serde_json::from_str(full.cache().get(&key).unwrap().json().as_str()).unwrap();
    let pod: serde_json::Value =
        serde_json::from_str(stripped.cache().get(&key).unwrap().json().as_str()).unwrap();
    assert!(pod_full["metadata"]["managedFields"].is_array());
    let mut expected = pod_full.clone();
    expected["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    assert_eq!(pod, expected, "only managedFields differ");
    let slim_pod: serde_json::Value =
        serde_json::from_str(slim.cache().get(&key).unwrap().json().as_str()).unwrap();
    let keys: BTreeMap<&str, _> = slim_pod
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    assert_eq!(
        keys.keys().copied().collect::<Vec<_>>(),
        ["apiVersion", "kind", "metadata", "spec", "status"]
    );
    assert_eq!(slim_pod["spec"], json!({"nodeName": "node-007"}));
    assert_eq!(slim_pod["status"], json!({"phase": "Running"}));
    let (full_bytes, stripped_bytes) = (full.cache().bytes(), stripped.cache().bytes());
    assert!(
        stripped_bytes * 10 < full_bytes * 8,
        "stripping managedFields saves over 20%: {stripped_bytes} vs {full_bytes}"
    );
    assert!(slim.cache().bytes() < stripped_bytes / 2);
}
