//! Where a pool's workers, and so its guests, run.
//!
//! The issue asks that guests run "where they cannot delay the event path or each other
//! (dedicated executor or bounded permits; measure which)". Candidates, all behind
//! [`GuestExecutor`] and running the same worker code:
//!
//! * [`GuestExecutor::Host`]: the runtime the pool is started on, which also runs the
//!   informers (the event path).
//! * [`GuestExecutor::Shared`]: one separate runtime for the guests of every plugin.
//! * [`GuestExecutor::PerPlugin`] (the default): a separate runtime for each plugin's pool.
//!
//! What the measurement showed (docs/benchmarks/worker.md): a guest yields on every epoch tick,
//! but a yielding guest wakes itself, so a runtime busy with spinning guests is never idle and
//! its threads move from one guest slice (up to a tick, 5 ms) to the next. A task woken from
//! *outside* that runtime (an informer event waking a worker, bytes from the network waking
//! the event path) goes to the runtime's injection queue, which a busy worker thread looks at
//! only between polls, every few polls, competing with the ready guests. So on any runtime
//! shared with looping guests, everything else waits whole ticks: on the host runtime, the
//! event path; on one shared guest runtime, the *other plugins*. With a runtime per plugin the
//! only contention left is the OS scheduler's, which runs a thread woken from sleep promptly
//! (Linux CFS favours it over threads that used their slice). A bounded-permit scheme on one
//! runtime cannot help: the permits would be held by the looping guests for their whole
//! deadline.
//!
//! The per-plugin runtime also caps how much CPU a plugin can take: `min(threads, workers)`
//! threads, whatever its worker count. The default gives each plugin half the cores: with 16
//! looping guests on 2 cores, 1 guest thread kept the other plugin's p99 reaction at 2.3 ms
//! and the event path's p99 at 0.27 ms, against 3.9 ms and 1.4 ms with 2 threads, for a
//! cheap-guest throughput within the run's noise. The cost is threads: one small runtime per
//! plugin.

use std::sync::Arc;

use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;

/// A tokio runtime for guests only. Cheap to clone; the runtime stops when the last clone
/// (and every pool holding one) is gone.
#[derive(Clone, Debug)]
pub struct DedicatedRuntime {
    owner: Arc<RuntimeOwner>,
}

#[derive(Debug)]
struct RuntimeOwner {
    runtime: Option<Runtime>,
    threads: usize,
}

impl Drop for RuntimeOwner {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks stop, which panics inside another runtime
        // (where the last pool is usually dropped). Workers hold nothing that needs a graceful
        // end: their keys are finished by the guards' destructors when the tasks are dropped.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl DedicatedRuntime {
    /// A multi-thread runtime with `threads` (at least 1) worker threads named
    /// `trellis-guest`.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        Self::named("trellis-guest", threads)
    }

    /// Like [`new`](Self::new), with threads named `name` (Linux shows 15 bytes of it).
    pub fn named(name: &str, threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(name)
            .on_thread_start(lower_priority)
            .enable_all()
            .build()?;
        Ok(Self {
            owner: Arc::new(RuntimeOwner {
                runtime: Some(runtime),
                threads,
            }),
        })
    }

    pub fn threads(&self) -> usize {
        self.owner.threads
    }

    pub fn handle(&self) -> &Handle {
        match &self.owner.runtime {
            Some(runtime) => runtime.handle(),
            None => unreachable!("the runtime is only taken when the owner is dropped"),
        }
    }
}

/// Makes the calling thread yield the CPU to the host's own threads: guest threads run at
/// nice 10, so under CPU contention the event path, the API I/O and the metrics server (nice
/// 0) are scheduled first and a spinning guest only gets what they leave. Best effort: a
/// failure (no permission is needed to lower one's own priority) leaves the thread as is.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority with PRIO_PROCESS and who = 0 changes only the calling thread on
    // Linux (nice values are per thread there); it takes no pointers.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, GUEST_NICE);
    }
}

/// The nice value of guest threads (see [`lower_priority`]).
#[cfg(target_os = "linux")]
const GUEST_NICE: libc::c_int = 10;

/// Where workers run; see the module docs.
#[derive(Clone, Debug)]
pub enum GuestExecutor {
    /// The runtime `Pool::start` is called on.
    Host,
    /// This runtime, shared by every pool given a clone of it.
    Shared(DedicatedRuntime),
    /// A runtime of its own for each pool, with `min(threads, workers)` threads.
    PerPlugin { threads: usize },
}

impl Default for GuestExecutor {
    /// The measured choice: a runtime per plugin with half the cores (at least one), so one
    /// plugin's guests can never occupy every core.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::PerPlugin {
            threads: (cores / 2).max(1),
        }
    }
}

impl GuestExecutor {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Shared(_) => "shared",
            Self::PerPlugin { .. } => "per-plugin",
        }
    }

    /// Where the pool of `plugin` with `workers` workers runs; starts its runtime if it gets
    /// one of its own.
    pub(crate) fn place(&self, plugin: &str, workers: usize) -> std::io::Result<Placement> {
        Ok(match self {
            Self::Host => Placement::Host,
            Self::Shared(runtime) => Placement::Runtime(runtime.clone()),
            Self::PerPlugin { threads } => Placement::Runtime(DedicatedRuntime::named(
                &format!("guest-{plugin}"),
                (*threads).min(workers),
            )?),
        })
    }
}

/// Where one pool's workers run. Holding it keeps a dedicated runtime alive.
#[derive(Debug)]
pub(crate) enum Placement {
    Host,
    Runtime(DedicatedRuntime),
}

impl Placement {
    /// Spawns a worker. `host` is the runtime the pool was started on.
    pub(crate) fn spawn<F>(&self, host: &Handle, task: F) -> JoinHandle<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        match self {
            Self::Host => host.spawn(task),
            Self::Runtime(runtime) => runtime.handle().spawn(task),
        }
    }

    /// Threads of a dedicated runtime; `None` on the host runtime.
    pub(crate) fn threads(&self) -> Option<usize> {
        match self {
            Self::Host => None,
            Self::Runtime(runtime) => Some(runtime.threads()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_name() -> Option<String> {
        std::thread::current().name().map(str::to_string)
    }

    #[tokio::test]
    async fn per_plugin_runtimes_are_the_pools_own_with_threads_capped_by_workers() {
        let executor = GuestExecutor::PerPlugin { threads: 4 };
        let placement = executor.place("web", 2).unwrap();
        assert_eq!(placement.threads(), Some(2));
        let other = executor.place("db", 8).unwrap();
        assert_eq!(other.threads(), Some(4));
        let name = placement
            .spawn(&Handle::current(), async {
                assert_eq!(thread_name().as_deref(), Some("guest-web"));
            })
            .await;
        assert!(name.is_ok());
        // Dropping the last handle inside this runtime must not panic.
        drop(placement);
        drop(other);
    }

    #[tokio::test]
    async fn a_shared_runtime_is_one_runtime_for_every_pool() {
        let executor = GuestExecutor::Shared(DedicatedRuntime::new(1).unwrap());
        let a = executor.place("a", 4).unwrap();
        let b = executor.place("b", 4).unwrap();
        let id = |p: &Placement| match p {
            Placement::Runtime(r) => r.handle().id(),
            Placement::Host => unreachable!(),
        };
        assert_eq!(id(&a), id(&b));
        let ran = a
            .spawn(&Handle::current(), async {
                assert_eq!(thread_name().as_deref(), Some("trellis-guest"));
            })
            .await;
        assert!(ran.is_ok());
    }

    #[tokio::test]
    async fn host_tasks_run_on_the_given_runtime() {
        let placement = GuestExecutor::Host.place("web", 4).unwrap();
        assert_eq!(placement.threads(), None);
        let id = Handle::current().id();
        let seen = placement
            .spawn(&Handle::current(), async move {
                assert_eq!(Handle::current().id(), id);
            })
            .await;
        assert!(seen.is_ok());
    }

    #[test]
    fn the_default_is_a_runtime_per_plugin_with_half_the_cores() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        match GuestExecutor::default() {
            GuestExecutor::PerPlugin { threads } => assert_eq!(threads, (cores / 2).max(1)),
            other => panic!("{other:?}"),
        }
    }
}
