//! Deployment summary: writes what a Deployment's Pods are doing (ready/total, phases,
//! restarts) into the Deployment's `trellis.dev/pod-summary` annotation.
//!
//! Pods are read from the host's cache by index, not listed: the `label` index on one of the
//! Deployment's `matchLabels` pairs yields a small superset of its Pods, which the plugin
//! narrows to the Deployment's namespace and full selector. The annotation is written by
//! server-side apply of just that annotation (the plugin owns nothing else on the Deployment,
//! so it never fights the deployment controller or `kubectl apply`), and only when its value
//! changes: reconciling an unchanged Deployment writes nothing, so the plugin's own write does
//! not re-trigger it forever. See README.md for the host configuration it needs.

mod selector;
mod summary;
mod views;

use std::time::Duration;

use serde_json::{Value, json};
use trellis_guest::{Action, Error, Reconciler, Request, index};

pub use summary::Summary;
pub use views::{DeploymentView, PodView};

/// The annotation the summary is written to.
pub const ANNOTATION: &str = "trellis.dev/pod-summary";

/// How soon to look again while Pods are still starting, stopping or not ready: Pod changes
/// reach the plugin only through the Deployment's own status updates, which do not cover
/// restarts or every readiness flip.
pub const UNSETTLED_REQUEUE: Duration = Duration::from_secs(30);

pub struct DeploymentSummary;

impl Reconciler for DeploymentSummary {
    fn reconcile(request: Request) -> Result<Action, Error> {
        let Some(deployment) = request.object::<DeploymentView>()? else {
            return Ok(Action::done()); // deleted: the annotation went with it
        };
        let namespace = request
            .namespace()
            .ok_or_else(|| Error::permanent("a Deployment without a namespace"))?;
        let selector = &deployment
            .spec
            .as_ref()
            .ok_or_else(|| Error::permanent("spec is missing"))?
            .selector;

        let candidates: Vec<PodView> = match selector::index_value(selector) {
            Some(label) => trellis_guest::lookup(index::LABEL, &label)?,
            None => trellis_guest::lookup(index::NAMESPACE, namespace)?,
        };
        let mut pods = Vec::new();
        for pod in candidates {
            let labels = pod.metadata.labels.clone().unwrap_or_default();
            if pod.metadata.namespace.as_deref() == Some(namespace)
                && selector::matches(selector, &labels)?
            {
                pods.push(pod);
            }
        }
        let summary = Summary::of(&pods);
        let value = summary.to_annotation();

        let current = deployment
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION));
        if current != Some(&value) {
            trellis_guest::apply(&annotation_patch(namespace, request.name(), &value))?;
            trellis_guest::debug!(summary = value, "pod summary updated");
        }
        Ok(if summary.is_settled() {
            Action::done()
        } else {
            Action::requeue_after(UNSETTLED_REQUEUE)
        })
    }
}

/// The partial Deployment to apply: identity and the one annotation, nothing else (no spec:
/// applying a spec would take ownership of fields the user's manifests own).
fn annotation_patch(namespace: &str, name: &str, value: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"namespace": namespace, "name": name, "annotations": {ANNOTATION: value}},
    })
}

trellis_guest::export_plugin!(DeploymentSummary);
