//! What the queue needs from a key.
//!
//! The queue is generic so it can be tested and benchmarked with any key, but it needs one thing
//! beyond `Eq + Hash`: the key's *fairness group*, the unit that round-robin fairness rotates
//! between (see `fairness.rs`). For Kubernetes objects that is the namespace, so a namespace
//! with 50k pending keys cannot starve one with 5. `Debug` is required so the queue can name
//! the key in its logs when something goes wrong (an abandoned guard, an impossible state).

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

/// The hasher for maps keyed by queue keys. Hashing is most of the cost of an add, take and
/// finish (SipHash alone was a quarter of the time in a profile), so this is foldhash, the
/// default of hashbrown and of kube-runtime's scheduler: several times faster than SipHash,
/// and seeded randomly per process, which keeps crafted object names from predicting
/// collisions.
pub(crate) type KeyHasher = foldhash::fast::RandomState;

/// A hash map keyed by queue keys (or their groups).
pub(crate) type KeyMap<K, V> = HashMap<K, V, KeyHasher>;

/// A key the work queue can hold.
///
/// Keys are cloned into the queue's internal structures, so they should be cheap to clone
/// (shared strings, small integers); [`ObjectKey`] is the host's choice.
pub trait QueueKey: Clone + Eq + Hash + fmt::Debug + Send + Sync + 'static {
    /// The fairness group, e.g. the namespace. Keys of one group are served in FIFO order;
    /// with fairness on, groups with pending keys take turns.
    type Group: Clone + Eq + Hash + fmt::Debug + Send + Sync + 'static;

    /// The group this key belongs to.
    fn group(&self) -> &Self::Group;
}

/// The host's key: an object of one kind, identified by namespace and name.
///
/// Shared strings make a clone three reference-count increments, which matters because the
/// queue clones a key once per add of a new key.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ObjectKey {
    /// The object's kind (e.g. `ConfigMap`); one plugin may reconcile several kinds.
    pub kind: Arc<str>,
    /// The namespace; `None` for cluster-scoped kinds, which form one fairness group.
    pub namespace: Option<Arc<str>>,
    /// The object's name.
    pub name: Arc<str>,
}

impl ObjectKey {
    /// A key for a namespaced object.
    pub fn namespaced(kind: &str, namespace: &str, name: &str) -> Self {
        Self {
            kind: kind.into(),
            namespace: Some(namespace.into()),
            name: name.into(),
        }
    }

    /// A key for a cluster-scoped object.
    pub fn cluster(kind: &str, name: &str) -> Self {
        Self {
            kind: kind.into(),
            namespace: None,
            name: name.into(),
        }
    }
}

impl QueueKey for ObjectKey {
    type Group = Option<Arc<str>>;

    fn group(&self) -> &Self::Group {
        &self.namespace
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{}/{}", self.kind, ns, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_is_the_fairness_group() {
        let a = ObjectKey::namespaced("ConfigMap", "team-a", "x");
        let b = ObjectKey::namespaced("Secret", "team-a", "y");
        let c = ObjectKey::namespaced("ConfigMap", "team-b", "x");
        assert_eq!(a.group(), b.group());
        assert_ne!(a.group(), c.group());
        assert_eq!(ObjectKey::cluster("Node", "n1").group(), &None);
    }

    #[test]
    fn display_names_kind_namespace_and_name() {
        assert_eq!(
            ObjectKey::namespaced("ConfigMap", "ns", "cm").to_string(),
            "ConfigMap/ns/cm"
        );
        assert_eq!(ObjectKey::cluster("Node", "n1").to_string(), "Node/n1");
    }

    #[test]
    fn same_name_in_another_kind_is_another_key() {
        assert_ne!(
            ObjectKey::namespaced("ConfigMap", "ns", "x"),
            ObjectKey::namespaced("Secret", "ns", "x")
        );
    }
}
