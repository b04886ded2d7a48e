//! Write Trellis reconciler plugins: one trait, one export macro.
//!
//! A Trellis plugin is a WebAssembly component the host calls once per dequeued key, each time
//! in a fresh instance under a budget (fuel, deadline, memory, host calls). The host does the
//! watching, caching, queueing and rate limiting; the plugin only decides what the cluster
//! should look like. This crate is everything a plugin author touches:
//!
//! - [`Reconciler`] and [`export_plugin!`]: the plugin itself. Plain
//!   `cargo build --target wasm32-wasip2` of a `cdylib` crate produces the component; no
//!   cargo-component, no wasm-tools, and no generated names in plugin code.
//! - Reads from the host's cache: [`get`], [`list`], [`lookup`] (typed through k8s-openapi with
//!   the default `k8s` feature, re-exported as [`k8s_openapi`]) and their `*_as` variants for
//!   CRDs and raw `serde_json::Value`.
//! - Writes through the host: [`apply`] (server-side apply, forced by default — its docs say
//!   why), [`apply_if_changed`] (the idempotent form),
//!   [`patch_status`], [`create`], [`delete`]; [`event`]; log macros [`info!`] and friends.
//! - [`raw`]: the same imports at the JSON-text level.
//! - [`testing`] (native target only): the same API backed by a fake cache seeded from YAML and
//!   a recorder of writes, events and logs, so plugins are unit-tested with `cargo test`.
//!
// The example needs k8s-openapi types, so it is part of the docs (and doc-tested) only with the
// `k8s` feature.
#![cfg_attr(feature = "k8s", doc = include_str!("example.md"))]
//!
//! # Building
//!
//! A plugin crate has `crate-type = ["cdylib", "rlib"]` (the `rlib` lets its own tests and
//! other crates link it). `cargo build --target wasm32-wasip2 --profile guest` (opt-level "s",
//! LTO, strip, panic=abort; see the workspace Cargo.toml) produces
//! `target/wasm32-wasip2/guest/<crate>.wasm`, a component ready for the host. A panic in a
//! guest aborts the call, which the host reports as a trap: return an [`Error`] instead.

mod backend;
mod cache;
mod error;
mod events;
#[cfg(target_arch = "wasm32")]
mod export;
pub mod json;
mod kind;
mod log;
pub mod raw;
mod types;
mod writes;

#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use cache::{get, get_as, index, list, list_as, lookup, lookup_as};
pub use error::{Error, ErrorCode, ErrorKind};
pub use events::{event, try_event};
pub use kind::Kind;
pub use types::{Action, EventType, Gvk, Level, ObjectKey, ObjectRef, Request};
pub use writes::{
    Applied, apply, apply_if_changed, apply_with, create, delete, patch_status, patch_status_as,
};

#[cfg(feature = "k8s")]
pub use k8s_openapi;
pub use serde_json;

/// A reconciler: what the plugin does with one key.
///
/// `reconcile` is an associated function, not a method, because there is no plugin state to
/// hold: the host runs every call in a fresh instance (keep state in the cluster). It returns
/// what to do with the key next; an `Err` is retried with backoff when
/// [`Error::is_retryable`], recorded and dropped until the next change otherwise.
pub trait Reconciler {
    fn reconcile(request: Request) -> Result<Action, Error>;
}

/// Exports a [`Reconciler`] as the component's `reconcile`.
///
/// Use it once, in the plugin crate's root: `trellis_guest::export_plugin!(MyPlugin);`. On
/// wasm32 it generates the component export; on the native target it expands to nothing, and
/// tests call the reconciler through [`testing::Harness`].
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct TrellisPluginExport;

            impl $crate::__bindings::Guest for TrellisPluginExport {
                fn reconcile(
                    request: $crate::__bindings::ReconcileRequest,
                ) -> $crate::__bindings::Action {
                    $crate::__private::reconcile::<$plugin>(request)
                }
            }

            $crate::__bindings::__export_plugin!(
                TrellisPluginExport with_types_in $crate::__bindings
            );
        };
    };
}

/// The generated bindings. Not part of the API: plugin code never names them.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
#[allow(clippy::all)] // generated code (e.g. the 14-argument canonical-ABI export shim)
pub mod __bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin",
        default_bindings_module: "trellis_guest::__bindings",
    });
}

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __private {
    pub use crate::export::reconcile;
}
