//! The `trellis` binary; everything is in `trellis_host::ops::cli` (see there and docs/cli.md).

fn main() -> std::process::ExitCode {
    trellis_host::ops::cli::main()
}
