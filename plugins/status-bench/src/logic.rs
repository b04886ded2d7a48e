//! The benchmark's reconcile logic, free of any runtime: what value a Deployment's status must
//! show, whether it already does, and the status patch that makes it so.
//!
//! The guest (`crate::StatusBench`) and the end-to-end benchmark's native kube-runtime peer
//! (host/benches/e2e) both call these functions, so the two systems measured do exactly the same
//! work per object, and the benchmark harness computes the value it waits for with the same
//! code. Inputs are plain values rather than objects because the two sides decode different
//! types (narrow views in the guest, full k8s-openapi objects in the peer).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use trellis_guest::k8s_openapi::api::apps::v1::DeploymentCondition;

/// The Deployment annotation the benchmark bumps to make every object need a new status.
pub const ROUND_ANNOTATION: &str = "bench.trellis.dev/round";

/// The status condition the value is written to.
pub const CONDITION_TYPE: &str = "BenchComputed";

/// The condition's reason.
pub const REASON: &str = "Computed";

/// The value a Deployment's status must show: its round annotation, then a 64-bit FNV-1a hash
/// of the round, the Deployment's `spec.replicas` and every key and value of the related
/// ConfigMap's `data` (in key order, as a `BTreeMap` iterates). The round is spelled out so a
/// human (or the benchmark) can see which round an object has reached.
pub fn expected_value(
    round: Option<&str>,
    replicas: Option<i32>,
    data: Option<&BTreeMap<String, String>>,
) -> String {
    let round = round.unwrap_or("");
    let mut hash = Fnv1a::new();
    hash.write(round.as_bytes());
    hash.separator();
    hash.write(&replicas.unwrap_or(1).to_le_bytes());
    for (key, value) in data.into_iter().flatten() {
        hash.separator();
        hash.write(key.as_bytes());
        hash.separator();
        hash.write(value.as_bytes());
    }
    format!("round {round}: {:016x}", hash.finish())
}

/// The value the status shows now: the message of the `BenchComputed` condition, if any.
pub fn current_value(conditions: Option<&[DeploymentCondition]>) -> Option<&str> {
    conditions?
        .iter()
        .find(|c| c.type_ == CONDITION_TYPE)
        .and_then(|c| c.message.as_deref())
}

/// The JSON merge patch of the status subresource that makes the status show `value`, or
/// `None` when it already does (the idempotence that keeps a reconciler from re-triggering
/// itself through its own write).
///
/// A merge patch replaces `status.conditions` as a whole. That is right for the benchmark,
/// where nothing else writes Deployment status (the devcluster runs no deployment
/// controller); a plugin sharing conditions with a controller would apply instead.
pub fn status_patch(current: Option<&str>, value: &str) -> Option<Value> {
    if current == Some(value) {
        return None;
    }
    Some(json!({
        "status": {
            "conditions": [{
                "type": CONDITION_TYPE,
                "status": "True",
                "reason": REASON,
                "message": value,
            }]
        }
    }))
}

/// 64-bit FNV-1a: tiny, dependency-free and the same on every target, which is all the
/// benchmark needs of a hash (it is not used for anything adversarial).
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// A byte no UTF-8 text contains, so ("ab", "c") and ("a", "bc") hash differently.
    fn separator(&mut self) {
        self.write(&[0xff]);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        // From the FNV reference test suite (http://www.isthe.com/chongo/tech/comp/fnv/).
        for (input, expected) in [
            ("", 0xcbf2_9ce4_8422_2325_u64),
            ("a", 0xaf63_dc4c_8601_ec8c),
            ("foobar", 0x8594_4171_f739_67e8),
        ] {
            let mut hash = Fnv1a::new();
            hash.write(input.as_bytes());
            assert_eq!(hash.finish(), expected, "{input:?}");
        }
    }

    #[test]
    fn the_value_depends_on_every_input_and_names_the_round() {
        let base = expected_value(Some("3"), Some(2), Some(&data(&[("size", "7")])));
        assert!(base.starts_with("round 3: "), "{base}");
        assert_eq!(base.len(), "round 3: ".len() + 16);
        for other in [
            expected_value(Some("4"), Some(2), Some(&data(&[("size", "7")]))),
            expected_value(Some("3"), Some(3), Some(&data(&[("size", "7")]))),
            expected_value(Some("3"), Some(2), Some(&data(&[("size", "8")]))),
            expected_value(Some("3"), Some(2), Some(&data(&[("siz", "e7")]))),
            expected_value(Some("3"), Some(2), None),
        ] {
            assert_ne!(other, base);
        }
        // Deterministic, and an absent replicas field means the API default of 1.
        assert_eq!(
            expected_value(Some("3"), Some(2), Some(&data(&[("size", "7")]))),
            base
        );
        assert_eq!(
            expected_value(None, None, None),
            expected_value(Some(""), Some(1), Some(&BTreeMap::new()))
        );
    }

    #[test]
    fn the_current_value_is_the_message_of_our_condition_only() {
        let condition = |type_: &str, message: Option<&str>| DeploymentCondition {
            type_: type_.to_string(),
            status: "True".to_string(),
            message: message.map(str::to_string),
            ..DeploymentCondition::default()
        };
        assert_eq!(current_value(None), None);
        assert_eq!(current_value(Some(&[])), None);
        let conditions = [
            condition("Available", Some("not ours")),
            condition(CONDITION_TYPE, Some("round 1: 00")),
        ];
        assert_eq!(current_value(Some(&conditions)), Some("round 1: 00"));
        assert_eq!(
            current_value(Some(&[condition(CONDITION_TYPE, None)])),
            None
        );
    }

    #[test]
    fn a_patch_is_planned_only_when_the_value_differs() {
        assert_eq!(status_patch(Some("v"), "v"), None);
        for current in [None, Some("old")] {
            let patch = status_patch(current, "v").unwrap();
            assert_eq!(
                patch,
                json!({"status": {"conditions": [{"type": CONDITION_TYPE, "status": "True",
                    "reason": REASON, "message": "v"}]}})
            );
        }
    }
}
