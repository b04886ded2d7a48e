//! The devcluster the informer and host-call tests run against: a real API server in the test
//! process, with the namespaces a test needs.

#![allow(dead_code)] // each test binary uses a different part of it

use trellis_devcluster::{DevCluster, DevClusterOptions};

/// A devcluster serving `namespaces` (and nothing seeded).
pub async fn devcluster(namespaces: &[&str]) -> DevCluster {
    let options = DevClusterOptions {
        namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
        ..DevClusterOptions::default()
    };
    DevCluster::start(options).await.expect("devcluster starts")
}
