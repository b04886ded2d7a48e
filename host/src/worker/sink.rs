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
//!
//! The sink is also told of the plugin's own writes to its primary objects ([`OwnWrites`]), so
//! that the informer can tell their echoes from news (`echoes`).

use std::sync::Arc;

use parking_lot::Mutex;

use super::echoes::EchoTable;
use crate::cache;
use crate::hostcalls::OwnWrites;
use crate::informer::{KeySink, Priority as InformerPriority};
use crate::queue::{self, AddOutcome, WorkQueue};

/// Adapts one plugin's work queue to the informer's [`KeySink`].
#[derive(Clone, Debug)]
pub struct QueueSink {
    queue: WorkQueue<queue::ObjectKey>,
    primary: cache::Gvk,
    /// The plugin's own writes to primary objects, until their echoes arrive.
    echoes: Arc<Mutex<EchoTable>>,
}

impl QueueSink {
    /// A sink stamping `primary`'s kind on every key.
    pub fn new(queue: WorkQueue<queue::ObjectKey>, primary: &cache::Gvk) -> Self {
        Self {
            queue,
            primary: primary.clone(),
            echoes: Arc::default(),
        }
    }

    /// The queue key for a cache key of the primary kind.
    pub fn queue_key(&self, key: cache::ObjectKey) -> queue::ObjectKey {
        queue::ObjectKey {
            kind: self.primary.kind.clone(),
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
            tracing::trace!(kind = %self.primary.kind, "key refused: the work queue is shut down");
        }
    }

    fn is_echo(&self, object: &cache::Metadata) -> bool {
        self.echoes
            .lock()
            .is_echo(&object.key, &object.resource_version)
    }

    fn dropped_update(&self, object: &cache::Metadata) {
        self.echoes
            .lock()
            .passed_over(&object.key, &object.resource_version);
    }

    fn forget_writes(&self, key: &cache::ObjectKey) {
        self.echoes.lock().forget(key);
    }
}

impl OwnWrites for QueueSink {
    fn sending(&self, kind: &cache::Gvk, key: &cache::ObjectKey) -> bool {
        *kind == self.primary && self.echoes.lock().sending(key)
    }

    fn answered(&self, kind: &cache::Gvk, key: &cache::ObjectKey, resource_version: Option<&str>) {
        if *kind != self.primary {
            return;
        }
        let promote = self.echoes.lock().answered(key, resource_version);
        if promote {
            // An update let in at low priority as this write's presumed echo was someone
            // else's change: it is news after all.
            self.enqueue(key.clone(), InformerPriority::Normal);
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

    fn object(name: &str, rv: u32) -> cache::Metadata {
        cache::Metadata::parse(&format!(
            r#"{{"metadata":{{"name":"{name}","namespace":"ns","resourceVersion":"{rv}"}}}}"#
        ))
        .unwrap()
    }

    fn deployment() -> cache::Gvk {
        cache::Gvk::new("apps", "v1", "Deployment")
    }

    #[test]
    fn a_presumed_echo_the_answer_does_not_confirm_is_raised_to_normal_priority() {
        let (sink, queue) = sink();
        let a = cache::ObjectKey::namespaced("ns", "a");
        assert!(sink.sending(&deployment(), &a));
        // Someone else's change arrives while the write is in flight: let in at low priority.
        assert!(sink.is_echo(&object("a", 6)));
        sink.enqueue(a.clone(), InformerPriority::Low);
        assert_eq!(queue.stats().ready_low, 1);
        sink.answered(&deployment(), &a, Some("7"));
        let stats = queue.stats();
        assert_eq!(
            (stats.ready_normal, stats.ready_low),
            (1, 0),
            "news after all"
        );
        // The write's own echo is still told apart.
        assert!(sink.is_echo(&object("a", 7)));
        assert!(!sink.is_echo(&object("a", 8)));
    }

    #[test]
    fn a_confirmed_echo_stays_low_and_writes_to_other_kinds_are_not_tracked() {
        let (sink, queue) = sink();
        let a = cache::ObjectKey::namespaced("ns", "a");
        sink.sending(&deployment(), &a);
        assert!(sink.is_echo(&object("a", 7)));
        sink.enqueue(a.clone(), InformerPriority::Low);
        sink.answered(&deployment(), &a, Some("7"));
        let stats = queue.stats();
        assert_eq!((stats.ready_normal, stats.ready_low), (0, 1));

        let config_map = cache::Gvk::new("", "v1", "ConfigMap");
        assert!(!sink.sending(&config_map, &a));
        sink.answered(&config_map, &a, Some("9"));
        assert!(!sink.is_echo(&object("a", 9)));
    }

    #[test]
    fn a_delete_forgets_the_writes_of_its_object() {
        let (sink, queue) = sink();
        let a = cache::ObjectKey::namespaced("ns", "a");
        sink.sending(&deployment(), &a);
        assert!(sink.is_echo(&object("a", 6)));
        sink.forget_writes(&a);
        sink.answered(&deployment(), &a, None);
        assert_eq!(queue.stats().keys, 0, "nothing raised for a deleted object");
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
