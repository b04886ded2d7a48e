//! One error type for everything a reconciler can fail on.
//!
//! A plugin's `reconcile` returns `Result<Action, Error>` and uses `?` on host calls, on JSON
//! (de)serialization and on its own checks alike. What the host does next depends on one bit,
//! [`Error::is_retryable`]: retry the key with backoff, or record the error and wait for the
//! object to change. Every error carries a sensible default for that bit (see
//! [`ErrorCode::is_retryable`]) and the plugin can override it with [`Error::with_retryable`].

use std::fmt;

/// Why the host refused or failed a call: the WIT `error-code`, which mirrors Kubernetes status
/// reasons so plugin logic reads like controller logic written against the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The object does not exist (in the cache for reads, on the server for writes).
    NotFound,
    /// A write lost a race, or server-side apply without force hit another manager's field.
    Conflict,
    /// The plugin's configuration does not grant this read or write. Nothing was sent.
    Forbidden,
    /// Malformed request (bad JSON, missing apiVersion/kind/name) or rejected by the server.
    Invalid,
    /// The API server could not be reached or answered 429/5xx.
    Unavailable,
    /// This call's budget (host calls, bytes, writes) is spent. Nothing was done.
    BudgetExceeded,
}

impl ErrorCode {
    /// Every code, in WIT order.
    pub const ALL: [ErrorCode; 6] = [
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::Forbidden,
        ErrorCode::Invalid,
        ErrorCode::Unavailable,
        ErrorCode::BudgetExceeded,
    ];

    /// The WIT name (`not-found`, `budget-exceeded`, ...), also used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "not-found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Invalid => "invalid",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::BudgetExceeded => "budget-exceeded",
        }
    }

    /// Whether a reconcile that failed on this code is worth retrying unchanged.
    ///
    /// Races (`not-found` on a write, `conflict`) and outages (`unavailable`) heal by
    /// themselves. `forbidden` and `invalid` need a config or object change, which re-queues
    /// the key anyway. `budget-exceeded` would recur on every identical retry: the fix is a
    /// plugin that does less per call or a larger budget, not backoff.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::NotFound | ErrorCode::Conflict | ErrorCode::Unavailable
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong, without the retry decision.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// The host refused or failed an import; `operation` names the call and its object.
    #[error("{operation}: {code}: {message}")]
    Host {
        operation: String,
        code: ErrorCode,
        message: String,
    },
    /// An object could not be decoded from the JSON the host handed over.
    #[error("cannot decode {what}: {source}")]
    Decode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// An object could not be encoded to JSON for the host.
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// The plugin's own reason.
    #[error("{0}")]
    Plugin(String),
}

/// A failed reconcile, or a failed step of one.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    retryable: bool,
}

impl Error {
    /// A failure the host should retry with backoff (e.g. "waiting for the Service").
    pub fn retryable(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Plugin(message.into()),
            retryable: true,
        }
    }

    /// A failure that retrying cannot fix (e.g. an invalid spec): the host records it and
    /// waits for the object to change.
    pub fn permanent(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Plugin(message.into()),
            retryable: false,
        }
    }

    /// A host error, as the imports report it. `operation` names the call, e.g.
    /// `get apps/v1 Deployment default/web`.
    pub fn host(operation: impl Into<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Host {
                operation: operation.into(),
                code,
                message: message.into(),
            },
            retryable: code.is_retryable(),
        }
    }

    /// Decoding `what` (e.g. `apps/v1 Deployment default/web`) failed. Not retryable: the same
    /// bytes fail the same way until the object changes.
    pub fn decode(what: impl Into<String>, source: serde_json::Error) -> Self {
        Error {
            kind: ErrorKind::Decode {
                what: what.into(),
                source,
            },
            retryable: false,
        }
    }

    /// Encoding `what` failed (a `Serialize` impl refused). Not retryable.
    pub fn encode(what: impl Into<String>, source: serde_json::Error) -> Self {
        Error {
            kind: ErrorKind::Encode {
                what: what.into(),
                source,
            },
            retryable: false,
        }
    }

    /// Overrides the retry decision.
    #[must_use]
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The host's error code, when the host reported this error.
    pub fn code(&self) -> Option<ErrorCode> {
        match &self.kind {
            ErrorKind::Host { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some(ErrorCode::NotFound)
    }

    pub fn is_conflict(&self) -> bool {
        self.code() == Some(ErrorCode::Conflict)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_errors_take_their_retry_decision_from_the_code() {
        let retryable: Vec<_> = ErrorCode::ALL
            .into_iter()
            .filter(|c| Error::host("get", *c, "x").is_retryable())
            .collect();
        assert_eq!(
            retryable,
            [
                ErrorCode::NotFound,
                ErrorCode::Conflict,
                ErrorCode::Unavailable
            ]
        );
    }

    #[test]
    fn display_names_operation_code_and_message() {
        let e = Error::host(
            "apply apps/v1 Deployment default/web",
            ErrorCode::Invalid,
            "spec.replicas: must be >= 0",
        );
        assert_eq!(
            e.to_string(),
            "apply apps/v1 Deployment default/web: invalid: spec.replicas: must be >= 0"
        );
        assert_eq!(e.code(), Some(ErrorCode::Invalid));
        assert!(!e.is_not_found());
    }

    #[test]
    fn decode_errors_name_the_object_and_are_permanent() {
        let source = serde_json::from_str::<u32>("\"x\"").unwrap_err();
        let e = Error::decode("v1 Pod default/p", source);
        assert!(
            e.to_string()
                .starts_with("cannot decode v1 Pod default/p: ")
        );
        assert!(!e.is_retryable());
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(e.code(), None);
    }

    #[test]
    fn plugin_errors_keep_the_callers_choice() {
        assert!(Error::retryable("wait").is_retryable());
        assert!(!Error::permanent("bad").is_retryable());
        assert!(
            Error::host("apply", ErrorCode::Conflict, "x")
                .with_retryable(false)
                .is_conflict()
        );
        assert!(
            !Error::host("apply", ErrorCode::Conflict, "x")
                .with_retryable(false)
                .is_retryable()
        );
    }
}
