//! The caches one plugin's host calls may answer from: one per kind, with the kind's scope.
//!
//! Built from the plugin's informer subscriptions (primary and secondary), each of which names
//! its cache and whether its kind is namespaced. Reads are answered from here and nowhere
//! else; writes use it to see whether they would change anything (no-op elision). A kind
//! with no cache here cannot be read, whatever the permissions say — config validation
//! (`ops::config`) rejects such a config, and the host call answers `forbidden` naming the
//! gap if one slips through.

use std::collections::HashMap;
use std::sync::Arc;

use crate::cache::{Cache, Gvk};
use crate::informer::Subscription;

/// One kind's cache and scope.
#[derive(Debug, Clone)]
pub struct KindCache {
    pub cache: Arc<Cache>,
    pub namespaced: bool,
}

/// Why a cache could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CachesError {
    /// Two watches of one kind would make reads ambiguous (which one answers?). The host
    /// config gives each kind one watch per plugin.
    #[error("two caches for {kind}: a plugin reads each kind through one watch")]
    Duplicate { kind: Gvk },
}

/// Kind -> cache, for one plugin.
#[derive(Debug, Clone, Default)]
pub struct ReadableCaches {
    kinds: HashMap<Gvk, KindCache>,
}

impl ReadableCaches {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the cache of one kind.
    pub fn add(&mut self, cache: Arc<Cache>, namespaced: bool) -> Result<&mut Self, CachesError> {
        let kind = cache.kind().clone();
        if self.kinds.contains_key(&kind) {
            return Err(CachesError::Duplicate { kind });
        }
        self.kinds.insert(kind, KindCache { cache, namespaced });
        Ok(self)
    }

    /// Adds the cache of an informer subscription.
    pub fn add_subscription(
        &mut self,
        subscription: &Subscription,
    ) -> Result<&mut Self, CachesError> {
        self.add(subscription.cache().clone(), subscription.namespaced())
    }

    pub fn get(&self, kind: &Gvk) -> Option<&KindCache> {
        self.kinds.get(kind)
    }

    pub fn kinds(&self) -> impl Iterator<Item = &Gvk> {
        self.kinds.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_has_one_cache() {
        let pod = Gvk::new("", "v1", "Pod");
        let mut caches = ReadableCaches::new();
        caches
            .add(Arc::new(Cache::new(pod.clone(), Vec::new())), true)
            .unwrap();
        let again = caches
            .add(Arc::new(Cache::new(pod.clone(), Vec::new())), true)
            .unwrap_err();
        assert_eq!(again, CachesError::Duplicate { kind: pod.clone() });
        assert!(again.to_string().contains("/v1, Kind=Pod"), "{again}");
        assert!(caches.get(&pod).is_some_and(|c| c.namespaced));
        assert!(caches.get(&Gvk::new("", "v1", "ConfigMap")).is_none());
    }
}
