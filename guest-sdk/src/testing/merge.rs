//! How the fake cache applies writes to stored objects.
//!
//! Two operations, chosen to behave like the API server for a single field manager (the
//! plugin under test):
//!
//! - [`apply`]: server-side apply. The applied configuration is merged into the live object
//!   (maps recursively, lists and scalars replaced); fields the manager applied last time and
//!   left out this time are removed, as the server does for fields a manager stops owning.
//!   List element merge keys (`listType: map`) are not modelled: lists are atomic.
//! - [`merge_patch`]: RFC 7386 JSON merge patch (`null` deletes, objects merge, everything
//!   else replaces).

use serde_json::{Map, Value};

/// Removes from `live` every field present in `previous` (the last applied configuration) but
/// absent from `next` (the new one).
fn prune(live: &mut Map<String, Value>, previous: &Map<String, Value>, next: &Map<String, Value>) {
    for (key, was) in previous {
        match (next.get(key), live.get_mut(key)) {
            (None, _) => {
                live.remove(key);
            }
            (Some(Value::Object(now)), Some(Value::Object(live_child))) => {
                if let Value::Object(was) = was {
                    prune(live_child, was, now);
                }
            }
            _ => {}
        }
    }
}

/// Merges an applied configuration into a live object.
fn merge_applied(live: &mut Value, applied: &Value) {
    match (live, applied) {
        (Value::Object(live), Value::Object(applied)) => {
            for (key, value) in applied {
                if value.is_null() {
                    live.remove(key);
                    continue;
                }
                match live.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge_applied(existing, value)
                    }
                    _ => {
                        let mut fresh = Value::Object(Map::new());
                        if value.is_object() {
                            merge_applied(&mut fresh, value);
                        } else {
                            fresh = value.clone();
                        }
                        live.insert(key.clone(), fresh);
                    }
                }
            }
        }
        (live, applied) => *live = applied.clone(),
    }
}

/// The live object after applying `next`, given the manager's `previous` applied configuration.
pub(crate) fn apply(live: Option<&Value>, previous: Option<&Value>, next: &Value) -> Value {
    let mut result = live.cloned().unwrap_or_else(|| Value::Object(Map::new()));
    if let (Value::Object(result), Some(Value::Object(previous)), Value::Object(next)) =
        (&mut result, previous, next)
    {
        prune(result, previous, next);
    }
    merge_applied(&mut result, next);
    result
}

/// RFC 7386 JSON merge patch.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target) = target else {
        unreachable!("target was just made an object")
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn apply_merges_maps_and_replaces_lists() {
        let live = json!({"metadata": {"name": "a", "labels": {"other": "x"}}, "spec": {"list": [1, 2], "keep": true}});
        let next =
            json!({"metadata": {"name": "a", "labels": {"mine": "y"}}, "spec": {"list": [3]}});
        assert_eq!(
            apply(Some(&live), None, &next),
            json!({"metadata": {"name": "a", "labels": {"other": "x", "mine": "y"}}, "spec": {"list": [3], "keep": true}})
        );
    }

    #[test]
    fn apply_removes_fields_the_manager_stopped_setting_and_keeps_others() {
        let previous = json!({"spec": {"hard": {"pods": "10", "cpu": "4"}}});
        let live = json!({"spec": {"hard": {"pods": "10", "cpu": "4", "theirs": "1"}}, "status": {"used": {}}});
        let next = json!({"spec": {"hard": {"cpu": "8"}}});
        assert_eq!(
            apply(Some(&live), Some(&previous), &next),
            json!({"spec": {"hard": {"cpu": "8", "theirs": "1"}}, "status": {"used": {}}})
        );
    }

    #[test]
    fn apply_creates_from_nothing() {
        let next = json!({"a": {"b": [1]}, "c": null});
        assert_eq!(apply(None, None, &next), json!({"a": {"b": [1]}}));
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        // The example of RFC 7386 section 3.
        let mut target = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut target, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(target, json!({"a": "z", "c": {"d": "e"}}));
        let mut scalar = json!("x");
        merge_patch(&mut scalar, &json!({"a": {"b": 1}}));
        assert_eq!(scalar, json!({"a": {"b": 1}}));
        merge_patch(&mut scalar, &json!([1]));
        assert_eq!(scalar, json!([1]));
    }
}
