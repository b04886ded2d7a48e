//! `devcluster`: run the embedded Kubernetes API server on its own.
//!
//! Listens on 127.0.0.1 (a chosen port or a free one), writes a kubeconfig, loads fixture
//! YAML, prints how to point kubectl at it, and serves until interrupted.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use trellis_devcluster::{DevCluster, DevClusterOptions};

/// An in-memory Kubernetes API server for development (plain HTTP on loopback, no auth).
#[derive(Debug, Parser)]
#[command(name = "devcluster", version)]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, short, default_value_t = 0, env = "DEVCLUSTER_PORT")]
    port: u16,
    /// Where to write the kubeconfig.
    #[arg(
        long,
        default_value = "devcluster.kubeconfig",
        env = "DEVCLUSTER_KUBECONFIG"
    )]
    kubeconfig: PathBuf,
    /// Fixture YAML to load at start: files or folders, multi-document; repeatable.
    #[arg(long = "fixtures", short = 'f')]
    fixtures: Vec<PathBuf>,
    /// Watch history kept per resource, in events.
    #[arg(long, default_value_t = 10_000)]
    history: usize,
    /// Seconds between bookmarks on idle watches.
    #[arg(long, default_value_t = 5)]
    bookmark_seconds: u64,
    /// Realistic Pods to seed into the default namespace at start.
    #[arg(long, default_value_t = 0)]
    seed_pods: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let options = DevClusterOptions {
        port: Some(args.port),
        kubeconfig: Some(args.kubeconfig.clone()),
        history: args.history,
        bookmark_interval: Duration::from_secs(args.bookmark_seconds.max(1)),
        fixtures: args.fixtures.clone(),
        ..DevClusterOptions::default()
    };
    let cluster = DevCluster::start(options)
        .await
        .context("starting the devcluster")?;
    if args.seed_pods > 0 {
        cluster
            .seed_pods("default", args.seed_pods)
            .context("seeding pods")?;
    }
    let kubeconfig = std::fs::canonicalize(cluster.kubeconfig_path())
        .unwrap_or_else(|_| cluster.kubeconfig_path().to_path_buf());
    println!(
        "devcluster (Kubernetes {}) listening on {}",
        trellis_devcluster::KUBERNETES_VERSION,
        cluster.url()
    );
    println!("kubeconfig written to {}", kubeconfig.display());
    println!();
    println!("Point kubectl at it:");
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!("  kubectl get namespaces");
    println!("or, without changing your environment:");
    println!("  kubectl --server {} get pods -A", cluster.url());
    println!();
    println!(
        "Admin endpoint: {}/admin/accounting (faults, writes, seed: see docs/devcluster.md)",
        cluster.url()
    );
    println!("Dev only: plain HTTP, no authentication. Ctrl-C to stop.");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    cluster.stop().await;
    Ok(())
}
