//! Where host calls' API requests run: on a runtime of their own, never on the calling guest's.
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
//! - **Guest code first.** A plugin's guest threads are few (docs/workers.md) and busy with
//!   guest slices; reading answers and parsing HTTP there queues every request's completion
//!   behind them.
//!
//! So [`HostIo::run`] spawns the request on a runtime that runs no guest code and awaits it.
//! The manager gives every plugin's host calls the same one: a runtime of its own, one thread
//! named `trellis-io`, at the guests' nice value (`manager::host_io`). Not the host runtime:
//! there the requests' work competes at full priority with the event path, and with a looping
//! plugin beside a healthy one that raised the isolation test's event-path latency ratio
//! (`tests/tests/isolation.rs`, median write-to-enqueue beside / alone) from 1.08–1.20 (requests
//! on the guests' threads, 4 runs) to 1.22–1.89 (2 failures in 7 runs); on `trellis-io` it is
//! 1.16–1.31 (5 runs). Writes are plugin work: they yield to the event path like the guests
//! that asked for them, and a plugin's blocked or busy guest threads cannot hold them up. With
//! guests on the host runtime (`GuestExecutor::Host`, tests), requests go there too.
//!
//! Every request is bounded here too (`limit`, the host calls' request timeout), so the one
//! place that sends a request also bounds it. Dropping the future of [`HostIo::run`], or its
//! limit passing, aborts the spawned request, as dropping the request itself would (a guest cut
//! off at its deadline leaves nothing running). A panic in the request is resumed in the
//! caller, where the worker counts it as a host panic like any other.

use std::future::Future;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::sandbox::{ErrorCode, HostError};

use super::errors::timed_out;

/// The runtime host calls send their API requests from.
#[derive(Debug, Clone)]
pub struct HostIo {
    runtime: Handle,
}

impl HostIo {
    /// Requests run on `runtime`; whoever made it keeps it running as long as requests are
    /// sent (a stopped runtime makes every request `unavailable`).
    pub fn on(runtime: Handle) -> Self {
        Self { runtime }
    }

    /// Runs `request` on the runtime and waits at most `limit` for it; `what` names it in the
    /// errors: `unavailable` when it did not answer in time (the request is then aborted) or
    /// the runtime has stopped.
    pub(crate) async fn run<F>(
        &self,
        what: &str,
        limit: Duration,
        request: F,
    ) -> Result<F::Output, HostError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let mut task = AbortOnDrop(self.runtime.spawn(request));
        match tokio::time::timeout(limit, &mut task.0).await {
            Err(_) => Err(timed_out(what, limit)),
            Ok(Ok(output)) => Ok(output),
            Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Ok(Err(_)) => Err(HostError::new(
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
    use super::*;

    /// A limit no test request comes near.
    const NO_LIMIT: Duration = Duration::from_secs(3600);

    fn guest_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or("").to_string()
    }

    /// A runtime of its own (one thread, `io`) and a `HostIo` sending requests there; the
    /// runtime must outlive the requests.
    fn io_runtime() -> (tokio::runtime::Runtime, HostIo) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("io")
            .enable_all()
            .build()
            .unwrap();
        let io = HostIo::on(runtime.handle().clone());
        (runtime, io)
    }

    #[test]
    fn requests_run_on_the_given_runtime_not_the_callers() {
        let (_host, io) = io_runtime();
        let ran_on = guest_runtime()
            .block_on(io.run("probe", NO_LIMIT, async { thread_name() }))
            .unwrap();
        assert_eq!(ran_on, "io");
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
        let (_host, io) = io_runtime();
        let (dropped_tx, dropped) = std::sync::mpsc::channel();
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let guest = guest_runtime();
        guest.block_on(async {
            let request = io.run("never answered", NO_LIMIT, async move {
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
    fn a_request_past_its_limit_is_unavailable_naming_it_and_aborted() {
        let (_host, io) = io_runtime();
        let (dropped_tx, dropped) = std::sync::mpsc::channel();
        let error = guest_runtime()
            .block_on(io.run("apply ns/x", Duration::from_millis(10), async move {
                let _signal = DropSignal(dropped_tx);
                std::future::pending::<()>().await;
            }))
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::Unavailable);
        assert!(
            error
                .message
                .contains("apply ns/x: no answer from the API server within 10ms"),
            "{}",
            error.message
        );
        dropped
            .recv_timeout(Duration::from_secs(30))
            .expect("the request was aborted at its limit");
    }

    #[test]
    fn a_stopped_runtime_makes_requests_unavailable_naming_them() {
        let (host, io) = io_runtime();
        host.shutdown_background();
        let error = guest_runtime()
            .block_on(io.run("patch-status ns/x", NO_LIMIT, async { 1 }))
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
        let (_host, io) = io_runtime();
        let guest = guest_runtime();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            guest.block_on(io.run("boom", NO_LIMIT, async { panic!("request code panicked") }))
        }));
        let payload = caught.expect_err("the panic is resumed in the caller");
        assert_eq!(
            payload.downcast_ref::<&str>().copied(),
            Some("request code panicked")
        );
    }
}
