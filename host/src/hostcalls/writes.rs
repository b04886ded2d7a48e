//! Writes (`apply`, `patch-status`, `create`, `delete`): checked, elided when the cache
//! already shows their result, then sent with the plugin's field manager.
//!
//! Every write goes through the same steps, in this order, and stops at the first that fails:
//!
//! | step | fails with | write counted as |
//! |---|---|---|
//! | parse the object or patch | `invalid`, naming the field | invalid |
//! | the plugin has a write grant for this kind and verb | `forbidden` (+ `warn!`) | denied |
//! | discovery knows the kind (once per kind) | `invalid` (not served) / `unavailable` | invalid / failed |
//! | the namespace fits the kind's scope | `invalid`, naming the field | invalid |
//! | the grant covers the namespace | `forbidden` (+ `warn!`) | denied |
//! | apply, patch-status: the cache already shows the result | — answers the cached object | elided |
//! | the request | the server's answer, mapped (see `errors`) | issued / failed |
//!
//! A denied write never reaches the API server — not even discovery: the kind-level grant is
//! checked before anything is resolved. See `elision` for when a write is skipped and why
//! that is safe.

use std::sync::Arc;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::cache::{Gvk, Metadata, ObjectKey, ObjectRef};
use crate::permissions::{Permissions, Verb};
use crate::sandbox::{ErrorCode, HostError};

use super::api::ApiWriter;
use super::caches::ReadableCaches;
use super::denial::{denied, invalid};
use super::elision::{IntentDigest, Intents, contained, merge_is_noop};
use super::kinds::{Kinds, Resolved};
use super::metrics::{Call, WriteResult};
use super::own_writes::{InFlight, OwnWrites};
use super::target::{Naming, WriteObject, check_scope, parse_object};

/// What a write did, for the guest and for the metrics.
pub(crate) struct WriteReport<T> {
    pub answer: Result<T, HostError>,
    pub result: WriteResult,
}

impl<T> WriteReport<T> {
    fn issued(value: T) -> Self {
        Self {
            answer: Ok(value),
            result: WriteResult::Issued,
        }
    }

    fn elided(value: T) -> Self {
        Self {
            answer: Ok(value),
            result: WriteResult::Elided,
        }
    }

    fn failed(error: HostError) -> Self {
        Self {
            answer: Err(error),
            result: WriteResult::Failed,
        }
    }
}

/// A write stopped before it was sent.
struct Stopped {
    error: HostError,
    result: WriteResult,
}

impl Stopped {
    fn invalid(error: HostError) -> Self {
        Self {
            error,
            result: WriteResult::Invalid,
        }
    }

    /// Discovery errors: `invalid` for a kind not served, `unavailable` for a failed request.
    fn resolving(error: HostError) -> Self {
        let result = if error.code == ErrorCode::Invalid {
            WriteResult::Invalid
        } else {
            WriteResult::Failed
        };
        Self { error, result }
    }

    fn denied(error: HostError) -> Self {
        Self {
            error,
            result: WriteResult::Denied,
        }
    }
}

impl<T> From<Stopped> for WriteReport<T> {
    fn from(stopped: Stopped) -> Self {
        Self {
            answer: Err(stopped.error),
            result: stopped.result,
        }
    }
}

/// Unwraps a step's result, or returns its report.
macro_rules! step {
    ($e:expr) => {
        match $e {
            Ok(value) => value,
            Err(stopped) => return WriteReport::from(stopped),
        }
    };
}

/// One plugin's writes.
pub(crate) struct Writer {
    plugin: Arc<str>,
    permissions: Arc<Permissions>,
    caches: Arc<ReadableCaches>,
    api: ApiWriter,
    kinds: Kinds,
    intents: Intents,
    /// Told of writes to cached objects, so their echoes enter the queue at low priority.
    own_writes: Option<Arc<dyn OwnWrites>>,
}

fn call_of(verb: Verb) -> Call {
    match verb {
        Verb::Apply => Call::Apply,
        Verb::Create => Call::Create,
        Verb::Delete => Call::Delete,
        Verb::PatchStatus => Call::PatchStatus,
    }
}

/// `namespace/name` or `name`, for messages.
fn describe(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

impl Writer {
    pub(crate) fn new(
        plugin: Arc<str>,
        permissions: Arc<Permissions>,
        caches: Arc<ReadableCaches>,
        api: ApiWriter,
        kinds: Kinds,
        own_writes: Option<Arc<dyn OwnWrites>>,
    ) -> Self {
        Self {
            plugin,
            permissions,
            caches,
            api,
            kinds,
            intents: Intents::new(),
            own_writes,
        }
    }

    /// Reports a write to `key` as sent, when the object is cached: only a cached object's
    /// write has an echo to come on the plugin's watch (or a delete that forgets it).
    fn in_flight<'a>(
        &'a self,
        kind: &'a Gvk,
        key: &'a ObjectKey,
        cached: Option<&'a ObjectRef>,
    ) -> Option<InFlight<'a>> {
        let before = &cached?.meta().resource_version;
        InFlight::start(self.own_writes.as_ref(), kind, key, before)
    }

    pub(crate) fn field_manager(&self) -> &str {
        self.api.field_manager()
    }

    /// Steps 2 to 5 of the table: grant, discovery, scope, namespace grant.
    async fn admit(
        &self,
        verb: Verb,
        kind: &Gvk,
        namespace: Option<&str>,
        what: &str,
        field: &str,
    ) -> Result<Resolved, Stopped> {
        let call = call_of(verb);
        let kind_granted = self
            .permissions
            .write
            .iter()
            .any(|grant| grant.gvk() == *kind && grant.verbs.contains(&verb));
        if !kind_granted {
            return Err(Stopped::denied(denied(
                &self.plugin,
                call,
                kind,
                namespace,
                &format!("the kind is not granted for {verb}"),
            )));
        }
        let resolved = self.kinds.resolve(kind).await.map_err(Stopped::resolving)?;
        check_scope(call, kind, what, namespace, resolved.namespaced, field)
            .map_err(Stopped::invalid)?;
        if !self.permissions.may_write(verb, kind, namespace) {
            return Err(Stopped::denied(denied(
                &self.plugin,
                call,
                kind,
                namespace,
                &format!("the namespace is not granted for {verb}"),
            )));
        }
        Ok(resolved)
    }

    /// The cached object of this kind and key, if the plugin caches the kind.
    fn cached(&self, kind: &Gvk, key: &ObjectKey) -> Option<ObjectRef> {
        self.caches.get(kind)?.cache.get(key)
    }

    /// `writes.apply`.
    pub(crate) async fn apply(&self, text: &str, force: bool) -> WriteReport<String> {
        let object = step!(parse_object(Call::Apply, text, Naming::Name).map_err(Stopped::invalid));
        let WriteObject {
            ref kind,
            ref namespace,
            ..
        } = object;
        let namespace = namespace.as_deref();
        let Some(key) = object.key() else {
            // `Naming::Name` already demanded a name; kept as an answer, not a panic.
            return Stopped::invalid(invalid("apply: metadata.name is missing")).into();
        };
        let what = format!("apply {kind} {}", object.describe());
        let resolved = step!(
            self.admit(Verb::Apply, kind, namespace, &what, "metadata.namespace")
                .await
        );
        let digest = IntentDigest::of(&object.value);
        let cached = self.cached(kind, &key);
        if let Some(elided) =
            self.elidable_apply(kind, &key, cached.as_ref(), &object.value, digest)
        {
            return WriteReport::elided(elided);
        }
        let raw = step!(raw(Call::Apply, text));
        self.intents.forget(kind, &key);
        let flight = self.in_flight(kind, &key, cached.as_ref());
        let answer = self
            .api
            .apply(&what, &resolved, namespace, key.name(), raw, force)
            .await;
        let meta = answered_meta(&answer);
        if let Some(flight) = flight {
            flight.answered(meta.as_ref());
        }
        match answer {
            Ok(answer) => {
                match meta.and_then(|meta| meta.uid) {
                    Some(uid) => self.intents.record(kind, &key, digest, &uid),
                    None => {
                        tracing::debug!(plugin = &*self.plugin, %what, "apply answer has no uid")
                    }
                }
                WriteReport::issued(answer)
            }
            Err(error) => WriteReport::failed(error),
        }
    }

    /// The cached object's JSON when this apply would change nothing (see `elision`).
    fn elidable_apply(
        &self,
        kind: &Gvk,
        key: &ObjectKey,
        cached: Option<&ObjectRef>,
        applied: &Value,
        digest: IntentDigest,
    ) -> Option<String> {
        let cached = cached?;
        let uid = cached.meta().uid.as_deref()?;
        // The cheap check first: most applies that are not no-ops fail here without parsing.
        if !self.intents.matches(kind, key, digest, uid) {
            return None;
        }
        let current: Value = serde_json::from_str(cached.json().as_str()).ok()?;
        contained(applied, &current).then(|| cached.json().as_str().to_string())
    }

    /// `writes.patch-status`.
    pub(crate) async fn patch_status(
        &self,
        kind: &Gvk,
        key: &ObjectKey,
        merge_patch: &str,
    ) -> WriteReport<String> {
        let what = format!("patch-status {kind} {key}");
        let patch: Value = step!(serde_json::from_str(merge_patch).map_err(|e| {
            Stopped::invalid(invalid(format!(
                "{what}: the merge patch is not valid JSON: {e}"
            )))
        }));
        if !patch.is_object() {
            return Stopped::invalid(invalid(format!(
                "{what}: the merge patch must be a JSON object"
            )))
            .into();
        }
        let namespace = key.namespace();
        let resolved = step!(
            self.admit(Verb::PatchStatus, kind, namespace, &what, "key.namespace")
                .await
        );
        if !resolved.has_status {
            return Stopped::invalid(invalid(format!(
                "{what}: the kind has no status subresource"
            )))
            .into();
        }
        let cached = self.cached(kind, key);
        if let Some(cached) = &cached
            && merge_is_noop(cached.json().as_str(), &patch)
        {
            return WriteReport::elided(cached.json().as_str().to_string());
        }
        let raw = step!(raw(Call::PatchStatus, merge_patch));
        // Status writes cannot change what an apply owns, but forgetting costs at most one
        // sent apply and keeps the rule simple: any write sent to an object forgets its intent.
        self.intents.forget(kind, key);
        let flight = self.in_flight(kind, key, cached.as_ref());
        let answer = self
            .api
            .patch_status(&what, &resolved, namespace, key.name(), raw)
            .await;
        if let Some(flight) = flight {
            flight.answered(answered_meta(&answer).as_ref());
        }
        match answer {
            Ok(answer) => WriteReport::issued(answer),
            Err(error) => WriteReport::failed(error),
        }
    }

    /// `writes.create`. Never elided.
    pub(crate) async fn create(&self, text: &str) -> WriteReport<String> {
        let object = step!(
            parse_object(Call::Create, text, Naming::NameOrGenerate).map_err(Stopped::invalid)
        );
        let kind = &object.kind;
        let namespace = object.namespace.as_deref();
        let what = format!("create {kind} {}", object.describe());
        let resolved = step!(
            self.admit(Verb::Create, kind, namespace, &what, "metadata.namespace")
                .await
        );
        if let Some(key) = object.key() {
            self.intents.forget(kind, &key);
        }
        match self.api.create(&what, &resolved, namespace, text).await {
            Ok(answer) => WriteReport::issued(answer),
            Err(error) => WriteReport::failed(error),
        }
    }

    /// `writes.delete`. Never elided.
    pub(crate) async fn delete(&self, kind: &Gvk, key: &ObjectKey) -> WriteReport<()> {
        let namespace = key.namespace();
        let what = format!("delete {kind} {}", describe(namespace, key.name()));
        let resolved = step!(
            self.admit(Verb::Delete, kind, namespace, &what, "key.namespace")
                .await
        );
        self.intents.forget(kind, key);
        match self
            .api
            .delete(&what, &resolved, namespace, key.name())
            .await
        {
            Ok(()) => WriteReport::issued(()),
            Err(error) => WriteReport::failed(error),
        }
    }
}

/// The metadata of a write's answer (the object written); `None` for a failed write, or an
/// answer that is not an object with a name and a resourceVersion.
fn answered_meta(answer: &Result<String, HostError>) -> Option<Metadata> {
    Metadata::parse(answer.as_ref().ok()?).ok()
}

/// The text as a JSON value borrowed for sending (already parsed once, so this cannot fail
/// for valid input; mapped anyway rather than unwrapped).
fn raw(call: Call, text: &str) -> Result<&RawValue, Stopped> {
    serde_json::from_str(text)
        .map_err(|e| Stopped::invalid(invalid(format!("{}: not valid JSON: {e}", call.as_str()))))
}
