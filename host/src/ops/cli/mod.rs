//! The `trellis` command line: argument parsing, dispatch to the subcommands, and how the
//! process ends.
//!
//! Why it is a library module and `main.rs` is three lines: the tests (and `trellis-e2e`)
//! drive the same parsing and dispatch the binary runs, and every failure leaves through one
//! place ([`main`]) that prints it once and picks the exit code (see [`Exit`]). Nothing here
//! panics on bad input: clap reports usage errors (exit 2), commands return typed errors.

mod exit;
mod logging;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use exit::{CliError, Exit};
pub use logging::LogFormat;
pub use run::{RunOptions, connect, serve};

use crate::ops::dev::{self, DevOptions, ProgressMode};
use crate::ops::rbac::{self, RbacOptions};
use crate::ops::{check, config};

const ABOUT: &str = "Trellis: a Kubernetes reconciler host that runs reconcilers as sandboxed \
WebAssembly components";

const LONG_ABOUT: &str = "Trellis: a Kubernetes reconciler host that runs reconcilers as \
sandboxed WebAssembly components.

The host does the watching, filtering, caching, queueing and rate limiting; each plugin only \
decides what an object should look like, inside a sandbox with a fuel budget, a deadline and a \
memory cap.

Start with `trellis dev`: an embedded API server seeded with example objects and the example \
plugins reconciling them.";

const AFTER_HELP: &str = "Exit codes: 0 success, 1 runtime error, 2 usage or configuration \
error.
Logging: RUST_LOG sets the level and filters (default: info), e.g. RUST_LOG=trellis_host=debug.";

/// `trellis [--log-format human|json] <command>`.
#[derive(Debug, Parser)]
#[command(
    name = "trellis",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// How log lines are written to stderr: `human` (readable) or `json` (one object per line,
    /// for log collectors).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Human,
        env = "TRELLIS_LOG_FORMAT"
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the plugins of a config file against a Kubernetes cluster.
    #[command(
        long_about = "Run the plugins of a config file against a Kubernetes cluster.\n\n\
The cluster is found like kubectl finds it: --kubeconfig, or host.kubeconfig in the config \
file, or $KUBECONFIG, or the in-cluster service account, or ~/.kube/config. Serves /metrics, \
/healthz and /readyz on host.metricsAddress. Stops gracefully on SIGTERM or Ctrl-C (a second \
signal exits at once)."
    )]
    Run(RunArgs),

    /// Start an embedded API server with example objects and run the plugins against it.
    #[command(
        long_about = "Start an embedded Kubernetes API server (devcluster) on 127.0.0.1, seed it \
with example objects, and run the plugins against it: a complete local loop with no cluster.\n\n\
Without -c, the example plugins (namespace-defaults, deployment-summary) run with the built-in \
dev config. The state directory receives the kubeconfig (use it with kubectl while trellis dev \
runs), the config, the components and the default fixtures. Shows a live progress line per \
plugin until Ctrl-C."
    )]
    Dev(DevArgs),

    /// Validate a config file and its components without starting anything.
    #[command(
        long_about = "Validate a config file and its components without starting anything: \
the schema and every value, each component compiled against the plugin contract (world, \
imports, exports), and the permissions against the watches. Every mistake is reported, with \
the file, the plugin and the field. Exit 0 when valid (warnings may still be printed), 2 \
otherwise."
    )]
    Check(CheckArgs),

    /// Print the least-privilege RBAC objects the host needs for a config.
    #[command(
        long_about = "Print, as multi-document YAML on stdout, the least-privilege RBAC objects \
(ClusterRole/Role and their bindings) the host's ServiceAccount needs for this config: \
list and watch on every watched kind, the granted write verbs, Events, and the leader-election \
Lease. Pipe it to `kubectl apply -f -`."
    )]
    Rbac(RbacArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The host config file (YAML; see docs/config.md).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: PathBuf,
    /// Kubeconfig file to use instead of the config's host.kubeconfig / kubectl's lookup.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use instead of the config's host.context / the current one.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// A host config to run instead of the built-in dev config of the example plugins.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Fixture YAML (a file or a folder of .yaml/.yml/.json files) to seed instead of the
    /// built-in example objects.
    #[arg(long, value_name = "DIR")]
    pub fixtures: Option<PathBuf>,
    /// Port of the embedded API server on 127.0.0.1 (default: a free port).
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
    /// Where the kubeconfig, the config, the components and the fixtures are written.
    #[arg(long, value_name = "DIR", default_value = ".trellis-dev")]
    pub state_dir: PathBuf,
    /// How the progress line is shown: `auto` (a refreshing line on a terminal, plain lines
    /// every few seconds otherwise), `line`, `plain`, or `off`.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The host config file to check.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct RbacArgs {
    /// The host config file.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: PathBuf,
    /// Namespace of the host's ServiceAccount (and of namespaced bindings' subjects).
    #[arg(long, default_value = "trellis-system")]
    pub namespace: String,
    /// Name of the host's ServiceAccount.
    #[arg(long, default_value = "trellis")]
    pub service_account: String,
}

/// The whole program: parse, set up logging, run the command, print the error once, exit.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    run(cli).into()
}

/// Runs a parsed command line; returns how the process should end (the error, if any, has
/// been printed).
pub fn run(cli: Cli) -> Exit {
    let terminal = dev::Terminal::stderr();
    if let Err(error) = logging::init(cli.log_format, terminal.clone()) {
        // A malformed RUST_LOG: the user's input, like a bad option.
        eprintln!("error: {error}");
        return Exit::Usage;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("trellis")
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return Exit::Runtime;
        }
    };
    let result = runtime.block_on(dispatch(cli.command, terminal));
    // Background tasks (watches, the devcluster's connections) end with the runtime; do not
    // wait for ones that ignore cancellation.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(exit) => exit,
        Err(error) => {
            eprintln!("error: {error}");
            error.exit()
        }
    }
}

async fn dispatch(command: Command, terminal: dev::Terminal) -> Result<Exit, CliError> {
    match command {
        Command::Dev(args) => {
            let options = DevOptions {
                config: args.config,
                fixtures: args.fixtures,
                port: args.port,
                state_dir: args.state_dir,
                progress: args.progress,
            };
            dev::run(options, terminal).await?;
            Ok(Exit::Ok)
        }
        Command::Run(args) => {
            run::run(run::RunOptions {
                config: args.config,
                kubeconfig: args.kubeconfig,
                context: args.context,
            })
            .await?;
            Ok(Exit::Ok)
        }
        Command::Check(args) => {
            // Compiling components is CPU work: off the async threads.
            let report = tokio::task::spawn_blocking(move || check::check(&args.config))
                .await
                .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()));
            // The report is the command's output, errors included: printed once, on stdout.
            println!("{report}");
            Ok(if report.is_ok() {
                Exit::Ok
            } else {
                Exit::Usage
            })
        }
        Command::Rbac(args) => {
            let config = config::load(&args.config)?;
            let options = RbacOptions {
                service_account: args.service_account,
                namespace: args.namespace,
            };
            print!("{}", rbac::render(&config, &options));
            Ok(Exit::Ok)
        }
    }
}

#[cfg(test)]
mod tests;
