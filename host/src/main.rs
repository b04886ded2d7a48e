//! The `trellis` binary; everything is in `trellis_host::ops::cli` (see there and docs/cli.md).

// jemalloc with heap profiling, for /debug/pprof/heap (ops::http::pprof).
trellis_host::use_jemalloc!();

fn main() -> std::process::ExitCode {
    trellis_host::ops::cli::main()
}
