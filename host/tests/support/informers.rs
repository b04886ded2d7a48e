//! Informers as the informer and host-call tests drive them: one registry, watch configs
//! written as YAML, synced primary subscriptions whose keys are recorded, and the cache's
//! contents by key.

#![allow(dead_code)] // each test binary uses a different part of it

use std::sync::Arc;

use kube::Client;
use prometheus_client::registry::Registry;
use trellis_host::informer::{InformerOptions, Informers, Role, Subscription, WatchConfig};
use trellis_selector::LabelSelector;

use super::keys::Sink;

/// Informers on `client` with `options`, and the registry their metrics are in.
pub fn informers(client: Client, options: InformerOptions) -> (Informers, Registry) {
    let mut registry = Registry::default();
    let informers = Informers::new(client, &mut registry, options);
    (informers, registry)
}

/// A watch config written as YAML.
pub fn watch(yaml: &str) -> WatchConfig {
    serde_norway::from_str(yaml).expect("test config parses")
}

/// `plugin`'s synced primary subscription to the watch in `yaml`, and the sink recording the
/// keys it enqueues.
pub async fn subscribe(
    informers: &Informers,
    plugin: &str,
    yaml: &str,
) -> (Subscription, Arc<Sink>) {
    let sink = Arc::new(Sink::default());
    let subscription = informers
        .subscribe(plugin, &watch(yaml), Role::Primary, sink.clone())
        .await
        .expect("subscribes");
    subscription.wait_synced().await.expect("syncs");
    (subscription, sink)
}

/// The keys in `subscription`'s cache, in the cache's order.
pub fn cached_names(subscription: &Subscription) -> Vec<String> {
    subscription
        .cache()
        .list(None, &LabelSelector::everything())
        .iter()
        .map(|o| o.key().to_string())
        .collect()
}

/// Informers of the default options on `client`, with plugin `p` subscribed to the watch in
/// `yaml`: the informers (to subscribe more), their registry, the synced subscription and the
/// sink recording its keys.
pub async fn watching(
    client: Client,
    yaml: &str,
) -> (Informers, Registry, Subscription, Arc<Sink>) {
    let (informers, registry) = informers(client, InformerOptions::default());
    let (subscription, sink) = subscribe(&informers, "p", yaml).await;
    (informers, registry, subscription, sink)
}
