//! What the real server's Service storage adds to a Service: a cluster IP, and node ports for
//! NodePort and LoadBalancer Services, allocated on create and kept on update.
//!
//! Plugins that read Services (to write DNS records, Ingresses, endpoint configs) see
//! `spec.clusterIP` on every real cluster; without it here they would be tested against
//! objects no cluster serves. Addresses come from the default service range, 10.96.0.0/12
//! (10.96.0.1 is the `kubernetes` Service's on a real cluster and is never handed out), node
//! ports from 30000–32767. Each allocator hands out its values in turn and skips those in use
//! (a Service asked for them), so two concurrent creates never get the same one; a value is
//! free again once no Service holds it. A requested cluster IP or node port is kept if it is in
//! range and free (422 otherwise, with the real server's messages).
//!
//! On update, a Service that leaves its allocated values out keeps them (the real server's
//! `patchAllocatedValues`: a PUT of a Service read before the allocation must not lose its
//! IP), and a changed cluster IP is refused (422), as it is immutable.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Value, json};

use crate::registry::ResourceType;
use crate::status::{ApiError, Cause};
use crate::store::{ReadAt, Store};

const SERVICE_RANGE: (Ipv4Addr, u32) = (Ipv4Addr::new(10, 96, 0, 0), 12);
const NODE_PORTS: std::ops::RangeInclusive<u32> = 30000..=32767;

/// Hands out cluster IPs and node ports.
#[derive(Debug)]
pub struct Allocator {
    /// Offset into the service range of the next address to try.
    next_ip: AtomicU32,
    next_port: AtomicU32,
}

impl Default for Allocator {
    fn default() -> Self {
        Self {
            next_ip: AtomicU32::new(0),
            next_port: AtomicU32::new(*NODE_PORTS.start()),
        }
    }
}

/// Whether `resource` is core v1 Service.
pub fn is_service(resource: &ResourceType) -> bool {
    !resource.custom && resource.group.is_empty() && resource.kind == "Service"
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The cluster IPs and node ports Services other than `except` (namespace, name) hold: a
/// Service being updated may keep its own.
fn in_use(store: &Store, except: (&str, &str)) -> (HashSet<String>, HashSet<u32>) {
    let services = store
        .list("services", ReadAt::Latest, None, None, None, |o| {
            (&*o.key.namespace, &*o.key.name) != except
        })
        .map(|page| page.items)
        .unwrap_or_default();
    let (mut ips, mut ports) = (HashSet::new(), HashSet::new());
    for service in services {
        let service = service.value();
        ips.insert(text(&service, "/spec/clusterIP").to_string());
        for port in service
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(n) = port.get("nodePort").and_then(Value::as_u64) {
                ports.insert(n as u32);
            }
        }
    }
    (ips, ports)
}

fn invalid(name: &str, field: &str, value: &str, message: &str) -> ApiError {
    ApiError::invalid_kind(
        "Service",
        "",
        name,
        vec![Cause::invalid(field, value, message)],
    )
}

impl Allocator {
    /// Completes `new`, a Service being written over `old` (none for a create).
    pub fn complete(
        &self,
        store: &Store,
        old: Option<&Value>,
        new: &mut Value,
    ) -> Result<(), ApiError> {
        let namespace = text(new, "/metadata/namespace").to_string();
        let name = text(new, "/metadata/name").to_string();
        let kind = match text(new, "/spec/type") {
            "" => "ClusterIP",
            kind => kind,
        }
        .to_string();
        if let Some(old) = old {
            keep_allocated(old, new, &name)?;
        }
        let (ips, ports) = in_use(store, (&namespace, &name));
        if kind != "ExternalName" {
            let ip = match text(new, "/spec/clusterIP") {
                "" => self
                    .free_ip(&ips)
                    .ok_or_else(|| ApiError::internal("the service range 10.96.0.0/12 is full"))?,
                "None" => "None".to_string(),
                wanted => check_ip(wanted, &ips, &name)?,
            };
            let spec = spec_mut(new);
            spec.insert("clusterIP".into(), json!(ip));
            spec.insert("clusterIPs".into(), json!([ip]));
            spec.entry("ipFamilies").or_insert_with(|| json!(["IPv4"]));
            spec.entry("ipFamilyPolicy")
                .or_insert_with(|| json!("SingleStack"));
        }
        if matches!(kind.as_str(), "NodePort" | "LoadBalancer") {
            let mut taken = ports;
            let Some(list) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) else {
                return Ok(());
            };
            for (i, port) in list.iter_mut().enumerate() {
                let wanted = port.get("nodePort").and_then(Value::as_u64).unwrap_or(0) as u32;
                let assigned = if wanted == 0 {
                    self.free_port(&taken).ok_or_else(|| {
                        ApiError::internal("the node port range 30000-32767 is full")
                    })?
                } else if !NODE_PORTS.contains(&wanted) {
                    return Err(invalid(
                        &name,
                        &format!("spec.ports[{i}].nodePort"),
                        &wanted.to_string(),
                        "provided port is not in the valid range. The range of valid ports is 30000-32767",
                    ));
                } else if taken.contains(&wanted) {
                    return Err(invalid(
                        &name,
                        &format!("spec.ports[{i}].nodePort"),
                        &wanted.to_string(),
                        "provided port is already allocated",
                    ));
                } else {
                    wanted
                };
                taken.insert(assigned);
                port["nodePort"] = json!(assigned);
            }
        }
        Ok(())
    }

    fn free_ip(&self, in_use: &HashSet<String>) -> Option<String> {
        let (base, prefix) = SERVICE_RANGE;
        let size = 1u32 << (32 - prefix);
        (0..size).find_map(|_| {
            // Offsets cycle over 2..=size-2: not the network address (0), the `kubernetes`
            // Service's (1) or the broadcast address.
            let offset = 2 + self.next_ip.fetch_add(1, Ordering::Relaxed) % (size - 3);
            let ip = Ipv4Addr::from(u32::from(base) + offset).to_string();
            (!in_use.contains(&ip)).then_some(ip)
        })
    }

    fn free_port(&self, in_use: &HashSet<u32>) -> Option<u32> {
        let (start, count) = (
            *NODE_PORTS.start(),
            NODE_PORTS.end() - NODE_PORTS.start() + 1,
        );
        (0..count).find_map(|_| {
            let port = start + (self.next_port.fetch_add(1, Ordering::Relaxed) - start) % count;
            (!in_use.contains(&port)).then_some(port)
        })
    }
}

fn spec_mut(service: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !service.get("spec").is_some_and(Value::is_object) {
        service["spec"] = json!({});
    }
    service["spec"]
        .as_object_mut()
        .expect("made an object above")
}

/// A requested cluster IP: inside the service range and not held by another Service.
fn check_ip(wanted: &str, in_use: &HashSet<String>, name: &str) -> Result<String, ApiError> {
    let (base, prefix) = SERVICE_RANGE;
    let in_range = wanted
        .parse::<Ipv4Addr>()
        .is_ok_and(|ip| u32::from(ip) >> (32 - prefix) == u32::from(base) >> (32 - prefix));
    if !in_range {
        return Err(invalid(
            name,
            "spec.clusterIPs",
            wanted,
            "failed to allocate IP: the provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12",
        ));
    }
    if in_use.contains(wanted) {
        return Err(invalid(
            name,
            "spec.clusterIPs",
            wanted,
            "failed to allocate IP: provided IP is already allocated",
        ));
    }
    Ok(wanted.to_string())
}

/// An update keeps the cluster IP and node ports it leaves out, and may not change the IP.
fn keep_allocated(old: &Value, new: &mut Value, name: &str) -> Result<(), ApiError> {
    let held = text(old, "/spec/clusterIP").to_string();
    let same_kind =
        text(old, "/spec/type") == text(new, "/spec/type") || text(new, "/spec/type").is_empty();
    match text(new, "/spec/clusterIP") {
        "" if !held.is_empty() && same_kind => {
            let spec = spec_mut(new);
            spec.insert("clusterIP".into(), json!(held));
            if let Some(ips) = old.pointer("/spec/clusterIPs") {
                spec.insert("clusterIPs".into(), ips.clone());
            }
        }
        wanted if !wanted.is_empty() && !held.is_empty() && wanted != held => {
            return Err(invalid(
                name,
                "spec.clusterIPs[0]",
                wanted,
                "may not change once set",
            ));
        }
        _ => {}
    }
    let old_ports: Vec<(i64, &str, u64)> = old
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p.get("port")?.as_i64()?,
                p.get("protocol").and_then(Value::as_str).unwrap_or("TCP"),
                p.get("nodePort")?.as_u64()?,
            ))
        })
        .collect();
    for port in new
        .pointer_mut("/spec/ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if port.get("nodePort").and_then(Value::as_u64).unwrap_or(0) != 0 {
            continue;
        }
        let key = (
            port.get("port").and_then(Value::as_i64).unwrap_or(0),
            port.get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("TCP"),
        );
        if let Some((_, _, held)) = old_ports.iter().find(|(p, proto, _)| (*p, *proto) == key) {
            port["nodePort"] = json!(held);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_ports_cycle_through_their_ranges_skipping_those_in_use() {
        let allocator = Allocator::default();
        let mut used = HashSet::new();
        used.insert("10.96.0.3".to_string());
        assert_eq!(allocator.free_ip(&used).unwrap(), "10.96.0.2");
        assert_eq!(allocator.free_ip(&used).unwrap(), "10.96.0.4", "skips 0.3");
        let ports = HashSet::from([30001]);
        assert_eq!(allocator.free_port(&ports), Some(30000));
        assert_eq!(allocator.free_port(&ports), Some(30002));
        let full: HashSet<u32> = NODE_PORTS.collect();
        assert_eq!(allocator.free_port(&full), None);
        let wrapped = Allocator::default();
        wrapped.next_ip.store((1 << 20) - 4, Ordering::Relaxed);
        let last = wrapped.free_ip(&HashSet::new()).unwrap();
        assert_eq!(last, "10.111.255.254");
        assert_eq!(wrapped.free_ip(&HashSet::new()).unwrap(), "10.96.0.2");
    }

    #[test]
    fn requested_addresses_must_be_in_range_and_free() {
        let used = HashSet::from(["10.96.0.9".to_string()]);
        assert_eq!(check_ip("10.100.1.1", &used, "s").unwrap(), "10.100.1.1");
        let taken = check_ip("10.96.0.9", &used, "s").unwrap_err();
        assert_eq!(taken.code, 422);
        assert!(
            taken.message.contains("already allocated"),
            "{}",
            taken.message
        );
        let outside = check_ip("192.168.0.1", &used, "s").unwrap_err();
        assert!(
            outside.message.contains("not in the valid range"),
            "{}",
            outside.message
        );
        assert_eq!(check_ip("nonsense", &used, "s").unwrap_err().code, 422);
    }

    #[test]
    fn updates_keep_what_was_allocated_and_may_not_change_the_ip() {
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.5",
            "clusterIPs": ["10.96.0.5"], "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}});
        let mut new =
            json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]}});
        keep_allocated(&old, &mut new, "s").unwrap();
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.5");
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.96.0.5"]));
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
        let mut changed = json!({"spec": {"clusterIP": "10.96.0.6"}});
        let error = keep_allocated(&old, &mut changed, "s").unwrap_err();
        assert_eq!(error.code, 422);
        assert!(
            error.message.contains("may not change once set"),
            "{}",
            error.message
        );
    }
}
