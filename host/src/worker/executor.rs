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
//!
//! Guest threads also run at a lower OS priority ([`Nice`], 10 by default), so under CPU
//! contention the host's own threads are scheduled first. On a machine shared with other
//! processes that also yields to all of them, so the priority, like the placement, is the
//! operator's choice: `host.guests` in the config ([`GuestSettings`], docs/config.md), carried
//! by the [`GuestExecutor`] into each runtime's thread start, never set process-wide.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;

/// The most guest threads one runtime may have (`host.guests.threads`): far above any core
/// count this runs on, low enough that a typo cannot ask for a million threads.
pub const MAX_GUEST_THREADS: usize = 1024;

/// The nice value of guest threads: 0 (the host's own priority) to 19 (the lowest).
///
/// Why guests run below the host at all: under CPU contention the event path (informers and
/// their watches) and the metrics server (nice 0) are scheduled first and a spinning guest
/// only gets what they leave. The host calls' own requests run at this value too
/// (`hostcalls/io.rs`). In a pod (its own cgroup) that only yields to the host's own threads.
/// On a shared machine (a laptop, a VM without per-service cgroups) it also yields to every
/// other process, which can cost more than it protects (docs/workers.md has the numbers), so
/// operators choose.
///
/// The value is absolute, like `nice`/`top` show it, for a host that normally runs at 0.
/// Negative values (above the host) are not offered: guests must never outrank the event path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nice(u8);

impl Nice {
    /// The measured default: guests yield to the host's threads.
    pub const DEFAULT: Nice = Nice(10);
    /// The host's own priority.
    pub const HOST: Nice = Nice(0);
    /// The lowest priority Linux has.
    pub const LOWEST: Nice = Nice(19);

    /// `value` if it is within 0..=19.
    pub fn new(value: i64) -> Result<Nice, NiceError> {
        match u8::try_from(value) {
            Ok(nice) if nice <= Self::LOWEST.0 => Ok(Nice(nice)),
            _ => Err(NiceError(value)),
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for Nice {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for Nice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A nice value outside 0..=19.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0} is out of range: expected 0 (the host's own priority) to 19 (the lowest); the default \
     is 10"
)]
pub struct NiceError(pub i64);

/// Half the cores, at least 1: the measured default thread count of a plugin's runtime.
pub fn default_guest_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cores / 2).max(1)
}

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
    nice: Nice,
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
    /// `trellis-guest`, at the default nice value.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        Self::with_nice(threads, Nice::DEFAULT)
    }

    /// Like [`new`](Self::new), with threads at `nice`.
    pub fn with_nice(threads: usize, nice: Nice) -> std::io::Result<Self> {
        Self::named("trellis-guest", threads, nice)
    }

    /// A runtime whose threads are named `name` (Linux shows 15 bytes of it) and run at `nice`
    /// (every thread of it: workers and blocking threads alike).
    pub fn named(name: &str, threads: usize, nice: Nice) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let refused = Arc::new(AtomicBool::new(false));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(name)
            .on_thread_start(move || set_nice(nice, &refused))
            .enable_all()
            .build()?;
        Ok(Self {
            owner: Arc::new(RuntimeOwner {
                runtime: Some(runtime),
                threads,
                nice,
            }),
        })
    }

    pub fn threads(&self) -> usize {
        self.owner.threads
    }

    /// The nice value its threads were asked to run at.
    pub fn nice(&self) -> Nice {
        self.owner.nice
    }

    pub fn handle(&self) -> &Handle {
        match &self.owner.runtime {
            Some(runtime) => runtime.handle(),
            None => unreachable!("the runtime is only taken when the owner is dropped"),
        }
    }
}

/// Sets the calling thread's nice value (see [`Nice`]). Best effort: raising one's own nice
/// value needs no permission, but going below the value inherited from the process (a host
/// started with `nice -n 5` asked for guests at 0) needs CAP_SYS_NICE; refused, the thread
/// keeps the inherited value, which is warned about once per runtime (`refused`).
fn set_nice(nice: Nice, refused: &AtomicBool) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority with PRIO_PROCESS and who = 0 changes only the calling thread on
        // Linux (nice values are per thread there); it takes no pointers.
        let result =
            unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, libc::c_int::from(nice.get())) };
        if result != 0 && !refused.swap(true, Ordering::Relaxed) {
            let error = std::io::Error::last_os_error();
            tracing::warn!(
                nice = nice.get(),
                %error,
                "cannot set the guest threads' nice value; they keep the host's"
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (nice, refused);
}

/// Where workers run; see the module docs.
#[derive(Clone, Debug)]
pub enum GuestExecutor {
    /// The runtime `Pool::start` is called on.
    Host,
    /// This runtime, shared by every pool given a clone of it.
    Shared(DedicatedRuntime),
    /// A runtime of its own for each pool, with `min(threads, workers)` threads at `nice`.
    PerPlugin { threads: usize, nice: Nice },
}

impl Default for GuestExecutor {
    /// The measured choice: a runtime per plugin with half the cores (at least one), so one
    /// plugin's guests can never occupy every core, at nice 10.
    fn default() -> Self {
        Self::PerPlugin {
            threads: default_guest_threads(),
            nice: Nice::DEFAULT,
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

    /// Guest threads: of the shared runtime, or the most of each plugin's runtime; `None` on
    /// the host runtime.
    pub fn threads(&self) -> Option<usize> {
        match self {
            Self::Host => None,
            Self::Shared(runtime) => Some(runtime.threads()),
            Self::PerPlugin { threads, .. } => Some(*threads),
        }
    }

    /// The guest threads' nice value; `None` on the host runtime (the host's own).
    pub fn nice(&self) -> Option<Nice> {
        match self {
            Self::Host => None,
            Self::Shared(runtime) => Some(runtime.nice()),
            Self::PerPlugin { nice, .. } => Some(*nice),
        }
    }

    /// Where the pool of `plugin` with `workers` workers runs; starts its runtime if it gets
    /// one of its own.
    pub(crate) fn place(&self, plugin: &str, workers: usize) -> std::io::Result<Placement> {
        Ok(match self {
            Self::Host => Placement::Host,
            Self::Shared(runtime) => Placement::Runtime(runtime.clone()),
            Self::PerPlugin { threads, nice } => Placement::Runtime(DedicatedRuntime::named(
                &format!("guest-{plugin}"),
                (*threads).min(workers),
                *nice,
            )?),
        })
    }
}

/// What `host.guests` in the config chooses: where guests run, on how many threads, at which
/// priority. [`start`](Self::start) makes the [`GuestExecutor`] of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestSettings {
    pub executor: ExecutorKind,
    /// Per plugin ([`ExecutorKind::PerPlugin`], capped by its workers) or in total
    /// ([`ExecutorKind::Shared`]); 1 to [`MAX_GUEST_THREADS`].
    pub threads: usize,
    pub nice: Nice,
}

/// The executors a config may choose ([`GuestExecutor::Host`] is for tests: it lets guests
/// delay the event path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutorKind {
    PerPlugin,
    Shared,
}

impl Default for GuestSettings {
    /// What [`GuestExecutor::default`] is.
    fn default() -> Self {
        Self {
            executor: ExecutorKind::PerPlugin,
            threads: default_guest_threads(),
            nice: Nice::DEFAULT,
        }
    }
}

impl GuestSettings {
    /// The executor: a shared runtime is started here, per-plugin runtimes by each pool.
    pub fn start(&self) -> std::io::Result<GuestExecutor> {
        Ok(match self.executor {
            ExecutorKind::PerPlugin => GuestExecutor::PerPlugin {
                threads: self.threads,
                nice: self.nice,
            },
            ExecutorKind::Shared => {
                GuestExecutor::Shared(DedicatedRuntime::with_nice(self.threads, self.nice)?)
            }
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
        let executor = GuestExecutor::PerPlugin {
            threads: 4,
            nice: Nice::DEFAULT,
        };
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
            GuestExecutor::PerPlugin { threads, nice } => {
                assert_eq!(threads, (cores / 2).max(1));
                assert_eq!(nice, Nice::DEFAULT);
            }
            other => panic!("{other:?}"),
        }
    }

    /// The calling thread's nice value, as the kernel reports it.
    fn current_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Fields after the command (which is in parentheses and may hold spaces): state is
        // field 3, nice field 19.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        after.split(' ').nth(16).unwrap().parse().unwrap()
    }

    /// A nice value above this thread's, so that setting it needs no privilege and seeing it
    /// proves it was set (the test may itself run niced).
    fn above_mine(by: i32) -> Nice {
        Nice::new(i64::from((current_nice() + by).min(19))).unwrap()
    }

    /// The nice value of the guest thread a task on `placement` runs on.
    async fn nice_on(placement: &Placement) -> i32 {
        let (tx, rx) = tokio::sync::oneshot::channel();
        placement.spawn(&Handle::current(), async move {
            // SAFETY: getpriority takes no pointers; PRIO_PROCESS, 0: the calling thread.
            let via_call = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
            let _ = tx.send((current_nice(), via_call));
        });
        let (nice, via_call) = rx.await.unwrap();
        assert_eq!(via_call, nice, "/proc and getpriority agree");
        nice
    }

    /// The nice value of every thread of this process named `name`.
    fn nice_of_threads_named(name: &str) -> Vec<i32> {
        let mut found = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let dir = task.unwrap().path();
            let (Ok(comm), Ok(stat)) = (
                std::fs::read_to_string(dir.join("comm")),
                std::fs::read_to_string(dir.join("stat")),
            ) else {
                continue; // the thread ended meanwhile
            };
            if comm.trim_end() == name {
                let after = &stat[stat.rfind(')').unwrap() + 2..];
                found.push(after.split(' ').nth(16).unwrap().parse().unwrap());
            }
        }
        found
    }

    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn per_plugin_threads_run_at_the_configured_nice() {
        let host_nice = current_nice();
        let wanted = above_mine(3);
        let executor = GuestExecutor::PerPlugin {
            threads: 2,
            nice: wanted,
        };
        let placement = executor.place("niced", 2).unwrap();
        assert_eq!(nice_on(&placement).await, i32::from(wanted.get()));
        // Every thread of the runtime, not just the one the task ran on.
        let wanted = i32::from(wanted.get());
        // Threads rename and renice themselves as they start: wait (boundedly) for both.
        let mut seen = nice_of_threads_named("guest-niced");
        for _ in 0..600 {
            if seen == [wanted, wanted] {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            seen = nice_of_threads_named("guest-niced");
        }
        assert_eq!(seen, [wanted, wanted]);
        // Only the guest threads changed: this (host) thread keeps its value.
        assert_eq!(current_nice(), host_nice);
        assert_eq!(executor.threads(), Some(2));
        assert_eq!(executor.nice().map(|n| i32::from(n.get())), Some(wanted));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn shared_runtime_threads_run_at_their_nice_and_the_default_is_10() {
        let wanted = above_mine(5);
        let runtime = DedicatedRuntime::with_nice(1, wanted).unwrap();
        assert_eq!(runtime.nice(), wanted);
        let executor = GuestExecutor::Shared(runtime);
        assert_eq!(executor.nice(), Some(wanted));
        let placement = executor.place("a", 4).unwrap();
        assert_eq!(nice_on(&placement).await, i32::from(wanted.get()));

        if current_nice() <= 10 {
            let default = GuestExecutor::default().place("d", 1).unwrap();
            assert_eq!(nice_on(&default).await, 10);
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn nice_0_runs_guests_at_the_hosts_priority() {
        let host = current_nice();
        let placement = GuestExecutor::PerPlugin {
            threads: 1,
            nice: Nice::HOST,
        }
        .place("same", 1)
        .unwrap();
        let guest = nice_on(&placement).await;
        if host == 0 {
            assert_eq!(guest, 0);
        } else {
            // A niced test process without CAP_SYS_NICE cannot go below its own value: the
            // guest keeps it (still the host's priority), and nothing panics.
            assert!(guest == 0 || guest == host, "{guest} vs {host}");
        }
    }

    #[test]
    fn nice_values_are_0_to_19() {
        assert_eq!(Nice::new(0), Ok(Nice::HOST));
        assert_eq!(Nice::new(10), Ok(Nice::DEFAULT));
        assert_eq!(Nice::new(19), Ok(Nice::LOWEST));
        assert_eq!(Nice::default(), Nice::DEFAULT);
        for bad in [-1, -20, 20, 255, 256, i64::MIN, i64::MAX] {
            let error = Nice::new(bad).unwrap_err();
            assert_eq!(error, NiceError(bad));
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("{bad} is out of range"))
            );
        }
    }

    #[tokio::test]
    async fn settings_start_the_executor_they_name() {
        let per_plugin = GuestSettings {
            executor: ExecutorKind::PerPlugin,
            threads: 3,
            nice: Nice::LOWEST,
        }
        .start()
        .unwrap();
        assert!(matches!(
            per_plugin,
            GuestExecutor::PerPlugin { threads: 3, nice } if nice == Nice::LOWEST
        ));
        let shared = GuestSettings {
            executor: ExecutorKind::Shared,
            threads: 2,
            nice: Nice::HOST,
        }
        .start()
        .unwrap();
        assert_eq!(shared.name(), "shared");
        assert_eq!(shared.threads(), Some(2));
        assert_eq!(shared.nice(), Some(Nice::HOST));
        assert_eq!(GuestExecutor::Host.nice(), None);
        assert_eq!(GuestExecutor::Host.threads(), None);

        let default = GuestSettings::default().start().unwrap();
        let GuestExecutor::PerPlugin { threads, nice } = GuestExecutor::default() else {
            unreachable!()
        };
        assert_eq!(default.threads(), Some(threads));
        assert_eq!(default.nice(), Some(nice));
    }
}
