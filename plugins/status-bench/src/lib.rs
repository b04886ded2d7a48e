//! status-bench: the plugin of the end-to-end benchmark (host/benches/e2e.rs,
//! docs/benchmarks/e2e.md).
//!
//! The workload is the common controller shape "read the object and one related object from
//! the cache, write status": for each Deployment, read the ConfigMap of the same name from the
//! host's cache, compute a value from both ([`logic::expected_value`]) and merge-patch it into
//! the Deployment's `status.conditions`, unless the status already shows it. Reconciling an
//! unchanged Deployment therefore writes nothing, which is what lets the benchmark count one
//! write per triggered object. The native kube-runtime peer in the benchmark calls the same
//! [`logic`] functions.

pub mod logic;
mod views;

use trellis_guest::{Action, Error, Gvk, ObjectKey, Reconciler, Request};

pub use views::{ConfigMapView, DeploymentView};

pub struct StatusBench;

impl Reconciler for StatusBench {
    fn reconcile(request: Request) -> Result<Action, Error> {
        let Some(deployment) = request.object::<DeploymentView>()? else {
            return Ok(Action::done()); // deleted: its status went with it
        };
        let namespace = request
            .namespace()
            .ok_or_else(|| Error::permanent("a Deployment without a namespace"))?;
        let name = request.name();
        // Missing: the ConfigMap may not have reached the cache yet (or is being recreated);
        // retrying with backoff heals both, and its creation re-triggers us when it is mapped.
        let config_map =
            trellis_guest::get::<ConfigMapView>(namespace, name)?.ok_or_else(|| {
                Error::retryable(format!("ConfigMap {namespace}/{name} is not in the cache"))
            })?;

        let round = deployment
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(logic::ROUND_ANNOTATION));
        let replicas = deployment.spec.as_ref().and_then(|s| s.replicas);
        let value = logic::expected_value(
            round.map(String::as_str),
            replicas,
            config_map.data.as_ref(),
        );
        let conditions = deployment
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_deref());
        if let Some(patch) = logic::status_patch(logic::current_value(conditions), &value) {
            // The raw call: the typed one would decode the returned Deployment, which nothing
            // here reads.
            trellis_guest::raw::patch_status(
                &Gvk::of::<DeploymentView>(),
                &ObjectKey::new(namespace, name),
                &patch.to_string(),
            )?;
        }
        Ok(Action::done())
    }
}

trellis_guest::export_plugin!(StatusBench);
