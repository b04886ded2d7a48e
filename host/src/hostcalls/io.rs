//! Where host calls' API requests run: on the host runtime, never on the calling guest's.
//!
//! A guest call awaits its request, but the HTTP work is the host's, and it must not run
//! where the guest runs:
//! - **Connections are shared.** Every plugin writes through one kube client, whose pool of
//!   keep-alive connections is shared, and hyper runs each connection as a task on the runtime
//!   that opened it. Sent from a worker, a request opens connections on that plugin's guest
//!   runtime; another plugin's later request may then go out over such a connection and wait
//!   for *those* guest threads to poll it. A plugin whose guests keep their threads busy would
//!   stall every plugin's writes (`tests/hostcalls.rs`:
//!   `a_blocked_guest_thread_does_not_stall_writes_sent_from_elsewhere` measured 10 s, the
//!   request timeout, before this module), and a plugin's runtime stopping (the plugin removed
//!   at a reload) would take pooled connections with it.
//! - **Priority and cores.** Guest threads run at a lower priority and on a bounded number of
//!   threads (docs/workers.md); reading answers and parsing HTTP there puts the host's I/O
//!   behind guest code.
//!
//! So [`HostIo::run`] spawns the request on the host runtime (the one that built the host
//! calls, which also runs the informers) and awaits it. Dropping the returned future aborts
//! the spawned request, as dropping the request itself would (a guest cut off at its deadline
//! leaves nothing running). A panic in the request is resumed in the caller, where the worker
//! counts it as a host panic like any other.

use std::future::Future;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::sandbox::{ErrorCode, HostError};

/// The host runtime, for sending requests from it.
#[derive(Debug, Clone)]
pub(crate) struct HostIo {
    runtime: Handle,
}

impl HostIo {
    /// The runtime this is called on. Panics outside a tokio runtime, like building a kube
    /// client does.
    pub(crate) fn current() -> Self {
        Self {
            runtime: Handle::current(),
        }
    }

    /// Runs `request` on the host runtime; `what` names it if the runtime is shutting down.
    pub(crate) async fn run<F>(&self, what: &str, request: F) -> Result<F::Output, HostError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let mut task = AbortOnDrop(self.runtime.spawn(request));
        match (&mut task.0).await {
            Ok(output) => Ok(output),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(HostError::new(
                ErrorCode::Unavailable,
                format!("{what}: not sent, the host is shutting down"),
            )),
        }
    }
}

/// Aborts the task when the caller stops waiting for it.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn guest_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or("").to_string()
    }

    fn host_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("host")
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn requests_run_on_the_host_runtime_not_the_callers() {
        let host = host_runtime();
        let io = host.block_on(async { HostIo::current() });
        let ran_on = guest_runtime()
            .block_on(io.run("probe", async { thread_name() }))
            .unwrap();
        assert_eq!(ran_on, "host");
    }

    /// Tells when the request holding it is dropped.
    struct DropSignal(std::sync::mpsc::Sender<()>);

    impl Drop for DropSignal {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }

    #[test]
    fn dropping_the_caller_aborts_the_request() {
        let host = host_runtime();
        let io = host.block_on(async { HostIo::current() });
        let (dropped_tx, dropped) = std::sync::mpsc::channel();
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let guest = guest_runtime();
        guest.block_on(async {
            let request = io.run("never answered", async move {
                let _signal = DropSignal(dropped_tx);
                started_tx.send(()).unwrap();
                std::future::pending::<()>().await;
            });
            tokio::pin!(request);
            tokio::select! {
                _ = &mut request => panic!("a pending request answered"),
                _ = started => {}
            }
            // `request` is dropped here, as a guest's call is at its deadline.
        });
        dropped
            .recv_timeout(Duration::from_secs(30))
            .expect("the spawned request was aborted and dropped");
    }

    #[test]
    fn a_stopped_host_runtime_is_unavailable_naming_the_request() {
        let host = host_runtime();
        let io = host.block_on(async { HostIo::current() });
        host.shutdown_background();
        let error = guest_runtime()
            .block_on(io.run("patch-status ns/x", async { 1 }))
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::Unavailable);
        assert!(
            error.message.contains("patch-status ns/x"),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_panic_in_the_request_reaches_the_caller() {
        let host = host_runtime();
        let io = host.block_on(async { HostIo::current() });
        let guest = guest_runtime();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            guest.block_on(io.run("boom", async { panic!("request code panicked") }))
        }));
        let payload = caught.expect_err("the panic is resumed in the caller");
        assert_eq!(
            payload.downcast_ref::<&str>().copied(),
            Some("request code panicked")
        );
    }
}
