//! Runtimes of their own, for tests and benchmarks that keep the devcluster (or the code under
//! test) apart from the runtime that measures or counts.

#![allow(dead_code)] // each test binary uses a different part of it

/// A multi-thread tokio runtime of `threads` workers, with I/O and timers.
pub fn multi_thread(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}
