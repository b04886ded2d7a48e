//! A ConfigMap cache filled through the cache API, for tests and benchmarks of what reads the
//! cache (the worker pool and its plugins): the informer's own tests cover how a watch fills
//! it, so these fill it directly.

#![allow(dead_code)] // each test binary uses a different part of it

use serde_json::value::RawValue;
use serde_json::{Value, json};
use trellis_host::cache::{self, Cache, JsonText, Metadata};
use trellis_host::sandbox;

pub fn configmap_kind() -> cache::Gvk {
    cache::Gvk::new("", "v1", "ConfigMap")
}

/// An empty cache of ConfigMaps.
pub fn configmap_cache() -> Cache {
    Cache::new(configmap_kind(), Vec::new())
}

/// Stores ConfigMap `<namespace>/<name>` (resourceVersion 1) with `data`.
pub fn put_configmap(cache: &Cache, namespace: &str, name: &str, data: Value) {
    let text = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"namespace": namespace, "name": name, "uid": format!("uid-{name}"),
                     "resourceVersion": "1"},
        "data": data,
    })
    .to_string();
    let raw: &RawValue = serde_json::from_str(&text).unwrap();
    let meta = Metadata::parse(&text).unwrap();
    cache.upsert(cache.build(raw, meta, JsonText::from(text.clone())));
}

/// The cached JSON of the object a plugin asks for, as a host's `get` answers it.
pub fn cached_json(cache: &Cache, key: &sandbox::ObjectKey) -> Option<String> {
    let key = cache::ObjectKey::new(key.namespace.as_deref(), &key.name);
    cache.get(&key).map(|o| o.json().as_str().to_string())
}
