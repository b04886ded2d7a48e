//! Fault injection and accounting, through the Rust API and the admin endpoint.

mod common;

use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchParams};
use serde_json::{Value, json};
use trellis_devcluster::FaultRule;

#[tokio::test]
async fn injected_errors_hit_the_chosen_requests_only() {
    let (cluster, _) = start().await;
    let client = client_without_retries(&cluster);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    cluster
        .add_fault(
            FaultRule::error(Some("list"), Some("pods"), 429)
                .retry_after(3)
                .times(2),
        )
        .unwrap();
    let throttled = status(pods.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(
        (throttled.code, throttled.reason.as_str()),
        (429, "TooManyRequests")
    );
    assert_eq!(throttled.details.unwrap().retry_after_seconds, 3);
    assert!(
        cms.list(&ListParams::default()).await.is_ok(),
        "other resources unaffected"
    );
    assert!(
        pods.get("x").await.is_err_and(|e| status(e).code == 404),
        "other verbs unaffected"
    );
    assert_eq!(
        status(pods.list(&ListParams::default()).await.unwrap_err()).code,
        429
    );
    assert!(
        pods.list(&ListParams::default()).await.is_ok(),
        "the count is spent"
    );

    cluster
        .add_fault(FaultRule::error(Some("create"), None, 500).fraction(0.5))
        .unwrap();
    let mut codes = Vec::new();
    for i in 0..4 {
        let result = cms
            .create(
                &PostParams::default(),
                &configmap(&format!("c{i}"), json!({})),
            )
            .await;
        codes.push(result.map(|_| 201).unwrap_or_else(|e| status(e).code));
    }
    assert_eq!(codes, vec![201, 500, 201, 500]);
    let writes = cluster.writes();
    let logged: Vec<u16> = writes.iter().map(|w| w.code).collect();
    assert_eq!(
        logged,
        vec![201, 500, 201, 500],
        "failed writes are logged too"
    );
    assert_eq!(
        cms.list(&ListParams::default()).await.unwrap().items.len(),
        2,
        "failed creates stored nothing"
    );
    cluster.clear_faults();
}

#[tokio::test]
async fn injected_errors_carry_the_reason_the_server_gives_their_code() {
    let (cluster, _) = start().await;
    let client = client_without_retries(&cluster);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let created = create(&cms, &configmap("target", json!({}))).await;
    let patch = Patch::Merge(json!({"data": {"key": "changed"}}));
    for (code, reason) in [
        (409, "Conflict"),
        (404, "NotFound"),
        (403, "Forbidden"),
        (410, "Expired"),
        (422, "Invalid"),
        (429, "TooManyRequests"),
        (500, "InternalError"),
        (503, "ServiceUnavailable"),
        (504, "Timeout"),
    ] {
        cluster
            .add_fault(FaultRule::error(Some("patch"), Some("configmaps"), code).times(1))
            .unwrap();
        let error = status(
            cms.patch("target", &PatchParams::default(), &patch)
                .await
                .unwrap_err(),
        );
        assert_eq!((error.code, error.reason.as_str()), (code, reason));
        assert_eq!(
            error.status,
            Some(kube::core::response::StatusSummary::Failure)
        );
        cluster.clear_faults();
    }
    let unchanged = cms.get("target").await.unwrap();
    assert_eq!(
        unchanged.metadata.resource_version, created.metadata.resource_version,
        "no injected failure wrote anything"
    );

    // Retry-After travels as a header too: always on 429, on other codes when asked.
    let header_of = |code: u16, retry_after: Option<u32>| {
        let cluster = &cluster;
        let client = client.clone();
        async move {
            let mut rule = FaultRule::error(Some("get"), Some("configmaps"), code).times(1);
            if let Some(seconds) = retry_after {
                rule = rule.retry_after(seconds);
            }
            cluster.add_fault(rule).unwrap();
            let request = axum::http::Request::get("/api/v1/namespaces/default/configmaps/target")
                .body(kube::client::Body::empty())
                .unwrap();
            let response = client.send(request).await.unwrap();
            assert_eq!(response.status().as_u16(), code);
            cluster.clear_faults();
            response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string())
        }
    };
    assert_eq!(header_of(429, None).await.as_deref(), Some("1"));
    assert_eq!(header_of(429, Some(5)).await.as_deref(), Some("5"));
    assert_eq!(header_of(503, Some(2)).await.as_deref(), Some("2"));
    assert_eq!(header_of(503, None).await, None);
    assert_eq!(header_of(409, None).await, None);
}

#[tokio::test]
async fn kube_retries_transient_errors_transparently() {
    let (cluster, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    cluster
        .add_fault(FaultRule::error(Some("list"), Some("configmaps"), 503).times(2))
        .unwrap();
    assert!(cms.list(&ListParams::default()).await.is_ok());
    assert_eq!(
        cluster.accounting().requests("list", "configmaps"),
        3,
        "two failures, one success"
    );
}

#[tokio::test]
async fn latency_delays_requests() {
    let (cluster, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    cluster
        .add_fault(
            FaultRule::latency(Some("get"), Some("configmaps"), Duration::from_millis(300))
                .times(1),
        )
        .unwrap();
    let started = Instant::now();
    let _ = cms.get("x").await;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "at least the injected latency"
    );
}

#[tokio::test]
async fn accounting_shows_server_side_filters_cut_traffic() {
    let (cluster, client) = start().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    for i in 0..30 {
        let app = if i < 3 { "web" } else { "batch" };
        create(&pods, &pod(&format!("p{i}"), json!({"app": app}))).await;
    }
    cluster.reset_accounting();
    pods.list(&ListParams::default()).await.unwrap();
    let unfiltered = cluster.accounting().listed("pods");
    cluster.reset_accounting();
    pods.list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    let filtered = cluster.accounting().listed("pods");
    assert_eq!((unfiltered.objects, filtered.objects), (30, 3));
    assert!(
        filtered.bytes * 5 < unfiltered.bytes,
        "{filtered:?} vs {unfiltered:?}"
    );

    let rv = list_version(&pods).await;
    let mut web = watch_from(
        &pods,
        &WatchParams::default().labels("app=web").disable_bookmarks(),
        &rv,
    )
    .await;
    for i in 0..30 {
        merge(
            &pods,
            &format!("p{i}"),
            json!({"metadata": {"annotations": {"n": "1"}}}),
        )
        .await;
    }
    next_events(&mut web, 3).await;
    let snapshot = cluster.accounting();
    assert_eq!(
        snapshot.watched("pods").objects,
        3,
        "only matching events were sent"
    );
    assert_eq!(snapshot.requests("watch", "pods"), 1);
    assert_eq!(snapshot.requests("patch", "pods"), 30);
    assert_eq!(snapshot.open_watches("pods"), 1);
}

#[tokio::test]
async fn the_write_log_records_managers_and_user_agents_in_order() {
    let (cluster, _) = start().await;
    let mut config = kube::Config::new(cluster.url().parse().unwrap());
    config.headers.push((
        axum::http::header::USER_AGENT,
        axum::http::HeaderValue::from_static("elector/1.0 (test)"),
    ));
    let cms: Api<ConfigMap> = Api::namespaced(kube::Client::try_from(config).unwrap(), "default");
    cluster.reset_accounting();
    cms.create(
        &PostParams {
            field_manager: Some("leader-a".into()),
            ..Default::default()
        },
        &configmap("lock", json!({})),
    )
    .await
    .unwrap();
    merge(&cms, "lock", json!({"data": {"holder": "ua"}})).await;
    cms.patch("lock", &PatchParams::apply("leader-b").force(), &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "lock"}, "data": {"holder": "b"}})))
        .await
        .unwrap();
    let writes = cluster.writes();
    let summary: Vec<(u64, &str, &str, &str, u16)> = writes
        .iter()
        .map(|w| {
            (
                w.seq,
                w.verb.as_str(),
                w.name.as_str(),
                w.manager.as_str(),
                w.code,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, "create", "lock", "leader-a", 201),
            (1, "patch", "lock", "elector", 200),
            (2, "patch", "lock", "leader-b", 200)
        ],
        "without fieldManager the manager is the user agent's product, as the server derives it"
    );
    assert_eq!(writes[0].user_agent, "elector/1.0 (test)");
    assert!(writes[0].resource_version < writes[1].resource_version);
    assert!(writes[1].resource_version < writes[2].resource_version);
    assert!(
        writes[0].finished_micros <= writes[1].started_micros,
        "one after the other"
    );
}

#[tokio::test]
async fn the_admin_endpoint_drives_faults_accounting_and_seeding() {
    let (cluster, client) = start().await;
    let admin = |method: &str, path: &str, body: Value| {
        let client = client.clone();
        let request = raw_request(
            method,
            path,
            "application/json",
            serde_json::to_vec(&body).unwrap(),
        );
        async move { client.request::<Value>(request).await }
    };
    let seeded = admin("POST", "/admin/seed?namespace=load&count=25", json!(null))
        .await
        .unwrap();
    assert_eq!(seeded["created"], 25);
    assert_eq!(cluster.count("pods"), 25);
    admin("POST", "/admin/faults", json!({"verb": "get", "resource": "pods", "action": {"type": "error", "code": 503}, "count": 1}))
        .await
        .unwrap();
    let rules = admin("GET", "/admin/faults", json!(null)).await.unwrap();
    assert_eq!(rules[0]["rule"]["action"]["code"], 503);
    let bad = status(
        admin(
            "POST",
            "/admin/faults",
            json!({"action": {"type": "error", "code": 200}}),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(bad.code, 400);
    assert!(bad.message.contains("4xx or 5xx"));
    let bad = status(
        admin("POST", "/admin/watches/close?resource=gadgets", json!(null))
            .await
            .unwrap_err(),
    );
    assert!(bad.message.contains("\"gadgets\" is not served"));
    let pods: Api<Pod> = Api::namespaced(client_without_retries(&cluster), "load");
    assert_eq!(status(pods.get("x").await.unwrap_err()).code, 503);
    let accounting = admin("GET", "/admin/accounting", json!(null))
        .await
        .unwrap();
    assert_eq!(accounting["requests"]["get pods"], 1);
    admin("DELETE", "/admin/faults", json!(null)).await.unwrap();
    admin("DELETE", "/admin/accounting", json!(null))
        .await
        .unwrap();
    assert_eq!(cluster.accounting().requests("get", "pods"), 0);
    let expired = admin("POST", "/admin/history/expire?resource=pods", json!(null))
        .await
        .unwrap();
    assert!(expired["resourceVersion"].is_string());
    admin("POST", "/admin/watches/close", json!(null))
        .await
        .unwrap();
    assert_eq!(
        admin("GET", "/admin/writes", json!(null)).await.unwrap(),
        json!([])
    );
}
