//! The guest's imports, served over the cache and the API server (issue 6): [`HostCalls`], one
//! per plugin, implements the sandbox's [`PluginHost`] and is shared by the plugin's workers.
//!
//! Why it is shaped this way:
//! - **Reads never leave the process** (`reads`): a plugin sees what its watches observed,
//!   through its read grants, and a guest looping on `list` costs the host memory copies, not
//!   API requests.
//! - **Writes are checked before they cost anything** (`writes`): a denied write sends no
//!   request at all (DESIGN invariant 5), and a malformed one is refused with the field named.
//! - **No-op writes are elided** (`elision`): a converged cluster costs no write requests,
//!   and the rule is careful about server-side apply's removals (see that module).
//! - **Every request is bounded** (`api`, `kinds`, `events`): a per-request timeout, and
//!   futures that can be dropped at the call's deadline without leaving state half-updated.
//! - **Budgets are not enforced here**: the sandbox's meter admits every call before it
//!   reaches this module (DESIGN invariant 4); `max_bytes` is honoured so an over-budget list
//!   is not built at all.
//!
//! Module map: `caches` (kind -> cache, per plugin), `reads`, `target` (parsing written
//! objects), `kinds` (discovery), `api` (the requests), `errors` (server errors -> WIT codes),
//! `elision`, `writes`, `events`, `denial` (forbidden answers and their warnings), `metrics`.
//! See docs/hostcalls.md.

mod api;
mod caches;
mod denial;
mod elision;
mod errors;
mod events;
mod io;
mod kinds;
mod metrics;
mod own_writes;
mod reads;
mod target;
mod writes;

use std::sync::Arc;
use std::time::Duration;

use kube::Client;

use crate::cache::{self, ObjectKey as CacheKey};
use crate::permissions::Permissions;
use crate::sandbox::{EventType, Gvk, HostError, LogRecord, ObjectKey, PluginHost, async_trait};

pub use caches::{CachesError, KindCache, ReadableCaches};
pub use elision::MAX_INTENTS;
pub use events::reporting_controller;
pub use io::HostIo;
pub use kinds::{Kinds, Resolved};
pub use metrics::HostCallMetrics;
pub use own_writes::OwnWrites;

use events::EventReporter;
use metrics::{Call, CallResult, EventResult, PluginMetrics, WriteResult, WriteVerb};
use reads::Reader;
use writes::{WriteReport, Writer};

/// Default bound on each API request a host call makes (writes, discovery, events). A guest's
/// deadline (5 s by default) usually cuts a slow request first; this bounds it when the
/// deadline is longer.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Who a plugin is, for its host calls.
#[derive(Debug, Clone)]
pub struct HostCallsConfig {
    /// The plugin's name (metrics label, log field, Events' `trellis.dev/<plugin>`).
    pub plugin: String,
    /// The field manager of every write (config default: `trellis-<plugin>`).
    pub field_manager: String,
    pub permissions: Permissions,
    /// The host's identity, the `reportingInstance` of Events (pod name or hostname).
    pub host_identity: String,
    /// Bound on each API request.
    pub request_timeout: Duration,
    /// Told of the plugin's writes to cached objects, so that their echoes are not taken for
    /// news (the manager gives the plugin's queue sink: `worker/echoes.rs`). `None`: not told.
    pub own_writes: Option<Arc<dyn OwnWrites>>,
}

impl HostCallsConfig {
    /// The defaults: field manager `trellis-<plugin>`, [`DEFAULT_REQUEST_TIMEOUT`].
    pub fn new(plugin: &str, permissions: Permissions, host_identity: &str) -> Self {
        Self {
            plugin: plugin.to_string(),
            field_manager: format!("trellis-{plugin}"),
            permissions,
            host_identity: host_identity.to_string(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            own_writes: None,
        }
    }
}

/// One plugin's host calls. Share it (`Arc`) between the plugin's workers.
pub struct HostCalls {
    plugin: Arc<str>,
    permissions: Arc<Permissions>,
    caches: Arc<ReadableCaches>,
    reader: Reader,
    writer: Writer,
    events: EventReporter,
    metrics: PluginMetrics,
}

impl std::fmt::Debug for HostCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostCalls")
            .field("plugin", &self.plugin)
            .field("field_manager", &self.writer.field_manager())
            .finish()
    }
}

impl HostCalls {
    /// `caches`: what the plugin's watches cache (reads answer from these only); `client`:
    /// the API client for writes and Events; `kinds`: discovery, shareable between plugins;
    /// `metrics`: the families registered once per host; `io`: where its API requests run,
    /// never on the guest's threads (`io.rs`).
    pub fn new(
        config: HostCallsConfig,
        caches: ReadableCaches,
        client: Client,
        kinds: Kinds,
        metrics: &HostCallMetrics,
        io: HostIo,
    ) -> Self {
        let plugin: Arc<str> = config.plugin.as_str().into();
        let permissions = Arc::new(config.permissions);
        let caches = Arc::new(caches);
        let api = api::ApiWriter::new(
            client.clone(),
            config.field_manager,
            config.request_timeout,
            io.clone(),
        );
        Self {
            reader: Reader::new(plugin.clone(), permissions.clone(), caches.clone()),
            writer: Writer::new(
                plugin.clone(),
                permissions.clone(),
                caches.clone(),
                api,
                kinds,
                config.own_writes,
            ),
            events: EventReporter::new(
                client,
                &plugin,
                &config.host_identity,
                config.request_timeout,
                io,
            ),
            metrics: metrics.plugin(&plugin),
            plugin,
            permissions,
            caches,
        }
    }

    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    pub fn field_manager(&self) -> &str {
        self.writer.field_manager()
    }

    /// The `reportingController` of this plugin's Events.
    pub fn reporting_controller(&self) -> &str {
        self.events.controller()
    }

    /// Counts a call and, when it succeeded, the bytes it handed back.
    fn count<T>(&self, call: Call, answer: &Result<T, HostError>, bytes: impl FnOnce(&T) -> u64) {
        self.metrics.call(call, CallResult::of(answer));
        if let Ok(value) = answer {
            self.metrics.bytes(call, bytes(value));
        }
    }

    fn count_write<T>(
        &self,
        call: Call,
        verb: WriteVerb,
        report: WriteReport<T>,
        bytes: impl FnOnce(&T) -> u64,
    ) -> Result<T, HostError> {
        self.metrics.write(verb, report.result);
        if report.result == WriteResult::Elided {
            tracing::debug!(plugin = &*self.plugin, call = call.as_str(), "write elided");
        }
        self.count(call, &report.answer, bytes);
        report.answer
    }
}

fn cache_gvk(kind: &Gvk) -> cache::Gvk {
    cache::Gvk::new(&kind.group, &kind.version, &kind.kind)
}

/// The WIT key as the cache's; an empty namespace is no namespace.
fn cache_key(key: &ObjectKey) -> CacheKey {
    CacheKey::new(
        key.namespace.as_deref().filter(|ns| !ns.is_empty()),
        &key.name,
    )
}

fn list_bytes(items: &[String]) -> u64 {
    items.iter().map(|s| s.len() as u64).sum()
}

#[async_trait]
impl PluginHost for HostCalls {
    async fn get(&self, kind: &Gvk, key: &ObjectKey) -> Result<Option<String>, HostError> {
        let answer = self.reader.get(&cache_gvk(kind), &cache_key(key));
        self.count(Call::Get, &answer, |o| {
            o.as_ref().map_or(0, |s| s.len() as u64)
        });
        answer
    }

    async fn list(
        &self,
        kind: &Gvk,
        namespace: Option<&str>,
        label_selector: Option<&str>,
        max_bytes: u64,
    ) -> Result<Vec<String>, HostError> {
        let namespace = namespace.filter(|ns| !ns.is_empty());
        let answer = self
            .reader
            .list(&cache_gvk(kind), namespace, label_selector, max_bytes);
        self.count(Call::List, &answer, |items| list_bytes(items));
        answer
    }

    async fn lookup(
        &self,
        kind: &Gvk,
        index: &str,
        value: &str,
        max_bytes: u64,
    ) -> Result<Vec<String>, HostError> {
        let answer = self
            .reader
            .lookup(&cache_gvk(kind), index, value, max_bytes);
        self.count(Call::Lookup, &answer, |items| list_bytes(items));
        answer
    }

    async fn apply(&self, object: &str, force: bool) -> Result<String, HostError> {
        let report = self.writer.apply(object, force).await;
        self.count_write(Call::Apply, WriteVerb::Apply, report, |s| s.len() as u64)
    }

    async fn patch_status(
        &self,
        kind: &Gvk,
        key: &ObjectKey,
        merge_patch: &str,
    ) -> Result<String, HostError> {
        let report = self
            .writer
            .patch_status(&cache_gvk(kind), &cache_key(key), merge_patch)
            .await;
        self.count_write(Call::PatchStatus, WriteVerb::PatchStatus, report, |s| {
            s.len() as u64
        })
    }

    async fn create(&self, object: &str) -> Result<String, HostError> {
        let report = self.writer.create(object).await;
        self.count_write(Call::Create, WriteVerb::Create, report, |s| s.len() as u64)
    }

    async fn delete(&self, kind: &Gvk, key: &ObjectKey) -> Result<(), HostError> {
        let report = self.writer.delete(&cache_gvk(kind), &cache_key(key)).await;
        self.count_write(Call::Delete, WriteVerb::Delete, report, |_| 0)
    }

    async fn emit_event(
        &self,
        regarding_kind: &Gvk,
        regarding: &ObjectKey,
        event_type: EventType,
        reason: &str,
        note: &str,
    ) -> Result<(), HostError> {
        let kind = cache_gvk(regarding_kind);
        let key = cache_key(regarding);
        let answer = self.emit(&kind, &key, event_type, reason, note).await;
        self.count(Call::Event, &answer, |_| 0);
        answer
    }

    fn log(&self, record: &LogRecord<'_>) {
        self.metrics.log(record.level);
    }
}

impl HostCalls {
    async fn emit(
        &self,
        kind: &cache::Gvk,
        key: &CacheKey,
        event_type: EventType,
        reason: &str,
        note: &str,
    ) -> Result<(), HostError> {
        if !self.permissions.may_emit_event(kind, key.namespace()) {
            self.metrics.event(EventResult::Denied);
            let why = if self.permissions.events {
                "Events may only be about objects the plugin may read"
            } else {
                "Events are turned off for this plugin (permissions.events: false)"
            };
            return Err(denial::denied(
                &self.plugin,
                Call::Event,
                kind,
                key.namespace(),
                why,
            ));
        }
        EventReporter::check_reason(reason)?;
        // The uid lets `kubectl describe` and UIs tie the Event to this incarnation of the
        // object; the cache has it when the plugin watches the kind.
        let uid = self
            .caches
            .get(kind)
            .and_then(|c| c.cache.get(key))
            .and_then(|o| o.meta().uid.as_deref().map(str::to_string));
        match self
            .events
            .emit(kind, key, uid, event_type, reason, note)
            .await
        {
            Ok(()) => self.metrics.event(EventResult::Emitted),
            Err(failure) => {
                self.metrics.event(EventResult::Failed);
                tracing::warn!(
                    plugin = &*self.plugin,
                    kind = %kind,
                    key = %key,
                    reason,
                    "event not recorded: {failure}"
                );
            }
        }
        Ok(())
    }
}
