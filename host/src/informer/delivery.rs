//! From cache changes to keys on a plugin's queue.
//!
//! Each subscription has its own predicates and mapping; the informer calls [`Delivery::deliver`]
//! for every change, on its own task, and the subscription hands keys to its [`KeySink`]. The
//! sink is synchronous and must never block (DESIGN invariant 1): the event path does not wait
//! for a queue, a worker or a guest.
//!
//! Priorities: objects of the initial list, replays to a late subscriber and resyncs carry no
//! news and go in at [`Priority::Low`]; creates, updates that pass the predicates, and deletes
//! go in at [`Priority::Normal`] — including changes a relist discovers after a watch outage
//! (an object that changed or vanished while the watch was down is news; unchanged objects of
//! a relist are dropped by the predicates, since their resourceVersion did not move). One
//! exception: an update of a primary object that the sink knows for the echo of the plugin's
//! own write ([`KeySink::is_echo`], `worker/echoes.rs`) is no news to the plugin and goes in at
//! [`Priority::Low`].

use std::sync::Arc;

use super::config::{DeliveryConfig, MappingConfig, Predicate};
use crate::cache::{Gvk, Metadata, ObjectKey};

/// How urgent a key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Priority {
    /// A real change.
    Normal,
    /// Initial list, late-subscriber replay, resync: a check, not news.
    Low,
}

/// Where a subscription's keys go: the plugin's work queue, adapted by the host.
///
/// Called on the informer's task for every key; must not block or wait (no async, no locks
/// held across anything slow). Deduplication is the queue's job: the same key may come twice.
pub trait KeySink: Send + Sync + 'static {
    fn enqueue(&self, key: ObjectKey, priority: Priority);

    /// Asked for each create or update of a primary object that passed the predicates, before
    /// its key is enqueued: whether it is the echo of the plugin's own write, which then goes
    /// in at [`Priority::Low`] (a check, not news: `worker/echoes.rs`). The default knows of no
    /// writes.
    fn is_echo(&self, _object: &Metadata) -> bool {
        false
    }

    /// An update of a primary object the predicates dropped: if it was an own write's echo,
    /// what the sink knows of that write is done with.
    fn dropped_update(&self, _object: &Metadata) {}

    /// A primary object was deleted: forget its writes.
    fn forget_writes(&self, _key: &ObjectKey) {}
}

/// What a watch is to the plugin subscribing to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The plugin reconciles this kind: each object's own key is enqueued.
    Primary,
    /// The plugin reads this kind to reconcile `primary`: keys are mapped to primary keys by the
    /// watch's `mapping`.
    Secondary { primary: Gvk },
}

/// How keys are derived from an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyMapping {
    Identity,
    ToPrimary {
        primary: Gvk,
        /// Whether the primary kind is namespaced (then keys take the object's namespace).
        namespaced: bool,
        controller_owner: bool,
        label: Option<Box<str>>,
    },
}

impl KeyMapping {
    pub(crate) fn to_primary(primary: Gvk, namespaced: bool, config: &MappingConfig) -> Self {
        Self::ToPrimary {
            primary,
            namespaced,
            controller_owner: config.controller_owner,
            label: config.label.as_deref().map(Into::into),
        }
    }

    /// Up to two keys: the controller owner's and the label's.
    fn keys(&self, meta: &Metadata, out: &mut Keys) {
        match self {
            Self::Identity => out.push(meta.key.clone()),
            Self::ToPrimary {
                primary,
                namespaced,
                controller_owner,
                label,
            } => {
                // A namespaced primary needs a namespace; a cluster-scoped object has none to
                // lend, so it maps to nothing (owner references follow the same rule).
                let namespace = match (namespaced, &meta.key.namespace) {
                    (true, Some(ns)) => Some(ns.clone()),
                    (true, None) => return,
                    (false, _) => None,
                };
                if *controller_owner
                    && let Some(owner) = &meta.controller
                    && *owner.kind == *primary.kind
                    && owner.group() == &*primary.group
                {
                    out.push(ObjectKey {
                        namespace: namespace.clone(),
                        name: Arc::from(&*owner.name),
                    });
                }
                if let Some(label) = label
                    && let Some(name) = meta.labels.get(label)
                    && !name.is_empty()
                {
                    out.push(ObjectKey {
                        namespace,
                        name: Arc::from(name),
                    });
                }
            }
        }
    }
}

/// A change to deliver.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Change<'a> {
    /// Listed by the first sync of a watch.
    Initial(&'a Metadata),
    /// Created (`old` is none) or updated.
    Upsert {
        old: Option<&'a Metadata>,
        new: &'a Metadata,
    },
    Delete(&'a Metadata),
    /// Replayed from the cache: a late subscriber, or a resync.
    Replay(&'a Metadata),
}

/// A handful of keys, without a heap allocation per event.
#[derive(Default)]
struct Keys {
    keys: [Option<ObjectKey>; 4],
    len: usize,
}

impl Keys {
    fn push(&mut self, key: ObjectKey) {
        if self.len < self.keys.len() && !self.keys[..self.len].iter().flatten().any(|k| *k == key)
        {
            self.keys[self.len] = Some(key);
            self.len += 1;
        }
    }

    fn drain(&mut self) -> impl Iterator<Item = ObjectKey> + '_ {
        self.keys[..self.len].iter_mut().filter_map(Option::take)
    }
}

/// One plugin's view of an informer's events.
pub(crate) struct Delivery {
    plugin: Arc<str>,
    predicates: Vec<Predicate>,
    mapping: KeyMapping,
    sink: Arc<dyn KeySink>,
}

impl Delivery {
    pub(crate) fn new(
        plugin: &str,
        config: &DeliveryConfig,
        mapping: KeyMapping,
        sink: Arc<dyn KeySink>,
    ) -> Self {
        Self {
            plugin: plugin.into(),
            predicates: config.predicates.clone(),
            mapping,
            sink,
        }
    }

    pub(crate) fn plugin(&self) -> &str {
        &self.plugin
    }

    /// Enqueues the keys `change` maps to; returns how many (0 when a predicate dropped it).
    pub(crate) fn deliver(&self, change: Change<'_>) -> usize {
        let mut keys = Keys::default();
        let priority = match change {
            Change::Initial(meta) | Change::Replay(meta) => {
                self.mapping.keys(meta, &mut keys);
                Priority::Low
            }
            Change::Delete(meta) => {
                if self.mapping == KeyMapping::Identity {
                    self.sink.forget_writes(&meta.key);
                }
                self.mapping.keys(meta, &mut keys);
                Priority::Normal
            }
            Change::Upsert { old: None, new } => {
                self.mapping.keys(new, &mut keys);
                self.news_or_echo(new)
            }
            Change::Upsert {
                old: Some(old),
                new,
            } => {
                if !self.passes(old, new) {
                    if self.mapping == KeyMapping::Identity {
                        self.sink.dropped_update(new);
                    }
                    return 0;
                }
                // Both: a secondary whose owner or label changed concerns the old primary too.
                self.mapping.keys(new, &mut keys);
                self.mapping.keys(old, &mut keys);
                self.news_or_echo(new)
            }
        };
        let mut sent = 0;
        for key in keys.drain() {
            self.sink.enqueue(key, priority);
            sent += 1;
        }
        sent
    }

    /// A change is news, unless it is a primary object's echo of the plugin's own write.
    fn news_or_echo(&self, new: &Metadata) -> Priority {
        if self.mapping == KeyMapping::Identity && self.sink.is_echo(new) {
            Priority::Low
        } else {
            Priority::Normal
        }
    }

    fn passes(&self, old: &Metadata, new: &Metadata) -> bool {
        self.predicates.iter().any(|predicate| match predicate {
            Predicate::ResourceVersion => old.resource_version != new.resource_version,
            Predicate::Generation => old.generation != new.generation,
            Predicate::Labels => old.labels != new.labels,
            Predicate::Annotations => old.annotations_digest != new.annotations_digest,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use parking_lot::Mutex;

    /// A sink that records what it was given.
    #[derive(Default)]
    pub(crate) struct Recorder(pub Mutex<Vec<(String, Priority)>>);

    impl KeySink for Recorder {
        fn enqueue(&self, key: ObjectKey, priority: Priority) {
            self.0.lock().push((key.to_string(), priority));
        }
    }

    impl Recorder {
        pub(crate) fn take(&self) -> Vec<(String, Priority)> {
            std::mem::take(&mut *self.0.lock())
        }
    }

    fn meta(extra: &str) -> Metadata {
        at(1, 1, extra)
    }

    fn at(rv: u32, generation: u32, extra: &str) -> Metadata {
        Metadata::parse(&format!(
            r#"{{"metadata":{{"name":"pod-1","namespace":"ns","resourceVersion":"{rv}","generation":{generation}{extra}}}}}"#
        ))
        .unwrap()
    }

    fn delivery(predicates: &[Predicate], mapping: KeyMapping) -> (Delivery, Arc<Recorder>) {
        let recorder = Arc::new(Recorder::default());
        (delivery_to(recorder.clone(), predicates, mapping), recorder)
    }

    fn delivery_to(
        sink: Arc<dyn KeySink>,
        predicates: &[Predicate],
        mapping: KeyMapping,
    ) -> Delivery {
        let config = DeliveryConfig {
            predicates: predicates.to_vec(),
            mapping: None,
            resync: None,
        };
        Delivery::new("p", &config, mapping, sink)
    }

    use Priority::{Low, Normal};

    #[test]
    fn initial_and_replay_are_low_changes_normal_and_unchanged_dropped() {
        let (d, rec) = delivery(&[Predicate::ResourceVersion], KeyMapping::Identity);
        let v1 = meta("");
        let v2 = at(2, 1, "");
        d.deliver(Change::Initial(&v1));
        d.deliver(Change::Replay(&v1));
        d.deliver(Change::Upsert {
            old: None,
            new: &v1,
        });
        assert_eq!(
            d.deliver(Change::Upsert {
                old: Some(&v1),
                new: &v1
            }),
            0,
            "same resourceVersion"
        );
        d.deliver(Change::Upsert {
            old: Some(&v1),
            new: &v2,
        });
        d.deliver(Change::Delete(&v2));
        let k = || "ns/pod-1".to_string();
        assert_eq!(
            rec.take(),
            [
                (k(), Low),
                (k(), Low),
                (k(), Normal),
                (k(), Normal),
                (k(), Normal)
            ]
        );
    }

    /// Takes resourceVersion 2 of any object for the echo of an own write; records what it
    /// was asked and told.
    #[derive(Default)]
    struct EchoSink {
        keys: Recorder,
        asked: Mutex<Vec<String>>,
    }

    impl KeySink for EchoSink {
        fn enqueue(&self, key: ObjectKey, priority: Priority) {
            self.keys.enqueue(key, priority);
        }

        fn is_echo(&self, object: &Metadata) -> bool {
            self.asked.lock().push(format!("is_echo {}", object.key));
            &*object.resource_version == "2"
        }

        fn dropped_update(&self, object: &Metadata) {
            self.asked.lock().push(format!("dropped {}", object.key));
        }

        fn forget_writes(&self, key: &ObjectKey) {
            self.asked.lock().push(format!("forget {key}"));
        }
    }

    #[test]
    fn a_primary_objects_echo_of_an_own_write_goes_in_low_and_a_delete_forgets_its_writes() {
        let sink = Arc::new(EchoSink::default());
        let d = delivery_to(
            sink.clone(),
            &[Predicate::ResourceVersion],
            KeyMapping::Identity,
        );
        let (v1, v2, v3) = (meta(""), at(2, 1, ""), at(3, 1, ""));
        d.deliver(Change::Initial(&v1));
        d.deliver(Change::Upsert {
            old: Some(&v1),
            new: &v2,
        });
        d.deliver(Change::Upsert {
            old: Some(&v2),
            new: &v3,
        });
        d.deliver(Change::Upsert {
            old: Some(&v3),
            new: &v3,
        });
        d.deliver(Change::Delete(&v3));
        let k = || "ns/pod-1".to_string();
        assert_eq!(
            sink.keys.take(),
            [(k(), Low), (k(), Low), (k(), Normal), (k(), Normal)]
        );
        assert_eq!(
            *sink.asked.lock(),
            [
                "is_echo ns/pod-1",
                "is_echo ns/pod-1",
                "dropped ns/pod-1",
                "forget ns/pod-1"
            ],
            "asked for updates that passed the predicates, told of the dropped one, never asked \
             for the initial list"
        );
    }

    #[test]
    fn a_secondary_change_is_never_taken_for_an_echo() {
        let sink = Arc::new(EchoSink::default());
        let d = delivery_to(
            sink.clone(),
            &[Predicate::ResourceVersion],
            to_replicaset(true, Some("owner"), true),
        );
        let (v1, v2) = (meta(OWNED), at(2, 1, OWNED));
        d.deliver(Change::Upsert {
            old: Some(&v1),
            new: &v2,
        });
        d.deliver(Change::Delete(&v2));
        assert!(sink.keys.take().iter().all(|(_, p)| *p == Normal));
        assert!(sink.asked.lock().is_empty(), "{:?}", sink.asked.lock());
    }

    #[test]
    fn predicates_pass_an_update_when_any_of_them_does() {
        let base = meta(r#","labels":{"a":"1"},"annotations":{"x":"1"}"#);
        let rv_only = at(2, 1, r#","labels":{"a":"1"},"annotations":{"x":"1"}"#);
        let generation = at(2, 2, r#","labels":{"a":"1"},"annotations":{"x":"1"}"#);
        let labels = at(2, 1, r#","labels":{"a":"2"},"annotations":{"x":"1"}"#);
        let annotations = at(2, 1, r#","labels":{"a":"1"},"annotations":{"x":"2"}"#);
        let check = |predicates: &[Predicate], new: &Metadata| {
            let (d, _) = delivery(predicates, KeyMapping::Identity);
            d.deliver(Change::Upsert {
                old: Some(&base),
                new,
            }) == 1
        };
        assert!(
            !check(&[Predicate::Generation], &rv_only),
            "status-only change"
        );
        assert!(check(&[Predicate::Generation], &generation));
        assert!(!check(&[Predicate::Generation], &labels));
        assert!(check(&[Predicate::Generation, Predicate::Labels], &labels));
        assert!(check(&[Predicate::Annotations], &annotations));
        assert!(!check(&[Predicate::Annotations], &labels));
        assert!(check(&[Predicate::ResourceVersion], &rv_only));
        // Creates and deletes pass whatever the predicates.
        let (d, rec) = delivery(&[Predicate::Generation], KeyMapping::Identity);
        d.deliver(Change::Upsert {
            old: None,
            new: &base,
        });
        d.deliver(Change::Delete(&base));
        assert_eq!(rec.take().len(), 2);
    }

    fn to_replicaset(controller_owner: bool, label: Option<&str>, namespaced: bool) -> KeyMapping {
        KeyMapping::to_primary(
            Gvk::new("apps", "v1", "ReplicaSet"),
            namespaced,
            &MappingConfig {
                controller_owner,
                label: label.map(Into::into),
            },
        )
    }

    const OWNED: &str = r#","ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs-a","uid":"1","controller":true}],"labels":{"owner":"rs-b"}"#;

    #[test]
    fn secondaries_map_to_their_controller_owner_and_label() {
        let (d, rec) = delivery(
            &[Predicate::ResourceVersion],
            to_replicaset(true, Some("owner"), true),
        );
        d.deliver(Change::Upsert {
            old: None,
            new: &meta(OWNED),
        });
        assert_eq!(
            rec.take(),
            [("ns/rs-a".into(), Normal), ("ns/rs-b".into(), Normal)]
        );

        // Owner of another kind or group, or not the controller: no key.
        for other in [
            r#","ownerReferences":[{"apiVersion":"v1","kind":"ReplicaSet","name":"x","uid":"1","controller":true}]"#,
            r#","ownerReferences":[{"apiVersion":"apps/v1","kind":"Deployment","name":"x","uid":"1","controller":true}]"#,
            r#","ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"x","uid":"1"}]"#,
            r#","labels":{"owner":""}"#,
        ] {
            d.deliver(Change::Upsert {
                old: None,
                new: &meta(other),
            });
            assert!(rec.take().is_empty(), "{other}");
        }
    }

    #[test]
    fn a_changed_mapping_reaches_the_old_and_the_new_primary() {
        let (d, rec) = delivery(
            &[Predicate::ResourceVersion],
            to_replicaset(false, Some("owner"), true),
        );
        let old = meta(r#","labels":{"owner":"a"}"#);
        let new = at(2, 1, r#","labels":{"owner":"b"}"#);
        d.deliver(Change::Upsert {
            old: Some(&old),
            new: &new,
        });
        assert_eq!(
            rec.take(),
            [("ns/b".into(), Normal), ("ns/a".into(), Normal)]
        );
        let same = at(3, 1, r#","labels":{"owner":"b"}"#);
        d.deliver(Change::Upsert {
            old: Some(&new),
            new: &same,
        });
        assert_eq!(rec.take(), [("ns/b".into(), Normal)], "deduplicated");
    }

    #[test]
    fn scope_of_the_primary_decides_the_key_namespace() {
        let (d, rec) = delivery(
            &[Predicate::ResourceVersion],
            to_replicaset(true, Some("owner"), false),
        );
        d.deliver(Change::Replay(&meta(OWNED)));
        assert_eq!(rec.take(), [("rs-a".into(), Low), ("rs-b".into(), Low)]);
        let cluster_scoped = Metadata::parse(
            r#"{"metadata":{"name":"n","resourceVersion":"1","labels":{"owner":"x"}}}"#,
        )
        .unwrap();
        let (d, rec) = delivery(
            &[Predicate::ResourceVersion],
            to_replicaset(false, Some("owner"), true),
        );
        d.deliver(Change::Replay(&cluster_scoped));
        assert!(
            rec.take().is_empty(),
            "a cluster-scoped object cannot name a namespaced primary"
        );
    }
}
