//! Reading a registry as a scraper does: its Prometheus text encoding, and single samples of it.

#![allow(dead_code)] // each test binary uses a different part of it

use prometheus_client::registry::Registry;

/// The registry in the Prometheus text format.
pub fn metrics_text(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text
}

/// The value of the first sample of `metric` whose labels contain every one of `labels`
/// (each a `name="value"` pair as exposed).
pub fn sample(text: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) && labels.iter().all(|x| l.contains(x)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// The value of the informer metric `metric` for the ConfigMap informer.
pub fn configmap_sample(text: &str, metric: &str) -> Option<f64> {
    sample(text, metric, &[CONFIGMAP_KIND])
}

/// The informer metrics' label of the ConfigMap informer.
pub const CONFIGMAP_KIND: &str = "kind=\"v1/ConfigMap\"";
