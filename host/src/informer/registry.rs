//! The informer registry: one informer per distinct watch spec, shared by every plugin that
//! asks for it, reference-counted, and stopped and freed when its last subscription goes.
//!
//! Lifecycle of an entry: created by the first `subscribe` for a spec (after discovery
//! resolved the kind); each further `subscribe` for an equal spec joins it and gets the
//! current cache replayed at low priority; dropping a [`Subscription`] leaves it; the last
//! one to leave removes the entry, cancels the task (which drops the watch connections) and
//! removes its metric series. The cache is freed with the last `Arc` — the task's and the
//! subscriptions' — so nothing outlives its users.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::stream::StreamExt;
use kube::core::ApiResource;
use kube::core::discovery::Scope;
use kube::core::gvk::GroupVersionKind;
use kube::runtime::watcher::{self, InitialListStrategy};
use kube::{Api, Client};
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::config::{ConfigError, InitialList, WatchConfig, WatchSpec};
use super::delivery::{Delivery, KeyMapping, KeySink, Role};
use super::metrics::{InformerLabels, InformerMetrics};
use super::raw::RawObject;
use super::running::{Informer, Subscriber, run};
use super::sync::{self, SyncError, SyncStatus};
use super::transform::Transform;
use super::watch::scope_stream;
use crate::cache::{Cache, Gvk};

/// Registry-wide settings.
#[derive(Debug, Clone)]
pub struct InformerOptions {
    /// How long an informer may take to sync before it is reported stalled. Default 2 min
    /// (controller-runtime's cache sync timeout).
    pub sync_timeout: Duration,
    /// Server-side timeout of each watch request, in seconds; the watch is then resumed from
    /// its last resourceVersion. `None`: kube-runtime's 290 s.
    pub watch_timeout_seconds: Option<u32>,
}

impl Default for InformerOptions {
    fn default() -> Self {
        Self {
            sync_timeout: Duration::from_secs(120),
            watch_timeout_seconds: None,
        }
    }
}

/// Why a subscription could not be made. Every variant names the plugin and, where known,
/// the kind.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error("plugin {plugin:?}: invalid watch: {}", join(.errors))]
    Config {
        plugin: String,
        errors: Vec<ConfigError>,
    },
    #[error("plugin {plugin:?}: the API server does not serve {kind}: {message}")]
    UnknownKind {
        plugin: String,
        kind: Gvk,
        message: String,
    },
    #[error("plugin {plugin:?}: {kind} cannot be listed and watched (verbs: {verbs})")]
    NotWatchable {
        plugin: String,
        kind: Gvk,
        verbs: String,
    },
    #[error("plugin {plugin:?}: {kind} is cluster-scoped; a watch of it cannot name namespaces")]
    ClusterScoped { plugin: String, kind: Gvk },
    #[error("plugin {plugin:?}: watch of {kind}: {message}")]
    Mapping {
        plugin: String,
        kind: Gvk,
        message: String,
    },
    #[error("plugin {plugin:?}: discovery of {kind} failed: {source}")]
    Discovery {
        plugin: String,
        kind: Gvk,
        #[source]
        source: kube::Error,
    },
}

fn join(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Clone)]
struct Resolved {
    resource: ApiResource,
    namespaced: bool,
}

struct Entry {
    informer: Arc<Informer>,
    cancel: CancellationToken,
    subscribers: usize,
}

struct Inner {
    client: Client,
    options: InformerOptions,
    metrics: InformerMetrics,
    kinds: Mutex<HashMap<Gvk, Resolved>>,
    entries: Mutex<HashMap<WatchSpec, Entry>>,
    next_id: AtomicU64,
}

/// Counts over every informer of a registry, for health pages and leak checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InformersStats {
    pub informers: usize,
    pub subscriptions: usize,
    pub objects: usize,
    pub bytes: usize,
}

/// All informers of a host. Cheap to clone.
#[derive(Clone)]
pub struct Informers {
    inner: Arc<Inner>,
}

impl Informers {
    /// Metrics are registered into `registry` once, here.
    pub fn new(client: Client, registry: &mut Registry, options: InformerOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                options,
                metrics: InformerMetrics::register(registry),
                kinds: Mutex::new(HashMap::new()),
                entries: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    pub fn stats(&self) -> InformersStats {
        let entries = self.inner.entries.lock();
        let mut stats = InformersStats {
            informers: entries.len(),
            subscriptions: 0,
            objects: 0,
            bytes: 0,
        };
        for entry in entries.values() {
            stats.subscriptions += entry.subscribers;
            stats.objects += entry.informer.cache.len();
            stats.bytes += entry.informer.cache.bytes();
        }
        stats
    }

    /// Subscribes `plugin` to the watch `config`; keys go to `sink`. Validates the config,
    /// resolves the kind (and, for a secondary watch, the primary kind) by discovery, then
    /// joins the informer for an equal spec or starts one. Must run inside a tokio runtime.
    pub async fn subscribe(
        &self,
        plugin: &str,
        config: &WatchConfig,
        role: Role,
        sink: Arc<dyn KeySink>,
    ) -> Result<Subscription, SubscribeError> {
        let valid = config.validate().map_err(|errors| SubscribeError::Config {
            plugin: plugin.to_string(),
            errors,
        })?;
        let spec = valid.spec;
        let resolved = self.resolve(plugin, &spec.kind).await?;
        if !resolved.namespaced && !spec.namespaces.is_empty() {
            return Err(SubscribeError::ClusterScoped {
                plugin: plugin.to_string(),
                kind: spec.kind,
            });
        }
        let mapping_error = |message: &str| SubscribeError::Mapping {
            plugin: plugin.to_string(),
            kind: spec.kind.clone(),
            message: message.to_string(),
        };
        let mapping = match (&role, &valid.delivery.mapping) {
            (Role::Primary, None) => KeyMapping::Identity,
            (Role::Primary, Some(_)) => {
                return Err(mapping_error(
                    "mapping is for secondary watches; a primary watch enqueues its own keys",
                ));
            }
            (Role::Secondary { .. }, None) => {
                return Err(mapping_error(
                    "a secondary watch needs mapping (controllerOwner and/or label) to reach primary keys",
                ));
            }
            (Role::Secondary { primary }, Some(mapping)) => {
                let primary_scope = self.resolve(plugin, primary).await?;
                KeyMapping::to_primary(primary.clone(), primary_scope.namespaced, mapping)
            }
        };

        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let delivery = Delivery::new(plugin, &valid.delivery, mapping, sink);
        let subscriber = Arc::new(Subscriber::new(id, delivery, valid.delivery.resync));
        let informer = {
            let mut entries = self.inner.entries.lock();
            let entry = entries
                .entry(spec.clone())
                .or_insert_with(|| self.start(spec.clone(), &resolved));
            entry.subscribers += 1;
            entry.informer.clone()
        };
        // Outside the registry lock: a replay of a large cache must not hold up other plugins.
        informer.add(subscriber);
        info!(plugin, watch = %informer.spec, id = %informer.labels.watch, "subscribed");
        Ok(Subscription {
            inner: self.inner.clone(),
            informer,
            id,
            plugin: plugin.into(),
            namespaced: resolved.namespaced,
        })
    }

    async fn resolve(&self, plugin: &str, kind: &Gvk) -> Result<Resolved, SubscribeError> {
        if let Some(resolved) = self.inner.kinds.lock().get(kind) {
            return Ok(resolved.clone());
        }
        let gvk = GroupVersionKind::gvk(&kind.group, &kind.version, &kind.kind);
        let (resource, capabilities) =
            match kube::discovery::pinned_kind(&self.inner.client, &gvk).await {
                Ok(found) => found,
                Err(kube::Error::Discovery(e)) => {
                    return Err(SubscribeError::UnknownKind {
                        plugin: plugin.to_string(),
                        kind: kind.clone(),
                        message: e.to_string(),
                    });
                }
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    return Err(SubscribeError::UnknownKind {
                        plugin: plugin.to_string(),
                        kind: kind.clone(),
                        message: format!(
                            "group/version {} not found ({})",
                            kind.api_version(),
                            status.message
                        ),
                    });
                }
                Err(source) => {
                    return Err(SubscribeError::Discovery {
                        plugin: plugin.to_string(),
                        kind: kind.clone(),
                        source,
                    });
                }
            };
        let verbs = &capabilities.operations;
        // An empty verb list means the server did not say; let the watch find out.
        let has = |verb: &str| verbs.iter().any(|v| v == verb);
        if !verbs.is_empty() && (!has("list") || !has("watch")) {
            return Err(SubscribeError::NotWatchable {
                plugin: plugin.to_string(),
                kind: kind.clone(),
                verbs: verbs.join(","),
            });
        }
        let resolved = Resolved {
            resource,
            namespaced: capabilities.scope == Scope::Namespaced,
        };
        self.inner
            .kinds
            .lock()
            .insert(kind.clone(), resolved.clone());
        Ok(resolved)
    }

    /// Creates an informer and spawns its task. Called under the registry lock: no awaits.
    fn start(&self, spec: WatchSpec, resolved: &Resolved) -> Entry {
        let labels = InformerLabels::for_spec(&spec);
        let series = self.inner.metrics.series(&labels);
        let informer = Arc::new(Informer::new(spec, labels, series));
        let cancel = CancellationToken::new();
        let spec = &informer.spec;
        let transform = Transform::new(&spec.transform, spec.metadata_only, &spec.kind);
        let config = watcher::Config {
            label_selector: spec.label_selector.clone(),
            field_selector: spec.field_selector.clone(),
            timeout: self.inner.options.watch_timeout_seconds,
            page_size: Some(spec.page_size),
            initial_list_strategy: match spec.initial_list {
                InitialList::Streaming => InitialListStrategy::StreamingList,
                InitialList::Paginated => InitialListStrategy::ListWatch,
            },
            ..watcher::Config::default()
        };
        let timeout = self.inner.options.sync_timeout;
        let client = &self.inner.client;
        if spec.metadata_only {
            let scopes = scopes::<true>(client, resolved, spec, &config);
            tokio::spawn(run::<true>(
                informer.clone(),
                scopes,
                transform,
                timeout,
                cancel.clone(),
            ));
        } else {
            let scopes = scopes::<false>(client, resolved, spec, &config);
            tokio::spawn(run::<false>(
                informer.clone(),
                scopes,
                transform,
                timeout,
                cancel.clone(),
            ));
        }
        Entry {
            informer,
            cancel,
            subscribers: 0,
        }
    }
}

type Scopes<const META: bool> = Vec<(
    Option<String>,
    futures::stream::BoxStream<'static, super::watch::WatchItem<RawObject<META>>>,
)>;

/// One watch per namespace listed, or one for all namespaces.
fn scopes<const META: bool>(
    client: &Client,
    resolved: &Resolved,
    spec: &WatchSpec,
    config: &watcher::Config,
) -> Scopes<META> {
    let resource = &resolved.resource;
    if spec.namespaces.is_empty() {
        let api: Api<RawObject<META>> = Api::all_with(client.clone(), resource);
        return vec![(None, scope_stream(api, config.clone()).boxed())];
    }
    spec.namespaces
        .iter()
        .map(|ns| {
            let api: Api<RawObject<META>> = Api::namespaced_with(client.clone(), ns, resource);
            (Some(ns.clone()), scope_stream(api, config.clone()).boxed())
        })
        .collect()
}

impl Inner {
    fn unsubscribe(&self, spec: &WatchSpec, id: u64, plugin: &str) {
        let mut entries = self.entries.lock();
        let Some(entry) = entries.get_mut(spec) else {
            warn!(plugin, watch = %spec, "unsubscribe from an informer that is already gone");
            return;
        };
        entry.informer.remove(id);
        entry.subscribers -= 1;
        if entry.subscribers == 0
            && let Some(entry) = entries.remove(spec)
        {
            entry.cancel.cancel();
            self.metrics.remove(&entry.informer.labels);
            info!(watch = %spec, "last subscriber left; informer stopped");
        }
    }
}

/// One plugin's use of an informer. Dropping it unsubscribes; the last drop stops the informer.
pub struct Subscription {
    inner: Arc<Inner>,
    informer: Arc<Informer>,
    id: u64,
    plugin: Arc<str>,
    namespaced: bool,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("plugin", &self.plugin)
            .field("watch", &self.informer.spec.to_string())
            .finish()
    }
}

impl Subscription {
    /// The cache this subscription reads (shared with every plugin with an equal spec).
    pub fn cache(&self) -> &Arc<Cache> {
        &self.informer.cache
    }

    pub fn spec(&self) -> &WatchSpec {
        &self.informer.spec
    }

    /// Whether the watched kind is namespaced.
    pub fn namespaced(&self) -> bool {
        self.namespaced
    }

    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    pub fn status(&self) -> SyncStatus {
        self.informer.status.borrow().clone()
    }

    /// A receiver of status changes, for health endpoints.
    pub fn status_updates(&self) -> watch::Receiver<SyncStatus> {
        self.informer.status.subscribe()
    }

    /// Waits until the cache is complete; errors name the plugin, the watch and why.
    pub async fn wait_synced(&self) -> Result<Duration, SyncError> {
        sync::wait(self.informer.status.subscribe())
            .await
            .map_err(|reason| SyncError {
                plugin: self.plugin.to_string(),
                watch: self.informer.spec.to_string(),
                reason,
            })
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.inner
            .unsubscribe(&self.informer.spec, self.id, &self.plugin);
    }
}
