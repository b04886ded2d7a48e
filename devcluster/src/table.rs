//! Server-side printing: the columns `kubectl get` shows.
//!
//! kubectl asks for `Table`s and prints what the server puts in them. Pods (with `-o wide`
//! IP, node, nominated node and readiness gates), Deployments, Services, Namespaces and
//! ConfigMaps get their familiar columns, Events the real server's (of both API
//! versions: `kubectl get events` shows what a plugin recorded); CRDs get their
//! `additionalPrinterColumns` (simple `.a.b` JSON paths); everything else gets Name and Age.
//! Cells are read from the object as stored (for Events, the `events.k8s.io/v1` form, see
//! `conversion.rs`).

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::registry::ResourceType;

fn column(name: &str, kind: &str, format: &str) -> Value {
    json!({"name": name, "type": kind, "format": format, "description": "", "priority": 0})
}

/// A column `kubectl get` shows only with `-o wide`.
fn wide_column(name: &str, kind: &str) -> Value {
    let mut column = column(name, kind, "");
    column["priority"] = json!(1);
    column
}

/// The real server's Event columns (`pkg/printers/internalversion/printers.go`).
fn event_columns() -> Vec<Value> {
    vec![
        column("Last Seen", "string", ""),
        column("Type", "string", ""),
        column("Reason", "string", ""),
        column("Object", "string", ""),
        wide_column("Subobject", "string"),
        wide_column("Source", "string"),
        column("Message", "string", ""),
        wide_column("First Seen", "string"),
        wide_column("Count", "integer"),
        wide_column("Name", "string"),
    ]
}

/// One Event's cells, from its stored (`events.k8s.io/v1`) form, as `printEvent` fills them:
/// first seen falls back to `eventTime`, last seen to first seen, and a series gives both the
/// last time and the count.
fn event_cells(event: &Value, now: Timestamp) -> Vec<Value> {
    let text = |pointer: &str| event.pointer(pointer).and_then(Value::as_str).unwrap_or("");
    let first = match text("/deprecatedFirstTimestamp") {
        "" => text("/eventTime"),
        first => first,
    };
    let (last, count) = match event.get("series") {
        Some(series) if series.is_object() => {
            (text("/series/lastObservedTime"), count(series.get("count")))
        }
        _ => (
            match text("/deprecatedLastTimestamp") {
                "" => first,
                last => last,
            },
            count(event.get("deprecatedCount")).max(1),
        ),
    };
    let source = match text("/deprecatedSource/component") {
        "" => text("/reportingController"),
        source => source,
    };
    vec![
        json!(age(last, now)),
        json!(text("/type")),
        json!(text("/reason")),
        json!(format!(
            "{}/{}",
            text("/regarding/kind").to_lowercase(),
            text("/regarding/name")
        )),
        json!(text("/regarding/fieldPath")),
        json!(source),
        json!(text("/note").trim()),
        json!(age(first, now)),
        json!(count),
        json!(text("/metadata/name")),
    ]
}

/// Column definitions for `resource`.
pub fn columns(resource: &ResourceType) -> Vec<Value> {
    if builtin(resource) == Some("Event") {
        return event_columns();
    }
    let mut out = vec![column("Name", "string", "name")];
    match builtin(resource) {
        Some("Pod") => {
            out.push(column("Ready", "string", ""));
            out.push(column("Status", "string", ""));
            out.push(column("Restarts", "string", ""));
        }
        Some("Deployment") => {
            out.push(column("Ready", "string", ""));
            out.push(column("Up-to-date", "integer", ""));
            out.push(column("Available", "integer", ""));
        }
        Some("Namespace") => out.push(column("Status", "string", "")),
        Some("ConfigMap") => out.push(column("Data", "integer", "")),
        Some("Service") => {
            out.push(column("Type", "string", ""));
            out.push(column("Cluster-IP", "string", ""));
            out.push(column("External-IP", "string", ""));
            out.push(column("Port(s)", "string", ""));
        }
        _ => {
            for (name, kind, _) in &resource.printer_columns {
                let kind = if kind == "date" {
                    "string"
                } else {
                    kind.as_str()
                };
                out.push(column(name, kind, ""));
            }
        }
    }
    out.push(column("Age", "string", ""));
    match builtin(resource) {
        Some("Pod") => {
            for name in ["IP", "Node", "Nominated Node", "Readiness Gates"] {
                out.push(wide_column(name, "string"));
            }
        }
        Some("Service") => out.push(wide_column("Selector", "string")),
        _ => {}
    }
    out
}

fn builtin(resource: &ResourceType) -> Option<&str> {
    (!resource.custom).then_some(resource.kind.as_str())
}

fn count(value: Option<&Value>) -> u64 {
    value.and_then(Value::as_u64).unwrap_or(0)
}

/// The cells of one row.
pub fn cells(resource: &ResourceType, object: &Value, now: Timestamp) -> Vec<Value> {
    if builtin(resource) == Some("Event") {
        return event_cells(object, now);
    }
    let name = object
        .pointer("/metadata/name")
        .cloned()
        .unwrap_or(json!(""));
    let mut out = vec![name];
    match builtin(resource) {
        Some("Pod") => {
            let containers = object
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let statuses = object
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let ready = statuses
                .iter()
                .filter(|s| s.get("ready").and_then(Value::as_bool) == Some(true))
                .count();
            let restarts: u64 = statuses.iter().map(|s| count(s.get("restartCount"))).sum();
            let status = if object.pointer("/metadata/deletionTimestamp").is_some() {
                "Terminating".to_string()
            } else {
                object
                    .pointer("/status/phase")
                    .and_then(Value::as_str)
                    .unwrap_or("Unknown")
                    .to_string()
            };
            out.push(json!(format!("{ready}/{containers}")));
            out.push(json!(status));
            out.push(json!(restarts.to_string()));
        }
        Some("Deployment") => {
            let ready = count(object.pointer("/status/readyReplicas"));
            let wanted = count(object.pointer("/spec/replicas"));
            out.push(json!(format!("{ready}/{wanted}")));
            out.push(json!(count(object.pointer("/status/updatedReplicas"))));
            out.push(json!(count(object.pointer("/status/availableReplicas"))));
        }
        Some("Namespace") => out.push(
            object
                .pointer("/status/phase")
                .cloned()
                .unwrap_or(json!("")),
        ),
        Some("Service") => out.extend(service_cells(object)),
        Some("ConfigMap") => {
            let size = |k: &str| {
                object
                    .get(k)
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len())
            };
            out.push(json!(size("data") + size("binaryData")));
        }
        _ => {
            for (_, kind, path) in &resource.printer_columns {
                let pointer = path.replace('.', "/");
                let value = object.pointer(&pointer).cloned().unwrap_or(Value::Null);
                let value = match (kind.as_str(), value.as_str()) {
                    ("date", Some(ts)) => json!(age(ts, now)),
                    _ => value,
                };
                out.push(value);
            }
        }
    }
    let created = object
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .unwrap_or("");
    out.push(json!(age(created, now)));
    let text_or_none = |pointer: &str| {
        json!(
            object
                .pointer(pointer)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or("<none>")
        )
    };
    match builtin(resource) {
        Some("Pod") => {
            out.push(text_or_none("/status/podIP"));
            out.push(text_or_none("/spec/nodeName"));
            out.push(text_or_none("/status/nominatedNodeName"));
            out.push(json!(readiness_gates(object)));
        }
        Some("Service") => out.push(json!(selector_text(object.pointer("/spec/selector")))),
        _ => {}
    }
    out
}

/// `printPod`'s readiness gates: `<none>`, or how many of them have a True condition.
fn readiness_gates(pod: &Value) -> String {
    let gates: Vec<&str> = pod
        .pointer("/spec/readinessGates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|g| g.get("conditionType").and_then(Value::as_str))
        .collect();
    if gates.is_empty() {
        return "<none>".to_string();
    }
    let conditions = pod.pointer("/status/conditions").and_then(Value::as_array);
    let met = gates
        .iter()
        .filter(|gate| {
            conditions.into_iter().flatten().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(gate)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
        .count();
    format!("{met}/{}", gates.len())
}

/// `labels.FormatLabels`: `k=v` pairs sorted by key, or `<none>`.
fn selector_text(labels: Option<&Value>) -> String {
    let mut pairs: Vec<String> = labels
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    if pairs.is_empty() {
        "<none>".to_string()
    } else {
        pairs.join(",")
    }
}

/// `printService`'s cells after the name: type, cluster IP, external IP, ports.
fn service_cells(service: &Value) -> [Value; 4] {
    let text = |pointer: &str| {
        service
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let kind = text("/spec/type");
    let cluster_ip = service
        .pointer("/spec/clusterIPs/0")
        .and_then(Value::as_str)
        .or(Some(text("/spec/clusterIP")))
        .filter(|ip| !ip.is_empty())
        .unwrap_or("<none>");
    let listed = |pointer: &str| -> Vec<String> {
        service
            .pointer(pointer)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    };
    let external_ips = listed("/spec/externalIPs");
    let external = match kind {
        "ExternalName" => text("/spec/externalName").to_string(),
        "LoadBalancer" => {
            let mut ips: Vec<String> = service
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|i| {
                    i.get("ip")
                        .or_else(|| i.get("hostname"))
                        .and_then(Value::as_str)
                        .map(String::from)
                })
                .collect();
            ips.extend(external_ips);
            if ips.is_empty() {
                "<pending>".to_string()
            } else {
                ips.join(",")
            }
        }
        _ if external_ips.is_empty() => "<none>".to_string(),
        _ => external_ips.join(","),
    };
    let ports: Vec<String> = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p
                .get("nodePort")
                .and_then(Value::as_i64)
                .filter(|n| *n != 0)
            {
                Some(node_port) => format!("{port}:{node_port}/{protocol}"),
                None => format!("{port}/{protocol}"),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    [
        json!(kind),
        json!(cluster_ip),
        json!(external),
        json!(ports),
    ]
}

/// The time since `timestamp` as kubectl shows it (apimachinery's `HumanDuration`).
pub fn age(timestamp: &str, now: Timestamp) -> String {
    let Ok(then) = timestamp.parse::<Timestamp>() else {
        return "<unknown>".to_string();
    };
    human_duration(now.as_second() - then.as_second())
}

fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let d = (hours / 24) % 365;
        return if d == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{d}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(125), "2m5s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400), "3d");
        assert_eq!(human_duration(400 * 86400), "400d");
        assert_eq!(human_duration(-5), "<invalid>");
    }

    #[test]
    fn pod_rows() {
        let registry = Registry::builtin();
        let pods = registry.find("", "v1", "pods").unwrap();
        let now: Timestamp = "2024-01-01T00:10:00Z".parse().unwrap();
        let pod = json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"ready": true, "restartCount": 2}, {"ready": false, "restartCount": 1}]}
        });
        assert_eq!(
            cells(&pods, &pod, now),
            vec![
                json!("web"),
                json!("1/2"),
                json!("Running"),
                json!("3"),
                json!("10m"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
            ]
        );
        assert_eq!(columns(&pods).len(), 9);
        assert_eq!(
            shown(&columns(&pods)),
            ["Name", "Ready", "Status", "Restarts", "Age"]
        );
        let scheduled = json!({
            "metadata": {"name": "web"},
            "spec": {"nodeName": "node-1", "readinessGates": [
                {"conditionType": "lb/ready"}, {"conditionType": "mesh/ready"}]},
            "status": {"podIP": "10.0.0.7", "conditions": [
                {"type": "lb/ready", "status": "True"}, {"type": "mesh/ready", "status": "False"}]}
        });
        assert_eq!(
            cells(&pods, &scheduled, now)[5..],
            [
                json!("10.0.0.7"),
                json!("node-1"),
                json!("<none>"),
                json!("1/2")
            ]
        );
    }

    /// The columns `kubectl get` shows without `-o wide`.
    fn shown(columns: &[Value]) -> Vec<&str> {
        columns
            .iter()
            .filter(|c| c["priority"] == 0)
            .map(|c| c["name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn service_rows_read_like_the_servers() {
        let registry = Registry::builtin();
        let services = registry.find("", "v1", "services").unwrap();
        let now: Timestamp = "2024-01-01T00:10:00Z".parse().unwrap();
        assert_eq!(
            shown(&columns(&services)),
            [
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age"
            ]
        );
        let row = |spec: Value| {
            let service = json!({"metadata": {"name": "s"}, "spec": spec});
            cells(&services, &service, now)[1..5]
                .iter()
                .chain(&cells(&services, &service, now)[6..])
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            row(
                json!({"type": "ClusterIP", "clusterIP": "10.96.0.9", "selector": {"b": "2", "a": "1"},
                       "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]})
            ),
            [
                json!("ClusterIP"),
                json!("10.96.0.9"),
                json!("<none>"),
                json!("80/TCP,53/UDP"),
                json!("a=1,b=2")
            ]
        );
        assert_eq!(
            row(json!({"type": "NodePort", "externalIPs": ["1.2.3.4"],
                       "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]})),
            [
                json!("NodePort"),
                json!("<none>"),
                json!("1.2.3.4"),
                json!("80:30080/TCP"),
                json!("<none>")
            ]
        );
        assert_eq!(
            row(json!({"type": "LoadBalancer", "ports": []}))[..4],
            [
                json!("LoadBalancer"),
                json!("<none>"),
                json!("<pending>"),
                json!("<none>")
            ]
        );
        assert_eq!(
            row(json!({"type": "ExternalName", "externalName": "db.example.com"}))[2],
            json!("db.example.com")
        );
    }

    #[test]
    fn event_rows_read_like_the_servers_for_both_versions() {
        let registry = Registry::builtin();
        let now: Timestamp = "2025-05-01T10:10:00Z".parse().unwrap();
        // As kube-runtime's Recorder writes it, repeated into a series.
        let recorded = json!({
            "metadata": {"name": "web.17f", "namespace": "team"},
            "eventTime": "2025-05-01T10:00:00.000000Z",
            "series": {"count": 3, "lastObservedTime": "2025-05-01T10:08:00.000000Z"},
            "reason": "DefaultsCreated", "type": "Normal", "note": " created defaults \n",
            "regarding": {"kind": "Namespace", "name": "team"},
            "reportingController": "trellis.dev/namespace-defaults",
        });
        // As a core v1 client writes it, stored in the events.k8s.io form.
        let core = registry.find("", "v1", "events").unwrap();
        let kubelet = core.to_storage(json!({
            "metadata": {"name": "web.18a", "namespace": "team"},
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
            "reason": "Pulled", "type": "Normal", "message": "pulled",
            "source": {"component": "kubelet"},
            "firstTimestamp": "2025-05-01T10:00:00Z",
        }));
        for resource in [
            core,
            registry.find("events.k8s.io", "v1", "events").unwrap(),
        ] {
            assert_eq!(columns(&resource).len(), 10);
            assert_eq!(
                shown(&columns(&resource)),
                ["Last Seen", "Type", "Reason", "Object", "Message"]
            );
            assert_eq!(
                cells(&resource, &recorded, now),
                vec![
                    json!("2m"),
                    json!("Normal"),
                    json!("DefaultsCreated"),
                    json!("namespace/team"),
                    json!(""),
                    json!("trellis.dev/namespace-defaults"),
                    json!("created defaults"),
                    json!("10m"),
                    json!(3),
                    json!("web.17f"),
                ]
            );
            let row = cells(&resource, &kubelet, now);
            assert_eq!(
                row,
                vec![
                    json!("10m"),
                    json!("Normal"),
                    json!("Pulled"),
                    json!("pod/web"),
                    json!("spec.containers{app}"),
                    json!("kubelet"),
                    json!("pulled"),
                    json!("10m"),
                    json!(1),
                    json!("web.18a"),
                ]
            );
        }
    }
}
