//! Deployment summary plugin (work in progress: reconciles to done).

use trellis_guest::{Action, Error, Reconciler, Request};

pub struct DeploymentSummary;

impl Reconciler for DeploymentSummary {
    fn reconcile(_request: Request) -> Result<Action, Error> {
        Ok(Action::done())
    }
}

trellis_guest::export_plugin!(DeploymentSummary);
