//! The Trellis reconciler host.
//!
//! Each module owns one part of the data flow in DESIGN.md:
//! `informer` -> `cache` -> `queue` -> `worker` -> `sandbox`, with `hostcalls` serving the
//! guest's imports and `ops` running the process (config, CLI, metrics, health, leadership).

pub mod cache;
pub mod hostcalls;
pub mod informer;
pub mod manager;
pub mod ops;
pub mod permissions;
pub mod queue;
pub mod sandbox;
pub mod worker;
