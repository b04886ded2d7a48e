//! How a guest call ended, classified by root cause, and the report the worker receives.
//!
//! Classification looks at the error's cause chain, not at its message: fuel and stack
//! exhaustion are wasmtime `Trap` codes, the deadline and the memory cap are our own typed
//! errors raised from the epoch callback and the resource limiter (an out-of-memory is *not* a
//! `Trap`, see DESIGN), and a guest panic is an `unreachable` trap preceded by Rust's
//! "panicked at" on stderr (guests are built with panic=abort, so nothing unwinds to tell us).

use std::time::Duration;

use wasmtime::Trap;

use super::budget::Usage;
use super::call::DeadlineExceeded;
use super::host::Action;
use super::limits::CapExceeded;

/// How a call ended. Every call ends in exactly one of these; none of them affects the host or
/// the next call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The guest returned: done, requeue-after, or its own error.
    Ok(Action),
    /// The fuel budget ran out.
    OutOfFuel,
    /// The wall-clock deadline passed, in guest code or while waiting in a host call.
    Deadline,
    /// The guest tried to grow its memory (or tables) past its cap.
    OutOfMemory { message: String },
    /// The guest recursed past the wasm stack cap.
    StackOverflow,
    /// The guest panicked; `message` is the panic location and message from its stderr.
    GuestPanic { message: String },
    /// Any other trap or guest fault (bad memory access, invalid result, ...), with its message.
    Trap { message: String },
    /// The host could not run the call (for example the instance pool is full). Not the
    /// guest's fault; retry later.
    HostFault { message: String },
}

impl Outcome {
    /// A short stable name, for metrics labels and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Ok(Action::Done) => "done",
            Outcome::Ok(Action::RequeueAfter(_)) => "requeue_after",
            Outcome::Ok(Action::Error(_)) => "guest_error",
            Outcome::OutOfFuel => "out_of_fuel",
            Outcome::Deadline => "deadline",
            Outcome::OutOfMemory { .. } => "out_of_memory",
            Outcome::StackOverflow => "stack_overflow",
            Outcome::GuestPanic { .. } => "guest_panic",
            Outcome::Trap { .. } => "trap",
            Outcome::HostFault { .. } => "host_fault",
        }
    }
}

/// Everything the worker learns from one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallReport {
    pub outcome: Outcome,
    /// Fuel consumed, instantiation included.
    pub fuel_used: u64,
    /// Wall time from the start of instantiation to the end of the call.
    pub wall_time: Duration,
    /// Host calls, bytes, writes and logs the guest made the host handle.
    pub usage: Usage,
    /// Bytes of stdout and stderr dropped past the stdio cap.
    pub stdio_dropped_bytes: u64,
}

/// Where in the call an error arose; an error while instantiating that is not a guest fault is
/// the host's (the pool is full), the same error later cannot be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Instantiate,
    Call,
}

/// Classifies a failed call. `stderr` is what the guest printed (head and tail), used only to
/// tell a panic from other `unreachable` traps.
pub fn classify(error: &wasmtime::Error, phase: Phase, stderr: &str) -> Outcome {
    if error.downcast_ref::<DeadlineExceeded>().is_some() {
        return Outcome::Deadline;
    }
    if let Some(cap) = error.downcast_ref::<CapExceeded>() {
        return Outcome::OutOfMemory {
            message: cap.to_string(),
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Outcome::OutOfFuel,
        Some(Trap::StackOverflow) => Outcome::StackOverflow,
        Some(Trap::Interrupt) => Outcome::Deadline,
        Some(Trap::UnreachableCodeReached) => match panic_message(stderr) {
            Some(message) => Outcome::GuestPanic { message },
            None => Outcome::Trap {
                message: full_message(error),
            },
        },
        Some(_) => Outcome::Trap {
            message: full_message(error),
        },
        None if phase == Phase::Instantiate => Outcome::HostFault {
            message: full_message(error),
        },
        None => Outcome::Trap {
            message: full_message(error),
        },
    }
}

/// The error and its causes on one line; wasmtime puts the useful part ("string is not valid
/// utf-8", the trap code) in the causes, and a backtrace in the context.
fn full_message(error: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        // Backtraces are multi-line; keep their first line (the frame count) only.
        let first = text.lines().next().unwrap_or_default().to_string();
        if !parts.contains(&first) {
            parts.push(first);
        }
    }
    parts.join(": ")
}

/// Longest panic message kept in an outcome.
const PANIC_MESSAGE_MAX: usize = 1024;

/// Finds Rust's panic report ("thread '...' panicked at src/lib.rs:1:2:\nmessage") in what the
/// guest printed to stderr and returns "src/lib.rs:1:2: message".
pub fn panic_message(stderr: &str) -> Option<String> {
    const MARK: &str = "panicked at ";
    let at = stderr.rfind(MARK)? + MARK.len();
    let mut lines = stderr[at..].lines();
    let location = lines.next().unwrap_or_default().trim_end_matches(':');
    let message = lines.next().unwrap_or_default();
    let mut text = if message.is_empty() {
        location.to_string()
    } else {
        format!("{location}: {message}")
    };
    if text.len() > PANIC_MESSAGE_MAX {
        let mut cut = PANIC_MESSAGE_MAX;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuel_and_stack_traps_are_classified_by_code() {
        let e = wasmtime::Error::new(Trap::OutOfFuel);
        assert_eq!(classify(&e, Phase::Call, ""), Outcome::OutOfFuel);
        let e = wasmtime::Error::new(Trap::StackOverflow).context("in reconcile");
        assert_eq!(classify(&e, Phase::Call, ""), Outcome::StackOverflow);
    }

    #[test]
    fn deadline_and_memory_cap_are_found_under_context() {
        let e = wasmtime::Error::new(DeadlineExceeded).context("wasm backtrace");
        assert_eq!(classify(&e, Phase::Call, ""), Outcome::Deadline);
        let cap = CapExceeded::Memory {
            current: 0,
            desired: 2,
            held: 0,
            cap: 1,
        };
        let e = wasmtime::Error::new(cap.clone()).context("wasm backtrace");
        assert_eq!(
            classify(&e, Phase::Instantiate, ""),
            Outcome::OutOfMemory {
                message: cap.to_string()
            }
        );
    }

    #[test]
    fn unreachable_is_a_panic_only_when_stderr_says_so() {
        let e = wasmtime::Error::new(Trap::UnreachableCodeReached);
        let stderr = "noise\nthread '<unnamed>' panicked at src/lib.rs:7:9:\nboom on purpose\n";
        assert_eq!(
            classify(&e, Phase::Call, stderr),
            Outcome::GuestPanic {
                message: "src/lib.rs:7:9: boom on purpose".into()
            }
        );
        match classify(&e, Phase::Call, "just some output") {
            Outcome::Trap { message } => assert!(message.contains("unreachable"), "{message}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_errors_are_traps_in_the_call_and_host_faults_while_instantiating() {
        let e = wasmtime::Error::msg("maximum concurrent instance limit of 1 reached");
        assert!(matches!(
            classify(&e, Phase::Instantiate, ""),
            Outcome::HostFault { .. }
        ));
        let e = wasmtime::Error::msg("invalid utf-8").context("failed to lift result");
        match classify(&e, Phase::Call, "") {
            Outcome::Trap { message } => {
                assert_eq!(message, "failed to lift result: invalid utf-8")
            }
            other => panic!("{other:?}"),
        }
        let e = wasmtime::Error::new(Trap::MemoryOutOfBounds);
        assert!(matches!(
            classify(&e, Phase::Instantiate, ""),
            Outcome::Trap { .. }
        ));
    }

    #[test]
    fn panic_message_is_bounded_and_takes_the_last_report() {
        let long = "x".repeat(5000);
        let stderr = format!("panicked at a.rs:1:1:\nfirst\npanicked at b.rs:2:2:\n{long}\n");
        let m = panic_message(&stderr).unwrap();
        assert!(m.starts_with("b.rs:2:2: x"));
        assert_eq!(m.len(), PANIC_MESSAGE_MAX);
        assert_eq!(panic_message("no panic here"), None);
    }
}
