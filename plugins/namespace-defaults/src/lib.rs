//! Namespace defaults plugin (work in progress: reconciles to done).

use trellis_guest::{Action, Error, Reconciler, Request};

pub struct NamespaceDefaults;

impl Reconciler for NamespaceDefaults {
    fn reconcile(_request: Request) -> Result<Action, Error> {
        Ok(Action::done())
    }
}

trellis_guest::export_plugin!(NamespaceDefaults);
