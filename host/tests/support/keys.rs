//! Key sinks for informer subscriptions: one that records what the informer enqueues (the
//! observable effect of a watch event), one that drops it (for tests that read the cache only).

#![allow(dead_code)] // each test binary uses a different part of it

use parking_lot::Mutex;
use trellis_host::cache::ObjectKey;
use trellis_host::informer::{KeySink, Priority};

/// Records every key it is given, in order.
#[derive(Default)]
pub struct Sink {
    pub keys: Mutex<Vec<(String, Priority)>>,
}

impl KeySink for Sink {
    fn enqueue(&self, key: ObjectKey, priority: Priority) {
        self.keys.lock().push((key.to_string(), priority));
    }
}

impl Sink {
    /// The keys recorded since the last take.
    pub fn take(&self) -> Vec<(String, Priority)> {
        std::mem::take(&mut *self.keys.lock())
    }

    /// Whether `key` was recorded at `priority` (and not taken since).
    pub fn has(&self, key: &str, priority: Priority) -> bool {
        self.keys
            .lock()
            .iter()
            .any(|(k, p)| k == key && *p == priority)
    }
}

/// Drops every key: for subscriptions whose cache is all a test reads.
pub struct NoKeys;

impl KeySink for NoKeys {
    fn enqueue(&self, _: ObjectKey, _: Priority) {}
}
