//! The Trellis side: the real host (its manager, built from a config file like `trellis run`
//! reads) running the status-bench component from `trellis-plugin-bundle`.
//!
//! Waiting for `manager::Manager` (issue 6, the "cli" engineer) to land in main.

use std::path::Path;

use trellis_devcluster::DevCluster;

/// A running Trellis host.
pub struct Trellis {
    _private: (),
}

impl Trellis {
    pub async fn start(
        _cluster: &DevCluster,
        _namespace: &str,
        _workers: u16,
        _dir: &Path,
    ) -> Result<Self, String> {
        Err("the host's manager (issue 6) is not merged yet".to_string())
    }

    pub fn reconciles(&self) -> Option<u64> {
        None
    }

    pub fn errors(&self) -> Option<u64> {
        None
    }

    pub async fn stop(self) {}
}
