//! The few defaults the real server fills in that clients rely on.
//!
//! Full defaulting is out of scope; these are the ones that change what selectors and field
//! ownership see: Pods' `restartPolicy`, `schedulerName`, `dnsPolicy` and
//! `terminationGracePeriodSeconds`, container and Service port `protocol` (a list-map key, so
//! server-side apply must see it on both sides), Deployments' `replicas`, Secrets' `type`
//! (`Opaque`; a field selector), Namespaces' name label, finalizer and phase, and Services'
//! type, session affinity, traffic policies and target ports (their cluster IPs and node ports
//! are allocated, `services.rs`).

use serde_json::{Value, json};

use crate::registry::ResourceType;

/// Defaults that are keys of associative lists; applied to stored objects and to applied
/// configurations alike so that both name list items the same way.
pub fn default_keys(resource: &ResourceType, object: &mut Value) {
    if resource.custom {
        return;
    }
    if let Some(spec) = pod_spec(resource, object) {
        for list in ["containers", "initContainers"] {
            for container in spec
                .get_mut(list)
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                default_protocols(container.get_mut("ports"));
            }
        }
    }
    if resource.group.is_empty() && resource.kind == "Service" {
        default_protocols(object.pointer_mut("/spec/ports"));
    }
}

/// A Service's type, session affinity and traffic policies, and each port's target port (the
/// port itself). Cluster IPs and node ports are allocated by `services.rs`.
fn default_service(service: &mut Value) {
    let Some(spec) = service.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let kind = spec
        .entry("type")
        .or_insert_with(|| json!("ClusterIP"))
        .as_str()
        .unwrap_or_default()
        .to_string();
    if kind == "ExternalName" {
        return;
    }
    spec.entry("sessionAffinity")
        .or_insert_with(|| json!("None"));
    spec.entry("internalTrafficPolicy")
        .or_insert_with(|| json!("Cluster"));
    if matches!(kind.as_str(), "NodePort" | "LoadBalancer") {
        spec.entry("externalTrafficPolicy")
            .or_insert_with(|| json!("Cluster"));
    }
    for port in spec
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
    {
        if let Some(number) = port.get("port").cloned() {
            port.entry("targetPort").or_insert(number);
        }
    }
}

/// Defaults applied to objects before they are stored.
pub fn default_object(resource: &ResourceType, object: &mut Value) {
    default_keys(resource, object);
    if resource.custom {
        return;
    }
    let is_job = resource.group == "batch";
    if let Some(spec) = pod_spec(resource, object).and_then(Value::as_object_mut) {
        if !is_job {
            spec.entry("restartPolicy")
                .or_insert_with(|| json!("Always"));
        }
        spec.entry("schedulerName")
            .or_insert_with(|| json!("default-scheduler"));
        spec.entry("dnsPolicy")
            .or_insert_with(|| json!("ClusterFirst"));
        spec.entry("terminationGracePeriodSeconds")
            .or_insert_with(|| json!(30));
    }
    if resource.group == "apps"
        && matches!(
            resource.kind.as_str(),
            "Deployment" | "ReplicaSet" | "StatefulSet"
        )
        && let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.entry("replicas").or_insert_with(|| json!(1));
    }
    if resource.group.is_empty() && resource.kind == "Service" {
        default_service(object);
    }
    if resource.group.is_empty()
        && resource.kind == "Secret"
        && let Some(secret) = object.as_object_mut()
        && secret
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
    {
        secret.insert("type".to_string(), json!("Opaque"));
    }
}

/// The pod spec of a Pod or of a workload's pod template.
fn pod_spec<'a>(resource: &ResourceType, object: &'a mut Value) -> Option<&'a mut Value> {
    let pointer = match (resource.group.as_str(), resource.kind.as_str()) {
        ("", "Pod") => "/spec",
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") | ("batch", "Job") => {
            "/spec/template/spec"
        }
        ("batch", "CronJob") => "/spec/jobTemplate/spec/template/spec",
        _ => return None,
    };
    object.pointer_mut(pointer).filter(|v| v.is_object())
}

fn default_protocols(ports: Option<&mut Value>) {
    for port in ports
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
    {
        port.entry("protocol").or_insert_with(|| json!("TCP"));
    }
}

/// Namespaces carry their name as a label, the `kubernetes` finalizer and a phase.
pub fn default_namespace(object: &mut Value, name: &str) {
    let meta = crate::object::meta_mut(object);
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    if let Some(labels) = labels.as_object_mut() {
        labels.insert("kubernetes.io/metadata.name".to_string(), json!(name));
    }
    if object
        .get("spec")
        .is_none_or(|s| s.get("finalizers").is_none())
    {
        object["spec"] = json!({"finalizers": ["kubernetes"]});
    }
    if object.pointer("/status/phase").is_none() {
        object["status"] = json!({"phase": "Active"});
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn pod_templates_get_defaults() {
        let registry = Registry::builtin();
        let deploy = registry.find("apps", "v1", "deployments").unwrap();
        let mut d = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "c", "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}]}
        ]}}}});
        default_object(&deploy, &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"],
            "TCP"
        );
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["ports"][1]["protocol"],
            "UDP"
        );

        let job = registry.find("batch", "v1", "jobs").unwrap();
        let mut j = json!({"spec": {"template": {"spec": {"containers": []}}}});
        default_object(&job, &mut j);
        assert!(j["spec"]["template"]["spec"].get("restartPolicy").is_none());
    }

    #[test]
    fn secrets_default_to_opaque() {
        let registry = Registry::builtin();
        let secrets = registry.find("", "v1", "secrets").unwrap();
        let mut untyped = json!({"metadata": {"name": "s"}});
        default_object(&secrets, &mut untyped);
        assert_eq!(untyped["type"], "Opaque");
        let mut empty = json!({"metadata": {"name": "s"}, "type": ""});
        default_object(&secrets, &mut empty);
        assert_eq!(empty["type"], "Opaque");
        let mut tls = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls"});
        default_object(&secrets, &mut tls);
        assert_eq!(tls["type"], "kubernetes.io/tls");
    }

    #[test]
    fn namespaces_get_label_finalizer_and_phase() {
        let mut ns = json!({"metadata": {"name": "team"}});
        default_namespace(&mut ns, "team");
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team"
        );
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(ns["status"]["phase"], "Active");
    }
}
