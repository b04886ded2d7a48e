//! The kinds the server serves: the built-in ones and those CustomResourceDefinitions add.
//!
//! Everything the HTTP layer and the store need to know about a kind lives in one
//! `ResourceType`: its names (for URLs, discovery and error messages), scope, whether it has a
//! status subresource and a generation, which fields it can be selected by, and how its bodies
//! are validated. Built-ins are a fixed table mirroring Kubernetes 1.33; CRDs are converted into
//! the same shape (see `crd.rs`), so nothing downstream distinguishes the two.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::conversion::Conversion;
use crate::fields::SelectableField;
use crate::scale::ScaleSubresource;
use crate::schema::Schema;

/// How names of a kind are validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most kinds).
    Subdomain,
    /// RFC 1123 label (namespaces, services).
    Label,
    /// Anything that is a valid path segment (RBAC kinds: `system:controller:x`).
    PathSegment,
}

/// One kind at one served version.
#[derive(Debug, Clone)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// `/status` is served and splits writes: spec writes keep status, status writes keep the
    /// rest.
    pub status_subresource: bool,
    /// `metadata.generation` is maintained (bumped when anything but metadata and status
    /// changes).
    pub generation: bool,
    pub name_rule: NameRule,
    /// Fields `fieldSelector` accepts, beyond `metadata.name` (and `metadata.namespace` for
    /// namespaced kinds).
    pub selectable: Arc<[SelectableField]>,
    pub schema: Schema,
    /// Extra table columns for `kubectl get` (CRD additionalPrinterColumns): (name, type,
    /// JSON path).
    pub printer_columns: Vec<(String, String, String)>,
    /// True for kinds a CRD serves.
    pub custom: bool,
    /// An immediate delete answers with the deleted object rather than a success Status (the
    /// real server does this for Pods).
    pub return_deleted: bool,
    /// Set when this version is stored in another version's table (core `v1` Events).
    pub conversion: Option<Conversion>,
    /// `/scale` is served (`scale.rs`).
    pub scale: Option<ScaleSubresource>,
}

impl ResourceType {
    /// `pods`, `deployments.apps`: how errors and accounting name the resource.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `v1`, `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The store key: one table per group and resource, shared by all served versions (and
    /// by the versions of another group stored there, see `conversion.rs`).
    pub fn storage_key(&self) -> String {
        match &self.conversion {
            Some(conversion) => conversion.storage_key.to_string(),
            None => self.qualified_plural(),
        }
    }

    /// `object`, written in this version, as it is stored.
    pub fn to_storage(&self, object: Value) -> Value {
        match &self.conversion {
            Some(conversion) => conversion.to_storage(object),
            None => object,
        }
    }

    /// A stored object as this version serves it, when it is stored in another version's
    /// form (`conversion`); anything else is returned as stored.
    pub fn to_served(&self, object: Value) -> Value {
        match &self.conversion {
            Some(conversion) => conversion.to_served(object, &self.api_version()),
            None => object,
        }
    }

    /// A stored object as a response at this version shows it: converted, and labelled with
    /// this version's apiVersion (objects of multi-version CRDs are stored at the version they
    /// were written with and have no conversion: `None`, only apiVersion changes).
    pub fn for_response(&self, object: Value) -> Value {
        let mut object = self.to_served(object);
        if let Some(map) = object.as_object_mut() {
            map.insert("apiVersion".to_string(), Value::String(self.api_version()));
        }
        object
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// `details` of a Status about one object of this kind.
    pub fn details(&self, name: &str) -> Value {
        let mut details = json!({"name": name, "kind": self.plural});
        if !self.group.is_empty() {
            details["group"] = Value::String(self.group.clone());
        }
        details
    }

    /// The `fieldSelector` names this kind accepts, in the order values are stored.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.selectable.iter().map(|f| f.name.as_str())
    }

    /// The URL path of the collection, for `selfLink`-free messages and OpenAPI.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let prefix = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace {
            Some(ns) if self.namespaced => format!("{prefix}/namespaces/{ns}/{}", self.plural),
            _ => format!("{prefix}/{}", self.plural),
        }
    }
}

/// All served kinds, looked up by URL segments or by apiVersion and kind.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    types: Vec<Arc<ResourceType>>,
}

impl Registry {
    /// The built-in kinds of Kubernetes 1.33 that controllers commonly touch.
    pub fn builtin() -> Self {
        Self {
            types: crate::builtin::types().into_iter().map(Arc::new).collect(),
        }
    }

    /// The kind served at `/api(s)/{group}/{version}/{plural}`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// The kind an object with this apiVersion and kind belongs to.
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        let (group, version) = split_api_version(api_version);
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
            .cloned()
    }

    /// Any served version of a group and resource (for CRD cleanup, namespace deletion).
    pub fn versions_of(&self, storage_key: &str) -> Vec<Arc<ResourceType>> {
        self.types
            .iter()
            .filter(|t| t.storage_key() == storage_key)
            .cloned()
            .collect()
    }

    pub fn all(&self) -> &[Arc<ResourceType>] {
        &self.types
    }

    /// Groups and their versions in discovery order: the core group first, then others by
    /// first registration.
    pub fn group_versions(&self) -> Vec<(String, Vec<String>)> {
        let mut order: Vec<String> = Vec::new();
        let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in &self.types {
            if !order.contains(&t.group) {
                order.push(t.group.clone());
            }
            let list = versions.entry(t.group.clone()).or_default();
            if !list.contains(&t.version) {
                list.push(t.version.clone());
            }
        }
        order
            .into_iter()
            .map(|g| {
                let mut v = versions.remove(&g).unwrap_or_default();
                v.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
                (g, v)
            })
            .collect()
    }

    /// Replaces every version of the CRD-served resource `storage_key` with `types`.
    pub fn set_custom(&mut self, storage_key: &str, types: Vec<ResourceType>) {
        self.types
            .retain(|t| !(t.custom && t.storage_key() == storage_key));
        self.types.extend(types.into_iter().map(Arc::new));
    }

    pub fn remove_custom(&mut self, storage_key: &str) {
        self.set_custom(storage_key, Vec::new());
    }
}

/// `apps/v1` -> (`apps`, `v1`); `v1` -> (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

/// Kubernetes version ordering: GA > beta > alpha, higher numbers first (`v2` > `v1` >
/// `v1beta2` > `v1beta1` > `v1alpha1`). Anything else sorts last.
pub fn version_priority(version: &str) -> (u8, u32, u32) {
    let Some(rest) = version.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let Ok(major) = digits.parse::<u32>() else {
        return (0, 0, 0);
    };
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        return (3, major, 0);
    }
    let (stage, minor) = if let Some(n) = tail.strip_prefix("beta") {
        (2, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n)
    } else {
        return (0, 0, 0);
    };
    match minor.parse::<u32>() {
        Ok(minor) => (stage, major, minor),
        Err(_) => (0, 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_have_the_right_scope_and_names() {
        let registry = Registry::builtin();
        let ns = registry.find("", "v1", "namespaces").unwrap();
        assert!(!ns.namespaced);
        let pods = registry.find("", "v1", "pods").unwrap();
        assert!(pods.namespaced && pods.status_subresource);
        assert_eq!(pods.qualified_plural(), "pods");
        let deploy = registry.find_kind("apps/v1", "Deployment").unwrap();
        assert_eq!(deploy.qualified_plural(), "deployments.apps");
        assert_eq!(deploy.short_names, vec!["deploy"]);
        let crd = registry
            .find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .unwrap();
        assert!(!crd.namespaced);
        assert!(registry.find("", "v1", "widgets").is_none());
        for kind in [
            "Namespace",
            "Pod",
            "ConfigMap",
            "Secret",
            "Service",
            "Event",
            "ServiceAccount",
            "ResourceQuota",
        ] {
            assert!(registry.find_kind("v1", kind).is_some(), "{kind}");
        }
        for (api_version, kind) in [
            ("apps/v1", "ReplicaSet"),
            ("apps/v1", "StatefulSet"),
            ("apps/v1", "DaemonSet"),
            ("batch/v1", "Job"),
            ("coordination.k8s.io/v1", "Lease"),
            ("networking.k8s.io/v1", "NetworkPolicy"),
            ("rbac.authorization.k8s.io/v1", "Role"),
            ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ] {
            assert!(registry.find_kind(api_version, kind).is_some(), "{kind}");
        }
    }

    #[test]
    fn versions_sort_like_kubernetes() {
        let mut v = vec!["v1alpha1", "v1", "v2beta1", "v1beta2", "v2", "foo"];
        v.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        assert_eq!(v, vec!["v2", "v1", "v2beta1", "v1beta2", "v1alpha1", "foo"]);
    }

    #[test]
    fn core_group_comes_first_in_discovery() {
        let registry = Registry::builtin();
        let groups = registry.group_versions();
        assert_eq!(groups[0].0, "");
        assert!(groups.iter().any(|(g, v)| g == "apps" && v == &["v1"]));
    }
}
