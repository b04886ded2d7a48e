//! The object store: tables of objects, one global resourceVersion, and per-table history.
//!
//! One lock guards everything, like etcd's single revision counter: every write takes the next
//! resourceVersion, so versions are totally ordered across kinds and a transaction (a namespace
//! deletion cascading into its contents) commits atomically. Writers do their JSON work before
//! taking the lock and only check preconditions and insert under it.
//!
//! Each table keeps a bounded history of events. It serves three things:
//! - watches from a resourceVersion (events after it, or 410 Gone once it fell out of the
//!   window: `floor` is the oldest version the history can replay from);
//! - consistent pagination: a continue token pins the list to a snapshot version, and later
//!   pages rebuild that snapshot by undoing newer events (what etcd's MVCC does for the real
//!   server), or answer 410 Expired once the snapshot left the window;
//! - `resourceVersionMatch=Exact` lists, the same way.
//!
//! Watchers never get a copy of an event: they read the shared history with a cursor and wait
//! on a per-table `watch` channel for the next version, so fan-out costs no allocation per
//! watcher and a slow watcher costs nothing until it falls out of the window (then its watch
//! ends and it re-lists, as with the real server).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::fields::SelectableField;
use crate::object::{ObjKey, Prepared, StoredObject};

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// One committed change.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub kind: EventKind,
    /// The object after the change; for deletions, its last state with the deletion's version.
    pub object: Arc<StoredObject>,
    /// The object before the change (absent for additions). Filtered watches need it to turn a
    /// change that makes an object stop matching into a deletion.
    pub prev: Option<Arc<StoredObject>>,
}

/// Why a versioned read could not be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// The requested version left the history window; `floor` is the oldest servable one.
    Expired { requested: u64, floor: u64 },
    /// The requested version is newer than any the server has issued.
    TooLarge { requested: u64, current: u64 },
}

struct Table {
    objects: BTreeMap<ObjKey, Arc<StoredObject>>,
    history: VecDeque<Arc<Event>>,
    floor: u64,
    notify: watch::Sender<u64>,
    closed: CancellationToken,
}

impl Table {
    /// A table whose watches also end when `stopping` is cancelled.
    fn new(floor: u64, stopping: &CancellationToken) -> Self {
        Self {
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            floor,
            notify: watch::channel(0).0,
            closed: stopping.child_token(),
        }
    }

    /// Index of the first history event newer than `rv`.
    fn first_after(&self, rv: u64) -> usize {
        self.history.partition_point(|e| e.rv <= rv)
    }
}

struct State {
    rv: u64,
    tables: HashMap<String, Table>,
    /// Cancelled when the server stops: ends every watch, including ones started later.
    stopping: CancellationToken,
}

impl State {
    fn table(&mut self, key: &str) -> &mut Table {
        if !self.tables.contains_key(key) {
            let table = Table::new(0, &self.stopping);
            self.tables.insert(key.to_string(), table);
        }
        self.tables.get_mut(key).expect("inserted above")
    }
}

/// Where a list reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAt {
    /// The current state.
    Latest,
    /// The state as of this version (continue tokens, `resourceVersionMatch=Exact`).
    Exact(u64),
}

/// One page of a list.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Arc<StoredObject>>,
    /// The snapshot version the page was read at.
    pub rv: u64,
    /// The key of the last item when more remain (the continue point).
    pub more: Option<ObjKey>,
}

/// The start of a watch.
pub struct WatchStart {
    /// Objects to send as synthetic ADDED events first (empty when watching from a version).
    pub initial: Vec<Arc<StoredObject>>,
    /// Events newer than this follow.
    pub cursor: u64,
    pub changed: watch::Receiver<u64>,
    pub closed: CancellationToken,
}

/// What a watcher reads next.
pub enum Next {
    /// Events after the cursor, oldest first.
    Events(Vec<Arc<Event>>),
    /// Nothing new; the watcher is current as of this version (safe for a bookmark).
    CaughtUp(u64),
    /// The cursor fell out of the history window: the watch must end.
    Gone,
}

/// The store. Cheap to share behind an `Arc`.
pub struct Store {
    state: Mutex<State>,
    capacity: usize,
}

impl Store {
    /// A store keeping at most `history` events per table.
    pub fn new(history: usize) -> Self {
        Self {
            state: Mutex::new(State {
                rv: 0,
                tables: HashMap::new(),
                stopping: CancellationToken::new(),
            }),
            capacity: history.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a table half-written (every mutation is
        // a single insert or remove), so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    pub fn get(&self, table: &str, key: &ObjKey) -> Option<Arc<StoredObject>> {
        self.lock()
            .tables
            .get(table)
            .and_then(|t| t.objects.get(key).cloned())
    }

    /// Number of objects in a table.
    pub fn len(&self, table: &str) -> usize {
        self.lock().tables.get(table).map_or(0, |t| t.objects.len())
    }

    /// Runs `f` as one atomic transaction.
    pub fn write<R>(&self, f: impl FnOnce(&mut Tx<'_>) -> R) -> R {
        let mut state = self.lock();
        let mut tx = Tx {
            state: &mut state,
            capacity: self.capacity,
            touched: Vec::new(),
        };
        let result = f(&mut tx);
        let touched = std::mem::take(&mut tx.touched);
        for key in touched {
            if let Some(table) = state.tables.get(&key) {
                let latest = table.history.back().map_or(0, |e| e.rv);
                table.notify.send_replace(latest);
            }
        }
        result
    }

    /// Reads one page: up to `limit` objects after `after`, in `namespace` if given, that pass
    /// `filter`, as of `at`.
    pub fn list(
        &self,
        table: &str,
        at: ReadAt,
        namespace: Option<&str>,
        after: Option<&ObjKey>,
        limit: Option<usize>,
        filter: impl Fn(&StoredObject) -> bool,
    ) -> Result<Page, ReadError> {
        let state = self.lock();
        let current = state.rv;
        let empty = Table::new(0, &state.stopping);
        let t = state.tables.get(table).unwrap_or(&empty);
        let rv = match at {
            ReadAt::Latest => current,
            ReadAt::Exact(rv) if rv > current => {
                return Err(ReadError::TooLarge {
                    requested: rv,
                    current,
                });
            }
            ReadAt::Exact(rv) => rv,
        };
        let start = t.first_after(rv);
        if rv < t.floor {
            return Err(ReadError::Expired {
                requested: rv,
                floor: t.floor,
            });
        }
        // Objects changed since the snapshot, mapped to their state at it (None: did not exist).
        let mut overlay: BTreeMap<&ObjKey, Option<&Arc<StoredObject>>> = BTreeMap::new();
        for event in t.history.range(start..) {
            overlay
                .entry(&event.object.key)
                .or_insert(event.prev.as_ref());
        }
        let lower = match (after, namespace) {
            (Some(after), _) => Bound::Excluded(after.clone()),
            (None, Some(ns)) => Bound::Included(ObjKey::new(ns, "")),
            (None, None) => Bound::Unbounded,
        };
        let in_scope = |key: &ObjKey| namespace.is_none_or(|ns| &*key.namespace == ns);
        let current_items = t
            .objects
            .range((lower.clone(), Bound::Unbounded))
            .map(|(k, v)| (k, Some(v)));
        let overlay_items = overlay
            .range::<ObjKey, _>((lower, Bound::Unbounded))
            .map(|(k, v)| (*k, *v));
        let mut items = Vec::new();
        let mut more = None;
        for (key, object) in merge_snapshot(current_items, overlay_items, &overlay) {
            if !in_scope(key) {
                if namespace.is_some_and(|ns| &*key.namespace > ns) {
                    break;
                }
                continue;
            }
            let Some(object) = object else { continue };
            if limit.is_some_and(|l| items.len() >= l) {
                more = items.last().map(|o: &Arc<StoredObject>| o.key.clone());
                break;
            }
            if filter(object) {
                items.push(object.clone());
            }
        }
        Ok(Page { items, rv, more })
    }

    /// Starts a watch: from `from` (events after that version), or from now with the current
    /// objects as initial events.
    pub fn watch(
        &self,
        table: &str,
        from: Option<u64>,
        namespace: Option<&str>,
    ) -> Result<WatchStart, ReadError> {
        let mut state = self.lock();
        let current = state.rv;
        let t = state.table(table);
        let (initial, cursor) = match from {
            Some(rv) if rv > current => {
                return Err(ReadError::TooLarge {
                    requested: rv,
                    current,
                });
            }
            Some(rv) if rv < t.floor => {
                return Err(ReadError::Expired {
                    requested: rv,
                    floor: t.floor,
                });
            }
            Some(rv) => (Vec::new(), rv),
            None => {
                let initial = t
                    .objects
                    .iter()
                    .filter(|(k, _)| namespace.is_none_or(|ns| &*k.namespace == ns))
                    .map(|(_, v)| v.clone())
                    .collect();
                (initial, current)
            }
        };
        Ok(WatchStart {
            initial,
            cursor,
            changed: t.notify.subscribe(),
            closed: t.closed.clone(),
        })
    }

    /// Up to `max` events after `cursor`.
    pub fn next(&self, table: &str, cursor: u64, max: usize) -> Next {
        let state = self.lock();
        let Some(t) = state.tables.get(table) else {
            return Next::CaughtUp(state.rv);
        };
        if cursor < t.floor {
            return Next::Gone;
        }
        let start = t.first_after(cursor);
        if start == t.history.len() {
            return Next::CaughtUp(state.rv);
        }
        Next::Events(t.history.range(start..).take(max).cloned().collect())
    }

    /// Ends every open watch on `table` (all tables if `None`).
    pub fn close_watches(&self, table: Option<&str>) {
        let mut state = self.lock();
        let stopping = state.stopping.clone();
        for (key, t) in state.tables.iter_mut() {
            if table.is_none_or(|k| k == key) {
                t.closed.cancel();
                t.closed = stopping.child_token();
            }
        }
    }

    /// Ends every watch, now and from now on (the server is stopping).
    pub fn shut_down(&self) {
        self.lock().stopping.cancel();
    }

    /// Drops the history of `table` (all tables if `None`): every watch, continue token or
    /// exact read from a version issued so far gets 410. The global version moves on by one so
    /// a fresh list returns a version that can be watched from.
    pub fn expire_history(&self, table: Option<&str>) {
        let mut state = self.lock();
        state.rv += 1;
        let rv = state.rv;
        if let Some(key) = table {
            state.table(key);
        }
        for (key, t) in state.tables.iter_mut() {
            if table.is_none_or(|k| k == key) {
                t.history.clear();
                t.floor = rv;
            }
        }
    }

    /// Forgets a table entirely (its CRD is gone): ends its watches; a table created again
    /// later cannot replay anything before its re-creation.
    pub fn drop_table(&self, table: &str) {
        let mut state = self.lock();
        let rv = state.rv;
        if let Some(t) = state.tables.remove(table) {
            t.closed.cancel();
        }
        let fresh = Table::new(rv, &state.stopping);
        state.tables.insert(table.to_string(), fresh);
    }
}

/// Merges current objects with the snapshot overlay: keys in the overlay take the overlay's
/// (older) state; keys only in the current table are unchanged since the snapshot.
fn merge_snapshot<'a>(
    current: impl Iterator<Item = (&'a ObjKey, Option<&'a Arc<StoredObject>>)>,
    overlay_range: impl Iterator<Item = (&'a ObjKey, Option<&'a Arc<StoredObject>>)>,
    overlay: &BTreeMap<&'a ObjKey, Option<&'a Arc<StoredObject>>>,
) -> impl Iterator<Item = (&'a ObjKey, Option<&'a Arc<StoredObject>>)> {
    let mut current = current.filter(|(k, _)| !overlay.contains_key(k)).peekable();
    let mut overlay_range = overlay_range.peekable();
    std::iter::from_fn(move || match (current.peek(), overlay_range.peek()) {
        (Some((a, _)), Some((b, _))) => {
            if a < b {
                current.next()
            } else {
                overlay_range.next()
            }
        }
        (Some(_), None) => current.next(),
        (None, Some(_)) => overlay_range.next(),
        (None, None) => None,
    })
}

/// A write transaction: reads and changes under the store's lock.
pub struct Tx<'a> {
    state: &'a mut State,
    capacity: usize,
    touched: Vec<String>,
}

impl Tx<'_> {
    pub fn current_rv(&self) -> u64 {
        self.state.rv
    }

    pub fn get(&self, table: &str, key: &ObjKey) -> Option<Arc<StoredObject>> {
        self.state
            .tables
            .get(table)
            .and_then(|t| t.objects.get(key).cloned())
    }

    /// Keys of the objects of `table` in `namespace`.
    pub fn keys_in_namespace(&self, table: &str, namespace: &str) -> Vec<ObjKey> {
        self.state
            .tables
            .get(table)
            .map(|t| {
                t.objects
                    .range(ObjKey::new(namespace, "")..)
                    .take_while(|(k, _)| &*k.namespace == namespace)
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Keys of every object of `table`.
    pub fn all_keys(&self, table: &str) -> Vec<ObjKey> {
        self.state
            .tables
            .get(table)
            .map(|t| t.objects.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Names of every table.
    pub fn tables(&self) -> Vec<String> {
        self.state.tables.keys().cloned().collect()
    }

    /// Stores `object` under the next version (set into its `metadata.resourceVersion`), as
    /// an addition or a modification depending on whether the key exists.
    pub fn put(
        &mut self,
        table: &str,
        object: Value,
        selectable: &Arc<[SelectableField]>,
    ) -> Arc<StoredObject> {
        self.put_prepared(table, Prepared::new(object, selectable))
    }

    /// `put` for an object serialized before the transaction (the hot path: only a copy
    /// happens under the lock).
    pub fn put_prepared(&mut self, table: &str, prepared: Prepared) -> Arc<StoredObject> {
        self.state.rv += 1;
        let rv = self.state.rv;
        let stored = Arc::new(StoredObject::from_prepared(prepared, rv));
        let t = self.state.table(table);
        let prev = t.objects.insert(stored.key.clone(), stored.clone());
        let kind = if prev.is_some() {
            EventKind::Modified
        } else {
            EventKind::Added
        };
        self.record(table, kind, stored.clone(), prev);
        stored
    }

    /// Removes an object; the DELETED event carries its final state (`last`, or the stored
    /// object if `None`) under the deletion's version.
    pub fn remove(
        &mut self,
        table: &str,
        key: &ObjKey,
        last: Option<Value>,
        selectable: &Arc<[SelectableField]>,
    ) -> Option<Arc<StoredObject>> {
        let prev = self.state.tables.get_mut(table)?.objects.remove(key)?;
        self.state.rv += 1;
        let rv = self.state.rv;
        let mut last = last.unwrap_or_else(|| prev.value());
        set_resource_version(&mut last, rv);
        let stored = Arc::new(StoredObject::new(&last, rv, selectable));
        self.record(table, EventKind::Deleted, stored.clone(), Some(prev));
        Some(stored)
    }

    fn record(
        &mut self,
        table: &str,
        kind: EventKind,
        object: Arc<StoredObject>,
        prev: Option<Arc<StoredObject>>,
    ) {
        let capacity = self.capacity;
        let t = self.state.table(table);
        t.history.push_back(Arc::new(Event {
            rv: object.rv,
            kind,
            object,
            prev,
        }));
        while t.history.len() > capacity {
            if let Some(evicted) = t.history.pop_front() {
                t.floor = evicted.rv;
            }
        }
        if !self.touched.iter().any(|k| k == table) {
            self.touched.push(table.to_string());
        }
    }
}

pub fn set_resource_version(object: &mut Value, rv: u64) {
    crate::object::meta_mut(object)
        .insert("resourceVersion".to_string(), Value::String(rv.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::with_metadata;
    use serde_json::json;

    fn fields() -> Arc<[SelectableField]> {
        with_metadata(true, Vec::new())
    }

    fn cm(ns: &str, name: &str, v: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": ns}, "data": {"v": v}})
    }

    fn names(page: &Page) -> Vec<String> {
        page.items
            .iter()
            .map(|o| format!("{}/{}", o.key.namespace, o.key.name))
            .collect()
    }

    fn put(store: &Store, ns: &str, name: &str, v: &str) -> u64 {
        store.write(|tx| tx.put("cm", cm(ns, name, v), &fields()).rv)
    }

    #[test]
    fn versions_are_global_and_increasing() {
        let store = Store::new(100);
        assert_eq!(put(&store, "a", "x", "1"), 1);
        let rv = store.write(|tx| tx.put("other", cm("a", "y", "1"), &fields()).rv);
        assert_eq!(rv, 2);
        assert_eq!(put(&store, "a", "x", "2"), 3);
        let stored = store.get("cm", &ObjKey::new("a", "x")).unwrap();
        assert_eq!(stored.value()["metadata"]["resourceVersion"], "3");
    }

    #[test]
    fn pages_are_consistent_snapshots_across_writes() {
        let store = Store::new(100);
        for name in ["a", "b", "c", "d"] {
            put(&store, "ns", name, "old");
        }
        let first = store
            .list("cm", ReadAt::Latest, None, None, Some(2), |_| true)
            .unwrap();
        assert_eq!(names(&first), vec!["ns/a", "ns/b"]);
        let after = first.more.clone().unwrap();
        // Concurrent writes after the first page: a change, a deletion, an addition.
        put(&store, "ns", "c", "new");
        store.write(|tx| tx.remove("cm", &ObjKey::new("ns", "d"), None, &fields()));
        put(&store, "ns", "bb", "new");
        let second = store
            .list(
                "cm",
                ReadAt::Exact(first.rv),
                None,
                Some(&after),
                Some(2),
                |_| true,
            )
            .unwrap();
        assert_eq!(
            names(&second),
            vec!["ns/c", "ns/d"],
            "the snapshot, not the present"
        );
        assert_eq!(second.items[0].value()["data"]["v"], "old");
        assert_eq!(second.rv, first.rv);
        let latest = store
            .list("cm", ReadAt::Latest, None, None, None, |_| true)
            .unwrap();
        assert_eq!(names(&latest), vec!["ns/a", "ns/b", "ns/bb", "ns/c"]);
    }

    #[test]
    fn snapshots_outside_the_window_expire() {
        let store = Store::new(2);
        put(&store, "ns", "a", "1");
        let rv = store.current_rv();
        for v in ["2", "3", "4"] {
            put(&store, "ns", "a", v);
        }
        let error = store
            .list("cm", ReadAt::Exact(rv), None, None, None, |_| true)
            .unwrap_err();
        assert_eq!(
            error,
            ReadError::Expired {
                requested: 1,
                floor: 2
            }
        );
        assert!(matches!(
            store.list("cm", ReadAt::Exact(99), None, None, None, |_| true),
            Err(ReadError::TooLarge { .. })
        ));
    }

    #[test]
    fn namespace_scoped_pages_stay_in_their_namespace() {
        let store = Store::new(100);
        for (ns, name) in [("a", "1"), ("b", "1"), ("b", "2"), ("c", "1")] {
            put(&store, ns, name, "v");
        }
        let page = store
            .list("cm", ReadAt::Latest, Some("b"), None, Some(1), |_| true)
            .unwrap();
        assert_eq!(names(&page), vec!["b/1"]);
        let next = store
            .list(
                "cm",
                ReadAt::Latest,
                Some("b"),
                page.more.as_ref(),
                Some(1),
                |_| true,
            )
            .unwrap();
        assert_eq!(names(&next), vec!["b/2"]);
        assert!(next.more.is_none(), "no continue past the namespace's end");
    }

    #[test]
    fn watchers_read_history_and_go_when_it_is_gone() {
        let store = Store::new(3);
        put(&store, "ns", "a", "1");
        let start = store.watch("cm", Some(0), None).unwrap();
        assert!(start.initial.is_empty());
        put(&store, "ns", "a", "2");
        store.write(|tx| tx.remove("cm", &ObjKey::new("ns", "a"), None, &fields()));
        let Next::Events(events) = store.next("cm", start.cursor, 10) else {
            panic!("expected events");
        };
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![EventKind::Added, EventKind::Modified, EventKind::Deleted]
        );
        assert_eq!(events[2].object.value()["metadata"]["resourceVersion"], "3");
        assert_eq!(events[2].prev.as_ref().unwrap().rv, 2);
        assert!(matches!(store.next("cm", 3, 10), Next::CaughtUp(3)));
        put(&store, "ns", "b", "1");
        assert!(matches!(store.next("cm", 0, 10), Next::Gone));
        assert!(matches!(
            store.watch("cm", Some(0), None),
            Err(ReadError::Expired { .. })
        ));
    }

    #[test]
    fn expiring_history_forces_410_but_fresh_versions_work() {
        let store = Store::new(100);
        put(&store, "ns", "a", "1");
        store.expire_history(Some("cm"));
        assert!(matches!(
            store.watch("cm", Some(1), None),
            Err(ReadError::Expired { .. })
        ));
        let rv = store.current_rv();
        assert!(store.watch("cm", Some(rv), None).is_ok());
    }

    #[test]
    fn watch_from_now_lists_current_objects_in_scope() {
        let store = Store::new(100);
        put(&store, "a", "x", "1");
        put(&store, "b", "y", "1");
        let start = store.watch("cm", None, Some("b")).unwrap();
        assert_eq!(start.initial.len(), 1);
        assert_eq!(start.cursor, 2);
    }
}
