//! No-op elision: a write whose result the cache already shows is not sent (DESIGN: "elide
//! no-op writes"). Steady-state reconciles of a converged cluster then cost no API requests.
//!
//! **Apply.** "The applied object is contained in the cached one" is not enough: server-side
//! apply also *removes* fields this manager applied before and no longer applies. A plugin
//! that applied labels `{a, b}` and now applies `{a}` sends an object contained in the cached
//! one, yet the server would remove `b`. So an apply is elided only when both hold:
//!
//! 1. the cache holds the object, and every field of the applied object is in the cached one
//!    with the same value (objects: each key recursively; arrays: same length, element by
//!    element, so server-defaulted fields inside list items do not defeat it; scalars: equal);
//! 2. this plugin's last successful apply of this object *in this process* was this very
//!    intent (a digest of the applied object), to the same incarnation of the object (uid).
//!
//! (2) is what makes (1) safe: if the last applied intent was the same, the set of fields this
//! manager owns is already what this apply would leave, so nothing would be removed; and (1)
//! shows every value is in place. The first apply of an object after a host restart is always
//! sent (one request per object per process), and so is any apply after a failed or
//! interrupted one: the intent is forgotten *before* a request is sent and recorded only after
//! the server accepted it, so a write dropped mid-flight at the call's deadline leaves no
//! intent behind to wrongly match.
//!
//! The cache may lag the server. If it shows an older state, (1) fails and the request goes
//! out (the server finds nothing to do). If it shows a state the server has since left (an
//! edit by someone else not yet delivered), the apply is elided — and that edit's watch event
//! re-runs the reconcile, whose apply then differs from the cache and is sent. Elision never
//! loses a change; it may defer one by the watch latency.
//!
//! Quantities and other values the server canonicalizes (`1024Mi` stored as `1Gi`) never
//! compare equal, so such applies are always sent; correct, only not elided.
//!
//! **Patch-status.** Elided when merge-patching (RFC 7386) the cached object gives back the
//! cached object. No intent is needed: a merge patch removes only what it names with `null`.
//!
//! **Create and delete** are never elided: their answer (`conflict`, `not-found`) is the point.

use std::collections::HashMap;

use parking_lot::Mutex;
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::cache::{Gvk, ObjectKey};

/// Intents kept before the table is cleared. Each entry is the object's key, a digest and a
/// uid (~150 bytes); objects deleted by others leave entries behind, so the table is bounded
/// and simply starts over when full (costing one sent apply per object).
pub const MAX_INTENTS: usize = 100_000;

/// A digest of an applied object, independent of key order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IntentDigest([u8; 16]);

impl IntentDigest {
    pub fn of(value: &Value) -> Self {
        let mut hasher = Sha256::new();
        feed(&mut hasher, value);
        let full = hasher.finalize();
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&full[..16]);
        Self(digest)
    }
}

/// Feeds a canonical encoding: a type tag, lengths, and object keys in sorted order, so two
/// equal JSON values digest equally whatever their key order or whitespace.
fn feed(hasher: &mut Sha256, value: &Value) {
    match value {
        Value::Null => hasher.update([0]),
        Value::Bool(b) => hasher.update([1, u8::from(*b)]),
        Value::Number(n) => {
            let text = n.to_string();
            hasher.update([2]);
            hasher.update((text.len() as u64).to_le_bytes());
            hasher.update(text.as_bytes());
        }
        Value::String(s) => {
            hasher.update([3]);
            hasher.update((s.len() as u64).to_le_bytes());
            hasher.update(s.as_bytes());
        }
        Value::Array(items) => {
            hasher.update([4]);
            hasher.update((items.len() as u64).to_le_bytes());
            for item in items {
                feed(hasher, item);
            }
        }
        Value::Object(map) => {
            hasher.update([5]);
            hasher.update((map.len() as u64).to_le_bytes());
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            for key in keys {
                hasher.update((key.len() as u64).to_le_bytes());
                hasher.update(key.as_bytes());
                feed(hasher, &map[key]);
            }
        }
    }
}

/// Is every field of `applied` in `cached` with the same value? (Rule 1 above.)
pub fn contained(applied: &Value, cached: &Value) -> bool {
    match (applied, cached) {
        (Value::Object(a), Value::Object(c)) => a
            .iter()
            .all(|(key, value)| c.get(key).is_some_and(|found| contained(value, found))),
        (Value::Array(a), Value::Array(c)) => {
            a.len() == c.len() && a.iter().zip(c).all(|(x, y)| contained(x, y))
        }
        (a, c) => a == c,
    }
}

/// Would merge-patching (RFC 7386) the cached object, given as its JSON text, with `patch`
/// give back the cached object?
///
/// Walks the patch and parses only the parts of the cached JSON the patch names: a status
/// patch of a Deployment reads `status` and skips `metadata`, `spec` and the managed fields
/// without building them. (The first version parsed the whole object into a tree, cloned it
/// and merged; that was most of a status write's cost in the host.) Malformed cached JSON
/// answers `false`: the write is then sent, which is always safe.
pub fn merge_is_noop(cached: &str, patch: &Value) -> bool {
    let Value::Object(fields) = patch else {
        // A non-object patch replaces the target with itself.
        return serde_json::from_str::<Value>(cached).is_ok_and(|current| current == *patch);
    };
    // An object patch turns a non-object target into an object: a change.
    let Ok(current) = serde_json::from_str::<HashMap<String, &RawValue>>(cached) else {
        return false;
    };
    fields
        .iter()
        .all(|(key, value)| match (value, current.get(key)) {
            (Value::Null, found) => found.is_none(), // removes the field if present
            (_, None) => false,                      // adds the field
            (value, Some(found)) => merge_is_noop(found.get(), value),
        })
}

#[derive(Debug, Clone)]
struct Intent {
    digest: IntentDigest,
    uid: String,
}

/// The last successful apply intent per object, for one plugin (rule 2 above).
#[derive(Debug, Default)]
pub struct Intents {
    last: Mutex<HashMap<(Gvk, ObjectKey), Intent>>,
}

impl Intents {
    pub fn new() -> Self {
        Self::default()
    }

    /// Was `digest` the last successful apply to this incarnation (`uid`) of the object?
    pub fn matches(&self, kind: &Gvk, key: &ObjectKey, digest: IntentDigest, uid: &str) -> bool {
        self.last
            .lock()
            .get(&(kind.clone(), key.clone()))
            .is_some_and(|i| i.digest == digest && i.uid == uid)
    }

    /// Called before any write to the object is sent: its outcome is unknown until answered.
    pub fn forget(&self, kind: &Gvk, key: &ObjectKey) {
        self.last.lock().remove(&(kind.clone(), key.clone()));
    }

    /// Called after the server accepted an apply.
    pub fn record(&self, kind: &Gvk, key: &ObjectKey, digest: IntentDigest, uid: &str) {
        let mut last = self.last.lock();
        if last.len() >= MAX_INTENTS && !last.contains_key(&(kind.clone(), key.clone())) {
            tracing::debug!(
                entries = last.len(),
                "apply intents table full; starting over"
            );
            last.clear();
        }
        last.insert(
            (kind.clone(), key.clone()),
            Intent {
                digest,
                uid: uid.to_string(),
            },
        );
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.last.lock().len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digests_ignore_key_order_and_see_every_value() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,"x"],"x":null}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":null,"y":[1,"x"]},"b":1}"#).unwrap();
        assert_eq!(IntentDigest::of(&a), IntentDigest::of(&b));
        let different = [
            json!({"b": 2, "a": {"x": null, "y": [1, "x"]}}),
            json!({"b": 1, "a": {"x": null, "y": ["x", 1]}}),
            json!({"b": 1, "a": {"y": [1, "x"]}}),
            json!({"b": "1", "a": {"x": null, "y": [1, "x"]}}),
            json!({"b": 1, "a": {"x": null, "y": [1, "x"]}, "c": {}}),
        ];
        for other in different {
            assert_ne!(IntentDigest::of(&a), IntentDigest::of(&other), "{other}");
        }
        // Strings that would collide if lengths were not fed.
        assert_ne!(
            IntentDigest::of(&json!(["ab", "c"])),
            IntentDigest::of(&json!(["a", "bc"]))
        );
    }

    #[test]
    fn containment_is_recursive_with_exact_arrays() {
        let cached = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "resourceVersion": "7", "labels": {"x": "1", "y": "2"}},
            "spec": {"ports": [{"port": 80, "protocol": "TCP"}]},
        });
        assert!(contained(
            &json!({"metadata": {"labels": {"x": "1"}}}),
            &cached
        ));
        assert!(
            contained(&json!({"spec": {"ports": [{"port": 80}]}}), &cached),
            "defaults in items"
        );
        assert!(!contained(
            &json!({"metadata": {"labels": {"x": "2"}}}),
            &cached
        ));
        assert!(!contained(
            &json!({"metadata": {"labels": {"z": "1"}}}),
            &cached
        ));
        assert!(
            !contained(&json!({"spec": {"ports": []}}), &cached),
            "a shorter list changes it"
        );
        assert!(!contained(
            &json!({"spec": {"ports": [{"port": 80}, {"port": 81}]}}),
            &cached
        ));
        assert!(
            !contained(&json!({"data": null}), &cached),
            "null where nothing is"
        );
        assert!(!contained(&json!({"spec": "x"}), &cached), "type differs");
    }

    #[test]
    fn a_merge_patch_is_a_noop_only_if_it_changes_nothing() {
        let cached =
            json!({"status": {"ready": 2, "phase": "Running"}, "spec": {"a": 1}}).to_string();
        assert!(merge_is_noop(&cached, &json!({"status": {"ready": 2}})));
        assert!(
            merge_is_noop(&cached, &json!({"status": {"gone": null}})),
            "removing what is absent"
        );
        assert!(merge_is_noop(&cached, &json!({})));
        assert!(!merge_is_noop(&cached, &json!({"status": {"ready": 3}})));
        assert!(!merge_is_noop(&cached, &json!({"status": {"phase": null}})));
        assert!(!merge_is_noop(&cached, &json!({"status": {"new": true}})));
        assert!(
            !merge_is_noop(&cached, &json!({"spec": {"a": {}}})),
            "object over scalar"
        );
        assert!(
            !merge_is_noop(&cached, &json!({"other": {}})),
            "adds an empty object"
        );
        assert!(
            !merge_is_noop(&cached, &json!(["x"])),
            "replaces the whole object"
        );
        assert!(
            !merge_is_noop("not json", &json!({})),
            "unreadable: send the write"
        );
    }

    /// The lazy walk agrees with the definition (merge the whole tree with `json_patch`,
    /// compare) on arbitrary documents and patches, including keys that need escaping, nulls
    /// at every depth, numbers of both kinds and type changes.
    mod merge_matches_the_definition {
        use super::*;
        use proptest::prelude::*;

        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                (-3i64..3).prop_map(Value::from),
                prop_oneof![Just(1.0f64), Just(0.5)].prop_map(Value::from),
                prop_oneof![Just("a"), Just("b\"q\""), Just("\u{e9}")].prop_map(Value::from),
            ];
            leaf.prop_recursive(4, 32, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                    prop::collection::btree_map(
                        prop_oneof![Just("a"), Just("b"), Just("k\"e\ny")].prop_map(String::from),
                        inner,
                        0..4,
                    )
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn by_definition(cached: &Value, patch: &Value) -> bool {
            let mut merged = cached.clone();
            json_patch::merge(&mut merged, patch);
            merged == *cached
        }

        proptest! {
            #[test]
            fn on_random_documents(cached in json(), patch in json()) {
                prop_assert_eq!(
                    merge_is_noop(&cached.to_string(), &patch),
                    by_definition(&cached, &patch)
                );
            }

            /// Random patches rarely match a random document; patches made from the document
            /// itself (a no-op) and from it with one leaf changed exercise the `true` side.
            #[test]
            fn on_patches_drawn_from_the_document(cached in json(), other in json()) {
                prop_assert!(merge_is_noop(&cached.to_string(), &strip_nulls(&cached)));
                if let Value::Object(fields) = &cached
                    && let Some((key, _)) = fields.iter().next()
                {
                    let patch = json!({ key.clone(): other });
                    prop_assert_eq!(
                        merge_is_noop(&cached.to_string(), &patch),
                        by_definition(&cached, &patch)
                    );
                }
            }
        }

        /// A merge patch cannot set a null (null means remove), so the identity patch of a
        /// document drops its null members.
        fn strip_nulls(value: &Value) -> Value {
            match value {
                Value::Object(fields) => Value::Object(
                    fields
                        .iter()
                        .filter(|(_, v)| !v.is_null())
                        .map(|(k, v)| (k.clone(), strip_nulls(v)))
                        .collect(),
                ),
                other => other.clone(),
            }
        }
    }

    #[test]
    fn intents_match_only_the_same_digest_and_incarnation() {
        let intents = Intents::new();
        let kind = Gvk::new("", "v1", "ConfigMap");
        let key = ObjectKey::namespaced("a", "b");
        let one = IntentDigest::of(&json!({"a": 1}));
        let two = IntentDigest::of(&json!({"a": 2}));
        assert!(!intents.matches(&kind, &key, one, "uid-1"));
        intents.record(&kind, &key, one, "uid-1");
        assert!(intents.matches(&kind, &key, one, "uid-1"));
        assert!(!intents.matches(&kind, &key, two, "uid-1"));
        assert!(
            !intents.matches(&kind, &key, one, "uid-2"),
            "recreated object"
        );
        assert!(!intents.matches(&Gvk::new("", "v1", "Secret"), &key, one, "uid-1"));
        intents.forget(&kind, &key);
        assert!(!intents.matches(&kind, &key, one, "uid-1"));
        assert!(intents.is_empty());
    }

    #[test]
    fn the_table_is_bounded() {
        let intents = Intents::new();
        let kind = Gvk::new("", "v1", "ConfigMap");
        let digest = IntentDigest::of(&json!(1));
        for i in 0..MAX_INTENTS {
            intents.record(
                &kind,
                &ObjectKey::namespaced("a", &i.to_string()),
                digest,
                "u",
            );
        }
        assert_eq!(intents.len(), MAX_INTENTS);
        // Re-recording a known key does not clear.
        intents.record(&kind, &ObjectKey::namespaced("a", "0"), digest, "u");
        assert_eq!(intents.len(), MAX_INTENTS);
        intents.record(&kind, &ObjectKey::namespaced("a", "new"), digest, "u");
        assert_eq!(intents.len(), 1, "full table starts over");
        assert!(intents.matches(&kind, &ObjectKey::namespaced("a", "new"), digest, "u"));
    }
}
