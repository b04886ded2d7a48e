//! Kubernetes Events (events.k8s.io/v1) recorded for a plugin.
//!
//! kube-runtime's `Recorder` does the API work: it builds the Event with
//! `reportingController: trellis.dev/<plugin>` and `reportingInstance: <host identity>`, and
//! aggregates repeats of the same (object, type, reason) into one Event with a growing
//! `series` (a PATCH instead of a new object), as client-go's broadcaster does. Events about
//! cluster-scoped objects go to the `default` namespace (the Recorder's rule, and the API
//! server's convention).
//!
//! An Event is never worth failing a reconcile for (WIT `events`): a refused or lost Event is
//! logged and counted, and the guest gets `ok`. Only a missing grant (`forbidden`) and a
//! malformed reason (`invalid`) reach the guest — both are the plugin's bugs, not the
//! cluster's weather.

use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType as KubeEventType, Recorder, Reporter};

use crate::cache::{Gvk, ObjectKey};
use crate::sandbox::{EventType, HostError};

use super::denial::invalid;
use super::io::HostIo;

/// The API server's limit on `reason` (and `action`).
const REASON_MAX: usize = 128;

/// The `action` of every Event: the guest's import has no such argument, and what a plugin
/// does is reconcile.
const ACTION: &str = "Reconcile";

/// Why an Event was not recorded (logged, never handed to the guest).
#[derive(Debug)]
pub(crate) enum EventFailure {
    Api(kube::Error),
    /// No answer within the request timeout, or not sent (the host is shutting down).
    NotSent(HostError),
}

impl std::fmt::Display for EventFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventFailure::Api(e) => write!(f, "{e}"),
            EventFailure::NotSent(e) => write!(f, "{}", e.message),
        }
    }
}

/// One plugin's Event recorder.
pub(crate) struct EventReporter {
    recorder: Recorder,
    controller: String,
    timeout: Duration,
    io: HostIo,
}

/// The `reportingController` of a plugin's Events.
pub fn reporting_controller(plugin: &str) -> String {
    format!("trellis.dev/{plugin}")
}

impl EventReporter {
    pub(crate) fn new(
        client: Client,
        plugin: &str,
        host_identity: &str,
        timeout: Duration,
        io: HostIo,
    ) -> Self {
        let controller = reporting_controller(plugin);
        let reporter = Reporter {
            controller: controller.clone(),
            instance: Some(host_identity.to_string()),
        };
        Self {
            recorder: Recorder::new(client, reporter),
            controller,
            timeout,
            io,
        }
    }

    pub(crate) fn controller(&self) -> &str {
        &self.controller
    }

    /// The guest's reason must be what the API server accepts.
    pub(crate) fn check_reason(reason: &str) -> Result<(), HostError> {
        if reason.is_empty() {
            return Err(invalid("emit: reason is empty"));
        }
        if reason.len() > REASON_MAX {
            return Err(invalid(format!(
                "emit: reason is {} bytes; at most {REASON_MAX}",
                reason.len()
            )));
        }
        Ok(())
    }

    /// Records the Event; bounded by the timeout. Cancel-safe: the Recorder updates its
    /// aggregation table only after the server answered.
    pub(crate) async fn emit(
        &self,
        kind: &Gvk,
        key: &ObjectKey,
        uid: Option<String>,
        event_type: EventType,
        reason: &str,
        note: &str,
    ) -> Result<(), EventFailure> {
        let reference = ObjectReference {
            api_version: Some(kind.api_version()),
            kind: Some(kind.kind.to_string()),
            name: Some(key.name().to_string()),
            namespace: key.namespace().map(str::to_string),
            uid,
            ..ObjectReference::default()
        };
        let event = Event {
            type_: match event_type {
                EventType::Normal => KubeEventType::Normal,
                EventType::Warning => KubeEventType::Warning,
            },
            reason: reason.to_string(),
            note: (!note.is_empty()).then(|| note.to_string()),
            action: ACTION.to_string(),
            secondary: None,
        };
        let recorder = self.recorder.clone();
        self.io
            .run("Event", self.timeout, async move {
                recorder.publish(&event, &reference).await
            })
            .await
            .map_err(EventFailure::NotSent)?
            .map_err(EventFailure::Api)
    }
}
