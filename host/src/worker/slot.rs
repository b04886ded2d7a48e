//! The plugin a pool calls, swappable at runtime (hot reload, issue 7).
//!
//! A worker takes the current [`Target`] (an `Arc` clone under a read lock held for that clone
//! only) when it starts a reconcile and keeps it until the call ends. Replacing the target
//! swaps the `Arc`: calls already running finish on the old plugin (their clone keeps it
//! alive), the next reconcile of every worker takes the new one. No call is cancelled or
//! restarted by a reload, and no call ever mixes the old plugin with the new host services.

use std::sync::Arc;

use parking_lot::RwLock;

use crate::sandbox::{Plugin, PluginHost};

/// A compiled plugin and the host services its imports reach.
#[derive(Clone)]
pub struct Target {
    pub plugin: Plugin,
    pub host: Arc<dyn PluginHost>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("plugin", &self.plugin.name())
            .field("path", &self.plugin.path())
            .finish_non_exhaustive()
    }
}

/// The current target of one pool.
pub(crate) struct Slot {
    current: RwLock<Arc<Target>>,
}

impl Slot {
    pub(crate) fn new(target: Target) -> Self {
        Self {
            current: RwLock::new(Arc::new(target)),
        }
    }

    /// The target for the next call.
    pub(crate) fn current(&self) -> Arc<Target> {
        self.current.read().clone()
    }

    /// Makes `target` current; returns the one it replaced.
    pub(crate) fn replace(&self, target: Target) -> Arc<Target> {
        std::mem::replace(&mut *self.current.write(), Arc::new(target))
    }

    /// Replaces only the plugin, keeping the host services.
    pub(crate) fn replace_plugin(&self, plugin: Plugin) -> Arc<Target> {
        let mut current = self.current.write();
        let host = current.host.clone();
        std::mem::replace(&mut *current, Arc::new(Target { plugin, host }))
    }
}
