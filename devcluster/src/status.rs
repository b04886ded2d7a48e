//! Kubernetes `Status` errors: every failed request answers with one.
//!
//! Clients branch on `code` and `reason` (kube's `ErrorResponse`, client-go's `IsNotFound`,
//! `IsConflict`, `IsGone`...), and people search for the `message`, so each constructor here
//! reproduces the real server's wording (apimachinery's `pkg/api/errors`). The server never
//! answers an error with anything but one of these.

use serde_json::{Value, json};

use crate::registry::ResourceType;

/// A failed API request, rendered as a `Status` object.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// `details` of the Status (name, group, kind, causes, retryAfterSeconds), if any.
    pub details: Option<Value>,
    /// Seconds for the `Retry-After` header (429, and 504 for too-large resource versions).
    pub retry_after: Option<u32>,
    /// For 410 on an expired continue token: a token that continues at the latest version
    /// (`metadata.continue` of the Status).
    pub continue_token: Option<String>,
}

/// One `details.causes` entry: a field and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueForbidden`, ...
    pub reason: &'static str,
    pub message: String,
    pub field: String,
}

impl Cause {
    pub fn invalid(field: impl Into<String>, value: &str, detail: &str) -> Self {
        let field = field.into();
        Self {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {}: {detail}", go_quote(value)),
            field,
        }
    }

    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        Self {
            reason: "FieldValueRequired",
            message,
            field: field.into(),
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Self {
            reason: "FieldValueForbidden",
            message: format!("Forbidden: {detail}"),
            field: field.into(),
        }
    }

    pub fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
        Self {
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {}: supported values: {}",
                go_quote(value),
                quoted.join(", ")
            ),
            field: field.into(),
        }
    }

    pub fn type_invalid(field: impl Into<String>, value: &str, detail: &str) -> Self {
        Self {
            reason: "FieldValueTypeInvalid",
            message: format!("Invalid value: {}: {detail}", go_quote(value)),
            field: field.into(),
        }
    }

    /// `field: message`, as the Invalid error's message lists it.
    fn summary(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }
}

/// Go's `%q` for the strings we quote (ASCII names and values): quotes and backslashes escaped.
pub fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// The `reason` the real server gives each status code: apimachinery's `StatusReason`
/// constants with the code each is documented for (`pkg/apis/meta/v1/types.go`). 410 is
/// `Expired`, the reason of the only 410 the server itself sends (a resourceVersion or continue
/// token that left the history; client-go's `IsResourceExpired`); `Gone` is reserved for
/// aggregated servers. Codes without a reason get `""` (`StatusReasonUnknown`).
const REASONS: [(u16, &str); 15] = [
    (400, "BadRequest"),
    (401, "Unauthorized"),
    (403, "Forbidden"),
    (404, "NotFound"),
    (405, "MethodNotAllowed"),
    (406, "NotAcceptable"),
    (409, "Conflict"),
    (410, "Expired"),
    (413, "RequestEntityTooLarge"),
    (415, "UnsupportedMediaType"),
    (422, "Invalid"),
    (429, "TooManyRequests"),
    (500, "InternalError"),
    (503, "ServiceUnavailable"),
    (504, "Timeout"),
];

/// The Status `reason` for an HTTP status code (see `REASONS`).
pub fn reason_for_code(code: u16) -> &'static str {
    REASONS
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("", |(_, reason)| reason)
}

/// The message of an injected error: the wording the server uses for that reason.
fn injected_message(code: u16) -> &'static str {
    match code {
        404 => "the server could not find the requested resource",
        409 => {
            "the object has been modified; please apply your changes to the latest version and try again"
        }
        410 => "the resourceVersion is too old",
        503 => "the server is currently unable to handle the request",
        504 => {
            "the server was unable to return a response in the time allotted, but may still be processing the request"
        }
        _ => "the server rejected the request",
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
            continue_token: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// `pods "web" not found`.
    pub fn not_found(resource: &ResourceType, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", resource.qualified_plural()),
        )
        .with_details(resource.details(name))
    }

    /// `namespaces "x" not found`, for creates into a namespace that does not exist.
    pub fn namespace_not_found(namespace: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("namespaces \"{namespace}\" not found"),
        )
        .with_details(json!({"name": namespace, "kind": "namespaces"}))
    }

    /// The answer to a path the server does not serve.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    pub fn already_exists(resource: &ResourceType, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", resource.qualified_plural()),
        )
        .with_details(resource.details(name))
    }

    /// A failed resourceVersion precondition on update.
    pub fn conflict_modified(resource: &ResourceType, name: &str) -> Self {
        Self::conflict(
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// `Operation cannot be fulfilled on pods "web": <detail>`.
    pub fn conflict(resource: &ResourceType, name: &str, detail: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {detail}",
                resource.qualified_plural()
            ),
        )
        .with_details(resource.details(name))
    }

    /// A server-side apply conflict, worded as the apiserver's `NewConflictError`:
    /// `Apply failed with 1 conflict: conflict with "alice": .spec.replicas`, one cause per
    /// conflicting field.
    pub fn apply_conflict(
        resource: &ResourceType,
        name: &str,
        conflicts: &[crate::apply::Conflict],
    ) -> Self {
        let message = if let [one] = conflicts {
            format!(
                "Apply failed with 1 conflict: conflict with {}: {}",
                one.manager, one.field
            )
        } else {
            let mut managers: Vec<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
            managers.sort();
            managers.dedup();
            let mut lines = Vec::new();
            for manager in managers {
                lines.push(format!("conflicts with {manager}:"));
                for c in conflicts.iter().filter(|c| c.manager == manager) {
                    lines.push(format!("- {}", c.field));
                }
            }
            format!(
                "Apply failed with {} conflicts: {}",
                conflicts.len(),
                lines.join("\n")
            )
        };
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|c| {
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with {}", c.manager),
                    "field": c.field,
                })
            })
            .collect();
        let mut details = resource.details(name);
        details["causes"] = Value::Array(causes);
        Self::new(409, "Conflict", message).with_details(details)
    }

    /// 422: `Pod "web" is invalid: spec.containers: Required value`.
    pub fn invalid(resource: &ResourceType, name: &str, causes: Vec<Cause>) -> Self {
        Self::invalid_kind(&resource.kind, &resource.group, name, causes)
    }

    /// 422 for a kind outside the registry (e.g. `ListOptions.meta.k8s.io`).
    pub fn invalid_kind(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> Self {
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let summary = match causes.len() {
            0 => String::new(),
            1 => causes[0].summary(),
            _ => format!(
                "[{}]",
                causes
                    .iter()
                    .map(Cause::summary)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let message = format!("{qualified} \"{name}\" is invalid: {summary}");
        let causes_json: Vec<Value> = causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect();
        let mut details = json!({"name": name, "kind": kind, "causes": causes_json});
        if !group.is_empty() {
            details["group"] = Value::String(group.to_string());
        }
        Self::new(422, "Invalid", message).with_details(details)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn forbidden(resource: &ResourceType, name: &str, detail: &str) -> Self {
        let target = if name.is_empty() {
            resource.qualified_plural()
        } else {
            format!("{} \"{name}\"", resource.qualified_plural())
        };
        Self::new(403, "Forbidden", format!("{target} is forbidden: {detail}"))
            .with_details(resource.details(name))
    }

    pub fn method_not_allowed(detail: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource{detail}"),
        )
        .with_details(json!({}))
    }

    pub fn not_acceptable(accepted: &str) -> Self {
        Self::new(
            406,
            "NotAcceptable",
            format!("only the following media types are accepted: {accepted}"),
        )
    }

    pub fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
        .with_details(json!({"causes": [{"reason": "", "message": content_type}]}))
    }

    /// 410 for a list whose continue token or exact resourceVersion left the history window.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 410 for a watch from a resourceVersion older than the history window; sent as the
    /// object of an ERROR watch event, as the watch cache does.
    pub fn too_old_resource_version(requested: u64, oldest: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// 504 for a resourceVersion the server has not reached.
    pub fn too_large_resource_version(requested: u64, current: u64) -> Self {
        let mut error = Self::new(
            504,
            "Timeout",
            format!("Too large resource version: {requested}, current: {current}"),
        )
        .with_details(json!({
            "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
            "retryAfterSeconds": 1
        }));
        error.retry_after = Some(1);
        error
    }

    pub fn too_many_requests(retry_after: u32) -> Self {
        let mut error = Self::new(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
        )
        .with_details(json!({"retryAfterSeconds": retry_after}));
        error.retry_after = Some(retry_after);
        error
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
        .with_details(json!({}))
    }

    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// An injected 4xx/5xx with the reason the real server uses for that code (see
    /// `reason_for_code`), so clients' `IsConflict`/`IsNotFound`-style checks see what a real
    /// failure would give them. `retry_after` sets the `Retry-After` header and
    /// `details.retryAfterSeconds`; 429 always carries one (default 1 s), as the server's
    /// priority-and-fairness rejections do.
    pub fn injected(code: u16, retry_after: Option<u32>) -> Self {
        let reason = reason_for_code(code);
        let mut error = match code {
            429 => Self::too_many_requests(retry_after.unwrap_or(1)),
            500 => Self::internal("injected fault"),
            _ => Self::new(
                code,
                reason,
                format!("injected fault: {}", injected_message(code)),
            )
            .with_details(json!({})),
        };
        if let Some(seconds) = retry_after {
            error.retry_after = Some(seconds);
            if let Some(details) = error.details.as_mut() {
                details["retryAfterSeconds"] = json!(seconds);
            }
        }
        error
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        if let Some(token) = &self.continue_token {
            status["metadata"] = json!({"continue": token});
        }
        status
    }
}

/// A `Status` reporting success, which deletes of objects without finalizers answer with.
pub fn success_status(resource: &ResourceType, name: &str, uid: &str) -> Value {
    let mut details = resource.details(name);
    details["uid"] = Value::String(uid.to_string());
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn messages_match_the_real_server() {
        let registry = Registry::builtin();
        let pods = registry.find("", "v1", "pods").unwrap();
        let deployments = registry.find("apps", "v1", "deployments").unwrap();
        assert_eq!(
            ApiError::not_found(&pods, "web").message,
            "pods \"web\" not found"
        );
        assert_eq!(
            ApiError::not_found(&deployments, "web").message,
            "deployments.apps \"web\" not found"
        );
        let conflict = ApiError::conflict_modified(&deployments, "web");
        assert_eq!(conflict.code, 409);
        assert_eq!(
            conflict.message,
            "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again"
        );
        let invalid = ApiError::invalid(
            &pods,
            "Bad",
            vec![Cause::invalid("metadata.name", "Bad", "must be lowercase")],
        );
        assert_eq!(
            invalid.message,
            "Pod \"Bad\" is invalid: metadata.name: Invalid value: \"Bad\": must be lowercase"
        );
        let status = invalid.to_status();
        assert_eq!(status["code"], 422);
        assert_eq!(status["reason"], "Invalid");
        assert_eq!(status["details"]["causes"][0]["field"], "metadata.name");
    }

    #[test]
    fn several_causes_are_bracketed() {
        let error = ApiError::invalid_kind(
            "ListOptions",
            "meta.k8s.io",
            "",
            vec![Cause::forbidden("a", "x"), Cause::required("b", "")],
        );
        assert_eq!(
            error.message,
            "ListOptions.meta.k8s.io \"\" is invalid: [a: Forbidden: x, b: Required value]"
        );
    }

    #[test]
    fn retry_after_travels_with_429() {
        let error = ApiError::injected(429, Some(3));
        assert_eq!(error.retry_after, Some(3));
        assert_eq!(error.to_status()["details"]["retryAfterSeconds"], 3);
        assert_eq!(error.reason, "TooManyRequests");
        let default = ApiError::injected(429, None);
        assert_eq!(
            default.retry_after,
            Some(1),
            "429 always says when to retry"
        );
        let unavailable = ApiError::injected(503, Some(4));
        assert_eq!(unavailable.retry_after, Some(4));
        assert_eq!(unavailable.to_status()["details"]["retryAfterSeconds"], 4);
        assert_eq!(ApiError::injected(503, None).retry_after, None);
    }

    #[test]
    fn injected_errors_carry_the_reason_of_their_code() {
        for (code, reason) in [
            (400, "BadRequest"),
            (401, "Unauthorized"),
            (403, "Forbidden"),
            (404, "NotFound"),
            (405, "MethodNotAllowed"),
            (406, "NotAcceptable"),
            (409, "Conflict"),
            (410, "Expired"),
            (413, "RequestEntityTooLarge"),
            (415, "UnsupportedMediaType"),
            (422, "Invalid"),
            (429, "TooManyRequests"),
            (500, "InternalError"),
            (503, "ServiceUnavailable"),
            (504, "Timeout"),
            (418, ""),
            (502, ""),
        ] {
            let error = ApiError::injected(code, None);
            let status = error.to_status();
            assert_eq!(
                (status["code"].as_u64(), status["reason"].as_str()),
                (Some(u64::from(code)), Some(reason)),
                "{code}"
            );
            assert_eq!(status["status"], "Failure");
            // 429 keeps the server's own wording (clients may match it); the others say
            // where they come from.
            assert!(
                code == 429 || error.message.contains("injected fault"),
                "{code}: {}",
                error.message
            );
        }
    }
}
