//! Conformance with the real kube client: watches (resourceVersion, history window and 410,
//! bookmarks, timeouts, streaming lists, selectors) and kube-runtime's watcher on top.

mod common;

use std::time::Duration;

use common::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use serde_json::json;
use trellis_devcluster::DevClusterOptions;

#[tokio::test]
async fn watch_from_a_resource_version_replays_what_followed() {
    let (_cluster, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let rv = list_version(&api).await;
    create(&api, &configmap("a", json!({}))).await;
    merge(&api, "a", json!({"data": {"x": "1"}})).await;
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let mut stream = watch_from(&api, &WatchParams::default().disable_bookmarks(), &rv).await;
    let events = next_events(&mut stream, 3).await;
    let seen = describe_all(&events);
    assert_eq!(seen, vec!["ADDED a", "MODIFIED a", "DELETED a"]);
    let versions: Vec<u64> = events
        .iter()
        .map(|e| match e {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => o
                .metadata
                .resource_version
                .as_ref()
                .unwrap()
                .parse()
                .unwrap(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");

    // Live events follow.
    create(&api, &configmap("b", json!({}))).await;
    assert_eq!(describe(&next_events(&mut stream, 1).await[0]), "ADDED b");
}

#[tokio::test]
async fn watch_without_a_version_starts_with_the_current_objects() {
    let (_cluster, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    create(&api, &configmap("a", json!({}))).await;
    create(&api, &configmap("b", json!({}))).await;
    let mut stream = watch_from(&api, &WatchParams::default().disable_bookmarks(), "0").await;
    let seen = describe_all(&next_events(&mut stream, 2).await);
    assert_eq!(seen, vec!["ADDED a", "ADDED b"]);
}

#[tokio::test]
async fn too_old_resource_versions_get_410_gone() {
    let (cluster, client) = start_with_history(3).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let old = list_version(&api).await;
    for i in 0..5 {
        create(&api, &configmap(&format!("c{i}"), json!({}))).await;
    }
    let mut stream = watch_from(&api, &WatchParams::default(), &old).await;
    match &next_events(&mut stream, 1).await[0] {
        WatchEvent::Error(e) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
            assert!(
                e.message.starts_with("too old resource version"),
                "{}",
                e.message
            );
        }
        other => panic!("expected 410, got {}", describe(other)),
    }

    // The fault does the same for a version that is still in the window.
    let recent = list_version(&api).await;
    cluster.expire_history(Some("configmaps"));
    let mut stream = watch_from(&api, &WatchParams::default(), &recent).await;
    assert_eq!(describe(&next_events(&mut stream, 1).await[0]), "ERROR 410");
    // A fresh list gives a version to watch from.
    let fresh = list_version(&api).await;
    let mut stream = watch_from(&api, &WatchParams::default().disable_bookmarks(), &fresh).await;
    create(&api, &configmap("after", json!({}))).await;
    assert_eq!(
        describe(&next_events(&mut stream, 1).await[0]),
        "ADDED after"
    );
}

#[tokio::test]
async fn selectors_apply_to_watch_events_and_transitions() {
    let (_cluster, client) = start().await;
    let api: Api<Pod> = Api::namespaced(client, "default");
    let rv = list_version(&api).await;
    let params = WatchParams::default().labels("app=web").disable_bookmarks();
    let mut stream = watch_from(&api, &params, &rv).await;
    create(&api, &pod("other", json!({"app": "db"}))).await;
    create(&api, &pod("web", json!({"app": "web"}))).await;
    let relabel = |app: &'static str| json!({"metadata": {"labels": {"app": app}}});
    merge(&api, "web", relabel("db")).await; // leaves
    merge(&api, "other", relabel("web")).await; // enters
    merge(
        &api,
        "other",
        json!({"metadata": {"annotations": {"a": "b"}}}),
    )
    .await;
    api.delete("other", &DeleteParams::default()).await.unwrap();
    api.delete("web", &DeleteParams::default()).await.unwrap(); // not matching: unseen
    let events = next_events(&mut stream, 5).await;
    let seen = describe_all(&events);
    assert_eq!(
        seen,
        vec![
            "ADDED web",
            "DELETED web",
            "ADDED other",
            "MODIFIED other",
            "DELETED other"
        ]
    );
    // The DELETED for leaving carries the last matching state at the change's version.
    if let WatchEvent::Deleted(p) = &events[1] {
        assert_eq!(p.metadata.labels.as_ref().unwrap()["app"], "web");
    }

    let fields = WatchParams::default()
        .fields("status.phase=Running")
        .disable_bookmarks();
    let rv = list_version(&api).await;
    let mut running = watch_from(&api, &fields, &rv).await;
    create(&api, &pod("p", json!({}))).await;
    api.patch_status(
        "p",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running"}})),
    )
    .await
    .unwrap();
    assert_eq!(
        describe(&next_events(&mut running, 1).await[0]),
        "ADDED p",
        "enters when it starts running"
    );
}

#[tokio::test]
async fn streaming_lists_end_with_the_initial_events_bookmark() {
    let (_cluster, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for name in ["a", "b", "c"] {
        create(&api, &configmap(name, json!({}))).await;
    }
    let mut stream = watch_from(&api, &WatchParams::streaming_lists(), "0").await;
    let events = next_events(&mut stream, 4).await;
    let seen = describe_all(&events);
    assert_eq!(seen, vec!["ADDED a", "ADDED b", "ADDED c", "BOOKMARK"]);
    let WatchEvent::Bookmark(bookmark) = &events[3] else {
        unreachable!()
    };
    assert_eq!(
        bookmark
            .metadata
            .annotations
            .get("k8s.io/initial-events-end")
            .map(String::as_str),
        Some("true")
    );
    create(&api, &configmap("d", json!({}))).await;
    assert_eq!(describe(&next_events(&mut stream, 1).await[0]), "ADDED d");
}

#[tokio::test]
async fn idle_watches_get_bookmarks_and_end_at_their_timeout() {
    let (_cluster, client) = start_with(DevClusterOptions {
        bookmark_interval: Duration::from_millis(100),
        ..DevClusterOptions::default()
    })
    .await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let rv = list_version(&api).await;
    let mut stream = watch_from(&api, &WatchParams::default().timeout(5), &rv).await;
    let events = next_events(&mut stream, 2).await;
    assert!(events.iter().all(|e| matches!(e, WatchEvent::Bookmark(_))));
    if let WatchEvent::Bookmark(b) = &events[0] {
        assert!(b.metadata.resource_version.parse::<u64>().unwrap() >= rv.parse::<u64>().unwrap());
    }
    // The server ends the watch at timeoutSeconds; a generous bound proves it ends.
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(event) = stream.try_next().await.unwrap() {
            assert!(matches!(event, WatchEvent::Bookmark(_)));
        }
    })
    .await;
    assert!(ended.is_ok(), "the watch ended");
}

#[tokio::test]
async fn kube_runtime_watcher_lists_and_follows_both_ways() {
    let (_cluster, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..7 {
        create(&api, &configmap(&format!("cm-{i}"), json!({"team": "a"}))).await;
    }
    for config in [
        watcher::Config::default().page_size(3),
        watcher::Config::default().streaming_lists(),
    ] {
        let mut events = watcher(api.clone(), config.labels("team=a")).boxed();
        let mut initial = Vec::new();
        loop {
            let event = tokio::time::timeout(Duration::from_secs(20), events.try_next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            match event {
                watcher::Event::InitApply(o) => initial.push(o.metadata.name.unwrap()),
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
        assert_eq!(initial.len(), 7);
    }
}

#[tokio::test]
async fn metadata_watches_carry_partial_objects() {
    let (_cluster, client) = start().await;
    let api: Api<Pod> = Api::namespaced(client, "default");
    let rv = list_version(&api).await;
    let mut stream = api
        .watch_metadata(&WatchParams::default().disable_bookmarks(), &rv)
        .await
        .unwrap()
        .boxed();
    create(&api, &pod("m", json!({"app": "x"}))).await;
    match &next_events(&mut stream, 1).await[0] {
        WatchEvent::Added(meta) => {
            assert_eq!(meta.metadata.name.as_deref(), Some("m"));
            assert_eq!(meta.types.as_ref().unwrap().kind, "PartialObjectMetadata");
        }
        other => panic!("unexpected {}", describe(other)),
    }
}

#[tokio::test]
async fn closing_watches_ends_streams_and_clients_resume() {
    let (cluster, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let rv = list_version(&api).await;
    let mut stream = watch_from(&api, &WatchParams::default().disable_bookmarks(), &rv).await;
    wait_until("the server counts the watch as open", || {
        cluster.accounting().open_watches("configmaps") != 0
    })
    .await;
    cluster.close_watches(Some("configmaps"));
    let end = tokio::time::timeout(Duration::from_secs(20), stream.try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(end.is_none(), "the stream ended");
    wait_until("the open-watch gauge drops", || {
        cluster.accounting().open_watches("configmaps") == 0
    })
    .await;
    // Resuming from the last version loses nothing.
    create(&api, &configmap("while-away", json!({}))).await;
    let mut resumed = watch_from(&api, &WatchParams::default().disable_bookmarks(), &rv).await;
    assert_eq!(
        describe(&next_events(&mut resumed, 1).await[0]),
        "ADDED while-away"
    );
}
