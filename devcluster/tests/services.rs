//! What the server adds to Services, with the real kube client: cluster IPs and node ports
//! allocated on create, kept on update, refused when taken, out of range or changed, freed on
//! delete; defaults for type, session affinity, traffic policies and target ports.

mod common;

use common::*;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};

fn service(name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec
    }))
    .unwrap()
}

fn cluster_ip(service: &Service) -> String {
    service
        .spec
        .as_ref()
        .unwrap()
        .cluster_ip
        .clone()
        .unwrap_or_default()
}

#[tokio::test]
async fn services_get_addresses_ports_and_defaults_like_on_a_real_server() {
    let (_cluster, client) = start().await;
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let web = create(
        &api,
        &service(
            "web",
            json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}),
        ),
    )
    .await;
    let spec = web.spec.clone().unwrap();
    let ip = cluster_ip(&web);
    assert!(ip.starts_with("10.96."), "{ip}");
    assert_eq!(spec.cluster_ips, Some(vec![ip.clone()]));
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec.session_affinity.as_deref(), Some("None"));
    assert_eq!(spec.internal_traffic_policy.as_deref(), Some("Cluster"));
    assert_eq!(spec.ip_families, Some(vec!["IPv4".to_string()]));
    assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));
    let port = &spec.ports.unwrap()[0];
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    assert_eq!(
        port.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(80))
    );

    let api_svc = create(&api, &service("api", json!({"ports": [{"port": 443}]}))).await;
    assert_ne!(cluster_ip(&api_svc), ip, "each Service its own address");

    let edge = create(
        &api,
        &service(
            "edge",
            json!({"type": "NodePort", "ports": [{"port": 80}, {"port": 81, "nodePort": 31000}]}),
        ),
    )
    .await;
    let ports = edge.spec.as_ref().unwrap().ports.clone().unwrap();
    let allocated = ports[0].node_port.unwrap();
    assert!((30000..=32767).contains(&allocated), "{allocated}");
    assert_eq!(ports[1].node_port, Some(31000));
    assert_eq!(
        edge.spec
            .as_ref()
            .unwrap()
            .external_traffic_policy
            .as_deref(),
        Some("Cluster")
    );

    let headless = create(
        &api,
        &service(
            "db",
            json!({"clusterIP": "None", "ports": [{"port": 5432}]}),
        ),
    )
    .await;
    assert_eq!(cluster_ip(&headless), "None");
    let external = create(
        &api,
        &service(
            "ext",
            json!({"type": "ExternalName", "externalName": "db.example.com"}),
        ),
    )
    .await;
    assert_eq!(external.spec.as_ref().unwrap().cluster_ip, None);
    assert_eq!(external.spec.as_ref().unwrap().session_affinity, None);

    // A replace that leaves the allocated values out keeps them; changing the IP is refused.
    let mut stale = service(
        "edge",
        json!({"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}),
    );
    stale.metadata.resource_version = edge.metadata.resource_version.clone();
    let replaced = api
        .replace("edge", &PostParams::default(), &stale)
        .await
        .unwrap();
    assert_eq!(cluster_ip(&replaced), cluster_ip(&edge));
    let kept = replaced.spec.unwrap().ports.unwrap();
    assert_eq!(
        (kept[0].node_port, kept[1].node_port),
        (Some(allocated), Some(31000))
    );
    let moved = merge_error(
        &api,
        "edge",
        json!({"spec": {"clusterIP": "10.96.9.9", "clusterIPs": ["10.96.9.9"]}}),
    )
    .await;
    assert_eq!(moved.code, 422);
    assert!(
        moved.message.contains("may not change once set"),
        "{}",
        moved.message
    );

    // Taken or out-of-range requests are refused and store nothing.
    let taken = status(
        api.create(
            &PostParams::default(),
            &service("copy", json!({"clusterIP": ip, "ports": [{"port": 1}]})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(taken.code, 422);
    assert!(
        taken.message.contains("already allocated"),
        "{}",
        taken.message
    );
    let outside = status(
        api.create(
            &PostParams::default(),
            &service(
                "far",
                json!({"clusterIP": "192.168.1.1", "ports": [{"port": 1}]}),
            ),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(outside.code, 422);
    let port_taken = status(
        api.create(
            &PostParams::default(),
            &service(
                "edge2",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}]}),
            ),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(port_taken.code, 422);
    assert!(
        port_taken.message.contains("spec.ports[0].nodePort"),
        "{}",
        port_taken.message
    );
    let twice = status(
        api.create(
            &PostParams::default(),
            &service(
                "twice",
                json!({"type": "NodePort", "ports": [
                    {"name": "a", "port": 80, "nodePort": 31500},
                    {"name": "b", "port": 81, "nodePort": 31500}]}),
            ),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        twice.message.contains("spec.ports[1].nodePort"),
        "{}",
        twice.message
    );
    // The Service's own node port is its own to keep when named again.
    let renamed = api
        .patch(
            "edge",
            &Default::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"labels": {"tier": "edge"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        renamed.spec.unwrap().ports.unwrap()[1].node_port,
        Some(31000)
    );
    for name in ["copy", "far", "edge2", "twice"] {
        assert_eq!(status(api.get(name).await.unwrap_err()).code, 404, "{name}");
    }

    // Deleting a Service frees its address for another.
    api.delete("web", &DeleteParams::default()).await.unwrap();
    let again = create(
        &api,
        &service("web2", json!({"clusterIP": ip, "ports": [{"port": 80}]})),
    )
    .await;
    assert_eq!(cluster_ip(&again), ip);
}

async fn merge_error(api: &Api<Service>, name: &str, patch: Value) -> kube::core::Status {
    status(
        api.patch(name, &Default::default(), &kube::api::Patch::Merge(patch))
            .await
            .unwrap_err(),
    )
}
