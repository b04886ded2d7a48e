//! Watch streams.
//!
//! A watch is a chunked HTTP response of newline-separated events. Its life:
//! 1. **start**: from a resourceVersion (events after it), or from now with the current
//!    objects as ADDED events first (`resourceVersion` unset or `0`, or
//!    `sendInitialEvents=true`, which also ends the initial events with a BOOKMARK annotated
//!    `k8s.io/initial-events-end`). A version older than the history window answers one
//!    ERROR event with a 410 Status (HTTP 200, as the watch cache does); one in the future
//!    is a 504.
//! 2. **streaming**: events are read from the shared history in batches, filtered
//!    (namespace, labels, fields; an object that stops matching is sent as DELETED, one that
//!    starts matching as ADDED), rendered and written as one chunk per batch.
//! 3. **idle**: when caught up, it waits for the next version, sending BOOKMARKs (when
//!    allowed) at the configured interval with the latest version it is current at.
//! 4. **end**: at `timeoutSeconds` (after a final bookmark), when a fault closes watches, when
//!    the kind stops being served, when the watcher fell out of the history window (a slow
//!    watcher: the client re-watches and gets 410), or when the client goes away.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::Stream;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::object::StoredObject;
use crate::query::ListOptions;
use crate::read::Filter;
use crate::registry::ResourceType;
use crate::render::{Format, Renderer};
use crate::status::ApiError;
use crate::store::{Event, EventKind, Next, ReadError, set_resource_version};

/// Events read per batch (one chunk on the wire).
const BATCH: usize = 512;
/// Initial events are flushed in chunks of about this size.
const CHUNK: usize = 256 * 1024;

pub struct WatchSpec {
    pub resource: Arc<ResourceType>,
    pub namespace: Option<String>,
    pub options: ListOptions,
    pub format: Format,
    pub bookmark_interval: Duration,
    /// The accounting name (`pods`, `deployments.apps`).
    pub accounted_as: String,
}

/// Counts the watch as open until dropped (the client went away or the stream ended).
struct OpenWatch {
    cluster: Arc<Cluster>,
    resource: String,
}

impl OpenWatch {
    fn new(cluster: Arc<Cluster>, resource: String) -> Self {
        cluster.accounting.watch_opened(&resource);
        Self { cluster, resource }
    }
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.cluster.accounting.watch_closed(&self.resource);
    }
}

/// What a filtered watcher makes of one event.
fn transition<'a>(
    event: &'a Event,
    filter: &Filter<'_>,
) -> Option<(&'static str, Option<&'a StoredObject>)> {
    let current = event.kind != EventKind::Deleted && filter.matches(&event.object);
    let before =
        event.kind != EventKind::Added && event.prev.as_ref().is_some_and(|p| filter.matches(p));
    match (current, before) {
        (true, false) => Some(("ADDED", Some(&event.object))),
        (true, true) => Some(("MODIFIED", Some(&event.object))),
        (false, true) if event.kind == EventKind::Deleted => Some(("DELETED", Some(&event.object))),
        // Stopped matching: the previous state, at this event's version (rebuilt below).
        (false, true) => Some(("DELETED", None)),
        (false, false) => None,
    }
}

/// Starts a watch; errors that the real server answers with an HTTP status come back as
/// `Err`, everything else is in the stream.
pub fn start(
    cluster: Arc<Cluster>,
    spec: WatchSpec,
) -> Result<impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static, ApiError> {
    let options = &spec.options;
    let rv = options.resource_version()?;
    let current = cluster.store.current_rv();
    let (from, end_bookmark) = match options.send_initial_events {
        Some(true) => {
            if let Some(rv) = rv.filter(|rv| *rv > current) {
                return Err(ApiError::too_large_resource_version(rv, current));
            }
            (None, options.allow_bookmarks)
        }
        Some(false) => (Some(rv.unwrap_or(current)), false),
        None => (rv, false),
    };
    let table = spec.resource.storage_key();
    let started = cluster.store.watch(&table, from, spec.namespace.as_deref());
    let start = match started {
        Ok(start) => Ok(start),
        Err(ReadError::TooLarge { requested, current }) => {
            return Err(ApiError::too_large_resource_version(requested, current));
        }
        Err(ReadError::Expired { requested, floor }) => {
            Err(ApiError::too_old_resource_version(requested, floor))
        }
    };
    let deadline = options
        .timeout_seconds
        .map(|s| Instant::now() + Duration::from_secs(s));
    Ok(async_stream::stream! {
        let _open = OpenWatch::new(cluster.clone(), spec.accounted_as.clone());
        let start = match start {
            Ok(start) => start,
            Err(error) => {
                let line = Renderer::error_event(&error);
                cluster.accounting.watched(&spec.accounted_as, 0, line.len() as u64);
                yield Ok(line);
                return;
            }
        };
        let options = &spec.options;
        let filter = Filter {
            namespace: spec.namespace.as_deref(),
            labels: &options.labels,
            fields: &options.fields,
            field_names: &spec.resource.selectable,
        };
        let renderer = Renderer::new(&spec.resource, spec.format);
        let bookmarks = options.allow_bookmarks;
        let mut cursor = start.cursor;
        let mut changed = start.changed;
        let closed = start.closed;

        let mut out = BytesMut::new();
        let mut objects = 0u64;
        for object in &start.initial {
            if filter.matches(object) {
                renderer.event("ADDED", object, &mut out);
                objects += 1;
                if out.len() >= CHUNK {
                    let chunk = out.split().freeze();
                    cluster.accounting.watched(&spec.accounted_as, objects, chunk.len() as u64);
                    objects = 0;
                    yield Ok(chunk);
                }
            }
        }
        drop(start.initial);
        if end_bookmark {
            renderer.bookmark(cursor, true, &mut out);
        }
        if !out.is_empty() {
            let chunk = out.split().freeze();
            cluster.accounting.watched(&spec.accounted_as, objects, chunk.len() as u64);
            yield Ok(chunk);
        }

        let mut next_bookmark = Instant::now() + spec.bookmark_interval;
        loop {
            match cluster.store.next(&table, cursor, BATCH) {
                Next::Gone => break,
                Next::Events(events) => {
                    let mut objects = 0u64;
                    for event in &events {
                        cursor = event.rv;
                        let Some((kind, object)) = transition(event, &filter) else { continue };
                        objects += 1;
                        match object {
                            Some(object) => renderer.event(kind, object, &mut out),
                            None => {
                                let prev = event.prev.as_ref().expect("a transition from a previous state");
                                let mut value = prev.value();
                                set_resource_version(&mut value, event.rv);
                                let rebuilt = StoredObject::new(&value, event.rv, &spec.resource.selectable);
                                renderer.event(kind, &rebuilt, &mut out);
                            }
                        }
                    }
                    if !out.is_empty() {
                        let chunk = out.split().freeze();
                        cluster.accounting.watched(&spec.accounted_as, objects, chunk.len() as u64);
                        yield Ok(chunk);
                    }
                }
                Next::CaughtUp(rv) => {
                    let now = Instant::now();
                    if bookmarks && now >= next_bookmark {
                        renderer.bookmark(rv, false, &mut out);
                        let chunk = out.split().freeze();
                        cluster.accounting.watched(&spec.accounted_as, 0, chunk.len() as u64);
                        yield Ok(chunk);
                        next_bookmark = now + spec.bookmark_interval;
                    }
                    let far = now + Duration::from_secs(86_400);
                    tokio::select! {
                        result = changed.changed() => {
                            if result.is_err() {
                                break; // the table is gone
                            }
                        }
                        _ = closed.cancelled() => break,
                        _ = tokio::time::sleep_until(deadline.unwrap_or(far)) => {
                            if bookmarks {
                                renderer.bookmark(rv, false, &mut out);
                                let chunk = out.split().freeze();
                                cluster.accounting.watched(&spec.accounted_as, 0, chunk.len() as u64);
                                yield Ok(chunk);
                            }
                            break;
                        }
                        _ = tokio::time::sleep_until(if bookmarks { next_bookmark } else { far }) => {}
                    }
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            if closed.is_cancelled() {
                break;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::with_metadata;
    use crate::object::ObjKey;
    use serde_json::json;
    use trellis_selector::{FieldSelector, LabelSelector};

    fn object(app: &str, rv: u64) -> Arc<StoredObject> {
        Arc::new(StoredObject::new(
            &json!({"metadata": {"name": "a", "namespace": "n", "labels": {"app": app}}}),
            rv,
            &with_metadata(true, Vec::new()),
        ))
    }

    #[test]
    fn filtered_watchers_see_objects_enter_and_leave() {
        let labels = LabelSelector::parse("app=web").unwrap();
        let fields = FieldSelector::everything();
        let filter = Filter {
            namespace: None,
            labels: &labels,
            fields: &fields,
            field_names: &[],
        };
        let event = |kind, prev: Option<&str>, cur: &str| Event {
            rv: 9,
            kind,
            object: object(cur, 9),
            prev: prev.map(|p| object(p, 8)),
        };
        let kind = |e: &Event| transition(e, &filter).map(|(k, _)| k);
        assert_eq!(kind(&event(EventKind::Added, None, "web")), Some("ADDED"));
        assert_eq!(kind(&event(EventKind::Added, None, "db")), None);
        assert_eq!(
            kind(&event(EventKind::Modified, Some("web"), "web")),
            Some("MODIFIED")
        );
        assert_eq!(
            kind(&event(EventKind::Modified, Some("db"), "web")),
            Some("ADDED")
        );
        let leaving = event(EventKind::Modified, Some("web"), "db");
        assert_eq!(
            transition(&leaving, &filter).map(|(k, o)| (k, o.is_none())),
            Some(("DELETED", true))
        );
        assert_eq!(
            kind(&event(EventKind::Deleted, Some("web"), "web")),
            Some("DELETED")
        );
        assert_eq!(kind(&event(EventKind::Deleted, Some("db"), "db")), None);
        assert_eq!(object("x", 1).key, ObjKey::new("n", "a"));
    }
}
