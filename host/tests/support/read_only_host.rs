//! A `PluginHost` for tests and benchmarks whose plugins only read. The test or benchmark says
//! how `get` is answered ([`Reads`]); [`ReadOnly`] answers `list` and `lookup` as the stand-in
//! chooses ([`Lists`]) and refuses every write and event with `Forbidden`, so a plugin that
//! writes fails loudly instead of writing into a stand-in.
//!
//! One refusing half for every such host keeps the stand-ins honest: a method added to
//! `PluginHost` is refused here once, not forgotten in one copy of it.

#![allow(dead_code)] // each test binary uses a different part of it

use std::ops::Deref;

use trellis_host::sandbox::{
    ErrorCode, EventType, Gvk, HostError, ObjectKey, PluginHost, async_trait,
};

/// What every host call answers.
type Reply<T> = Result<T, HostError>;

/// How a stand-in answers `list` and `lookup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lists {
    /// Refused like a write: the plugins under test never list.
    Refused,
    /// Empty: the stand-in has nothing to list, and the plugin may ask.
    Empty,
}

/// How a read-only host answers reads.
#[async_trait]
pub trait Reads: Send + Sync + 'static {
    /// What a refusal says: which stand-in refused.
    const REFUSAL: &'static str;
    const LISTS: Lists = Lists::Refused;

    async fn get(&self, kind: &Gvk, key: &ObjectKey) -> Reply<Option<String>>;
}

/// The `PluginHost` over `R`'s reads; derefs to `R` for the test's own hooks.
pub struct ReadOnly<R>(pub R);

impl<R> Deref for ReadOnly<R> {
    type Target = R;

    fn deref(&self) -> &R {
        &self.0
    }
}

impl<R: Reads> ReadOnly<R> {
    fn refused<T>() -> Reply<T> {
        Err(HostError::new(ErrorCode::Forbidden, R::REFUSAL))
    }

    fn listed() -> Reply<Vec<String>> {
        match R::LISTS {
            Lists::Refused => Self::refused(),
            Lists::Empty => Ok(Vec::new()),
        }
    }
}

#[async_trait]
impl<R: Reads> PluginHost for ReadOnly<R> {
    async fn get(&self, kind: &Gvk, key: &ObjectKey) -> Reply<Option<String>> {
        self.0.get(kind, key).await
    }

    async fn list(&self, _: &Gvk, _: Option<&str>, _: Option<&str>, _: u64) -> Reply<Vec<String>> {
        Self::listed()
    }

    async fn lookup(&self, _: &Gvk, _: &str, _: &str, _: u64) -> Reply<Vec<String>> {
        Self::listed()
    }

    async fn apply(&self, _: &str, _: bool) -> Reply<String> {
        Self::refused()
    }

    async fn patch_status(&self, _: &Gvk, _: &ObjectKey, _: &str) -> Reply<String> {
        Self::refused()
    }

    async fn create(&self, _: &str) -> Reply<String> {
        Self::refused()
    }

    async fn delete(&self, _: &Gvk, _: &ObjectKey) -> Reply<()> {
        Self::refused()
    }

    async fn emit_event(
        &self,
        _: &Gvk,
        _: &ObjectKey,
        _: EventType,
        _: &str,
        _: &str,
    ) -> Reply<()> {
        Self::refused()
    }
}
