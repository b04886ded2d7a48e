//! Names of things in the cache: a kind ([`Gvk`]) and an object's place ([`ObjectKey`]).
//!
//! Keys travel everywhere — into every index posting, every queue, every log line — so they
//! are reference-counted strings: cloning one is a couple of atomic increments, never a copy.

use std::fmt;
use std::sync::Arc;

/// A Kubernetes group/version/kind. The core group is the empty string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gvk {
    pub group: Arc<str>,
    pub version: Arc<str>,
    pub kind: Arc<str>,
}

impl Gvk {
    pub fn new(group: &str, version: &str, kind: &str) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        }
    }

    /// From an object's `apiVersion` (`v1`, `apps/v1`) and `kind`.
    pub fn from_api_version(api_version: &str, kind: &str) -> Self {
        match api_version.split_once('/') {
            Some((group, version)) => Self::new(group, version, kind),
            None => Self::new("", api_version, kind),
        }
    }

    /// `v1` for the core group, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Go's `GroupVersionKind.String()`: `apps/v1, Kind=Deployment`, `/v1, Kind=Pod`. Users search
/// for that shape in kubectl and server messages, so errors use it too.
impl fmt::Display for Gvk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}, Kind={}", self.group, self.version, self.kind)
    }
}

/// Where an object lives: `namespace` is `None` for cluster-scoped kinds.
///
/// Ordered by namespace then name (cluster-scoped objects first), which is the order the cache
/// lists in and what makes "all objects of one namespace" a range of the primary map.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: Option<Arc<str>>,
    pub name: Arc<str>,
}

impl ObjectKey {
    pub fn new(namespace: Option<&str>, name: &str) -> Self {
        Self {
            namespace: namespace.map(Arc::from),
            name: name.into(),
        }
    }

    pub fn namespaced(namespace: &str, name: &str) -> Self {
        Self::new(Some(namespace), name)
    }

    pub fn cluster(name: &str) -> Self {
        Self::new(None, name)
    }

    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// `namespace/name`, or `name` for cluster-scoped objects, as kubectl and client-go print keys.
impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_version_round_trips_core_and_named_groups() {
        let pod = Gvk::from_api_version("v1", "Pod");
        assert_eq!(&*pod.group, "");
        assert_eq!(pod.api_version(), "v1");
        assert_eq!(pod.to_string(), "/v1, Kind=Pod");
        let deploy = Gvk::from_api_version("apps/v1", "Deployment");
        assert_eq!(&*deploy.group, "apps");
        assert_eq!(deploy.api_version(), "apps/v1");
        assert_eq!(deploy.to_string(), "apps/v1, Kind=Deployment");
    }

    #[test]
    fn keys_order_cluster_scoped_first_then_namespace_then_name() {
        let mut keys = [
            ObjectKey::namespaced("b", "a"),
            ObjectKey::namespaced("a", "z"),
            ObjectKey::cluster("zz"),
            ObjectKey::namespaced("a", "b"),
        ];
        keys.sort();
        let shown: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["zz", "a/b", "a/z", "b/a"]);
    }
}
