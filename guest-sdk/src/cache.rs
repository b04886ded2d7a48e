//! Typed reads from the host's informer cache.
//!
//! The host never forwards a read to the API server: a plugin sees what its watches have
//! observed, and only kinds its configuration lets it read. `get`, `list` and `lookup` take the
//! kind from the type (`get::<Deployment>`); the `*_as` variants take an explicit [`Gvk`] and
//! decode into any serde type, e.g. `serde_json::Value` for a CRD without a Rust struct.

use serde::de::DeserializeOwned;

use crate::{Error, Gvk, Kind, ObjectKey, raw};

/// Names of the indexes every kind has in the host's cache. Other index names are the ones the
/// host configuration declares for a kind.
pub mod index {
    /// Value: the namespace.
    pub const NAMESPACE: &str = "namespace";
    /// Value: the UID of the object's controller owner (`ownerReferences[].controller: true`).
    pub const OWNER: &str = "owner";
    /// Value: `key=value` of one label (see [`label`]).
    pub const LABEL: &str = "label";

    /// The `label` index value for one label.
    pub fn label(key: &str, value: &str) -> String {
        format!("{key}={value}")
    }
}

/// Decodes one object handed over by the host; on failure, names it (as far as the JSON says)
/// and what it was read for.
pub(crate) fn decode<T: DeserializeOwned>(
    json: &str,
    kind: &Gvk,
    context: &dyn Fn() -> String,
) -> Result<T, Error> {
    serde_json::from_str(json).map_err(|e| {
        let name = serde_json::from_str::<serde_json::Value>(json)
            .ok()
            .and_then(|v| ObjectKey::of_json(&v))
            .map(|key| format!("{kind} {key}"))
            .unwrap_or_else(|| format!("a {kind}"));
        Error::decode(format!("{name} from {}", context()), e)
    })
}

/// The object of kind `K` with this namespace (`None` for cluster-scoped kinds) and name, or
/// `None` when the cache does not hold it.
pub fn get<'a, K: Kind + DeserializeOwned>(
    namespace: impl Into<Option<&'a str>>,
    name: &str,
) -> Result<Option<K>, Error> {
    get_as(&K::gvk(), namespace, name)
}

/// [`get`] with an explicit kind, decoding into any serde type.
pub fn get_as<'a, T: DeserializeOwned>(
    kind: &Gvk,
    namespace: impl Into<Option<&'a str>>,
    name: &str,
) -> Result<Option<T>, Error> {
    let key = ObjectKey::new(namespace, name);
    raw::get(kind, &key)?
        .map(|json| decode(&json, kind, &|| format!("get {kind} {key}")))
        .transpose()
}

/// Objects of kind `K` in a namespace (every readable namespace when `None`) matching a label
/// selector in full Kubernetes syntax (`app=web,tier!=cache,env in (a,b),!legacy`; every object
/// when `None`), ordered by namespace then name.
pub fn list<'a, 's, K: Kind + DeserializeOwned>(
    namespace: impl Into<Option<&'a str>>,
    label_selector: impl Into<Option<&'s str>>,
) -> Result<Vec<K>, Error> {
    list_as(&K::gvk(), namespace, label_selector)
}

/// [`list`] with an explicit kind, decoding into any serde type.
pub fn list_as<'a, 's, T: DeserializeOwned>(
    kind: &Gvk,
    namespace: impl Into<Option<&'a str>>,
    label_selector: impl Into<Option<&'s str>>,
) -> Result<Vec<T>, Error> {
    let (namespace, selector) = (namespace.into(), label_selector.into());
    raw::list(kind, namespace, selector)?
        .iter()
        .map(|json| decode(json, kind, &|| format!("list {kind}")))
        .collect()
}

/// Objects of kind `K` whose index `index` holds `value`: see [`index`] for the built-in
/// indexes, e.g. `lookup::<Pod>(index::OWNER, uid)`.
pub fn lookup<K: Kind + DeserializeOwned>(index: &str, value: &str) -> Result<Vec<K>, Error> {
    lookup_as(&K::gvk(), index, value)
}

/// [`lookup`] with an explicit kind, decoding into any serde type.
pub fn lookup_as<T: DeserializeOwned>(
    kind: &Gvk,
    index: &str,
    value: &str,
) -> Result<Vec<T>, Error> {
    raw::lookup(kind, index, value)?
        .iter()
        .map(|json| decode(json, kind, &|| format!("lookup {kind} by {index}={value}")))
        .collect()
}
