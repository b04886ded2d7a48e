//! Two points of issue 5 that `informer.rs` does not cover, against the devcluster with the
//! real kube client:
//! * a custom resource kind (a CRD created at runtime) is resolved by discovery, watched with
//!   a field selector the server evaluates, cached and indexed like a built-in kind;
//! * the informer's metrics count watch events by type, follow the cache's size, and record
//!   the sync duration.
//!
//! No assertion is about speed: waits poll a condition with a generous bound that only proves
//! the condition is reached at all.

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::json;
use trellis_devcluster::DevCluster;
use trellis_host::cache::ObjectKey;
use trellis_host::informer::Priority;

use support::cluster::{crd, create_crd, devcluster};
use support::informers::{cached_names, subscribe, watching};
use support::metrics::{CONFIGMAP_KIND, configmap_sample, metrics_text, sample};
use support::wait::eventually;

mod support;

async fn cluster() -> DevCluster {
    devcluster(&["default", "a", "b"]).await
}

// ---------------------------------------------------------------------------------------------
// Custom resources

fn widget_crd() -> CustomResourceDefinition {
    let version = json!({
        "schema": {"openAPIV3Schema": {"type": "object", "properties": {
            "spec": {"type": "object", "properties": {"color": {"type": "string"}}}
        }}},
        "selectableFields": [{"jsonPath": ".spec.color"}]
    });
    crd("example.com", "Widget", "widgets", version)
}

async fn create_widget(api: &Api<DynamicObject>, name: &str, color: &str) {
    let widget: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": name}, "spec": {"color": color}
    }))
    .unwrap();
    api.create(&PostParams::default(), &widget)
        .await
        .expect("create widget");
}

/// A kind that exists only because a CRD was created at runtime: discovery resolves it, the
/// server filters it by a CRD-declared selectable field, and the cache indexes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_resource_kind_is_resolved_by_discovery_filtered_and_indexed() {
    let cluster = cluster().await;
    let client = cluster.client().unwrap();
    create_crd(&client, &widget_crd()).await;
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"));
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "a", &resource);
    create_widget(&widgets, "small", "red").await;
    create_widget(&widgets, "big", "blue").await;
    create_widget(&widgets, "tiny", "red").await;

    let (informers, _registry, all, all_sink) = watching(client.clone(), "apiVersion: example.com/v1\nkind: Widget\nnamespaces: [a]\nindexes: [{name: color, path: spec.color}]\n").await;
    assert_eq!(cached_names(&all), ["a/big", "a/small", "a/tiny"]);
    let red: Vec<String> = all
        .cache()
        .lookup("color", "red")
        .unwrap()
        .iter()
        .map(|o| o.key().to_string())
        .collect();
    assert_eq!(red, ["a/small", "a/tiny"]);
    let stored: serde_json::Value = serde_json::from_str(
        all.cache()
            .get(&ObjectKey::namespaced("a", "small"))
            .unwrap()
            .json()
            .as_str(),
    )
    .unwrap();
    assert_eq!(stored["apiVersion"], "example.com/v1");
    assert_eq!(stored["kind"], "Widget");
    assert_eq!(stored["spec"]["color"], "red");
    assert!(
        all_sink.take().iter().all(|(_, p)| *p == Priority::Low),
        "initial list is low priority"
    );

    cluster.reset_accounting();
    let (blue, _) = subscribe(
        &informers,
        "p",
        "apiVersion: example.com/v1\nkind: Widget\nnamespaces: [a]\nfieldSelector: spec.color=blue\n",
    )
    .await;
    assert_eq!(cached_names(&blue), ["a/big"]);
    let accounting = cluster.accounting();
    let served = accounting.listed("widgets.example.com").objects
        + accounting.watched("widgets.example.com").objects;
    assert_eq!(
        served, 1,
        "the server applied the CRD's selectable field: {accounting:#?}"
    );

    create_widget(&widgets, "fresh", "blue").await;
    eventually("the new widget in both caches", || {
        (blue.cache().len() == 2 && all.cache().len() == 4).then_some(())
    })
    .await;
    assert_eq!(all_sink.take(), [("a/fresh".to_string(), Priority::Normal)]);
}

// ---------------------------------------------------------------------------------------------
// Metrics

/// Objects and bytes per cache, watch events by type and the sync duration follow what the
/// informer did. (Relists and watch restarts are covered in `informer.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_events_by_type_follow_the_cache_size_and_record_the_sync() {
    let cluster = cluster().await;
    let client = cluster.client().unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "a");
    let config_map = |name: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}, "data": {"v": "1"}})).unwrap()
    };
    for i in 0..3 {
        api.create(&PostParams::default(), &config_map(&format!("cm-{i}")))
            .await
            .unwrap();
    }
    let (_informers, registry, subscription, _) = watching(
        client.clone(),
        "apiVersion: v1\nkind: ConfigMap\nnamespaces: [a]\n",
    )
    .await;
    let events = |text: &str, r#type: &str| {
        sample(
            text,
            "trellis_informer_watch_events_total",
            &[CONFIGMAP_KIND, &format!("type=\"{type}\"")],
        )
    };
    let text = metrics_text(&registry);
    assert_eq!(events(&text, "Initial"), Some(3.0), "{text}");
    for other in ["Added", "Modified", "Deleted"] {
        assert_eq!(events(&text, other), Some(0.0), "{other}: {text}");
    }
    assert_eq!(
        configmap_sample(&text, "trellis_informer_cache_objects"),
        Some(3.0)
    );
    let bytes = configmap_sample(&text, "trellis_informer_cache_bytes").unwrap();
    assert_eq!(bytes, subscription.cache().bytes() as f64);
    assert!(bytes > 0.0);
    assert_eq!(
        configmap_sample(&text, "trellis_informer_sync_duration_seconds_count"),
        Some(1.0),
        "one sync recorded: {text}"
    );

    api.create(&PostParams::default(), &config_map("cm-3"))
        .await
        .unwrap();
    api.patch(
        "cm-0",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "a much longer value than before"}})),
    )
    .await
    .unwrap();
    api.delete("cm-1", &DeleteParams::default()).await.unwrap();
    api.delete("cm-2", &DeleteParams::default()).await.unwrap();
    // The cache gauges are set after the event is counted: wait for both.
    let text = eventually("the last delete to be counted and applied", || {
        let text = metrics_text(&registry);
        let done = events(&text, "Deleted") == Some(2.0)
            && configmap_sample(&text, "trellis_informer_cache_objects") == Some(2.0);
        done.then_some(text)
    })
    .await;
    assert_eq!(events(&text, "Added"), Some(1.0), "{text}");
    assert_eq!(events(&text, "Modified"), Some(1.0), "{text}");
    assert_eq!(events(&text, "Initial"), Some(3.0), "{text}");
    assert_eq!(
        configmap_sample(&text, "trellis_informer_cache_objects"),
        Some(2.0)
    );
    let after = configmap_sample(&text, "trellis_informer_cache_bytes").unwrap();
    assert_eq!(after, subscription.cache().bytes() as f64);
    assert!(
        after < bytes,
        "two objects out, one in: {after} < {bytes} bytes"
    );
    assert_eq!(
        configmap_sample(&text, "trellis_informer_sync_duration_seconds_count"),
        Some(1.0),
        "later events are not syncs"
    );
}
