//! The kubeconfig a devcluster writes, so kubectl and any client can find it.

use std::path::Path;

/// A kubeconfig for `server` (plain HTTP, no credentials: the devcluster is dev-only and
/// listens on loopback).
pub fn render(server: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: devcluster
  cluster:
    server: {server}
contexts:
- name: devcluster
  context:
    cluster: devcluster
    user: devcluster
    namespace: default
current-context: devcluster
users:
- name: devcluster
  user: {{}}
preferences: {{}}
"
    )
}

pub fn write(path: &Path, server: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, render(server))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_parses_as_a_kube_config() {
        let text = render("http://127.0.0.1:1234");
        let config: kube::config::Kubeconfig = serde_norway::from_str(&text).unwrap();
        assert_eq!(config.current_context.as_deref(), Some("devcluster"));
        assert_eq!(
            config.clusters[0]
                .cluster
                .as_ref()
                .unwrap()
                .server
                .as_deref(),
            Some("http://127.0.0.1:1234")
        );
    }
}
