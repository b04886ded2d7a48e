//! The manager: one running host built from a config — sandbox, informers, and per plugin its
//! component, watches, queue, host calls and worker pool — with a stats snapshot and a
//! graceful shutdown.

mod stats;

pub use stats::{PluginPhase, PluginStats, Stats};
