//! Where the imports go: to the host on wasm32, to the test harness on the native target.
//!
//! Both backends expose the same free functions with the same signatures, chosen by `cfg`, so
//! everything above this module (the typed API, the log macros, `apply_if_changed`) exists
//! once and behaves the same in a component and in `cargo test`. A backend reports failures
//! as a bare [`HostError`]; [`crate::raw`] adds which operation on which object failed.

use crate::ErrorCode;

/// A failure as an import reports it: the WIT `host-error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostError {
    pub code: ErrorCode,
    pub message: String,
}

impl HostError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        HostError {
            code,
            message: message.into(),
        }
    }
}

pub(crate) type HostResult<T> = Result<T, HostError>;

#[cfg(target_arch = "wasm32")]
mod wasm;
#[cfg(target_arch = "wasm32")]
pub(crate) use wasm::*;

#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(not(target_arch = "wasm32"))]
pub(crate) use native::*;
