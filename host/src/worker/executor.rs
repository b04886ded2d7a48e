//! Where a pool's workers, and so its guests, run.
//!
//! The issue asks that guests run "where they cannot delay the event path or each other
//! (dedicated executor or bounded permits; measure which)". The two candidates:
//!
//! * [`GuestExecutor::Host`]: the runtime the pool is started on, which also runs the
//!   informers (the event path). A guest never holds a thread for more than one epoch tick
//!   (the sandbox yields on every tick), so the event path waits at most about a tick per
//!   busy thread.
//! * [`GuestExecutor::Dedicated`]: a separate multi-thread tokio runtime, shared by every pool
//!   given the same handle, so guests never run on the event path's threads at all; the two
//!   runtimes' threads compete only in the OS scheduler.
//!
//! The measurement (host/benches/worker.rs, docs/benchmarks/worker.md) chose the default:
//! see [`GuestExecutor::default_choice`]. Both variants run the same worker code; only the
//! spawn differs.

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
    /// A multi-thread runtime with `threads` worker threads named `trellis-guest`.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("trellis-guest")
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

/// Where workers run; see the module docs.
#[derive(Clone, Debug, Default)]
pub enum GuestExecutor {
    /// The runtime `Pool::start` is called on.
    #[default]
    Host,
    /// A runtime of its own.
    Dedicated(DedicatedRuntime),
}

impl GuestExecutor {
    /// The measured default (docs/benchmarks/worker.md): the host's runtime.
    pub fn default_choice() -> Self {
        Self::Host
    }

    /// A dedicated runtime with one thread per available core.
    pub fn dedicated() -> std::io::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        DedicatedRuntime::new(threads).map(Self::Dedicated)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Dedicated(_) => "dedicated",
        }
    }

    /// Spawns a worker. `host` is the runtime the pool was started on.
    pub(crate) fn spawn<F>(&self, host: &Handle, task: F) -> JoinHandle<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        match self {
            Self::Host => host.spawn(task),
            Self::Dedicated(runtime) => runtime.handle().spawn(task),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dedicated_tasks_run_on_guest_threads_and_the_runtime_drops_inside_another() {
        let executor = GuestExecutor::Dedicated(DedicatedRuntime::new(1).unwrap());
        let name = executor
            .spawn(&Handle::current(), async {
                assert_eq!(
                    std::thread::current().name(),
                    Some("trellis-guest"),
                    "runs on the dedicated runtime"
                );
            })
            .await;
        assert!(name.is_ok());
        // Dropping the last handle inside this runtime must not panic.
        drop(executor);
    }

    #[tokio::test]
    async fn host_tasks_run_on_the_given_runtime() {
        let id = Handle::current().id();
        let seen = GuestExecutor::Host
            .spawn(&Handle::current(), async move {
                assert_eq!(Handle::current().id(), id);
            })
            .await;
        assert!(seen.is_ok());
    }
}
