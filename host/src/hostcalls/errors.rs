//! API server errors as the guest sees them: the WIT `error-code` chosen by the Status reason
//! (the server's own classification), then by HTTP code, with the server's message kept.
//!
//! | server | guest |
//! |---|---|
//! | NotFound, 404 | `not-found` |
//! | Conflict, AlreadyExists, 409 | `conflict` |
//! | Forbidden, 403, Unauthorized, 401 | `forbidden` (the host's RBAC, not the plugin's grant: said in the message) |
//! | Invalid, BadRequest, 400, 422, other 4xx | `invalid` |
//! | TooManyRequests, 429, 5xx, timeouts, transport | `unavailable` |
//!
//! Only client-error reasons decide on their own; any other reason defers to the HTTP code.

use std::time::Duration;

use crate::sandbox::{ErrorCode, HostError};

/// The code for a failed Status. The reasons of client errors are specific and decide; the
/// server-side ones (`InternalError`, `ServiceUnavailable`, `Timeout`, ...) all mean "retry
/// later", which the HTTP code says as well, and a server that pairs a generic reason with a
/// client-error code (seen: `409 InternalError`) is better read by its code.
fn code_of(reason: &str, http: u16) -> ErrorCode {
    match reason {
        "NotFound" => return ErrorCode::NotFound,
        "Conflict" | "AlreadyExists" => return ErrorCode::Conflict,
        "Forbidden" | "Unauthorized" => return ErrorCode::Forbidden,
        "Invalid"
        | "BadRequest"
        | "MethodNotAllowed"
        | "UnsupportedMediaType"
        | "NotAcceptable"
        | "RequestEntityTooLarge"
        | "Gone" => return ErrorCode::Invalid,
        "TooManyRequests" => return ErrorCode::Unavailable,
        _ => {}
    }
    match http {
        404 => ErrorCode::NotFound,
        409 => ErrorCode::Conflict,
        401 | 403 => ErrorCode::Forbidden,
        429 => ErrorCode::Unavailable,
        400..=499 => ErrorCode::Invalid,
        _ => ErrorCode::Unavailable,
    }
}

/// Maps a failed request. `what` says what was asked (`apply networking.k8s.io/v1,
/// Kind=NetworkPolicy a/default-deny`).
pub(crate) fn from_kube(what: &str, error: &kube::Error) -> HostError {
    match error {
        kube::Error::Api(status) => {
            let code = code_of(&status.reason, status.code);
            let mut message = format!(
                "{what}: {} ({} {})",
                status.message, status.code, status.reason
            );
            if code == ErrorCode::Forbidden {
                message.push_str(
                    "; the API server refused the host's own credentials (check the host's RBAC)",
                );
            }
            HostError::new(code, message)
        }
        // Rejected by kube before sending (a name with a slash, say): the request was bad.
        kube::Error::BuildRequest(_) => {
            HostError::new(ErrorCode::Invalid, format!("{what}: {error}"))
        }
        other => HostError::new(
            ErrorCode::Unavailable,
            format!("{what}: the API server could not be reached: {other}"),
        ),
    }
}

/// A request kube would not build (a name with a slash, a field manager over 128 bytes):
/// the guest's request was bad, and nothing was sent.
pub(crate) fn unbuildable(what: &str, error: &kube::core::request::Error) -> HostError {
    HostError::new(ErrorCode::Invalid, format!("{what}: {error}"))
}

/// A request that took longer than the host allows.
pub(crate) fn timed_out(what: &str, limit: Duration) -> HostError {
    HostError::new(
        ErrorCode::Unavailable,
        format!("{what}: no answer from the API server within {limit:?}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn status(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Status::failure(message, reason).with_code(code).boxed())
    }

    #[test]
    fn reasons_decide_then_codes() {
        let cases = [
            (404, "NotFound", ErrorCode::NotFound),
            (409, "Conflict", ErrorCode::Conflict),
            (409, "AlreadyExists", ErrorCode::Conflict),
            (403, "Forbidden", ErrorCode::Forbidden),
            (422, "Invalid", ErrorCode::Invalid),
            (400, "BadRequest", ErrorCode::Invalid),
            (429, "TooManyRequests", ErrorCode::Unavailable),
            (500, "InternalError", ErrorCode::Unavailable),
            (503, "ServiceUnavailable", ErrorCode::Unavailable),
            (504, "Timeout", ErrorCode::Unavailable),
            // No reason (a proxy's plain-text answer): the HTTP code decides.
            (404, "", ErrorCode::NotFound),
            (409, "", ErrorCode::Conflict),
            (415, "", ErrorCode::Invalid),
            (429, "", ErrorCode::Unavailable),
            (502, "", ErrorCode::Unavailable),
            // A generic reason with a client-error code: the code decides.
            (409, "InternalError", ErrorCode::Conflict),
            (500, "ServerTimeout", ErrorCode::Unavailable),
        ];
        for (code, reason, expected) in cases {
            let e = from_kube("apply x", &status(code, reason, "the server said so"));
            assert_eq!(e.code, expected, "{code} {reason}");
            assert!(
                e.message.starts_with("apply x: the server said so"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn a_server_forbidden_points_at_the_hosts_rbac() {
        let e = from_kube("delete y", &status(403, "Forbidden", "nope"));
        assert!(e.message.contains("host's RBAC"), "{}", e.message);
    }
}
