//! The objects the plugin owns in each enabled Namespace, and how to tell whether the cluster
//! already has them as desired.

use std::collections::BTreeMap;

use trellis_guest::k8s_openapi::api::core::v1::{ResourceQuota, ResourceQuotaSpec};
use trellis_guest::k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use trellis_guest::k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use trellis_guest::k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::quantity::Quantity;
use crate::settings::Deny;

pub const POLICY_NAME: &str = "trellis-default-deny";
pub const QUOTA_NAME: &str = "trellis-defaults";

/// Marks the objects this plugin made, so it only ever deletes its own.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "trellis-namespace-defaults";

fn metadata(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(BTreeMap::from([(
            MANAGED_BY_LABEL.to_owned(),
            MANAGED_BY.to_owned(),
        )])),
        ..ObjectMeta::default()
    }
}

/// Whether an object carries this plugin's managed-by label.
pub fn is_managed(metadata: &ObjectMeta) -> bool {
    metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .map(String::as_str)
        == Some(MANAGED_BY)
}

/// A policy selecting every Pod with no rules for the denied directions: nothing is allowed
/// until other policies allow it.
pub fn network_policy(namespace: &str, deny: Deny) -> NetworkPolicy {
    NetworkPolicy {
        metadata: metadata(namespace, POLICY_NAME),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(deny.policy_types()),
            ..NetworkPolicySpec::default()
        }),
    }
}

pub fn resource_quota(namespace: &str, hard: &BTreeMap<String, String>) -> ResourceQuota {
    ResourceQuota {
        metadata: metadata(namespace, QUOTA_NAME),
        spec: Some(ResourceQuotaSpec {
            hard: Some(
                hard.iter()
                    .map(|(k, v)| (k.clone(), K8sQuantity(v.clone())))
                    .collect(),
            ),
            ..ResourceQuotaSpec::default()
        }),
        status: None,
    }
}

/// Whether the cached quota is the desired one: our label, and exactly the desired resources
/// with equal quantities (compared as numbers, since the server canonicalizes their text; and
/// exactly, since a resource dropped from the annotation must be dropped from the quota).
pub fn quota_matches(current: &ResourceQuota, desired: &BTreeMap<String, String>) -> bool {
    let empty = BTreeMap::new();
    let hard = current
        .spec
        .as_ref()
        .and_then(|s| s.hard.as_ref())
        .unwrap_or(&empty);
    is_managed(&current.metadata)
        && hard.len() == desired.len()
        && desired.iter().all(|(resource, want)| {
            hard.get(resource).is_some_and(|have| {
                match (Quantity::parse(&have.0), Quantity::parse(want)) {
                    (Ok(have), Ok(want)) => have == want,
                    _ => false,
                }
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hard(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_canonicalized_quota_still_matches() {
        let desired = hard(&[("requests.memory", "1024Mi"), ("requests.cpu", "0.5")]);
        let stored = resource_quota(
            "a",
            &hard(&[("requests.memory", "1Gi"), ("requests.cpu", "500m")]),
        );
        assert!(quota_matches(&stored, &desired));
    }

    #[test]
    fn changed_added_dropped_or_unlabelled_quotas_do_not_match() {
        let desired = hard(&[("pods", "10"), ("services.nodeports", "0")]);
        assert!(!quota_matches(
            &resource_quota("a", &hard(&[("pods", "11"), ("services.nodeports", "0")])),
            &desired
        ));
        assert!(!quota_matches(
            &resource_quota("a", &hard(&[("pods", "10")])),
            &desired
        ));
        let extra = hard(&[
            ("pods", "10"),
            ("services.nodeports", "0"),
            ("secrets", "5"),
        ]);
        assert!(!quota_matches(&resource_quota("a", &extra), &desired));
        let mut unlabelled = resource_quota("a", &desired);
        unlabelled.metadata.labels = None;
        assert!(!quota_matches(&unlabelled, &desired));
        assert!(!quota_matches(&ResourceQuota::default(), &desired));
    }

    #[test]
    fn the_policy_selects_every_pod_and_allows_nothing() {
        let policy = serde_json::to_value(network_policy("team-a", Deny::All)).unwrap();
        assert_eq!(policy["apiVersion"], "networking.k8s.io/v1");
        assert_eq!(policy["metadata"]["namespace"], "team-a");
        assert_eq!(policy["spec"]["podSelector"], serde_json::json!({}));
        assert_eq!(
            policy["spec"]["policyTypes"],
            serde_json::json!(["Ingress", "Egress"])
        );
        assert!(policy["spec"].get("ingress").is_none() && policy["spec"].get("egress").is_none());
    }
}
