//! Per-call accounting of what a guest makes the host do (DESIGN invariant 4).
//!
//! The [`Meter`] sits between the guest's imports and the [`PluginHost`](super::PluginHost)
//! implementation, so every implementation is charged the same way and a guest cannot make the
//! host do unbounded work:
//!
//! - every cache read, write and event is a host call; past `host_calls` the import answers
//!   `budget-exceeded` without reaching the implementation;
//! - every byte handed back to the guest is charged to `returned_bytes`. A read whose answer
//!   would not fit in what is left returns nothing and *spends the rest of the byte budget*:
//!   otherwise a guest could ask for a 100k-object list in a loop and have the host build it
//!   each time, only for the sandbox to refuse it each time;
//! - writes and events are charged to `writes` before they are attempted (a failed write still
//!   made the host talk to the API server);
//! - log lines are truncated to what is left of `log_bytes` and dropped (counted) once it is
//!   spent; each line costs [`LOG_LINE_OVERHEAD`] on top of its text.
//!
//! States of each budget: *available* -> *spent*. A spent budget never becomes available again
//! within a call; a new call starts a new meter.

use super::config::Budgets;

/// What a log line costs beyond its text, so that a flood of empty lines still runs out.
pub const LOG_LINE_OVERHEAD: u64 = 64;

/// The kind of host call being admitted, which decides which budgets it draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// A cache read: needs a host call and some byte budget left.
    Read,
    /// A write or an event: needs a host call and a write.
    Write,
}

/// Why a host call was refused. Its `Display` is the message the guest receives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("host-call budget spent: {limit} calls allowed per reconcile")]
    HostCalls { limit: u32 },
    #[error("write budget spent: {limit} writes and events allowed per reconcile")]
    Writes { limit: u32 },
    #[error("returned-bytes budget spent: {limit} bytes allowed per reconcile")]
    BytesSpent { limit: u64 },
    #[error(
        "answer of {answer} bytes exceeds the {remaining} bytes left of the returned-bytes budget; \
         the budget is now spent"
    )]
    AnswerTooLarge { answer: u64, remaining: u64 },
}

/// What a call consumed; part of every [`CallReport`](super::CallReport).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Host calls admitted (reads, writes, events), refused ones excluded.
    pub host_calls: u32,
    /// Host calls answered `budget-exceeded` by the meter.
    pub refused_calls: u32,
    /// Bytes handed back to the guest.
    pub returned_bytes: u64,
    /// Writes and events admitted.
    pub writes: u32,
    /// Log bytes charged (text kept plus per-line overhead).
    pub log_bytes: u64,
    /// Log lines dropped because the log budget was spent.
    pub log_lines_dropped: u32,
    /// Log lines whose text was cut to fit the log budget.
    pub log_lines_truncated: u32,
}

/// How much of a log line may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogAdmission {
    /// All of it.
    Whole,
    /// Only this many bytes of its text (cut on a char boundary by the caller).
    Truncated(usize),
    /// None: the log budget is spent.
    Dropped,
}

/// The per-call meter. One per [`Store`](wasmtime::Store), so no locking.
#[derive(Debug, Clone)]
pub struct Meter {
    limits: Limits,
    used: Usage,
    bytes_spent: bool,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    host_calls: u32,
    returned_bytes: u64,
    writes: u32,
    log_bytes: u64,
}

impl Meter {
    pub fn new(budgets: &Budgets) -> Self {
        Self {
            limits: Limits {
                host_calls: budgets.host_calls,
                returned_bytes: budgets.returned_bytes,
                writes: budgets.writes,
                log_bytes: budgets.log_bytes,
            },
            used: Usage::default(),
            bytes_spent: false,
        }
    }

    pub fn usage(&self) -> Usage {
        self.used
    }

    /// Admits a host call of `kind`, charging it, or refuses it (charging nothing but the
    /// refusal count) when any budget it needs is spent.
    pub fn admit(&mut self, kind: CallKind) -> Result<(), Refusal> {
        let refusal = if self.used.host_calls >= self.limits.host_calls {
            Some(Refusal::HostCalls {
                limit: self.limits.host_calls,
            })
        } else if kind == CallKind::Write && self.used.writes >= self.limits.writes {
            Some(Refusal::Writes {
                limit: self.limits.writes,
            })
        } else if kind == CallKind::Read && self.bytes_spent {
            Some(Refusal::BytesSpent {
                limit: self.limits.returned_bytes,
            })
        } else {
            None
        };
        if let Some(refusal) = refusal {
            self.used.refused_calls += 1;
            return Err(refusal);
        }
        self.used.host_calls += 1;
        if kind == CallKind::Write {
            self.used.writes += 1;
        }
        Ok(())
    }

    /// Bytes that may still be handed back; passed to the implementation as a hint so it can
    /// stop building an answer that will be refused anyway.
    pub fn remaining_bytes(&self) -> u64 {
        self.limits.returned_bytes - self.used.returned_bytes
    }

    /// Charges a read's answer. One that does not fit is refused and spends the byte budget
    /// (see the module docs for why).
    pub fn charge_read(&mut self, bytes: u64) -> Result<(), Refusal> {
        let remaining = self.remaining_bytes();
        if bytes > remaining {
            self.used.returned_bytes = self.limits.returned_bytes;
            self.bytes_spent = true;
            return Err(Refusal::AnswerTooLarge {
                answer: bytes,
                remaining,
            });
        }
        self.used.returned_bytes += bytes;
        if self.remaining_bytes() == 0 {
            self.bytes_spent = true;
        }
        Ok(())
    }

    /// Charges the object a write hands back. The write already happened, so its answer is
    /// never withheld; the charge saturates and spends the byte budget if it does not fit.
    pub fn charge_write_answer(&mut self, bytes: u64) {
        if bytes >= self.remaining_bytes() {
            self.used.returned_bytes = self.limits.returned_bytes;
            self.bytes_spent = true;
        } else {
            self.used.returned_bytes += bytes;
        }
    }

    /// Decides how much of a log line with `text_bytes` of text may be written, and charges it.
    pub fn admit_log(&mut self, text_bytes: usize) -> LogAdmission {
        let remaining = self.limits.log_bytes - self.used.log_bytes;
        if remaining < LOG_LINE_OVERHEAD {
            self.used.log_bytes = self.limits.log_bytes;
            self.used.log_lines_dropped += 1;
            return LogAdmission::Dropped;
        }
        let room = remaining - LOG_LINE_OVERHEAD;
        let text = text_bytes as u64;
        if text <= room {
            self.used.log_bytes += LOG_LINE_OVERHEAD + text;
            LogAdmission::Whole
        } else {
            self.used.log_bytes = self.limits.log_bytes;
            self.used.log_lines_truncated += 1;
            // `room < text_bytes`, which is a usize, so this fits.
            LogAdmission::Truncated(room as usize)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meter(f: impl FnOnce(&mut Budgets)) -> Meter {
        let mut b = Budgets::default();
        f(&mut b);
        Meter::new(&b)
    }

    #[test]
    fn host_calls_are_refused_once_spent_and_refusals_are_not_charged() {
        let mut m = meter(|b| b.host_calls = 2);
        m.admit(CallKind::Read).unwrap();
        m.admit(CallKind::Write).unwrap();
        assert_eq!(
            m.admit(CallKind::Read),
            Err(Refusal::HostCalls { limit: 2 })
        );
        assert_eq!(
            m.admit(CallKind::Write),
            Err(Refusal::HostCalls { limit: 2 })
        );
        let u = m.usage();
        assert_eq!((u.host_calls, u.writes, u.refused_calls), (2, 1, 2));
    }

    #[test]
    fn writes_are_refused_once_spent_but_reads_go_on() {
        let mut m = meter(|b| b.writes = 1);
        m.admit(CallKind::Write).unwrap();
        assert_eq!(m.admit(CallKind::Write), Err(Refusal::Writes { limit: 1 }));
        m.admit(CallKind::Read).unwrap();
        assert_eq!(m.usage().writes, 1);
    }

    #[test]
    fn an_answer_that_does_not_fit_spends_the_byte_budget() {
        let mut m = meter(|b| b.returned_bytes = 100);
        m.admit(CallKind::Read).unwrap();
        m.charge_read(40).unwrap();
        assert_eq!(m.remaining_bytes(), 60);
        m.admit(CallKind::Read).unwrap();
        assert_eq!(
            m.charge_read(61),
            Err(Refusal::AnswerTooLarge {
                answer: 61,
                remaining: 60
            })
        );
        // A further read is refused before reaching the implementation, even a small one.
        assert_eq!(
            m.admit(CallKind::Read),
            Err(Refusal::BytesSpent { limit: 100 })
        );
        assert_eq!(m.usage().returned_bytes, 100);
        // Writes do not need byte budget to be attempted.
        m.admit(CallKind::Write).unwrap();
    }

    #[test]
    fn an_answer_that_fits_exactly_is_returned_and_spends_the_budget() {
        let mut m = meter(|b| b.returned_bytes = 10);
        m.charge_read(10).unwrap();
        assert_eq!(
            m.admit(CallKind::Read),
            Err(Refusal::BytesSpent { limit: 10 })
        );
    }

    #[test]
    fn write_answers_saturate_the_byte_budget() {
        let mut m = meter(|b| b.returned_bytes = 10);
        m.charge_write_answer(4);
        assert_eq!(m.remaining_bytes(), 6);
        m.charge_write_answer(1000);
        assert_eq!(m.remaining_bytes(), 0);
        assert!(m.admit(CallKind::Read).is_err());
    }

    #[test]
    fn logs_are_truncated_then_dropped_and_empty_lines_are_not_free() {
        let mut m = meter(|b| b.log_bytes = 3 * LOG_LINE_OVERHEAD + 10);
        assert_eq!(m.admit_log(0), LogAdmission::Whole);
        assert_eq!(m.admit_log(5), LogAdmission::Whole);
        // LOG_LINE_OVERHEAD + 5 left: the text is cut to 5 bytes.
        assert_eq!(m.admit_log(1000), LogAdmission::Truncated(5));
        assert_eq!(m.admit_log(0), LogAdmission::Dropped);
        assert_eq!(m.admit_log(0), LogAdmission::Dropped);
        let u = m.usage();
        assert_eq!(u.log_bytes, 3 * LOG_LINE_OVERHEAD + 10);
        assert_eq!((u.log_lines_truncated, u.log_lines_dropped), (1, 2));
    }

    #[test]
    fn a_flood_of_empty_log_lines_runs_out() {
        let mut m = meter(|b| b.log_bytes = 64 * 1024);
        let admitted = (0..100_000)
            .take_while(|_| m.admit_log(0) != LogAdmission::Dropped)
            .count();
        assert_eq!(admitted as u64, 64 * 1024 / LOG_LINE_OVERHEAD);
    }
}
