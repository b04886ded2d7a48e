//! What a plugin did during a test, in the order it did it, for assertions.

use serde_json::Value;

use crate::{EventType, Gvk, Level, ObjectKey, ObjectRef};

/// A write the fake cache accepted (and applied). Writes the cache rejected, or that a test
/// made fail with [`Harness::fail_next`](super::Harness::fail_next), are not recorded: nothing
/// was changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Server-side apply; `object` is the configuration as the plugin sent it.
    Apply {
        object: Value,
        force: bool,
    },
    /// Status merge patch; `patch` as the plugin sent it.
    PatchStatus {
        kind: Gvk,
        key: ObjectKey,
        patch: Value,
    },
    /// Create; `object` as the plugin sent it (before name generation).
    Create {
        object: Value,
    },
    Delete {
        kind: Gvk,
        key: ObjectKey,
    },
}

impl Write {
    /// The object the write is about.
    pub fn target(&self) -> Option<ObjectRef> {
        match self {
            Write::Apply { object, .. } | Write::Create { object } => ObjectRef::of_json(object),
            Write::PatchStatus { kind, key, .. } | Write::Delete { kind, key } => {
                Some(ObjectRef::new(kind.clone(), key.clone()))
            }
        }
    }
}

/// A Kubernetes Event the plugin recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub regarding: ObjectRef,
    pub event_type: EventType,
    pub reason: String,
    pub note: String,
}

/// A log line the plugin wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: Level,
    pub message: String,
    pub fields: Vec<(String, String)>,
}

impl LogLine {
    /// The value of one field.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}
