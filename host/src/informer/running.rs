//! A running informer: the shared state its subscriptions see, and the task that feeds it.
//!
//! One task per informer consumes the watches of all its scopes (one per namespace, or one
//! for all namespaces), applies each event to the cache, and fans the change out to every
//! subscription's [`Delivery`]. The task never awaits anything but the watch streams, its
//! timers and its cancellation: applying and enqueueing are synchronous and bounded.
//!
//! Relists: on `Init` the scope starts recording the keys it lists (unless it holds nothing,
//! when no ghost is possible — the common first sync costs no extra memory); on `InitDone` the
//! objects of the scope that were not listed are removed and delivered as deletes. Objects are
//! applied as they arrive instead of being buffered until `InitDone` (as kube-runtime's
//! reflector does), so a sync never holds two copies of the data and readers keep seeing the
//! previous state of objects not yet relisted.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{BoxStream, StreamExt};
use kube::runtime::watcher::Event;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};
use trellis_selector::LabelSelector;

use super::config::WatchSpec;
use super::delivery::{Change, Delivery};
use super::metrics::{EventType, InformerLabels, InformerSeries};
use super::raw::RawObject;
use super::sync::SyncStatus;
use super::transform::Transform;
use super::watch::{WatchItem, rejection};
use crate::cache::{Cache, JsonText, Metadata, ObjectKey, ObjectRef, Upserted};

/// One plugin's subscription, as the informer holds it.
pub(crate) struct Subscriber {
    pub id: u64,
    pub delivery: Delivery,
    pub resync: Option<Duration>,
    next_resync: Mutex<Option<Instant>>,
}

impl Subscriber {
    pub(crate) fn new(id: u64, delivery: Delivery, resync: Option<Duration>) -> Self {
        Self {
            id,
            delivery,
            resync,
            next_resync: Mutex::new(resync.map(|every| Instant::now() + every)),
        }
    }
}

/// What an informer's subscriptions share.
pub(crate) struct Informer {
    pub spec: WatchSpec,
    pub labels: InformerLabels,
    pub cache: Arc<Cache>,
    pub status: watch::Sender<SyncStatus>,
    pub series: InformerSeries,
    subscribers: RwLock<Vec<Arc<Subscriber>>>,
    /// Wakes the task when the subscriber set changes (resync schedule).
    changed: Notify,
}

impl Informer {
    pub(crate) fn new(spec: WatchSpec, labels: InformerLabels, series: InformerSeries) -> Self {
        let cache = Arc::new(Cache::new(spec.kind.clone(), spec.indexes.clone()));
        let (status, _) = watch::channel(SyncStatus::Syncing { last_error: None });
        Self {
            spec,
            labels,
            cache,
            status,
            series,
            subscribers: RwLock::new(Vec::new()),
            changed: Notify::new(),
        }
    }

    /// Adds a subscriber, then replays what the cache holds to it at low priority.
    ///
    /// Order matters: the subscriber is visible to the event path before the cache is read,
    /// and the event path writes the cache before it reads the subscribers, so every object is
    /// delivered at least once — by the replay, by the event, or both (the queue dedups).
    pub(crate) fn add(&self, subscriber: Arc<Subscriber>) {
        self.subscribers.write().push(subscriber.clone());
        self.series.subscribers.inc();
        replay(&self.cache, &subscriber);
        self.changed.notify_one();
    }

    /// Removes a subscriber; returns how many remain.
    pub(crate) fn remove(&self, id: u64) -> usize {
        let mut subscribers = self.subscribers.write();
        subscribers.retain(|s| s.id != id);
        self.series.subscribers.set(subscribers.len() as i64);
        subscribers.len()
    }

    fn fan_out(&self, change: Change<'_>) {
        for subscriber in self.subscribers.read().iter() {
            subscriber.delivery.deliver(change);
        }
    }

    fn update_status(&self, f: impl FnOnce(&mut SyncStatus) -> bool) {
        self.status.send_if_modified(f);
    }
}

fn replay(cache: &Cache, subscriber: &Subscriber) {
    for object in cache.list(None, &LabelSelector::everything()) {
        subscriber.delivery.deliver(Change::Replay(object.meta()));
    }
}

/// A relist in progress in one scope.
struct Listing {
    /// Keys listed so far; `None` when the scope held nothing at `Init`.
    seen: Option<HashSet<ObjectKey>>,
    /// The scope's first list: new objects are initial (low priority), not news.
    first: bool,
}

struct ScopeState {
    namespace: Option<String>,
    listing: Option<Listing>,
    listed: bool,
}

/// Drives an informer until cancelled, or until the server rejects its watch before it synced.
pub(crate) async fn run<const META: bool>(
    informer: Arc<Informer>,
    scopes: Vec<(
        Option<String>,
        BoxStream<'static, WatchItem<RawObject<META>>>,
    )>,
    transform: Transform,
    sync_timeout: Duration,
    cancel: CancellationToken,
) {
    let started = Instant::now();
    let mut states: Vec<ScopeState> = Vec::with_capacity(scopes.len());
    let mut streams = Vec::with_capacity(scopes.len());
    for (i, (namespace, stream)) in scopes.into_iter().enumerate() {
        states.push(ScopeState {
            namespace,
            listing: None,
            listed: false,
        });
        streams.push(stream.map(move |item| (i, item)).boxed());
    }
    let mut events = futures::stream::select_all(streams);
    let mut synced = false;
    let sync_deadline = tokio::time::sleep(sync_timeout);
    tokio::pin!(sync_deadline);
    let mut stalled = false;
    let apply = Apply {
        informer: &informer,
        transform: &transform,
    };
    info!(watch = %informer.spec, id = %informer.labels.watch, "informer started");

    loop {
        let next_resync = next_resync(&informer);
        tokio::select! {
            () = cancel.cancelled() => break,
            item = events.next() => {
                let Some((scope, item)) = item else { break };
                match item {
                    WatchItem::Event(event) => {
                        let received = Instant::now();
                        let state = &mut states[scope];
                        apply.event(state, event);
                        informer.series.event_handling.observe(received.elapsed().as_secs_f64());
                        if !synced && states.iter().all(|s| s.listed) {
                            synced = true;
                            let took = started.elapsed();
                            informer.series.sync_duration.observe(took.as_secs_f64());
                            informer.update_status(|s| {
                                *s = SyncStatus::Synced { took };
                                true
                            });
                            info!(watch = %informer.spec, objects = informer.cache.len(), took_ms = took.as_millis() as u64, "informer synced");
                        }
                    }
                    WatchItem::FellBack { reason } => {
                        info!(watch = %informer.spec, namespace = ?states[scope].namespace, page_size = informer.spec.page_size, %reason,
                            "the server refused a streaming list; listing in pages instead");
                    }
                    WatchItem::Error(err) => {
                        informer.series.restarts.inc();
                        let message = err.to_string();
                        warn!(watch = %informer.spec, namespace = ?states[scope].namespace, error = %message, "watch failed; retrying with backoff");
                        if synced {
                            continue;
                        }
                        if let Some(status) = rejection(&err) {
                            let message = format!("{} ({} {})", status.message, status.code, status.reason);
                            error!(watch = %informer.spec, %message, "the API server rejected the watch; informer stopped");
                            informer.update_status(|s| {
                                *s = SyncStatus::Failed { message };
                                true
                            });
                            break;
                        }
                        informer.update_status(|s| match s {
                            SyncStatus::Syncing { last_error } | SyncStatus::Stalled { last_error, .. } => {
                                *last_error = Some(message);
                                true
                            }
                            _ => false,
                        });
                    }
                }
            }
            () = &mut sync_deadline, if !synced && !stalled => {
                stalled = true;
                let waited = started.elapsed();
                informer.update_status(|s| {
                    let last_error = match s {
                        SyncStatus::Syncing { last_error } => last_error.take(),
                        _ => None,
                    };
                    error!(watch = %informer.spec, waited_s = waited.as_secs(), last_error = ?last_error, "informer did not sync in time; still trying");
                    *s = SyncStatus::Stalled { waited, last_error };
                    true
                });
            }
            () = sleep_until(next_resync), if next_resync.is_some() => {
                resync_due(&informer, synced);
            }
            () = informer.changed.notified() => {}
        }
    }
    debug!(watch = %informer.spec, "informer stopped");
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn next_resync(informer: &Informer) -> Option<Instant> {
    informer
        .subscribers
        .read()
        .iter()
        .filter_map(|s| *s.next_resync.lock())
        .min()
}

/// Replays the cache to every subscriber whose resync is due (only once synced: a partial
/// cache is not worth replaying; the initial list delivers everything anyway).
fn resync_due(informer: &Informer, synced: bool) {
    let now = Instant::now();
    let due: Vec<Arc<Subscriber>> = informer
        .subscribers
        .read()
        .iter()
        .filter(|s| s.next_resync.lock().is_some_and(|at| at <= now))
        .cloned()
        .collect();
    for subscriber in due {
        if synced {
            debug!(plugin = subscriber.delivery.plugin(), watch = %informer.spec, "resync");
            replay(&informer.cache, &subscriber);
        }
        *subscriber.next_resync.lock() = subscriber.resync.map(|every| now + every);
    }
}

/// Applies watch events to the cache and fans the changes out.
struct Apply<'a> {
    informer: &'a Informer,
    transform: &'a Transform,
}

impl Apply<'_> {
    fn event<const META: bool>(&self, scope: &mut ScopeState, event: Event<RawObject<META>>) {
        let informer = self.informer;
        match event {
            Event::Init => {
                let holds_any = informer.cache.has_any(scope.namespace.as_deref());
                if scope.listed {
                    informer.series.relists.inc();
                    info!(watch = %informer.spec, namespace = ?scope.namespace, "relisting");
                }
                scope.listing = Some(Listing {
                    seen: holds_any.then(HashSet::new),
                    first: !scope.listed,
                });
            }
            Event::InitApply(object) => {
                informer.series.event(EventType::Initial);
                let first = scope.listing.as_ref().is_some_and(|l| l.first);
                if let Some(seen) = scope.listing.as_mut().and_then(|l| l.seen.as_mut()) {
                    seen.insert(object.metadata.key.clone());
                }
                self.upsert(object, first);
            }
            Event::InitDone => {
                if let Some(Listing {
                    seen: Some(seen), ..
                }) = scope.listing.take()
                {
                    let ghosts = informer
                        .cache
                        .remove_unless(scope.namespace.as_deref(), |key| seen.contains(key));
                    for ghost in &ghosts {
                        informer.series.event(EventType::Deleted);
                        informer.fan_out(Change::Delete(ghost.meta()));
                    }
                    if !ghosts.is_empty() {
                        info!(watch = %informer.spec, namespace = ?scope.namespace, removed = ghosts.len(), "relist removed objects deleted while the watch was down");
                    }
                }
                scope.listed = true;
                self.record_size();
            }
            Event::Apply(object) => {
                let known = informer.cache.get(&object.metadata.key).is_some();
                informer.series.event(if known {
                    EventType::Modified
                } else {
                    EventType::Added
                });
                self.upsert(object, false);
            }
            Event::Delete(object) => {
                informer.series.event(EventType::Deleted);
                let removed: Option<ObjectRef> = informer.cache.remove(&object.metadata.key);
                let meta: &Metadata = removed.as_ref().map_or(&object.metadata, |o| o.meta());
                informer.fan_out(Change::Delete(meta));
                self.record_size();
            }
        }
    }

    fn upsert<const META: bool>(&self, object: RawObject<META>, initial: bool) {
        let informer = self.informer;
        let cache = &informer.cache;
        let RawObject { json, metadata, .. } = object;
        if let Some(current) = cache.get(&metadata.key)
            && current.resource_version() == &*metadata.resource_version
        {
            // Unchanged (a relist, or a resumed watch repeating itself): every predicate would
            // drop it, and rebuilding it would only cost time.
            return;
        }
        let text = JsonText::from(self.transform.apply(&json));
        let object = cache.build(&json, metadata, text);
        drop(json);
        let Upserted { new, old } = cache.upsert(object);
        let change = match (&old, initial) {
            (None, true) => Change::Initial(new.meta()),
            (old, _) => Change::Upsert {
                old: old.as_ref().map(|o| o.meta()),
                new: new.meta(),
            },
        };
        informer.fan_out(change);
        self.record_size();
    }

    fn record_size(&self) {
        let cache = &self.informer.cache;
        self.informer.series.cache_size(cache.len(), cache.bytes());
    }
}
