//! A devcluster seeded like `trellis dev` seeds it.

use std::path::Path;

use trellis_devcluster::{DevCluster, DevClusterOptions, WriteRecord};
use trellis_host::ops::dev;

/// A running devcluster, its client, and the directory its fixtures came from.
pub struct Cluster {
    pub server: DevCluster,
    pub client: kube::Client,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// A devcluster seeded with `trellis dev`'s built-in fixtures (objects and statuses).
    pub async fn with_dev_fixtures() -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let fixtures = dev::write_default_fixtures(&dir.path().join("fixtures"))
            .expect("writing the built-in fixtures");
        Self::seeded(dir, &fixtures).await
    }

    /// A devcluster seeded with `yaml` (may be empty).
    pub async fn with_fixtures(yaml: &str) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("fixtures.yaml");
        std::fs::write(&file, yaml).expect("writing fixtures");
        Self::seeded(dir, &file).await
    }

    async fn seeded(dir: tempfile::TempDir, fixtures: &Path) -> Cluster {
        let server = DevCluster::start(DevClusterOptions::default())
            .await
            .expect("starting the devcluster");
        let client = server.client().expect("devcluster client");
        dev::seed_fixtures(&server, &client, fixtures)
            .await
            .expect("seeding fixtures");
        Cluster {
            server,
            client,
            dir,
        }
    }

    /// Successful writes by `manager` (a plugin's field manager is `trellis-<plugin>`).
    pub fn writes_by(&self, manager: &str) -> Vec<WriteRecord> {
        self.server
            .writes()
            .into_iter()
            .filter(|w| w.manager == manager)
            .collect()
    }
}
