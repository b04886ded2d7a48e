//! The standalone `devcluster` binary: starts, writes a kubeconfig clients can use, loads
//! fixtures, says how to use it; refuses bad fixtures naming the file.

use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const FIXTURES: &str = "apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {currency: EUR}
";

#[tokio::test]
async fn the_binary_serves_fixtures_and_prints_how_to_connect() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shop.yaml"), FIXTURES).unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_devcluster"))
        .arg("--port")
        .arg("0")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--fixtures")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.starts_with("Dev only");
            printed.push(line);
            if done {
                break;
            }
        }
    })
    .await
    .expect("the banner within 30 s");
    let text = printed.join("\n");
    assert!(text.contains("listening on http://127.0.0.1:"), "{text}");
    assert!(
        text.contains(&format!(
            "export KUBECONFIG={}",
            kubeconfig.canonicalize().unwrap().display()
        )),
        "{text}"
    );

    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&kubeconfig).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "shop");
    let listed = cms.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].data.as_ref().unwrap()["currency"], "EUR");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn bad_fixtures_stop_the_binary_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: v1\nkind: Gadget\nmetadata: {name: g}\n").unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(env!("CARGO_BIN_EXE_devcluster"))
            .arg("--kubeconfig")
            .arg(dir.path().join("kubeconfig"))
            .arg("--fixtures")
            .arg(&bad)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.yaml: document 0: no kind \"Gadget\""),
        "{stderr}"
    );
}
