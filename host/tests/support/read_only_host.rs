//! A `PluginHost` for tests and benchmarks whose plugins only read. The test or benchmark says
//! how reads are answered ([`Reads`]); [`ReadOnly`] refuses every write and event with
//! `Forbidden`, so a plugin that writes fails loudly instead of writing into a stand-in.
//!
//! One refusing half for every such host keeps the stand-ins honest: a method added to
//! `PluginHost` is refused here once, not forgotten in one copy of it.

#![allow(dead_code)] // each test binary uses a different part of it

use std::ops::Deref;

use trellis_host::sandbox::{
    ErrorCode, EventType, Gvk, HostError, ObjectKey, PluginHost, async_trait,
};

/// How a read-only host answers reads. `list` and `lookup` are refused unless overridden.
#[async_trait]
pub trait Reads: Send + Sync + 'static {
    /// What a refusal says: which stand-in refused.
    const REFUSAL: &'static str;

    async fn get(&self, kind: &Gvk, key: &ObjectKey) -> Result<Option<String>, HostError>;

    async fn list(
        &self,
        _kind: &Gvk,
        _namespace: Option<&str>,
        _label_selector: Option<&str>,
        _max_bytes: u64,
    ) -> Result<Vec<String>, HostError> {
        Err(refused::<Self>())
    }

    async fn lookup(
        &self,
        _kind: &Gvk,
        _index: &str,
        _value: &str,
        _max_bytes: u64,
    ) -> Result<Vec<String>, HostError> {
        Err(refused::<Self>())
    }
}

fn refused<R: Reads + ?Sized>() -> HostError {
    HostError::new(ErrorCode::Forbidden, R::REFUSAL)
}

/// The `PluginHost` over `R`'s reads; derefs to `R` for the test's own hooks.
pub struct ReadOnly<R>(pub R);

impl<R> Deref for ReadOnly<R> {
    type Target = R;

    fn deref(&self) -> &R {
        &self.0
    }
}

#[async_trait]
impl<R: Reads> PluginHost for ReadOnly<R> {
    async fn get(&self, kind: &Gvk, key: &ObjectKey) -> Result<Option<String>, HostError> {
        self.0.get(kind, key).await
    }

    async fn list(
        &self,
        kind: &Gvk,
        namespace: Option<&str>,
        label_selector: Option<&str>,
        max_bytes: u64,
    ) -> Result<Vec<String>, HostError> {
        self.0
            .list(kind, namespace, label_selector, max_bytes)
            .await
    }

    async fn lookup(
        &self,
        kind: &Gvk,
        index: &str,
        value: &str,
        max_bytes: u64,
    ) -> Result<Vec<String>, HostError> {
        self.0.lookup(kind, index, value, max_bytes).await
    }

    async fn apply(&self, _: &str, _: bool) -> Result<String, HostError> {
        Err(refused::<R>())
    }

    async fn patch_status(&self, _: &Gvk, _: &ObjectKey, _: &str) -> Result<String, HostError> {
        Err(refused::<R>())
    }

    async fn create(&self, _: &str) -> Result<String, HostError> {
        Err(refused::<R>())
    }

    async fn delete(&self, _: &Gvk, _: &ObjectKey) -> Result<(), HostError> {
        Err(refused::<R>())
    }

    async fn emit_event(
        &self,
        _: &Gvk,
        _: &ObjectKey,
        _: EventType,
        _: &str,
        _: &str,
    ) -> Result<(), HostError> {
        Err(refused::<R>())
    }
}
