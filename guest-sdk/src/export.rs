//! The component's export: turns the host's `reconcile` call into a [`Reconciler`] call and
//! its result back into the WIT `action`. Only compiled for wasm32; [`crate::export_plugin!`]
//! wires a plugin to it.

use crate::__bindings::trellis::plugin::types as wit;
use crate::{Action, Gvk, ObjectKey, Reconciler, Request};

#[doc(hidden)]
pub fn reconcile<R: Reconciler>(request: wit::ReconcileRequest) -> wit::Action {
    let request = Request {
        kind: Gvk {
            group: request.kind.group,
            version: request.kind.version,
            kind: request.kind.kind,
        },
        key: ObjectKey {
            namespace: request.key.namespace,
            name: request.key.name,
        },
        object_json: request.object,
    };
    match R::reconcile(request) {
        Ok(Action::Done) => wit::Action::Done,
        Ok(Action::RequeueAfter(after)) => wit::Action::RequeueAfter(Action::requeue_millis(after)),
        Err(e) => wit::Action::Error(wit::ReconcileError {
            message: e.to_string(),
            retryable: e.is_retryable(),
        }),
    }
}
