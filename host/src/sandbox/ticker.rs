//! The epoch ticker: advances the engine's epoch every tick so running guests yield and have
//! their deadline checked.
//!
//! A plain OS thread rather than a tokio task: the ticker must keep ticking when every runtime
//! worker is busy (that is exactly when a spinning guest needs interrupting), and the sandbox
//! must not require being created inside a runtime. States: *running* -> *stopped* (on drop,
//! which wakes the thread at once and joins it, so no ticker outlives its sandbox).

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::Engine;

/// Owns the ticker thread; dropping it stops the thread.
pub struct EpochTicker {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts ticking `engine` every `tick`.
    pub fn start(engine: Engine, tick: Duration) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("trellis-epoch".into())
            .spawn(move || {
                // Ticks until the sender is dropped (or sends), waking at once when it is.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    engine.increment_epoch();
                }
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the epoch ticker thread panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_stops_and_joins_the_thread_promptly_even_with_a_long_tick() {
        let engine = Engine::default();
        let ticker = EpochTicker::start(engine, Duration::from_secs(3600)).unwrap();
        // Without the wake-up on drop this join would wait out the hour-long tick.
        drop(ticker);
    }
}
