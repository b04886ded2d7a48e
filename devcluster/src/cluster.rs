//! The server's state, shared by the HTTP layer and the Rust API.
//!
//! `Cluster` ties the store, the registry of served kinds, accounting and fault injection
//! together. Its operations (`write.rs`, `read.rs`) speak Kubernetes semantics and return
//! `ApiError`s; the HTTP layer only translates requests and responses.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::accounting::Accounting;
use crate::faults::Faults;
use crate::registry::{Registry, ResourceType};
use crate::services::Allocator;
use crate::store::Store;

pub struct Cluster {
    pub store: Store,
    registry: RwLock<Registry>,
    pub accounting: Accounting,
    pub faults: Faults,
    /// Service cluster IPs and node ports (`services.rs`).
    pub allocator: Allocator,
}

impl Cluster {
    /// A cluster serving the built-in kinds, keeping `history` events per kind.
    pub fn new(history: usize) -> Self {
        Self {
            store: Store::new(history),
            registry: RwLock::new(Registry::builtin()),
            accounting: Accounting::default(),
            faults: Faults::default(),
            allocator: Allocator::default(),
        }
    }

    /// A copy of the registry (cheap: `Arc`s). Never held across store calls, so the
    /// registry and the store lock cannot deadlock.
    pub fn registry(&self) -> Registry {
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn with_registry<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        f(&mut self.registry.write().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .find(group, version, plural)
    }

    pub fn resolve_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .find_kind(api_version, kind)
    }

    /// One type per table, for transactions that touch many kinds (namespace deletion).
    pub fn types_by_table(&self) -> HashMap<String, Arc<ResourceType>> {
        let registry = self.registry();
        let mut out = HashMap::new();
        for t in registry.all() {
            out.entry(t.storage_key()).or_insert_with(|| t.clone());
        }
        out
    }
}
