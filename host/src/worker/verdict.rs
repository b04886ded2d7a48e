//! From how a guest call ended to what happens to the key, what is counted, and whether the
//! plugin worked.
//!
//! One table, in one function, so the queue's disposition, the metrics labels and the health
//! tracker can never disagree about a call:
//!
//! | call ended                                 | key                  | `result`        | healthy |
//! |--------------------------------------------|----------------------|-----------------|---------|
//! | `done`                                     | forget (success)     | `success`       | yes     |
//! | `requeue-after(ms)`                        | run again after `ms` | `requeue_after` | yes     |
//! | `error`, retryable                         | rate-limited retry   | `error`         | no      |
//! | `error`, not retryable                     | forget (success)     | `error`         | no      |
//! | fuel, deadline, memory, stack, panic, trap | rate-limited retry   | `error`         | no      |
//! | host fault (e.g. instance pool full)       | rate-limited retry   | `error`         | no      |
//! | panic in host code during the call         | rate-limited retry   | `error`         | no      |
//!
//! A non-retryable error is the plugin saying "retrying will not help until the object
//! changes" (the WIT contract: "the host records the error and forgets the key until its next
//! change"). So the key is finished as a success — its failure count resets and no retry is
//! scheduled — but the call is counted as an error everywhere an operator looks (reconcile
//! result, errors total, outcome class, health), because the object was not reconciled.
//!
//! A host fault is not the guest's fault, but the call still did not reconcile anything, so it
//! counts against health too: a pool that cannot get an instance for five minutes is degraded
//! from the operator's point of view whatever the cause.

use std::time::Duration;

use crate::sandbox::{Action, Outcome};

/// What the worker does with the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Finish as a success: the failure count resets, the key runs again on its next change.
    Forget,
    /// Finish as reconciled and run again after this long.
    RequeueAfter(Duration),
    /// Finish as a failure: retried after the key's backoff, through the retry bucket.
    Retry,
}

/// controller-runtime's `result` label of `controller_runtime_reconcile_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReconcileResult {
    Success,
    Error,
    RequeueAfter,
}

impl ReconcileResult {
    pub const ALL: [ReconcileResult; 3] = [Self::Success, Self::Error, Self::RequeueAfter];

    pub fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
            Self::RequeueAfter => "requeue_after",
        }
    }
}

/// The outcome classes counted in `trellis_guest_outcomes_total{outcome}`: the sandbox's
/// [`Outcome::name`] classes, with guest errors split by retryability, plus panics in host
/// code, which never reach the sandbox's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutcomeClass {
    Done,
    RequeueAfter,
    GuestError,
    GuestErrorPermanent,
    OutOfFuel,
    Deadline,
    OutOfMemory,
    StackOverflow,
    GuestPanic,
    Trap,
    HostFault,
    HostPanic,
}

impl OutcomeClass {
    pub const ALL: [OutcomeClass; 12] = [
        Self::Done,
        Self::RequeueAfter,
        Self::GuestError,
        Self::GuestErrorPermanent,
        Self::OutOfFuel,
        Self::Deadline,
        Self::OutOfMemory,
        Self::StackOverflow,
        Self::GuestPanic,
        Self::Trap,
        Self::HostFault,
        Self::HostPanic,
    ];

    /// The metrics label and log name. The sandbox's names where it has one.
    pub fn label(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::RequeueAfter => "requeue_after",
            Self::GuestError => "guest_error",
            Self::GuestErrorPermanent => "guest_error_permanent",
            Self::OutOfFuel => "out_of_fuel",
            Self::Deadline => "deadline",
            Self::OutOfMemory => "out_of_memory",
            Self::StackOverflow => "stack_overflow",
            Self::GuestPanic => "guest_panic",
            Self::Trap => "trap",
            Self::HostFault => "host_fault",
            Self::HostPanic => "host_panic",
        }
    }

    /// Position in [`OutcomeClass::ALL`], for per-class arrays.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Everything decided about one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub class: OutcomeClass,
    pub disposition: Disposition,
    pub result: ReconcileResult,
    /// The plugin did its job (for the degraded tracker).
    pub healthy: bool,
    /// What went wrong, for health reports and logs; empty when healthy.
    pub detail: String,
}

impl Verdict {
    /// The verdict on a call that ended with `outcome`.
    pub fn of(outcome: &Outcome) -> Self {
        let failed = |class, detail: &str| Verdict {
            class,
            disposition: Disposition::Retry,
            result: ReconcileResult::Error,
            healthy: false,
            detail: detail.to_string(),
        };
        match outcome {
            Outcome::Ok(Action::Done) => Verdict {
                class: OutcomeClass::Done,
                disposition: Disposition::Forget,
                result: ReconcileResult::Success,
                healthy: true,
                detail: String::new(),
            },
            Outcome::Ok(Action::RequeueAfter(ms)) => Verdict {
                class: OutcomeClass::RequeueAfter,
                disposition: Disposition::RequeueAfter(Duration::from_millis(*ms)),
                result: ReconcileResult::RequeueAfter,
                healthy: true,
                detail: String::new(),
            },
            Outcome::Ok(Action::Error(e)) if e.retryable => {
                failed(OutcomeClass::GuestError, &e.message)
            }
            Outcome::Ok(Action::Error(e)) => Verdict {
                disposition: Disposition::Forget,
                ..failed(OutcomeClass::GuestErrorPermanent, &e.message)
            },
            Outcome::OutOfFuel => failed(OutcomeClass::OutOfFuel, "the fuel budget ran out"),
            Outcome::Deadline => failed(OutcomeClass::Deadline, "the call's deadline passed"),
            Outcome::OutOfMemory { message } => failed(OutcomeClass::OutOfMemory, message),
            Outcome::StackOverflow => failed(OutcomeClass::StackOverflow, "wasm stack overflow"),
            Outcome::GuestPanic { message } => failed(OutcomeClass::GuestPanic, message),
            Outcome::Trap { message } => failed(OutcomeClass::Trap, message),
            Outcome::HostFault { message } => failed(OutcomeClass::HostFault, message),
        }
    }

    /// The verdict on a call during which host code panicked; `message` is the panic payload.
    pub fn host_panic(message: &str) -> Self {
        Verdict {
            class: OutcomeClass::HostPanic,
            disposition: Disposition::Retry,
            result: ReconcileResult::Error,
            healthy: false,
            detail: message.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::ReconcileError;

    fn error(retryable: bool) -> Outcome {
        Outcome::Ok(Action::Error(ReconcileError {
            message: "boom".into(),
            retryable,
        }))
    }

    #[test]
    fn success_and_requeue_are_healthy() {
        let v = Verdict::of(&Outcome::Ok(Action::Done));
        assert_eq!(
            (v.class, v.disposition, v.result, v.healthy),
            (
                OutcomeClass::Done,
                Disposition::Forget,
                ReconcileResult::Success,
                true
            )
        );
        let v = Verdict::of(&Outcome::Ok(Action::RequeueAfter(1500)));
        assert_eq!(
            v.disposition,
            Disposition::RequeueAfter(Duration::from_millis(1500))
        );
        assert_eq!(v.result, ReconcileResult::RequeueAfter);
        assert!(v.healthy);
    }

    #[test]
    fn retryable_error_retries_and_permanent_error_forgets_but_counts_as_error() {
        let v = Verdict::of(&error(true));
        assert_eq!(v.class, OutcomeClass::GuestError);
        assert_eq!(v.disposition, Disposition::Retry);
        assert_eq!(v.result, ReconcileResult::Error);
        assert_eq!(v.detail, "boom");
        let v = Verdict::of(&error(false));
        assert_eq!(v.class, OutcomeClass::GuestErrorPermanent);
        assert_eq!(v.disposition, Disposition::Forget);
        assert_eq!(v.result, ReconcileResult::Error);
        assert!(!v.healthy);
    }

    #[test]
    fn every_fault_retries_as_an_error_under_the_sandbox_name() {
        let faults = [
            Outcome::OutOfFuel,
            Outcome::Deadline,
            Outcome::OutOfMemory {
                message: "m".into(),
            },
            Outcome::StackOverflow,
            Outcome::GuestPanic {
                message: "p".into(),
            },
            Outcome::Trap {
                message: "t".into(),
            },
            Outcome::HostFault {
                message: "h".into(),
            },
        ];
        for fault in faults {
            let v = Verdict::of(&fault);
            assert_eq!(v.class.label(), fault.name(), "{fault:?}");
            assert_eq!(v.disposition, Disposition::Retry, "{fault:?}");
            assert_eq!(v.result, ReconcileResult::Error, "{fault:?}");
            assert!(!v.healthy && !v.detail.is_empty(), "{fault:?}");
        }
    }

    #[test]
    fn class_labels_are_unique_and_indexes_match_all() {
        let mut labels: Vec<_> = OutcomeClass::ALL.iter().map(|c| c.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), OutcomeClass::ALL.len());
        for (i, class) in OutcomeClass::ALL.iter().enumerate() {
            assert_eq!(class.index(), i);
        }
    }
}
