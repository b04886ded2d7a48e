//! The informer's [`KeySink`] over a plugin's work queue.
//!
//! The informer hands over a cache key (namespace, name) and a priority; the queue holds
//! [`queue::ObjectKey`]s, which also carry the kind so that logs and metrics name it. Every
//! key a plugin's subscriptions deliver is a key of its primary kind (secondary watches are
//! mapped to primary keys by the informer), so one sink per plugin stamps the primary kind on
//! each. The kind and the key's strings are shared (`Arc<str>`): the conversion allocates
//! nothing.
//!
//! `enqueue` is a synchronous queue add (a short lock, no await, no capacity to wait for), so
//! the event path never blocks here (DESIGN invariant 1). After the queue is shut down adds
//! are refused and counted by the queue; the sink only traces them.

use std::sync::Arc;

use crate::cache;
use crate::informer::{KeySink, Priority as InformerPriority};
use crate::queue::{self, AddOutcome, WorkQueue};

/// Adapts one plugin's work queue to the informer's [`KeySink`].
#[derive(Clone, Debug)]
pub struct QueueSink {
    queue: WorkQueue<queue::ObjectKey>,
    kind: Arc<str>,
}

impl QueueSink {
    /// A sink stamping `primary`'s kind on every key.
    pub fn new(queue: WorkQueue<queue::ObjectKey>, primary: &cache::Gvk) -> Self {
        Self {
            queue,
            kind: primary.kind.clone(),
        }
    }

    /// The queue key for a cache key of the primary kind.
    pub fn queue_key(&self, key: cache::ObjectKey) -> queue::ObjectKey {
        queue::ObjectKey {
            kind: self.kind.clone(),
            namespace: key.namespace,
            name: key.name,
        }
    }
}

/// The queue's priority for an informer priority: the same two levels.
pub fn queue_priority(priority: InformerPriority) -> queue::Priority {
    match priority {
        InformerPriority::Normal => queue::Priority::Normal,
        InformerPriority::Low => queue::Priority::Low,
    }
}

impl KeySink for QueueSink {
    fn enqueue(&self, key: cache::ObjectKey, priority: InformerPriority) {
        let key = self.queue_key(key);
        if self.queue.add_with_priority(key, queue_priority(priority)) == AddOutcome::Refused {
            tracing::trace!(kind = %self.kind, "key refused: the work queue is shut down");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::QueueConfig;

    fn sink() -> (QueueSink, WorkQueue<queue::ObjectKey>) {
        let queue = WorkQueue::new(QueueConfig::new("p")).unwrap();
        let kind = cache::Gvk::new("apps", "v1", "Deployment");
        (QueueSink::new(queue.clone(), &kind), queue)
    }

    #[test]
    fn keys_get_the_primary_kind_and_the_same_priority() {
        let (sink, queue) = sink();
        sink.enqueue(
            cache::ObjectKey::namespaced("ns", "low"),
            InformerPriority::Low,
        );
        sink.enqueue(
            cache::ObjectKey::cluster("normal"),
            InformerPriority::Normal,
        );
        let stats = queue.stats();
        assert_eq!((stats.ready_normal, stats.ready_low), (1, 1));
        let first = queue.try_next().unwrap();
        assert_eq!(
            first.key(),
            &queue::ObjectKey::cluster("Deployment", "normal")
        );
        assert_eq!(first.priority(), queue::Priority::Normal);
        let second = queue.try_next().unwrap();
        assert_eq!(
            second.key(),
            &queue::ObjectKey::namespaced("Deployment", "ns", "low")
        );
        assert_eq!(second.priority(), queue::Priority::Low);
        first.done();
        second.done();
    }

    #[test]
    fn duplicates_merge_and_adds_after_shutdown_are_refused_without_blocking() {
        let (sink, queue) = sink();
        for _ in 0..3 {
            sink.enqueue(
                cache::ObjectKey::namespaced("ns", "a"),
                InformerPriority::Normal,
            );
        }
        assert_eq!(queue.stats().keys, 1);
        queue.close();
        sink.enqueue(
            cache::ObjectKey::namespaced("ns", "b"),
            InformerPriority::Normal,
        );
        assert_eq!(queue.stats().keys, 1);
    }
}
