//! What a Namespace asks for: whether it is enabled, and its annotations read into settings.
//!
//! Everything a platform team may tune lives on the Namespace itself, so the plugin needs no
//! configuration of its own and the desired state of each namespace is visible with
//! `kubectl get ns -o yaml`.

use std::collections::BTreeMap;
use std::fmt;

use crate::quantity::Quantity;

/// The label that turns the defaults on, and its value.
pub const ENABLE_LABEL: &str = "trellis.dev/defaults";
pub const ENABLED: &str = "enabled";

/// Which traffic the NetworkPolicy denies: `ingress`, `egress` or `all` (the default).
pub const DENY_ANNOTATION: &str = "defaults.trellis.dev/deny";

/// Quota entries over the defaults: `resource=quantity, ...`; `resource=none` drops a default.
pub const QUOTA_ANNOTATION: &str = "defaults.trellis.dev/quota";

/// The ResourceQuota's `spec.hard` when the Namespace says nothing. Object counts and storage
/// only: a quota on `requests.cpu` or `limits.memory` rejects every Pod that does not set
/// them, which is a choice for the namespace's owners (add them with the quota annotation,
/// together with a LimitRange), not a safe default.
pub const DEFAULT_QUOTA: [(&str, &str); 5] = [
    ("persistentvolumeclaims", "10"),
    ("pods", "50"),
    ("requests.storage", "100Gi"),
    ("services.loadbalancers", "0"),
    ("services.nodeports", "0"),
];

/// The traffic a default-deny policy covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deny {
    Ingress,
    Egress,
    All,
}

impl Deny {
    /// The NetworkPolicy `policyTypes` that deny this traffic (no rules: deny everything).
    pub fn policy_types(self) -> Vec<String> {
        let types: &[&str] = match self {
            Deny::Ingress => &["Ingress"],
            Deny::Egress => &["Egress"],
            Deny::All => &["Ingress", "Egress"],
        };
        types.iter().map(|t| (*t).to_owned()).collect()
    }
}

/// The defaults one Namespace asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub deny: Deny,
    /// Resource name to quantity, as the Namespace wrote it.
    pub quota: BTreeMap<String, String>,
}

/// An annotation the plugin cannot use, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    pub annotation: &'static str,
    pub message: String,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "annotation {}: {}", self.annotation, self.message)
    }
}

/// Whether the Namespace's labels turn the defaults on.
pub fn enabled(labels: Option<&BTreeMap<String, String>>) -> bool {
    labels.and_then(|l| l.get(ENABLE_LABEL)).map(String::as_str) == Some(ENABLED)
}

fn deny(value: Option<&str>) -> Result<Deny, SettingsError> {
    match value.map(str::trim) {
        None | Some("all") => Ok(Deny::All),
        Some("ingress") => Ok(Deny::Ingress),
        Some("egress") => Ok(Deny::Egress),
        Some(other) => Err(SettingsError {
            annotation: DENY_ANNOTATION,
            message: format!("{other:?} is not one of ingress, egress, all"),
        }),
    }
}

fn valid_resource_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'))
}

fn quota(value: Option<&str>) -> Result<BTreeMap<String, String>, SettingsError> {
    let mut quota: BTreeMap<String, String> = DEFAULT_QUOTA
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let bad = |message: String| SettingsError {
        annotation: QUOTA_ANNOTATION,
        message,
    };
    for entry in value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let (resource, amount) = entry
            .split_once('=')
            .map(|(r, a)| (r.trim(), a.trim()))
            .ok_or_else(|| bad(format!("entry {entry:?} is not resource=quantity")))?;
        if !valid_resource_name(resource) {
            return Err(bad(format!(
                "entry {entry:?}: {resource:?} is not a resource name"
            )));
        }
        if amount == "none" {
            quota.remove(resource);
            continue;
        }
        Quantity::parse(amount).map_err(|e| bad(format!("entry {entry:?}: {e}")))?;
        quota.insert(resource.to_owned(), amount.to_owned());
    }
    Ok(quota)
}

impl Settings {
    /// Reads the settings from a Namespace's annotations; the first unusable one is the error.
    pub fn from_annotations(
        annotations: Option<&BTreeMap<String, String>>,
    ) -> Result<Settings, SettingsError> {
        let get = |key: &str| annotations.and_then(|a| a.get(key)).map(String::as_str);
        Ok(Settings {
            deny: deny(get(DENY_ANNOTATION))?,
            quota: quota(get(QUOTA_ANNOTATION))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn only_the_enabled_value_enables() {
        let labels = |v: &str| annotations(&[(ENABLE_LABEL, v)]);
        assert!(enabled(Some(&labels("enabled"))));
        assert!(!enabled(Some(&labels("disabled"))));
        assert!(!enabled(Some(&labels("Enabled"))));
        assert!(!enabled(Some(&BTreeMap::new())));
        assert!(!enabled(None));
    }

    #[test]
    fn no_annotations_mean_the_defaults() {
        let settings = Settings::from_annotations(None).unwrap();
        assert_eq!(settings.deny, Deny::All);
        assert_eq!(settings.deny.policy_types(), ["Ingress", "Egress"]);
        assert_eq!(settings.quota.len(), DEFAULT_QUOTA.len());
        assert_eq!(settings.quota["pods"], "50");
    }

    #[test]
    fn the_quota_annotation_overrides_adds_and_drops() {
        let settings = Settings::from_annotations(Some(&annotations(&[
            (
                QUOTA_ANNOTATION,
                " pods=20, requests.cpu = 4 ,services.nodeports=none, count/deployments.apps=10,",
            ),
            (DENY_ANNOTATION, "ingress"),
        ])))
        .unwrap();
        assert_eq!(settings.deny.policy_types(), ["Ingress"]);
        assert_eq!(settings.quota["pods"], "20");
        assert_eq!(settings.quota["requests.cpu"], "4");
        assert_eq!(settings.quota["count/deployments.apps"], "10");
        assert!(!settings.quota.contains_key("services.nodeports"));
        assert_eq!(settings.quota["requests.storage"], "100Gi");
    }

    #[test]
    fn unusable_annotations_name_the_annotation_and_the_entry() {
        for (key, value, expected) in [
            (
                DENY_ANNOTATION,
                "everything",
                "annotation defaults.trellis.dev/deny: \"everything\" is not one of ingress, egress, all",
            ),
            (
                QUOTA_ANNOTATION,
                "pods",
                "annotation defaults.trellis.dev/quota: entry \"pods\" is not resource=quantity",
            ),
            (
                QUOTA_ANNOTATION,
                "pods=8GB",
                "annotation defaults.trellis.dev/quota: entry \"pods=8GB\": \"8GB\" is not a quantity: unknown suffix \"GB\"",
            ),
            (
                QUOTA_ANNOTATION,
                "=1",
                "annotation defaults.trellis.dev/quota: entry \"=1\": \"\" is not a resource name",
            ),
            (
                QUOTA_ANNOTATION,
                "a b=1",
                "annotation defaults.trellis.dev/quota: entry \"a b=1\": \"a b\" is not a resource name",
            ),
        ] {
            let err = Settings::from_annotations(Some(&annotations(&[(key, value)]))).unwrap_err();
            assert_eq!(err.to_string(), expected);
        }
    }
}
