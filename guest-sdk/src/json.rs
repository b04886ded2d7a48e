//! Comparing what a plugin wants with what the cache holds.
//!
//! A controller that writes on every reconcile causes a watch event per write, which
//! reconciles again: idempotence is what stops that loop. Server-side apply sends a *partial*
//! object, and the server fills in defaults (`protocol: TCP`, `creationTimestamp`,
//! `status`), so "unchanged" means "every field the plugin sets already has the value it
//! would set", not equality.

use serde_json::Value;

/// Whether `actual` already holds every field of `desired` with the same value.
///
/// Objects: each key of `desired` must be in `actual` and match recursively (extra keys in
/// `actual` are fine — the server's defaults and other managers' fields). A `null` in
/// `desired` matches a missing or `null` field. Arrays: the same length, element by element
/// (server defaults inside elements are fine; an added or missing element is a change).
/// Anything else: equal.
///
/// This cannot see a field the plugin *stopped* setting: server-side apply removes it, but the
/// cached object still has it. A plugin whose desired object can lose fields compares those
/// parts itself (see the `namespace-defaults` plugin's quota).
pub fn contains(actual: &Value, desired: &Value) -> bool {
    match (actual, desired) {
        (Value::Object(actual), Value::Object(desired)) => {
            desired.iter().all(|(key, want)| match actual.get(key) {
                Some(have) => contains(have, want),
                None => want.is_null(),
            })
        }
        (Value::Array(actual), Value::Array(desired)) => {
            actual.len() == desired.len()
                && actual
                    .iter()
                    .zip(desired)
                    .all(|(have, want)| contains(have, want))
        }
        (actual, desired) => actual == desired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_defaults_and_foreign_fields_do_not_count_as_changes() {
        let actual = json!({
            "metadata": {"name": "a", "uid": "u", "labels": {"x": "1", "y": "2"}},
            "spec": {"ports": [{"port": 80, "protocol": "TCP"}]},
            "status": {}
        });
        let desired = json!({
            "metadata": {"name": "a", "labels": {"x": "1"}},
            "spec": {"ports": [{"port": 80}]}
        });
        assert!(contains(&actual, &desired));
    }

    #[test]
    fn changed_missing_and_extra_values_are_changes() {
        let actual = json!({"spec": {"a": 1, "list": [1, 2]}});
        assert!(!contains(&actual, &json!({"spec": {"a": 2}})));
        assert!(!contains(&actual, &json!({"spec": {"b": 1}})));
        assert!(!contains(&actual, &json!({"spec": {"list": [1]}})));
        assert!(!contains(&actual, &json!({"spec": {"list": [1, 2, 3]}})));
        assert!(!contains(&actual, &json!({"spec": {"list": [2, 1]}})));
        assert!(!contains(&actual, &json!({"spec": "x"})));
        assert!(contains(&actual, &json!({"spec": {"gone": null}})));
    }
}
