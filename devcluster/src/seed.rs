//! Bulk seeding: many realistic Pods, fast.
//!
//! Load tests need objects shaped like production ones: Pods owned by ReplicaSets, with a
//! container (ports, env, probes, resources, a projected service-account volume), the
//! tolerations the admission chain adds, a Running status with conditions and container
//! statuses, and managedFields from the controller manager (spec) and the kubelet (status) —
//! about 5 KB of JSON each, of which managedFields is roughly 40 %, as in real clusters.
//! They are stored directly (no HTTP, no per-object validation), in transactions of a
//! hundred, and watchers see them as ADDED events like any other write.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::managed::{ManagedFields, Part, Write, tracked_view};
use crate::object::{ObjKey, new_uid, now_timestamp};
use crate::registry::ResourceType;
use crate::status::ApiError;
use crate::write::{Target, WriteOptions};

/// Pods per transaction: enough to amortize locking, few enough that neither readers stall
/// nor the batch's parsed values (tens of KB each) inflate memory.
const BATCH: usize = 100;
/// Distinct apps (and ReplicaSets) the seeded Pods belong to.
const APPS: usize = 20;
const NODES: usize = 50;
const TIERS: [&str; 3] = ["frontend", "backend", "cache"];

fn container(name: &str, image: &str, port: u16) -> Value {
    json!({
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [
            {"name": "http", "containerPort": port, "protocol": "TCP"}
        ],
        "env": [
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}
        ],
        "resources": {"limits": {"cpu": "500m", "memory": "512Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": port, "scheme": "HTTP"}, "initialDelaySeconds": 10,
                          "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
        "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File"
    })
}

fn container_status(name: &str, image: &str, now: &str, i: usize) -> Value {
    json!({
        "name": name,
        "image": image,
        "imageID": format!("{image}@sha256:{:064x}", i as u128 * 7919),
        "containerID": format!("containerd://{:064x}", (i as u128 + 1) * 104_729),
        "ready": true,
        "started": true,
        "restartCount": i % 3,
        "state": {"running": {"startedAt": now}},
        "lastState": {}
    })
}

/// Pod number `i` of `namespace`, without managedFields.
fn pod(namespace: &str, i: usize, owner_uid: &str, now: &str) -> Value {
    let app = format!("app-{}", i % APPS);
    let hash = format!("{:x}", 0x5f7c_9d00 + i % APPS);
    let image = format!("registry.example.com/team/{app}:1.{}.0", i % 5);
    let node = i % NODES;
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("{app}-{hash}-{i:06}"),
            "generateName": format!("{app}-{hash}-"),
            "namespace": namespace,
            "uid": new_uid(),
            "creationTimestamp": now,
            "labels": {
                "app": app,
                "pod-template-hash": hash,
                "tier": TIERS[i % TIERS.len()],
                "env": if i.is_multiple_of(2) { "prod" } else { "staging" }
            },
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "9090"
            },
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-{hash}"),
                "uid": owner_uid, "controller": true, "blockOwnerDeletion": true
            }]
        },
        "spec": {
            "containers": [container("app", &image, 8080)],
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": true,
            "nodeName": format!("node-{node:03}"),
            "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0,
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "serviceAccount": "default",
            "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 30,
            "tolerations": [
                {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
                {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300}
            ],
            "volumes": [{"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
            ]}}]
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
                {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}
            ],
            "containerStatuses": [container_status("app", &image, now, i)],
            "hostIP": format!("10.0.{}.{}", node / 250, node % 250 + 1),
            "hostIPs": [{"ip": format!("10.0.{}.{}", node / 250, node % 250 + 1)}],
            "podIP": format!("10.244.{}.{}", (i / 250) % 256, i % 250 + 2),
            "podIPs": [{"ip": format!("10.244.{}.{}", (i / 250) % 256, i % 250 + 2)}],
            "qosClass": "Burstable",
            "startTime": now
        }
    })
}

/// The managedFields a controller-created, kubelet-updated Pod carries.
fn managed_fields(pods: &ResourceType, pod: &Value, now: &str) -> Value {
    let mut managed = ManagedFields::default();
    // The controller creates the Pod, then the kubelet writes its status.
    for (manager, part) in [
        ("kube-controller-manager", Part::Main),
        ("kubelet", Part::Status),
    ] {
        let write = Write {
            resource: pods,
            manager,
            part,
            now,
        };
        managed.record_update(&write, None, &tracked_view(pod, pods, part));
    }
    managed.encode()
}

impl Cluster {
    /// Stores `count` realistic Pods in `namespace` (created if missing); returns the
    /// resourceVersion after the last one.
    pub fn seed_pods(&self, namespace: &str, count: usize) -> Result<u64, ApiError> {
        let pods = self
            .resolve("", "v1", "pods")
            .ok_or_else(|| ApiError::internal("pods are not served"))?;
        self.ensure_namespace(namespace)?;
        let now = now_timestamp();
        let owners: Vec<String> = (0..APPS).map(|_| new_uid()).collect();
        // managedFields depend only on the app (owner uid and container set), so they are
        // computed once per app.
        let managed: Vec<Value> = (0..APPS)
            .map(|a| managed_fields(&pods, &pod(namespace, a, &owners[a], &now), &now))
            .collect();
        let start = self.existing_seeds(&pods, namespace);
        let mut rv = self.store.current_rv();
        for chunk in (start..start + count).collect::<Vec<_>>().chunks(BATCH) {
            let objects: Vec<Value> = chunk
                .iter()
                .map(|&i| {
                    let mut p = pod(namespace, i, &owners[i % APPS], &now);
                    p["metadata"]["managedFields"] = managed[i % APPS].clone();
                    p
                })
                .collect();
            rv = self.store.write(|tx| {
                let mut rv = tx.current_rv();
                for object in objects {
                    rv = tx.put(&pods.storage_key(), object, &pods.selectable).rv;
                }
                rv
            });
        }
        Ok(rv)
    }

    /// How many seeded Pods a namespace already has, so repeated seeding adds new ones.
    fn existing_seeds(&self, pods: &Arc<ResourceType>, namespace: &str) -> usize {
        self.store
            .write(|tx| tx.keys_in_namespace(&pods.storage_key(), namespace).len())
    }

    /// Creates a namespace unless it exists.
    pub fn ensure_namespace(&self, name: &str) -> Result<(), ApiError> {
        let namespaces = self
            .resolve("", "v1", "namespaces")
            .ok_or_else(|| ApiError::internal("namespaces are not served"))?;
        if self
            .store
            .get(&namespaces.storage_key(), &ObjKey::new("", name))
            .is_some()
        {
            return Ok(());
        }
        let target = Target {
            resource: namespaces,
            namespace: String::new(),
            name: String::new(),
            part: Part::Main,
        };
        let options = WriteOptions {
            manager: "devcluster".to_string(),
            manager_explicit: true,
            ..WriteOptions::default()
        };
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        match self.create(&target, body, &options) {
            Err(e) if e.code != 409 => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_pods_are_realistic_in_size_and_shape() {
        let cluster = Cluster::new(100);
        cluster.seed_pods("load", 50).unwrap();
        assert_eq!(cluster.store.len("pods"), 50);
        let pods: Vec<_> = cluster.store.write(|tx| {
            tx.keys_in_namespace("pods", "load")
                .iter()
                .filter_map(|k| tx.get("pods", k))
                .collect()
        });
        let sizes: Vec<usize> = pods.iter().map(|p| p.json.len()).collect();
        let average = sizes.iter().sum::<usize>() / sizes.len();
        assert!(
            (4_000..=6_500).contains(&average),
            "average pod JSON is {average} bytes"
        );
        let pod = pods[0].value();
        let managed = serde_json::to_vec(&pod["metadata"]["managedFields"])
            .unwrap()
            .len();
        assert!(
            managed * 100 / pods[0].json.len() >= 25,
            "managedFields are {managed} bytes"
        );
        assert_eq!(pod["metadata"]["managedFields"][1]["subresource"], "status");
        assert_eq!(pod["status"]["phase"], "Running");
        // Seeding again adds new pods rather than overwriting.
        cluster.seed_pods("load", 10).unwrap();
        assert_eq!(cluster.store.len("pods"), 60);
    }
}
