//! The host follows changes: relabelled, updated and deleted objects, and secondary objects
//! (Pods) reaching their primary's key (the Deployment) through the watch's mapping.

use serde_json::json;
use trellis_e2e::host::dev_host;
use trellis_e2e::objects::{
    DEFAULTS_LABEL, annotate_namespace, delete_pod, enable_defaults, hard, label_namespace,
    patch_pod_status, policy, quota, summary, until_policy,
};
use trellis_e2e::wait::{PATIENCE, until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_annotations_deletes_and_pod_changes_are_followed() {
    let (cluster, host) = dev_host().await;
    let client = &cluster.client;
    until_policy(client, "team-a", "defaults in team-a").await;

    // Relabel: sandbox gains the label, team-a loses it.
    enable_defaults(client, "sandbox").await;
    label_namespace(client, "team-a", DEFAULTS_LABEL, None).await;
    until("defaults created in sandbox", PATIENCE, || async {
        (policy(client, "sandbox").await.is_some() && quota(client, "sandbox").await.is_some())
            .then_some(())
    })
    .await;
    until("defaults removed from team-a", PATIENCE, || async {
        (policy(client, "team-a").await.is_none() && quota(client, "team-a").await.is_none())
            .then_some(())
    })
    .await;

    // Update: a new quota annotation reaches the quota.
    annotate_namespace(client, "sandbox", "defaults.trellis.dev/quota", "pods=7").await;
    until("sandbox's quota updated", PATIENCE, || async {
        let quota = quota(client, "sandbox").await?;
        hard(&quota)
            .contains(&("pods".to_string(), "7".to_string()))
            .then_some(())
    })
    .await;

    // Secondary changes: a Pod deleted, another one restarting, reach their Deployment.
    until("cart's first summary", PATIENCE, || async {
        summary(client, "shop", "cart").await.map(|_| ())
    })
    .await;
    delete_pod(client, "shop", "cart-5b8c7d9f4-q2x7p").await;
    patch_pod_status(
        client,
        "shop",
        "cart-5b8c7d9f4-h8d2s",
        json!({"containerStatuses": [{"name": "cart", "image": "registry.example/cart:2.4.1",
            "imageID": "", "ready": true, "restartCount": 4}]}),
    )
    .await;
    let expected =
        json!({"ready": 1, "total": 1, "phases": {"Running": 1}, "restarts": 4, "terminating": 0});
    until("cart's summary follows its Pods", PATIENCE, || async {
        (summary(client, "shop", "cart").await? == expected).then_some(())
    })
    .await;
    assert!(host.shutdown().await.drained());
}
