//! One kind served at two API groups, kept in one table: core `v1` Events are stored as
//! `events.k8s.io/v1` Events and converted on the way in and out.
//!
//! The real server keeps one Event per name, whichever group wrote it: kube-runtime's
//! `Recorder` (what Trellis plugins publish through) writes `events.k8s.io/v1`, while plain
//! `kubectl get events` and `kubectl describe` read core `v1`. With the two in separate tables,
//! `trellis dev` showed an empty `kubectl get events` beside a cluster full of plugin events.
//!
//! The two versions differ only by top-level field names (`pkg/apis/events/v1/conversion.go`:
//! `involvedObject` is `regarding`, `message` is `note`, `source` is `deprecatedSource`, ...),
//! so a conversion is a list of renames applied in one direction or the other. Where a write
//! happens in the served version (validation, patches, apply, ownership), the object is
//! converted from storage first and back to storage before it is serialized; reads convert
//! each stored object as it is rendered. Storage is the `events.k8s.io` form because that is
//! what the host writes on every event, so the hot path converts nothing.
//!
//! Not converted: the field paths inside `metadata.managedFields`. Each entry names the
//! apiVersion its manager wrote with, as on the real server, but the devcluster does not
//! translate field sets between versions, so a server-side apply through one version does not
//! see conflicts with fields another version's manager owns under their other name.

use serde_json::Value;

/// How a served version maps onto the table of another: the top-level field renames
/// `(served name, stored name)` and where the object is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// The storage version's `storage_key` (its group's resource).
    pub storage_key: &'static str,
    /// The storage version's `apiVersion`, written into every stored object.
    pub storage_api_version: &'static str,
    pub renames: &'static [(&'static str, &'static str)],
}

/// Core `v1` Event fields by their `events.k8s.io/v1` names.
pub const CORE_EVENTS: Conversion = Conversion {
    storage_key: "events.events.k8s.io",
    storage_api_version: "events.k8s.io/v1",
    renames: &[
        ("involvedObject", "regarding"),
        ("message", "note"),
        ("source", "deprecatedSource"),
        ("firstTimestamp", "deprecatedFirstTimestamp"),
        ("lastTimestamp", "deprecatedLastTimestamp"),
        ("count", "deprecatedCount"),
        ("reportingComponent", "reportingController"),
    ],
};

impl Conversion {
    /// The stored form of `object`, written in the served version.
    pub fn to_storage(&self, object: Value) -> Value {
        convert(
            object,
            self.renames
                .iter()
                .map(|(served, stored)| (*served, *stored)),
            self.storage_api_version,
        )
    }

    /// `object` as the served version `api_version` shows it.
    pub fn to_served(&self, object: Value, api_version: &str) -> Value {
        convert(
            object,
            self.renames
                .iter()
                .map(|(served, stored)| (*stored, *served)),
            api_version,
        )
    }
}

/// Moves each present top-level `from` field to `to` and labels the object `api_version`. A
/// field already named `to` is overwritten: a body that sets both names of one field (`note`
/// in a core Event) is not a valid object of the version it came in, and the validation it
/// passed dropped the unknown one already.
fn convert<'a>(
    mut object: Value,
    renames: impl Iterator<Item = (&'a str, &'a str)>,
    api_version: &str,
) -> Value {
    if let Some(map) = object.as_object_mut() {
        for (from, to) in renames {
            if let Some(value) = map.remove(from) {
                map.insert(to.to_string(), value);
            }
        }
        map.insert(
            "apiVersion".to_string(),
            Value::String(api_version.to_string()),
        );
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn core_event() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "team"},
            "involvedObject": {"kind": "Pod", "name": "web"},
            "message": "pulled", "reason": "Pulled", "type": "Normal",
            "source": {"component": "kubelet"},
            "firstTimestamp": "2025-05-01T10:00:00Z", "lastTimestamp": "2025-05-01T10:05:00Z",
            "count": 3, "reportingComponent": "kubelet", "reportingInstance": "node-1",
        })
    }

    #[test]
    fn core_events_are_stored_under_their_events_k8s_io_names() {
        let stored = CORE_EVENTS.to_storage(core_event());
        assert_eq!(
            stored,
            json!({
                "apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"name": "web.1", "namespace": "team"},
                "regarding": {"kind": "Pod", "name": "web"},
                "note": "pulled", "reason": "Pulled", "type": "Normal",
                "deprecatedSource": {"component": "kubelet"},
                "deprecatedFirstTimestamp": "2025-05-01T10:00:00Z",
                "deprecatedLastTimestamp": "2025-05-01T10:05:00Z",
                "deprecatedCount": 3, "reportingController": "kubelet",
                "reportingInstance": "node-1",
            })
        );
        assert_eq!(CORE_EVENTS.to_served(stored, "v1"), core_event());
    }

    #[test]
    fn converting_a_served_object_again_changes_nothing_but_the_version() {
        let served = CORE_EVENTS.to_served(core_event(), "v1");
        assert_eq!(served, core_event());
        assert_eq!(
            CORE_EVENTS.to_storage(json!("not an object")),
            json!("not an object")
        );
    }
}
