//! One key's state machine, and how a new request merges into it.
//!
//! Each key with pending or in-flight work has exactly one [`Entry`], in its record in the key
//! table (`table.rs`); a key with neither has none (so an idle key costs no memory). The entry's
//! [`Phase`] says which structure currently holds the key's id, and the `seq` stored in it
//! identifies that one placement, so a stale copy left behind in a FIFO (after a priority raise,
//! say, or after the id was freed and reused for another key) is recognised and skipped. Seqs
//! are never reused.
//!
//! ```text
//!              add / add_low                       take
//!   (none) ─────────────────────────▶ Ready ──────────────────▶ InFlight ── finish, no redo ──▶ (none)
//!     │                                 ▲  ▲                       │
//!     │ add_after / add_rate_limited    │  │ due (not a retry,     │ any add while in flight:
//!     ▼                                 │  │  or no retry bucket)  │ merged into `redo`;
//!   Waiting ─── due, a retry ──▶ Gated ─┘  │                       │ finish places the redo
//!     └────────────────────────────────────┘                       ▼ (Ready / Waiting / Gated)
//! ```
//!
//! Merge rules (the queue's dedup contract; [`Request`] is what an add asks for):
//! * `Now(p)` on Ready raises the priority if `p` is higher; otherwise nothing changes.
//! * `Now(p)` on Waiting or Gated makes the key Ready now: an event overtakes a pending backoff
//!   or requeue-after. The failure count is kept, so the next failure backs off further; only a
//!   success resets it. (client-go instead keeps the stale timer, which fires a second,
//!   needless reconcile later.)
//! * `At(t)` on Waiting moves the due time earlier if `t` is earlier; never later.
//! * `At(t)` on Ready or Gated changes nothing: the key is already due.
//! * Anything on InFlight merges into `redo` (earliest wins, `Now` beats `At`, higher priority
//!   beats lower), and the redo is placed when the worker finishes. So a key is never held by
//!   two workers, and a key re-added while held runs again afterwards.

use super::priority::Priority;
use tokio::time::Instant;

/// What an add asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// Run as soon as possible at this priority.
    Now(Priority),
    /// Run at `due`; `retry` marks a rate-limited retry, which must also pass the retry bucket.
    At { due: Instant, retry: bool },
}

impl Request {
    /// The earlier of two requests; on a tie, the higher priority (for `Now`) or the existing
    /// request (for `At`).
    pub(crate) fn merge(self, other: Request) -> Request {
        match (self, other) {
            (Request::Now(a), Request::Now(b)) => Request::Now(a.max(b)),
            (now @ Request::Now(_), Request::At { .. })
            | (Request::At { .. }, now @ Request::Now(_)) => now,
            (a @ Request::At { due: da, .. }, b @ Request::At { due: db, .. }) => {
                if db < da {
                    b
                } else {
                    a
                }
            }
        }
    }
}

/// Where a key is, and the data that placement needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// In the delay set, due at `due`.
    Waiting { due: Instant, seq: u64, retry: bool },
    /// Due, a retry, waiting in the retry gate for a token.
    Gated { seq: u64 },
    /// In the ready FIFO of `priority` since `since` (queue-duration metric and aging).
    Ready {
        priority: Priority,
        since: Instant,
        seq: u64,
    },
    /// Held by a worker; `slot` is its in-flight slot (which keeps the start time); `taken` is
    /// the `seq` of the ready placement it was taken from, which names this hold in the
    /// worker's guard; `redo` is work requested while held.
    InFlight {
        slot: u32,
        taken: u64,
        redo: Option<Request>,
    },
}

/// One key's state.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub(crate) phase: Phase,
    /// Consecutive failures since the last success; drives the backoff.
    pub(crate) failures: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn merge_prefers_now_then_earliest_then_higher_priority() {
        let t0 = Instant::now();
        let at = |ms, retry| Request::At {
            due: t0 + Duration::from_millis(ms),
            retry,
        };
        let low = Request::Now(Priority::Low);
        let normal = Request::Now(Priority::Normal);
        assert_eq!(low.merge(normal), normal);
        assert_eq!(normal.merge(low), normal);
        assert_eq!(at(5, true).merge(low), low);
        assert_eq!(low.merge(at(5, true)), low);
        assert_eq!(at(5, true).merge(at(3, false)), at(3, false));
        assert_eq!(at(3, false).merge(at(5, true)), at(3, false));
        // Equal due: the existing request stands.
        assert_eq!(at(3, true).merge(at(3, false)), at(3, true));
    }
}
