//! Which resource a written kind is: its URL path segment (plural), its scope and whether it
//! has a status subresource, found by discovery once per kind and kept.
//!
//! A write names a kind (`networking.k8s.io/v1 NetworkPolicy`); the API wants a resource path
//! (`/apis/networking.k8s.io/v1/namespaces/a/networkpolicies`). kube's `pinned_kind` asks the
//! server for the group version's resource list. Found kinds are kept for the life of the
//! host (a kind does not change its plural or scope while served); kinds the server does not
//! serve are not kept, so a CRD installed later is found on the next write.
//!
//! Cloning shares the table, so the host can resolve each kind once for all plugins.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::core::ApiResource;
use kube::core::discovery::Scope;
use kube::core::gvk::GroupVersionKind;
use parking_lot::Mutex;

use super::io::HostIo;
use crate::cache::Gvk;
use crate::sandbox::{ErrorCode, HostError};

/// A resolved kind.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub resource: ApiResource,
    pub namespaced: bool,
    /// Whether `/status` is served (what `patch-status` writes to).
    pub has_status: bool,
}

/// Kind -> resource, by discovery, cached.
#[derive(Clone)]
pub struct Kinds {
    client: Client,
    timeout: Duration,
    io: HostIo,
    resolved: Arc<Mutex<HashMap<Gvk, Resolved>>>,
}

impl std::fmt::Debug for Kinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kinds")
            .field("resolved", &self.resolved.lock().len())
            .finish()
    }
}

impl Kinds {
    /// `timeout` bounds each discovery request; `io`: where the requests run (`io.rs`).
    pub fn new(client: Client, timeout: Duration, io: HostIo) -> Self {
        Self {
            client,
            timeout,
            io,
            resolved: Arc::default(),
        }
    }

    /// The kind's resource. Unknown kinds are `invalid` (the server does not serve them: a
    /// typo or a missing CRD, not something a retry fixes soon); a failed discovery request is
    /// `unavailable`. Cancel-safe: the table is only written once an answer is in.
    pub async fn resolve(&self, kind: &Gvk) -> Result<Resolved, HostError> {
        if let Some(found) = self.resolved.lock().get(kind) {
            return Ok(found.clone());
        }
        let gvk = GroupVersionKind::gvk(&kind.group, &kind.version, &kind.kind);
        let client = self.client.clone();
        let what = format!("discovery of {kind}");
        let answer = self
            .io
            .run(&what, self.timeout, async move {
                kube::discovery::pinned_kind(&client, &gvk).await
            })
            .await?;
        let (resource, capabilities) = match answer {
            Ok(found) => found,
            Err(kube::Error::Discovery(e)) => {
                return Err(not_served(kind, &e.to_string()));
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {
                return Err(not_served(
                    kind,
                    &format!("group/version {} not found", kind.api_version()),
                ));
            }
            Err(e) => {
                return Err(HostError::new(
                    ErrorCode::Unavailable,
                    format!("{what} failed: {e}"),
                ));
            }
        };
        let resolved = Resolved {
            namespaced: capabilities.scope == Scope::Namespaced,
            has_status: capabilities
                .subresources
                .iter()
                .any(|(sub, _)| sub.plural == "status"),
            resource,
        };
        self.resolved.lock().insert(kind.clone(), resolved.clone());
        Ok(resolved)
    }
}

fn not_served(kind: &Gvk, why: &str) -> HostError {
    HostError::new(
        ErrorCode::Invalid,
        format!("the API server does not serve {kind}: {why}"),
    )
}
