//! The vocabulary of the contract, as plain Rust types.
//!
//! These mirror the WIT records (`gvk`, `object-key`, `reconcile-request`, `action`) but are the
//! SDK's own, so plugin code never names a generated binding and the same types work on the
//! native target, where the test harness stands in for the host.

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::Error;
use crate::kind::Kind;

/// A Kubernetes group/version/kind. The core group is the empty string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvk {
    pub fn new(
        group: impl Into<String>,
        version: impl Into<String>,
        kind: impl Into<String>,
    ) -> Self {
        Gvk {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        }
    }

    /// The kind of a typed object, e.g. `Gvk::of::<Deployment>()`.
    pub fn of<K: Kind>() -> Self {
        K::gvk()
    }

    /// From an object's `apiVersion` (`apps/v1`, or `v1` for the core group) and `kind`.
    pub fn from_api_version(api_version: &str, kind: impl Into<String>) -> Self {
        match api_version.split_once('/') {
            Some((group, version)) => Gvk::new(group, version, kind),
            None => Gvk::new("", api_version, kind),
        }
    }

    /// The `apiVersion` field for this kind: `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// `apps/v1 Deployment`, the way `kubectl` and the API server name a kind.
impl fmt::Display for Gvk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            write!(f, "{} {}", self.version, self.kind)
        } else {
            write!(f, "{}/{} {}", self.group, self.version, self.kind)
        }
    }
}

/// Where an object lives. `namespace` is `None` for cluster-scoped kinds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectKey {
    pub fn new<'a>(namespace: impl Into<Option<&'a str>>, name: impl Into<String>) -> Self {
        ObjectKey {
            namespace: namespace.into().map(str::to_owned),
            name: name.into(),
        }
    }

    /// The key of an object as JSON (`metadata.namespace`, `metadata.name`); `None` when it has
    /// no name.
    pub fn of_json(object: &serde_json::Value) -> Option<Self> {
        let metadata = object.get("metadata")?;
        Some(ObjectKey {
            namespace: metadata
                .get("namespace")
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            name: metadata.get("name")?.as_str()?.to_owned(),
        })
    }
}

/// `namespace/name`, or `name` for cluster-scoped objects.
impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A kind and a key: one object, e.g. what an Event is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    pub kind: Gvk,
    pub key: ObjectKey,
}

impl ObjectRef {
    pub fn new(kind: Gvk, key: ObjectKey) -> Self {
        ObjectRef { kind, key }
    }

    /// The reference of an object as JSON (`apiVersion`, `kind`, `metadata`); `None` when any of
    /// them is missing.
    pub fn of_json(object: &serde_json::Value) -> Option<Self> {
        let api_version = object.get("apiVersion")?.as_str()?;
        let kind = object.get("kind")?.as_str()?;
        Some(ObjectRef {
            kind: Gvk::from_api_version(api_version, kind),
            key: ObjectKey::of_json(object)?,
        })
    }

    /// The reference of a typed object.
    #[cfg(feature = "k8s")]
    pub fn of<K>(object: &K) -> Self
    where
        K: k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
    {
        let metadata = object.metadata();
        ObjectRef {
            kind: Gvk::new(K::GROUP, K::VERSION, K::KIND),
            key: ObjectKey {
                namespace: metadata.namespace.clone().filter(|s| !s.is_empty()),
                name: metadata.name.clone().unwrap_or_default(),
            },
        }
    }
}

/// `apps/v1 Deployment default/web`.
impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.key)
    }
}

/// What the host hands to `reconcile`: the dequeued key, the plugin's primary kind, and the
/// object as the host's cache holds it now (`None` when it is gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub kind: Gvk,
    pub key: ObjectKey,
    /// The object's JSON, exactly as the host passed it; [`Request::object`] decodes it.
    pub object_json: Option<String>,
}

impl Request {
    pub fn namespace(&self) -> Option<&str> {
        self.key.namespace.as_deref()
    }

    pub fn name(&self) -> &str {
        &self.key.name
    }

    /// The object this request is about.
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef::new(self.kind.clone(), self.key.clone())
    }

    /// The object decoded as `K` (a k8s-openapi type, a CRD struct or `serde_json::Value`);
    /// `None` when it is gone. A decode failure names the object and is not retryable.
    pub fn object<K: DeserializeOwned>(&self) -> Result<Option<K>, Error> {
        self.object_json
            .as_deref()
            .map(|json| {
                serde_json::from_str(json)
                    .map_err(|e| Error::decode(self.object_ref().to_string(), e))
            })
            .transpose()
    }
}

/// What a successful reconcile tells the host to do with the key. Failures are the `Err` side
/// of `reconcile`'s result (see [`Error`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Converged: the key's failure count is reset and it runs again on its next change.
    Done,
    /// Run again after this long (e.g. to poll external state). An earlier change to the
    /// object still runs it sooner.
    RequeueAfter(Duration),
}

impl Action {
    pub fn done() -> Self {
        Action::Done
    }

    pub fn requeue_after(after: Duration) -> Self {
        Action::RequeueAfter(after)
    }

    /// The requeue delay in whole milliseconds as the contract carries it, rounded up so that
    /// a sub-millisecond delay never becomes an immediate busy requeue, saturating at
    /// `u64::MAX`.
    pub fn requeue_millis(after: Duration) -> u64 {
        let millis = after.as_nanos().div_ceil(1_000_000);
        u64::try_from(millis).unwrap_or(u64::MAX)
    }
}

/// The type of a Kubernetes Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

/// A log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gvk_round_trips_api_version() {
        let apps = Gvk::from_api_version("apps/v1", "Deployment");
        assert_eq!(apps, Gvk::new("apps", "v1", "Deployment"));
        assert_eq!(apps.api_version(), "apps/v1");
        assert_eq!(apps.to_string(), "apps/v1 Deployment");
        let core = Gvk::from_api_version("v1", "Pod");
        assert_eq!(core.group, "");
        assert_eq!(core.api_version(), "v1");
        assert_eq!(core.to_string(), "v1 Pod");
    }

    #[test]
    fn object_ref_of_json_requires_every_part() {
        let pod =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": "a", "name": "p"}});
        assert_eq!(ObjectRef::of_json(&pod).unwrap().to_string(), "v1 Pod a/p");
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}});
        assert_eq!(ObjectRef::of_json(&ns).unwrap().key.namespace, None);
        for broken in [
            json!({"kind": "Pod", "metadata": {"name": "p"}}),
            json!({"apiVersion": "v1", "metadata": {"name": "p"}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": 3}}),
        ] {
            assert_eq!(ObjectRef::of_json(&broken), None, "{broken}");
        }
    }

    #[test]
    fn request_object_decodes_or_names_the_object() {
        let mut request = Request {
            kind: Gvk::new("", "v1", "ConfigMap"),
            key: ObjectKey::new("default", "cm"),
            object_json: Some(r#"{"data": {"a": "b"}}"#.into()),
        };
        let value: serde_json::Value = request.object().unwrap().unwrap();
        assert_eq!(value["data"]["a"], "b");

        request.object_json = Some("{not json".into());
        let err = request.object::<serde_json::Value>().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot decode v1 ConfigMap default/cm: "),
            "{err}"
        );

        request.object_json = None;
        assert_eq!(request.object::<serde_json::Value>().unwrap(), None);
    }

    #[test]
    fn requeue_millis_rounds_up_and_saturates() {
        assert_eq!(Action::requeue_millis(Duration::ZERO), 0);
        assert_eq!(Action::requeue_millis(Duration::from_micros(1)), 1);
        assert_eq!(Action::requeue_millis(Duration::from_millis(1500)), 1500);
        assert_eq!(Action::requeue_millis(Duration::MAX), u64::MAX);
    }
}
