//! Namespace defaults plugin.
