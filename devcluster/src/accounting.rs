//! Per-request accounting: what clients asked for and what the server sent them.
//!
//! Tests prove that server-side filtering cuts traffic ("the informer with a label selector
//! received 10 objects, not 10 000") and that leader election never lets two writers act at
//! once, so the server counts, per verb and resource, requests, and separately for lists and
//! watches, objects and bytes served, plus open watches; and it logs every write request in
//! order with its field manager and user agent.
//!
//! Resources are named as the real server's audit log names them: `pods`,
//! `deployments.apps`, `pods/status`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

/// Objects and bytes sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Served {
    pub objects: u64,
    pub bytes: u64,
}

/// One write request, as the write log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteRecord {
    /// Position in the log, from 0.
    pub seq: u64,
    /// `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
    /// The field manager (from `fieldManager`, or the user agent's product as the real
    /// server derives it).
    pub manager: String,
    pub user_agent: String,
    /// The HTTP status answered.
    pub code: u16,
    /// The resourceVersion written, for successful writes that changed something.
    pub resource_version: Option<u64>,
    /// Microseconds since the server started, when the request arrived and when it was
    /// answered.
    pub started_micros: u64,
    pub finished_micros: u64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// `"verb resource"` -> requests (`"list pods"`, `"watch deployments.apps"`).
    pub requests: BTreeMap<String, u64>,
    /// Per resource, served by list (and get) responses.
    pub list: BTreeMap<String, Served>,
    /// Per resource, served as watch events (bookmarks and errors not counted as objects).
    pub watch: BTreeMap<String, Served>,
    /// Per resource, watches open now.
    pub open_watches: BTreeMap<String, u64>,
}

impl Snapshot {
    pub fn requests(&self, verb: &str, resource: &str) -> u64 {
        self.requests
            .get(&format!("{verb} {resource}"))
            .copied()
            .unwrap_or(0)
    }

    pub fn listed(&self, resource: &str) -> Served {
        self.list.get(resource).copied().unwrap_or_default()
    }

    pub fn watched(&self, resource: &str) -> Served {
        self.watch.get(resource).copied().unwrap_or_default()
    }

    pub fn open_watches(&self, resource: &str) -> u64 {
        self.open_watches.get(resource).copied().unwrap_or(0)
    }
}

/// Write records kept: a long `trellis dev` session must not grow without bound. Older
/// records are dropped; `seq` keeps counting, so a gap shows.
pub const WRITE_LOG_CAPACITY: usize = 100_000;

struct Inner {
    counters: Snapshot,
    writes: VecDeque<WriteRecord>,
    next_seq: u64,
}

/// The server's counters and write log.
pub struct Accounting {
    inner: Mutex<Inner>,
    started: Instant,
}

impl Default for Accounting {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                counters: Snapshot::default(),
                writes: VecDeque::new(),
                next_seq: 0,
            }),
            started: Instant::now(),
        }
    }
}

impl Accounting {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Microseconds since the server started (the write log's clock).
    pub fn micros(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    pub fn request(&self, verb: &str, resource: &str) {
        *self
            .lock()
            .counters
            .requests
            .entry(format!("{verb} {resource}"))
            .or_default() += 1;
    }

    pub fn listed(&self, resource: &str, objects: u64, bytes: u64) {
        let mut inner = self.lock();
        let served = inner.counters.list.entry(resource.to_string()).or_default();
        served.objects += objects;
        served.bytes += bytes;
    }

    pub fn watched(&self, resource: &str, objects: u64, bytes: u64) {
        let mut inner = self.lock();
        let served = inner
            .counters
            .watch
            .entry(resource.to_string())
            .or_default();
        served.objects += objects;
        served.bytes += bytes;
    }

    pub fn watch_opened(&self, resource: &str) {
        *self
            .lock()
            .counters
            .open_watches
            .entry(resource.to_string())
            .or_default() += 1;
    }

    pub fn watch_closed(&self, resource: &str) {
        let mut inner = self.lock();
        if let Some(open) = inner.counters.open_watches.get_mut(resource) {
            *open = open.saturating_sub(1);
        }
    }

    /// Appends to the write log, numbering the record.
    pub fn write(&self, mut record: WriteRecord) {
        let mut inner = self.lock();
        record.seq = inner.next_seq;
        inner.next_seq += 1;
        if inner.writes.len() == WRITE_LOG_CAPACITY {
            inner.writes.pop_front();
        }
        inner.writes.push_back(record);
    }

    pub fn snapshot(&self) -> Snapshot {
        self.lock().counters.clone()
    }

    pub fn writes(&self) -> Vec<WriteRecord> {
        self.lock().writes.iter().cloned().collect()
    }

    /// Zeroes the counters and empties the write log; open watches stay counted.
    pub fn reset(&self) {
        let mut inner = self.lock();
        let open = std::mem::take(&mut inner.counters.open_watches);
        inner.counters = Snapshot {
            open_watches: open,
            ..Snapshot::default()
        };
        inner.writes.clear();
        inner.next_seq = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(verb: &str) -> WriteRecord {
        WriteRecord {
            seq: 99,
            verb: verb.to_string(),
            resource: "pods".to_string(),
            namespace: "ns".to_string(),
            name: "p".to_string(),
            manager: "m".to_string(),
            user_agent: "ua".to_string(),
            code: 201,
            resource_version: Some(1),
            started_micros: 0,
            finished_micros: 1,
        }
    }

    #[test]
    fn counts_and_resets() {
        let accounting = Accounting::default();
        accounting.request("list", "pods");
        accounting.request("list", "pods");
        accounting.listed("pods", 3, 300);
        accounting.watched("pods", 1, 100);
        accounting.watch_opened("pods");
        accounting.write(record("create"));
        accounting.write(record("delete"));
        let snapshot = accounting.snapshot();
        assert_eq!(snapshot.requests("list", "pods"), 2);
        assert_eq!(snapshot.requests("watch", "pods"), 0);
        assert_eq!(
            snapshot.listed("pods"),
            Served {
                objects: 3,
                bytes: 300
            }
        );
        assert_eq!(snapshot.watched("pods").objects, 1);
        assert_eq!(snapshot.open_watches("pods"), 1);
        let writes = accounting.writes();
        assert_eq!(writes.iter().map(|w| w.seq).collect::<Vec<_>>(), vec![0, 1]);
        accounting.reset();
        let snapshot = accounting.snapshot();
        assert_eq!(snapshot.requests("list", "pods"), 0);
        assert_eq!(snapshot.open_watches("pods"), 1, "open watches are a gauge");
        assert!(accounting.writes().is_empty());
        for _ in 0..WRITE_LOG_CAPACITY + 5 {
            accounting.write(record("patch"));
        }
        let writes = accounting.writes();
        assert_eq!(writes.len(), WRITE_LOG_CAPACITY, "bounded");
        assert_eq!(writes[0].seq, 5, "the oldest went first");
        accounting.reset();
        accounting.write(record("create"));
        assert_eq!(
            accounting.writes()[0].seq,
            0,
            "numbering restarts after a reset"
        );
        accounting.watch_closed("pods");
        accounting.watch_closed("pods");
        assert_eq!(
            accounting.snapshot().open_watches("pods"),
            0,
            "never below zero"
        );
    }
}
