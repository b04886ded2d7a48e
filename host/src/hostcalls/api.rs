//! The write requests, as the API server receives them: the plugin's field manager on every
//! one, the guest's JSON sent as it came (never parsed into a typed object and re-serialized),
//! the server's answer handed back as text, and every request bounded by a timeout.
//!
//! - apply: `PATCH` with `application/apply-patch+yaml`, `fieldManager`, `force` as the guest
//!   asked, `fieldValidation=Strict` (an unknown field is an `invalid` naming it, not a silent
//!   drop that would also make the apply look changed forever);
//! - patch-status: `PATCH .../status` with `application/merge-patch+json`;
//! - create: `POST` with `fieldManager` and `fieldValidation=Strict`;
//! - delete: `DELETE` with the server's default propagation.
//!
//! Every request runs on the host calls' I/O runtime, not the guest's thread, bounded by the
//! request timeout ([`HostIo`], see `io.rs` for why).
//!
//! Cancel-safe: nothing here holds state across an await; a dropped future aborts its request.

use std::time::Duration;

use kube::Client;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, ValidationDirective};
use kube::core::{DynamicObject, Request, Resource};
use serde_json::value::RawValue;

use crate::sandbox::HostError;

use super::errors::{from_kube, unbuildable};
use super::io::HostIo;
use super::kinds::Resolved;

/// Sends one plugin's writes.
#[derive(Clone)]
pub(crate) struct ApiWriter {
    client: Client,
    field_manager: String,
    timeout: Duration,
    io: HostIo,
}

impl ApiWriter {
    pub(crate) fn new(
        client: Client,
        field_manager: String,
        timeout: Duration,
        io: HostIo,
    ) -> Self {
        Self {
            client,
            field_manager,
            timeout,
            io,
        }
    }

    pub(crate) fn field_manager(&self) -> &str {
        &self.field_manager
    }

    fn request(resolved: &Resolved, namespace: Option<&str>) -> Request {
        Request::new(DynamicObject::url_path(&resolved.resource, namespace))
    }

    /// Sends a built request; `what` names it in errors.
    async fn send(
        &self,
        what: &str,
        built: Result<http::Request<Vec<u8>>, kube::core::request::Error>,
    ) -> Result<String, HostError> {
        let request = built.map_err(|e| unbuildable(what, &e))?;
        let client = self.client.clone();
        self.io
            .run(what, self.timeout, async move {
                client.request_text(request).await
            })
            .await?
            .map_err(|e| from_kube(what, &e))
    }

    pub(crate) async fn apply(
        &self,
        what: &str,
        resolved: &Resolved,
        namespace: Option<&str>,
        name: &str,
        object: &RawValue,
        force: bool,
    ) -> Result<String, HostError> {
        let params = PatchParams {
            field_manager: Some(self.field_manager.clone()),
            force,
            field_validation: Some(ValidationDirective::Strict),
            ..PatchParams::default()
        };
        let built = Self::request(resolved, namespace).patch(name, &params, &Patch::Apply(object));
        self.send(what, built).await
    }

    pub(crate) async fn patch_status(
        &self,
        what: &str,
        resolved: &Resolved,
        namespace: Option<&str>,
        name: &str,
        merge_patch: &RawValue,
    ) -> Result<String, HostError> {
        let params = PatchParams {
            field_manager: Some(self.field_manager.clone()),
            ..PatchParams::default()
        };
        let built = Self::request(resolved, namespace).patch_subresource(
            "status",
            name,
            &params,
            &Patch::Merge(merge_patch),
        );
        self.send(what, built).await
    }

    pub(crate) async fn create(
        &self,
        what: &str,
        resolved: &Resolved,
        namespace: Option<&str>,
        object: &str,
    ) -> Result<String, HostError> {
        let params = PostParams {
            field_manager: Some(self.field_manager.clone()),
            ..PostParams::default()
        };
        let built = Self::request(resolved, namespace)
            .create(&params, object.as_bytes().to_vec())
            .map(strict);
        self.send(what, built).await
    }

    pub(crate) async fn delete(
        &self,
        what: &str,
        resolved: &Resolved,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), HostError> {
        let built = Self::request(resolved, namespace).delete(name, &DeleteParams::default());
        self.send(what, built).await.map(drop)
    }
}

/// Adds `fieldValidation=Strict` to a create (kube's `PostParams` has no field for it).
fn strict(mut request: http::Request<Vec<u8>>) -> http::Request<Vec<u8>> {
    let uri = request.uri().to_string();
    let separator = if uri.contains('?') { "&" } else { "?" };
    if let Ok(uri) = format!("{uri}{separator}fieldValidation=Strict").parse() {
        *request.uri_mut() = uri;
    }
    request
}
