//! SIGTERM and SIGINT: the first asks for a graceful shutdown, the second ends the process.
//!
//! Kubernetes sends SIGTERM and waits `terminationGracePeriodSeconds` before SIGKILL; in that
//! time the host stops intake, lets held keys finish, releases its lease and exits 0. The
//! first signal only cancels a [`CancellationToken`] that the rest of the host watches. A
//! second signal means someone (an impatient operator pressing Ctrl-C twice) does not want to
//! wait: the process exits at once with the shell's code for death by that signal (128 + its
//! number: 130 for SIGINT, 143 for SIGTERM).
//!
//! The decision is [`handle`], a function over any stream of signals, so tests drive it with
//! a channel; [`install`] feeds it the process's real signals.

use std::io;
use std::task::Poll;

use futures::{Stream, StreamExt};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// A signal that ends the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: what the kubelet and `docker stop` send.
    Terminate,
    /// SIGINT: Ctrl-C.
    Interrupt,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Terminate => "SIGTERM",
            Signal::Interrupt => "SIGINT",
        }
    }

    /// The exit code of a process killed by this signal, as shells report it (128 + number).
    pub fn exit_code(self) -> i32 {
        match self {
            Signal::Terminate => 128 + 15,
            Signal::Interrupt => 128 + 2,
        }
    }
}

/// Runs the policy over `signals`: the first cancels `shutdown`; the second is returned, for
/// the caller to exit with its [`Signal::exit_code`]. `None` if the stream ends first.
pub async fn handle<S>(mut signals: S, shutdown: CancellationToken) -> Option<Signal>
where
    S: Stream<Item = Signal> + Unpin,
{
    let first = signals.next().await?;
    info!(
        signal = first.name(),
        "shutdown requested: finishing held work; a second signal exits at once"
    );
    shutdown.cancel();
    let second = signals.next().await?;
    warn!(
        signal = second.name(),
        exit_code = second.exit_code(),
        "second signal: exiting at once without finishing held work"
    );
    Some(second)
}

/// The process's SIGTERM and SIGINT as a stream. Registering replaces the default action
/// (death) for the rest of the process's life, so from here on only [`handle`]'s caller
/// decides when to exit.
#[cfg(unix)]
pub fn os_signals() -> io::Result<impl Stream<Item = Signal> + Unpin + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(futures::stream::poll_fn(move |cx| {
        if let Poll::Ready(Some(())) = terminate.poll_recv(cx) {
            return Poll::Ready(Some(Signal::Terminate));
        }
        if let Poll::Ready(Some(())) = interrupt.poll_recv(cx) {
            return Poll::Ready(Some(Signal::Interrupt));
        }
        Poll::Pending
    }))
}

/// Installs the policy on the process's signals: the first cancels `shutdown`, the second
/// calls `std::process::exit` with its code.
#[cfg(unix)]
pub fn install(shutdown: CancellationToken) -> io::Result<JoinHandle<()>> {
    install_with(shutdown, |code| std::process::exit(code))
}

/// [`install`] with the exit action given (tests pass one that records the code).
#[cfg(unix)]
pub fn install_with<F>(shutdown: CancellationToken, exit: F) -> io::Result<JoinHandle<()>>
where
    F: FnOnce(i32) + Send + 'static,
{
    let signals = os_signals()?;
    Ok(tokio::spawn(async move {
        if let Some(second) = handle(signals, shutdown).await {
            exit(second.exit_code());
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::sync::{mpsc, oneshot};

    /// A stream of whatever is sent on the channel.
    fn channel_stream(
        receive: mpsc::UnboundedReceiver<Signal>,
    ) -> impl Stream<Item = Signal> + Unpin {
        Box::pin(futures::stream::unfold(receive, |mut receive| async move {
            receive.recv().await.map(|signal| (signal, receive))
        }))
    }

    #[test]
    fn exit_codes_are_the_shells() {
        assert_eq!(Signal::Interrupt.exit_code(), 130);
        assert_eq!(Signal::Terminate.exit_code(), 143);
    }

    #[tokio::test]
    async fn first_signal_requests_shutdown_second_exits() {
        let (send, receive) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(handle(channel_stream(receive), shutdown.clone()));

        send.send(Signal::Terminate).unwrap();
        shutdown.cancelled().await;
        // Shutdown requested, but the handler is still waiting for a second signal.
        tokio::task::yield_now().await;
        assert!(!task.is_finished());

        send.send(Signal::Interrupt).unwrap();
        assert_eq!(task.await.unwrap(), Some(Signal::Interrupt));
    }

    #[tokio::test]
    async fn no_signal_no_shutdown() {
        let shutdown = CancellationToken::new();
        assert_eq!(
            handle(futures::stream::empty(), shutdown.clone()).await,
            None
        );
        assert!(!shutdown.is_cancelled());
    }

    #[tokio::test]
    async fn one_signal_only_requests_shutdown() {
        let shutdown = CancellationToken::new();
        let signals = futures::stream::iter([Signal::Interrupt]);
        assert_eq!(handle(signals, shutdown.clone()).await, None);
        assert!(shutdown.is_cancelled());
    }

    /// The real thing: SIGTERM twice to this very process. The handler is registered before
    /// the first `kill`, so the default action (death) never runs.
    #[cfg(unix)]
    #[tokio::test]
    async fn real_signals_drive_the_policy() {
        let shutdown = CancellationToken::new();
        let (exited, code) = oneshot::channel();
        let _task = install_with(shutdown.clone(), move |code| {
            let _ = exited.send(code);
        })
        .unwrap();
        let kill = || {
            let status = std::process::Command::new("kill")
                .args(["-TERM", &std::process::id().to_string()])
                .status()
                .expect("kill runs");
            assert!(status.success());
        };
        kill();
        tokio::time::timeout(Duration::from_secs(60), shutdown.cancelled())
            .await
            .expect("the first SIGTERM cancels the shutdown token");
        kill();
        let code = tokio::time::timeout(Duration::from_secs(60), code)
            .await
            .expect("the second SIGTERM exits")
            .unwrap();
        assert_eq!(code, 143);
    }
}
