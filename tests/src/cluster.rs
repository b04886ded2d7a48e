//! A devcluster seeded like `trellis dev` seeds it.

use std::path::Path;

use trellis_devcluster::{DevCluster, DevClusterOptions, FaultRule, WriteRecord};
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

    /// A client whose requests carry `trellis run`'s User-Agent for replica `identity`
    /// (`trellis/<version> (<identity>)`), so the write log tells replicas apart.
    pub fn client_as(&self, identity: &str) -> kube::Client {
        let uri = self.server.url().parse().expect("the devcluster's URL");
        let mut config = kube::Config::new(uri);
        config.default_namespace = "default".to_string();
        trellis_host::ops::cli::identify(&mut config, identity);
        kube::Client::try_from(config).expect("a kube client")
    }

    /// Every write request (successful or not) made by replica `identity`'s client
    /// ([`Cluster::client_as`]), in arrival order.
    pub fn writes_of(&self, identity: &str) -> Vec<WriteRecord> {
        let agent = trellis_host::ops::cli::user_agent(identity);
        self.server
            .writes()
            .into_iter()
            .filter(|w| w.user_agent.as_bytes() == agent.as_bytes())
            .collect()
    }

    /// From now on every list and watch of Pods fails with a 500: a Pod watch that never
    /// syncs.
    pub fn fail_pod_lists(&self) {
        for verb in ["list", "watch"] {
            self.server
                .add_fault(FaultRule::error(Some(verb), Some("pods"), 500))
                .expect("a valid fault rule");
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
