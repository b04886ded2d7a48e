//! Both example plugins, run by the real host from the built-in dev config against the
//! built-in dev fixtures (what `trellis dev` shows), converge the cluster; a second pass over
//! the converged cluster writes nothing.

use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;
use trellis_e2e::cluster::Cluster;
use trellis_e2e::host::{Host, dev_host};
use trellis_e2e::metrics;
use trellis_e2e::objects::{hard, policy, quota, summary};
use trellis_e2e::wait::{PATIENCE, until};
use trellis_host::ops::dev::DEV_CONFIG;

const ENABLED: [&str; 3] = ["team-a", "team-b", "shop"];
const LEFT_ALONE: [&str; 2] = ["sandbox", "legacy"];

/// (namespace, deployment, ready, total, restarts, phases) as the fixtures make them.
fn expected_summaries() -> Vec<(&'static str, &'static str, serde_json::Value)> {
    vec![
        (
            "shop",
            "web",
            json!({"ready": 3, "total": 3, "phases": {"Running": 3}, "restarts": 2, "terminating": 0}),
        ),
        (
            "shop",
            "cart",
            json!({"ready": 1, "total": 2, "phases": {"Pending": 1, "Running": 1}, "restarts": 0, "terminating": 0}),
        ),
        // api-debug (tier: debug) is excluded by the Deployment's matchExpressions.
        (
            "team-a",
            "api",
            json!({"ready": 2, "total": 2, "phases": {"Running": 2}, "restarts": 1, "terminating": 0}),
        ),
        (
            "team-b",
            "worker",
            json!({"ready": 0, "total": 1, "phases": {"Running": 1}, "restarts": 7, "terminating": 0}),
        ),
        (
            "team-b",
            "batch",
            json!({"ready": 0, "total": 0, "phases": {}, "restarts": 0, "terminating": 0}),
        ),
    ]
}

async fn converged(cluster: &Cluster) {
    let client = &cluster.client;
    for namespace in ENABLED {
        until(&format!("defaults in {namespace}"), PATIENCE, || async {
            (policy(client, namespace).await.is_some() && quota(client, namespace).await.is_some())
                .then_some(())
        })
        .await;
    }
    for (namespace, name, expected) in expected_summaries() {
        until(
            &format!("summary of {namespace}/{name}"),
            PATIENCE,
            || async {
                (summary(client, namespace, name).await.as_ref() == Some(&expected)).then_some(())
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_plugins_converge_the_dev_fixtures_and_a_second_pass_writes_nothing() {
    let (cluster, host) = dev_host().await;
    converged(&cluster).await;
    let client = &cluster.client;

    // What the annotations asked for.
    let team_b = policy(client, "team-b").await.unwrap();
    assert_eq!(
        team_b.spec.unwrap().policy_types.unwrap(),
        vec!["Ingress".to_string()],
        "team-b denies ingress only"
    );
    let shop = policy(client, "shop").await.unwrap();
    assert_eq!(
        shop.spec.unwrap().policy_types.unwrap(),
        vec!["Egress".to_string()]
    );
    let hard_b = hard(&quota(client, "team-b").await.unwrap());
    assert!(hard_b.contains(&("pods".into(), "20".into())), "{hard_b:?}");
    assert!(
        hard_b.contains(&("count/deployments.apps".into(), "10".into())),
        "{hard_b:?}"
    );
    assert!(
        !hard_b.iter().any(|(k, _)| k == "services.nodeports"),
        "{hard_b:?}"
    );
    for namespace in LEFT_ALONE {
        assert!(
            policy(client, namespace).await.is_none(),
            "{namespace} was left alone"
        );
        assert!(
            quota(client, namespace).await.is_none(),
            "{namespace} was left alone"
        );
    }

    // The Events `trellis dev` tells users to look at: one `DefaultsCreated` per Namespace
    // given defaults, recorded by the plugin as its reporting controller (events.k8s.io/v1; a
    // Namespace is cluster-scoped, so its Events go to `default`).
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    for namespace in ENABLED {
        let event = until(
            &format!("the DefaultsCreated Event of {namespace}"),
            PATIENCE,
            || async {
                events
                    .list(&ListParams::default())
                    .await
                    .ok()?
                    .items
                    .into_iter()
                    .find(|e| {
                        e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(namespace)
                            && e.reason.as_deref() == Some("DefaultsCreated")
                    })
            },
        )
        .await;
        assert_eq!(
            event.reporting_controller.as_deref(),
            Some("trellis.dev/namespace-defaults"),
            "{event:?}"
        );
        assert_eq!(event.type_.as_deref(), Some("Normal"), "{event:?}");
        let note = event.note.unwrap_or_default();
        assert!(
            note.contains("created NetworkPolicy"),
            "{namespace}: {note}"
        );
    }

    // The host's write counters agree with what reached the server.
    let settled_reconciles: Vec<(String, u64)> = host
        .stats()
        .plugins
        .iter()
        .map(|p| (p.name.clone(), p.reconciles))
        .collect();
    for (plugin, reconciles) in &settled_reconciles {
        host.settled(plugin, *reconciles).await;
    }
    let text = host.metrics();
    for plugin in ["namespace-defaults", "deployment-summary"] {
        let issued = metrics::sum(
            &text,
            "trellis_writes_total",
            &[("plugin", plugin), ("result", "issued")],
        );
        let reached = cluster
            .writes_by(&format!("trellis-{plugin}"))
            .iter()
            .filter(|w| w.code < 300)
            .count();
        assert_eq!(
            issued as usize, reached,
            "{plugin}: writes issued vs. write log"
        );
        assert!(reached > 0, "{plugin} wrote something");
    }
    let shutdown = host.shutdown().await;
    assert!(shutdown.drained(), "{shutdown:?}");

    // A second pass: a new host over the converged cluster reconciles every object again and
    // writes nothing.
    let writes_before = cluster.server.writes().len();
    let second = Host::start(&cluster, DEV_CONFIG).await;
    let namespaces = cluster.server.count("namespaces") as u64;
    let deployments = cluster.server.count("deployments.apps") as u64;
    second.settled("namespace-defaults", namespaces).await;
    second.settled("deployment-summary", deployments).await;
    let text = second.metrics();
    let written: Vec<_> = cluster.server.writes()[writes_before..]
        .iter()
        .filter(|w| w.manager.starts_with("trellis-"))
        .map(|w| format!("{} {} {}/{}", w.manager, w.verb, w.namespace, w.name))
        .collect();
    assert!(written.is_empty(), "the second pass wrote: {written:?}");
    for plugin in ["namespace-defaults", "deployment-summary"] {
        let issued = metrics::sum(
            &text,
            "trellis_writes_total",
            &[("plugin", plugin), ("result", "issued")],
        );
        assert_eq!(issued, 0.0, "{plugin} issued writes in the second pass");
        let errors = second.stats().plugin(plugin).unwrap().errors;
        assert_eq!(errors, 0, "{plugin} failed reconciles in the second pass");
    }
    let elided = metrics::sum(&text, "trellis_writes_total", &[("result", "elided")]);
    eprintln!(
        "second pass: writes elided by the host: {elided} (the example plugins skip no-op writes themselves)"
    );
    converged(&cluster).await;
    assert!(second.shutdown().await.drained());
}
