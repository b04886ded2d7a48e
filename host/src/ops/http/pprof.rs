//! Heap profiles on demand in pprof's format, from jemalloc's sampling profiler.
//!
//! Operators coming from Go expect `go tool pprof http://host:9090/debug/pprof/heap`. jemalloc
//! samples an allocation every 512 KiB on average (`lg_prof_sample:19`), recording its stack;
//! a dump lists the sampled allocations still live, scaled to estimate all of them, which
//! `jemalloc_pprof` turns into a gzipped pprof protobuf, symbolized in-process so the reader
//! needs neither the binary nor its debug info.
//!
//! Profiling needs two things only the final binary can do: make jemalloc the global
//! allocator, and set jemalloc's `malloc_conf` symbol before the first allocation. The
//! [`use_jemalloc!`](crate::use_jemalloc) macro does both; the `trellis` binary invokes it,
//! tests and benchmarks of this crate do not (they keep the system allocator, and this
//! endpoint then answers 501). The sampling cost is a few percent of allocation time at most
//! and is paid only by sampled allocations; `_RJEM_MALLOC_CONF=prof_active:false` in the
//! environment turns it off at start (the endpoint then answers 503).

/// Why there is no profile to serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeapProfileError {
    /// The process does not run jemalloc with profiling compiled in and enabled (501).
    #[error(
        "heap profiling is not available in this process: it needs jemalloc as the allocator \
         with profiling enabled (the trellis binary on Linux has it)"
    )]
    Unavailable,
    /// Profiling is enabled but not active, so nothing was sampled (503).
    #[error(
        "heap profiling is enabled but not active (prof_active is false, e.g. from \
         _RJEM_MALLOC_CONF); restart without prof_active:false to sample allocations"
    )]
    Inactive,
    /// jemalloc could not dump or the dump could not be converted (500).
    #[error("heap profile could not be taken: {0}")]
    Dump(String),
}

/// Takes a heap profile: a gzipped pprof protobuf (`inuse_space` in bytes). The dump goes
/// through a temporary file (jemalloc's interface), so the process needs a writable
/// temporary directory (`$TMPDIR`, else `/tmp`).
pub async fn heap_profile() -> Result<Vec<u8>, HeapProfileError> {
    imp::heap_profile().await
}

/// Whether [`heap_profile`] can work in this process, for a log line at start.
pub fn available() -> bool {
    imp::available()
}

#[cfg(target_os = "linux")]
mod imp {
    use super::HeapProfileError;

    pub(super) fn available() -> bool {
        jemalloc_pprof::PROF_CTL.is_some()
    }

    pub(super) async fn heap_profile() -> Result<Vec<u8>, HeapProfileError> {
        let Some(ctl) = jemalloc_pprof::PROF_CTL.as_ref() else {
            return Err(HeapProfileError::Unavailable);
        };
        let ctl = std::sync::Arc::clone(ctl);
        // Dumping writes and parses a file and symbolizes every sampled stack: blocking work.
        tokio::task::spawn_blocking(move || {
            let mut ctl = ctl.blocking_lock();
            if !ctl.activated() {
                return Err(HeapProfileError::Inactive);
            }
            ctl.dump_pprof()
                .map_err(|error| HeapProfileError::Dump(format!("{error:#}")))
        })
        .await
        .map_err(|error| HeapProfileError::Dump(error.to_string()))?
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::HeapProfileError;

    pub(super) fn available() -> bool {
        false
    }

    pub(super) async fn heap_profile() -> Result<Vec<u8>, HeapProfileError> {
        Err(HeapProfileError::Unavailable)
    }
}

/// What [`use_jemalloc!`](crate::use_jemalloc) expands to; not for direct use.
#[cfg(target_os = "linux")]
#[doc(hidden)]
pub mod allocator {
    pub use tikv_jemallocator::Jemalloc;

    /// A C string pointer jemalloc reads at start (`const char *malloc_conf`): a thin pointer,
    /// unlike `&[u8]`, so the symbol has exactly the C type.
    #[repr(transparent)]
    pub struct MallocConf(pub *const std::ffi::c_char);

    // SAFETY: it points at an immutable static string.
    unsafe impl Sync for MallocConf {}

    /// Profiling compiled in and on, sampling every 512 KiB on average (jemalloc's default
    /// rate, written out so it is not a surprise).
    pub const MALLOC_CONF: MallocConf =
        MallocConf(c"prof:true,prof_active:true,lg_prof_sample:19".as_ptr());
}

/// Makes jemalloc, with heap profiling on, the global allocator of the binary that invokes it
/// (once, at the top level of the binary's root module). Serves `/debug/pprof/heap`.
///
/// ```ignore
/// trellis_host::use_jemalloc!();
/// ```
///
/// On other systems than Linux it expands to nothing.
#[macro_export]
macro_rules! use_jemalloc {
    () => {
        #[cfg(target_os = "linux")]
        #[global_allocator]
        static TRELLIS_GLOBAL_ALLOCATOR: $crate::ops::http::pprof::allocator::Jemalloc =
            $crate::ops::http::pprof::allocator::Jemalloc;

        // jemalloc's symbols are prefixed `_rjem_` (tikv-jemalloc-sys's default), so is its
        // config symbol; it is read at the first allocation.
        #[cfg(target_os = "linux")]
        #[unsafe(export_name = "_rjem_malloc_conf")]
        static TRELLIS_MALLOC_CONF: $crate::ops::http::pprof::allocator::MallocConf =
            $crate::ops::http::pprof::allocator::MALLOC_CONF;
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    // This crate's unit tests run on the system allocator and leave jemalloc's profiler off:
    // the endpoint must say so, not crash. (tests/http.rs runs with jemalloc and checks a
    // real profile.)
    #[tokio::test]
    async fn without_jemalloc_profiling_is_unavailable() {
        assert!(!available());
        assert_eq!(heap_profile().await, Err(HeapProfileError::Unavailable));
    }
}
