//! The per-plugin work queue: client-go's workqueue contract, without its known failures.
//!
//! Every plugin gets its own [`WorkQueue`]. The informer adds keys (synchronously, never
//! blocking: DESIGN invariant 1); workers take them with `next().await` and hold a [`Guard`]
//! while they reconcile; the guard's outcome decides what happens next.
//!
//! Contract (each point is tested; see docs/queue.md for the full text and the reasoning):
//! * **Dedup**: a key added many times before it is taken is processed once.
//! * **Never concurrent**: a key is held by at most one worker; a key added while held runs
//!   again after the worker finishes.
//! * **Done on every path**: dropping a guard without an outcome (error return, panic,
//!   cancellation, timeout, shutdown) finishes the key as a failure, so it is retried.
//! * **FIFO within a priority** (within a namespace when fairness is on).
//! * **Backoff vs events**: an event for a key waiting on its backoff makes it due now; the
//!   failure count is kept until a success, so backoff is neither erased nor inflated.
//! * **Limits**: per-key exponential backoff (5 ms .. 1000 s), a token bucket on retries (10 qps,
//!   burst 100), an optional token bucket on every take; all per plugin.
//! * **Priority with aging**: low-priority keys (initial list, relist, resync) wait behind
//!   normal ones for at most the aging bound (60 s), then get at least every other take.
//! * **Shutdown**: stop intake, let held keys finish within a deadline, report what was left.
//!
//! One file per concept, like client-go's util/workqueue:
//!
//! | module          | concept                                                         |
//! |-----------------|-----------------------------------------------------------------|
//! | `key`           | what a key must provide; the host's [`ObjectKey`]               |
//! | `config`        | per-plugin configuration, client-go defaults, validation        |
//! | `entry`         | one key's state machine and the merge (dedup) rules             |
//! | `state`         | every transition, synchronous, time passed in                   |
//! | `table`         | each key stored once, named by a small id                       |
//! | `index`         | the table's index: ids by hash tag, one cache line per probe    |
//! | `work_queue`    | sync adds, async takes, wake-ups                                |
//! | `guard`         | done-on-every-path                                              |
//! | `delaying`      | requeue-after and backoff delays                                |
//! | `rate_limiting` | the retry gate on the retry token bucket                        |
//! | `limiters`      | backoff arithmetic; governor token buckets                      |
//! | `clock`         | a lazily read now; governor on tokio time                       |
//! | `priority`      | low/normal levels and aging                                     |
//! | `fairness`      | plain or namespace round-robin FIFOs                            |
//! | `in_flight`     | start times of held keys                                        |
//! | `metrics`       | controller-runtime compatible metrics                           |
//! | `shutdown`      | graceful shutdown and its report                                |

mod clock;
mod config;
mod delaying;
mod entry;
mod fairness;
mod guard;
mod in_flight;
mod index;
mod key;
mod limiters;
mod metrics;
mod priority;
mod rate_limiting;
mod shutdown;
mod state;
mod table;
mod work_queue;

pub use config::{BackoffConfig, DEFAULT_AGING, QueueConfig, QueueError, RateLimit};
pub use delaying::MAX_DELAY;
pub use guard::Guard;
pub use in_flight::InFlightStats;
pub use key::{ObjectKey, QueueKey};
pub use limiters::Backoff;
pub use metrics::QueueMetrics;
pub use priority::Priority;
pub use shutdown::ShutdownReport;
pub use state::{AddOutcome, Outcome, QueueStats};
pub use work_queue::WorkQueue;
