//! Conformance with the real kube client: get, list (pagination, resourceVersion semantics),
//! label and field selectors, metadata-only reads.

mod common;

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, VersionMatch};
use serde_json::json;

#[tokio::test]
async fn objects_round_trip_through_the_kube_client() {
    let (cluster, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let created = create(&api, &configmap("a", json!({"app": "web"}))).await;
    let uid = created.metadata.uid.clone().unwrap();
    assert_eq!(created.metadata.namespace.as_deref(), Some("default"));
    let rv: u64 = created
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(rv, cluster.resource_version());
    let got = api.get("a").await.unwrap();
    assert_eq!(got.metadata.uid.as_deref(), Some(uid.as_str()));
    assert_eq!(got.data.as_ref().unwrap()["key"], "a");
    let missing = status(api.get("nope").await.unwrap_err());
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.message, "configmaps \"nope\" not found");

    let mut changed = got.clone();
    changed.data = Some([("key".to_string(), "b".to_string())].into());
    let updated = api
        .replace("a", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert!(updated.metadata.resource_version > created.metadata.resource_version);
    // The stale version now conflicts.
    let conflict = status(
        api.replace("a", &PostParams::default(), &changed)
            .await
            .unwrap_err(),
    );
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));

    api.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        0
    );
}

#[tokio::test]
async fn pagination_is_a_consistent_snapshot_across_concurrent_writes() {
    let (_cluster, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..10 {
        create(&api, &configmap(&format!("cm-{i}"), json!({}))).await;
    }
    let first = api.list(&ListParams::default().limit(4)).await.unwrap();
    assert_eq!(names(&first.items), vec!["cm-0", "cm-1", "cm-2", "cm-3"]);
    let snapshot = first.metadata.resource_version.clone().unwrap();
    let token = first.metadata.continue_.clone().expect("more pages");

    // Writes between pages: a change, a deletion and an addition in the unread part.
    merge(&api, "cm-5", json!({"data": {"key": "changed"}})).await;
    api.delete("cm-6", &DeleteParams::default()).await.unwrap();
    create(&api, &configmap("cm-55", json!({}))).await;

    let mut rest = Vec::new();
    let mut token = Some(token);
    while let Some(t) = token {
        let page = api
            .list(&ListParams::default().limit(4).continue_token(&t))
            .await
            .unwrap();
        assert_eq!(
            page.metadata.resource_version.as_deref(),
            Some(snapshot.as_str())
        );
        rest.extend(page.items);
        token = page.metadata.continue_.filter(|t| !t.is_empty());
    }
    assert_eq!(
        names(&rest),
        vec!["cm-4", "cm-5", "cm-6", "cm-7", "cm-8", "cm-9"],
        "the snapshot of the first page, not the present"
    );
    assert_eq!(rest[1].data.as_ref().unwrap()["key"], "cm-5", "old content");

    let now = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(now.items.len(), 10);
    assert!(names(&now.items).contains(&"cm-55".to_string()));
    assert!(!names(&now.items).contains(&"cm-6".to_string()));
}

#[tokio::test]
async fn continue_tokens_outside_the_history_window_are_410() {
    let (cluster, client) = start_with_history(5).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..4 {
        create(&api, &configmap(&format!("cm-{i}"), json!({}))).await;
    }
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    let token = first.metadata.continue_.unwrap();
    for i in 0..6 {
        merge(&api, "cm-0", json!({"data": {"n": i.to_string()}})).await;
    }
    let gone = status(
        api.list(&ListParams::default().limit(2).continue_token(&token))
            .await
            .unwrap_err(),
    );
    assert_eq!((gone.code, gone.reason.as_str()), (410, "Expired"));
    assert!(
        gone.message
            .starts_with("The provided continue parameter is too old")
    );

    // The expire-history fault has the same effect on a fresh token.
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    cluster.expire_history(Some("configmaps"));
    let gone = status(
        api.list(
            &ListParams::default()
                .limit(2)
                .continue_token(&first.metadata.continue_.unwrap()),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(gone.code, 410);
    // A new list works.
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        4
    );
}

#[tokio::test]
async fn resource_version_semantics() {
    let (cluster, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    create(&api, &configmap("a", json!({}))).await;
    let at = list_version(&api).await;
    create(&api, &configmap("b", json!({}))).await;

    let exact = api
        .list(&ListParams::default().at(&at).matching(VersionMatch::Exact))
        .await
        .unwrap();
    assert_eq!(names(&exact.items), vec!["a"], "as of the older version");
    assert_eq!(
        exact.metadata.resource_version.as_deref(),
        Some(at.as_str())
    );
    let not_older = api
        .list(
            &ListParams::default()
                .at(&at)
                .matching(VersionMatch::NotOlderThan),
        )
        .await
        .unwrap();
    assert_eq!(names(&not_older.items), vec!["a", "b"]);
    // kube leaves resourceVersion=0 out when a limit is set (the server would ignore the
    // limit); ask directly.
    let any = get_json(
        &client,
        "/api/v1/namespaces/default/configmaps?resourceVersion=0&limit=1",
    )
    .await;
    assert_eq!(
        any["items"].as_array().unwrap().len(),
        2,
        "resourceVersion=0 ignores limit, like the watch cache"
    );

    let api: Api<ConfigMap> = Api::namespaced(client_without_retries(&cluster), "default");
    let future = status(
        api.list(
            &ListParams::default()
                .at("999999")
                .matching(VersionMatch::NotOlderThan),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((future.code, future.reason.as_str()), (504, "Timeout"));
    assert!(future.message.starts_with("Too large resource version"));
}

#[tokio::test]
async fn label_selectors_in_full_syntax() {
    let (_cluster, client) = start().await;
    let api: Api<Pod> = Api::namespaced(client, "default");
    let labelled = [
        ("web-prod", json!({"app": "web", "env": "prod"})),
        ("web-dev", json!({"app": "web", "env": "dev"})),
        (
            "db-prod",
            json!({"app": "db", "env": "prod", "legacy": "true"}),
        ),
        ("bare", json!({})),
    ];
    for (name, labels) in labelled {
        create(&api, &pod(name, labels)).await;
    }
    let select = |selector: &'static str| {
        let api = api.clone();
        async move {
            let mut found = names(
                &api.list(&ListParams::default().labels(selector))
                    .await
                    .unwrap()
                    .items,
            );
            found.sort();
            found
        }
    };
    assert_eq!(select("app=web").await, vec!["web-dev", "web-prod"]);
    assert_eq!(select("app==web,env=prod").await, vec!["web-prod"]);
    assert_eq!(select("app!=web").await, vec!["bare", "db-prod"]);
    assert_eq!(
        select("env in (prod,staging)").await,
        vec!["db-prod", "web-prod"]
    );
    assert_eq!(select("env notin (prod)").await, vec!["bare", "web-dev"]);
    assert_eq!(select("legacy").await, vec!["db-prod"]);
    assert_eq!(select("!legacy,app").await, vec!["web-dev", "web-prod"]);

    let bad = status(
        api.list(&ListParams::default().labels("app in (web"))
            .await
            .unwrap_err(),
    );
    assert_eq!((bad.code, bad.reason.as_str()), (400, "BadRequest"));
    assert!(
        bad.message.starts_with("unable to parse requirement"),
        "{}",
        bad.message
    );
}

#[tokio::test]
async fn field_selectors_per_kind() {
    let (_cluster, client) = start().await;
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    for name in ["a", "b", "c"] {
        create(&api, &pod(name, json!({}))).await;
    }
    merge(&api, "a", json!({"spec": {"nodeName": "node-1"}})).await;
    api.patch_status(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running", "podIP": "10.0.0.2"}})),
    )
    .await
    .unwrap();
    let select = |selector: &'static str| {
        let api = api.clone();
        async move {
            names(
                &api.list(&ListParams::default().fields(selector))
                    .await
                    .unwrap()
                    .items,
            )
        }
    };
    assert_eq!(select("spec.nodeName=node-1").await, vec!["a"]);
    assert_eq!(select("status.phase=Running").await, vec!["b"]);
    assert_eq!(
        select("status.phase!=Running").await,
        vec!["a", "c"],
        "created pods are Pending"
    );
    assert_eq!(select("status.podIP=10.0.0.2").await, vec!["b"]);
    assert_eq!(select("metadata.name=c").await, vec!["c"]);
    assert_eq!(
        select("metadata.namespace=default,spec.schedulerName=default-scheduler")
            .await
            .len(),
        3
    );
    assert_eq!(
        select("spec.restartPolicy=Always").await.len(),
        3,
        "defaulted"
    );

    let bad = status(
        api.list(&ListParams::default().fields("spec.containers=x"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (bad.code, bad.message.as_str()),
        (400, "field label not supported: spec.containers")
    );
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let bad = status(
        cms.list(&ListParams::default().fields("status.phase=x"))
            .await
            .unwrap_err(),
    );
    assert_eq!(bad.message, "field label not supported: status.phase");
}

#[tokio::test]
async fn metadata_only_lists() {
    let (cluster, client) = start().await;
    cluster.seed_pods("default", 20).unwrap();
    let api: Api<Pod> = Api::namespaced(client, "default");
    let full = api.list(&ListParams::default()).await.unwrap();
    let before = cluster.accounting().listed("pods");
    let meta = api.list_metadata(&ListParams::default()).await.unwrap();
    let after = cluster.accounting().listed("pods");
    assert_eq!(meta.items.len(), 20);
    assert_eq!(meta.items[0].metadata.name, full.items[0].metadata.name);
    assert!(meta.items.iter().all(|m| m.metadata.uid.is_some()));
    // Metadata (managedFields included, as the real server sends them) without spec and
    // status.
    assert!(
        (after.bytes - before.bytes) * 10 < before.bytes * 7,
        "metadata lists are smaller: {} vs {}",
        after.bytes - before.bytes,
        before.bytes
    );
}

#[tokio::test]
async fn list_all_namespaces_and_cluster_scope() {
    let (_cluster, client) = start().await;
    namespace(&client, "other").await;
    let in_default: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let in_other: Api<ConfigMap> = Api::namespaced(client.clone(), "other");
    create(&in_default, &configmap("x", json!({}))).await;
    create(&in_other, &configmap("x", json!({}))).await;
    let all: Api<ConfigMap> = Api::all(client.clone());
    let listed = all.list(&ListParams::default()).await.unwrap();
    let namespaces: Vec<_> = listed
        .items
        .iter()
        .map(|o| o.metadata.namespace.clone().unwrap())
        .collect();
    assert_eq!(namespaces, vec!["default", "other"]);
    let only_other = all
        .list(&ListParams::default().fields("metadata.namespace=other"))
        .await
        .unwrap();
    assert_eq!(only_other.items.len(), 1);
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
    let mut ns_names = names(&ns.list(&ListParams::default()).await.unwrap().items);
    ns_names.sort();
    assert_eq!(
        ns_names,
        vec![
            "default",
            "kube-node-lease",
            "kube-public",
            "kube-system",
            "other"
        ]
    );
}
