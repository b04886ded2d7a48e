//! End-to-end benchmark: Trellis running the status-bench Wasm plugin against a native
//! kube-runtime `Controller` doing the same work, on the same devcluster (a fresh one, seeded
//! alike, for every system's run: `Server`), the same objects and the same concurrency,
//! alternating in one process (docs/benchmarks/e2e.md).
//!
//! ```sh
//! cargo bench -p trellis-host --bench e2e
//! # smaller / more rounds / one side only:
//! E2E_BENCH_OBJECTS=2000 E2E_BENCH_ROUNDS=3 E2E_BENCH_ONLY=native cargo bench -p trellis-host --bench e2e
//! ```
//!
//! The workload (`e2e/workload.rs`): N Deployments, each with a ConfigMap of the same name;
//! reconciling one reads it and its ConfigMap from the cache and merge-patches a value
//! computed from both into its status (`status_bench::logic`, run by both systems), writing
//! nothing when the status already shows it.
//!
//! Each system, in turn, is measured in two phases:
//! - **cold**: every Deployment's round annotation is bumped while nothing runs, then the system
//!   starts: from its start to the last status written, it lists both kinds, syncs and
//!   reconciles all N objects (the initial sync as the trigger).
//! - **hot**: the system is running and idle; the harness bumps every round annotation over
//!   HTTP (a burst of N merge patches, `E2E_BENCH_TRIGGER_CONCURRENCY` at a time). Throughput:
//!   N over first trigger -> last status written. Latency per object: its trigger answered ->
//!   its status write answered. Under a burst this latency is mostly time spent queued.
//! - **paced**: the first `E2E_BENCH_PACED_OBJECTS` (2000) are bumped at `E2E_BENCH_PACED_RATE`
//!   (200/s), below what either system sustains: the latency of one update through the system
//!   (watch event, queue, reconcile, status write) rather than of a queue.
//!
//! `E2E_BENCH_PLACEMENT=split` puts the devcluster (and the harness) on the last CPU and the
//! system under test on the others, as in a cluster, where the API server never shares the
//! controller's CPUs; the default, `shared`, lets every thread run anywhere (`e2e/placement.rs`).
//!
//! Trellis runs as deploy/ configures it: compiled components kept in `host.engine.cacheDir`
//! (filled once before round 1, as `trellis check` does; `E2E_BENCH_ARTIFACT_CACHE=0`: every
//! cold start compiles), guests at the default nice 10 (`E2E_BENCH_GUEST_NICE` sets it).
//!
//! All times come from the devcluster's write log (server side); completion is then checked
//! by listing every Deployment from the server. Rounds alternate the order of the systems
//! (T N, N T, ...) so drift on the shared machine falls on both, and each run's throughput is
//! also shown as a share of what its server sustained alone just before. CPU is split by thread:
//! the devcluster and the harness run on their own named runtimes, the rest is the system's.

#[path = "common/env.rs"]
mod common_env;
#[path = "common/stats.rs"]
mod common_stats;
#[path = "e2e/measure.rs"]
mod measure;
#[path = "e2e/native.rs"]
mod native;
#[path = "e2e/placement.rs"]
mod placement;
#[path = "e2e/trellis.rs"]
mod trellis;
#[path = "e2e/workload.rs"]
mod workload;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use kube::Client;
use tokio::runtime::Runtime;
use trellis_devcluster::{DevCluster, DevClusterOptions, Snapshot};

use common_env::{env, env_opt};
use common_stats::median;
use measure::{Cpu, Observed, Percentiles, Scheduled, ServerClock};
use placement::Placement;
use workload::{NAMESPACE, Workload};

/// Thread-name prefixes of the runtimes whose CPU is not the system's (see `measure::Cpu`).
pub const SERVER_THREADS: &str = "devcluster";
pub const HARNESS_THREADS: &str = "harness";

struct Settings {
    objects: usize,
    rounds: usize,
    workers: u16,
    trigger_concurrency: usize,
    paced_objects: usize,
    paced_rate: u32,
    timeout: Duration,
    only: Option<Side>,
    /// `host.guests.nice` for Trellis; `None` keeps the host's default (10).
    guest_nice: Option<u8>,
    /// `host.guests.threads` for Trellis; `None` keeps the host's default (half the cores).
    guest_threads: Option<u16>,
    /// Trellis keeps compiled components in `host.engine.cacheDir`, filled before round 1,
    /// as deploy/ runs it; off: every cold start compiles.
    artifact_cache: bool,
    /// Both systems filter Deployment updates on generation and annotations, so the echo of
    /// their own status writes is not reconciled (off: every update is, the headline workload).
    predicates: bool,
    /// Which CPUs the server and the system run on (`e2e/placement.rs`).
    placement: Placement,
}

impl Settings {
    fn from_env() -> Self {
        let only = match std::env::var("E2E_BENCH_ONLY").as_deref() {
            Ok("trellis") => Some(Side::Trellis),
            Ok("native") => Some(Side::Native),
            Ok(other) => panic!("E2E_BENCH_ONLY={other:?}: expected trellis or native"),
            Err(_) => None,
        };
        Self {
            objects: env("E2E_BENCH_OBJECTS", 10_000),
            rounds: env("E2E_BENCH_ROUNDS", 2),
            workers: env("E2E_BENCH_WORKERS", 4),
            trigger_concurrency: env("E2E_BENCH_TRIGGER_CONCURRENCY", 8),
            paced_objects: env("E2E_BENCH_PACED_OBJECTS", 2_000),
            paced_rate: env("E2E_BENCH_PACED_RATE", 200),
            timeout: Duration::from_secs(env("E2E_BENCH_TIMEOUT_SECONDS", 600)),
            only,
            guest_nice: env_opt("E2E_BENCH_GUEST_NICE"),
            guest_threads: env_opt("E2E_BENCH_GUEST_THREADS"),
            artifact_cache: env("E2E_BENCH_ARTIFACT_CACHE", 1u8) != 0,
            predicates: env("E2E_BENCH_PREDICATES", 0u8) != 0,
            placement: Placement::parse(
                &std::env::var("E2E_BENCH_PLACEMENT").unwrap_or_else(|_| "shared".into()),
            )
            .unwrap_or_else(|e| panic!("{e}")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Trellis,
    Native,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Trellis => "Trellis (Wasm plugin)",
            Side::Native => "native kube-runtime Controller",
        }
    }
}

/// A system under test while it runs.
enum Running {
    Trellis(trellis::Trellis),
    Native(native::Native),
}

impl Running {
    async fn start(side: Side, env: &Env<'_>) -> Result<Self, String> {
        Ok(match side {
            Side::Trellis => {
                Running::Trellis(trellis::Trellis::start(env.cluster, env.trellis, env.dir).await?)
            }
            Side::Native => Running::Native(
                native::Native::start(
                    env.cluster.client().map_err(|e| e.to_string())?,
                    NAMESPACE,
                    env.settings.workers,
                    env.settings.predicates,
                )
                .await?,
            ),
        })
    }

    fn reconciles(&self) -> u64 {
        match self {
            Running::Trellis(t) => t.reconciles(),
            Running::Native(n) => n.reconciles(),
        }
    }

    fn errors(&self) -> u64 {
        match self {
            Running::Trellis(t) => t.errors(),
            Running::Native(n) => n.errors(),
        }
    }

    async fn stop(self) {
        match self {
            Running::Trellis(t) => t.stop().await,
            Running::Native(n) => n.stop().await,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cold,
    Hot,
    Paced,
}

/// One measured phase of one system.
struct Phase {
    side: Side,
    kind: Kind,
    round: u64,
    objects: usize,
    elapsed: Duration,
    /// From the first trigger to the last trigger answered (hot and paced phases).
    trigger_window: Option<Duration>,
    latency: Option<Percentiles>,
    status_requests: u64,
    status_failures: u64,
    /// Status write requests' time in the server (arrival to answer), summed.
    status_in_server: Duration,
    /// From the start (or first trigger) to the first status write's arrival.
    first_status: Duration,
    reconciles: u64,
    errors: u64,
    system_cpu: Duration,
    process_cpu: Duration,
    /// Per thread name: CPU and run-queue wait over the phase.
    threads: BTreeMap<String, Scheduled>,
    /// Status writes/s the run's server sustained alone, just before the system started.
    server_alone: f64,
    /// What the server was asked and sent during the phase (the harness's triggers included).
    server: Snapshot,
}

impl Phase {
    fn throughput(&self) -> f64 {
        self.objects as f64 / self.elapsed.as_secs_f64()
    }

    /// Mean time a status write spent in the server, and how many were there on average while
    /// the system was writing: what is left of the workers' cycle (`workers` minus that) was
    /// spent in the system under test, between one answer and the next request.
    fn status_writes_in_server(&self) -> (Duration, f64) {
        let mean = self.status_in_server / self.status_requests.max(1) as u32;
        // From the first status write's arrival to the last one answered.
        let writing = self.elapsed.saturating_sub(self.first_status);
        let in_flight = self.status_in_server.as_secs_f64() / writing.as_secs_f64().max(1e-6);
        (mean, in_flight)
    }

    /// Throughput as a share of what the same server sustained alone just before: the
    /// machine's state at the time of the run (which drifts by 2x on these shared machines
    /// within minutes) divides out.
    fn share_of_server_alone(&self) -> f64 {
        self.throughput() / self.server_alone
    }
}

/// What every phase needs.
struct Env<'a> {
    settings: &'a Settings,
    workload: &'a Workload,
    cluster: &'a DevCluster,
    client: &'a Client,
    clock: &'a ServerClock,
    harness: &'a Runtime,
    system: &'a Runtime,
    dir: &'a Path,
    trellis: &'a trellis::HostSetup,
    /// What this run's server sustained alone (`Server::alone`).
    server_alone: f64,
}

/// A runtime of `threads` workers named `name`; with `server_side`, each of its threads pins
/// itself to the server's CPU when it starts (the others keep the system's, from `main`).
fn runtime(name: &'static str, threads: usize, server_side: Option<&Placement>) -> Runtime {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(threads)
        .thread_name(name)
        .enable_all();
    if let Some(placement) = server_side.cloned() {
        builder.on_thread_start(move || {
            placement
                .pin_server()
                .unwrap_or_else(|e| panic!("{name} thread: {e}"))
        });
    }
    builder.build().expect("a tokio runtime")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let settings = Settings::from_env();
    settings
        .placement
        .pin_system()
        .unwrap_or_else(|e| panic!("{e}"));
    let server_runtime = runtime(SERVER_THREADS, 2, Some(&settings.placement));
    let harness = runtime(HARNESS_THREADS, 1, Some(&settings.placement));
    let system = runtime("system", 2, None);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let workload = Workload {
        objects: settings.objects,
    };

    let fixtures = workload
        .write_fixtures(dir.path())
        .expect("writing the fixtures");
    println!(
        "e2e benchmark: {} Deployments + {} ConfigMaps, seeded afresh for every system's run; {} workers each, {} rounds, triggers {} at a time, Trellis guests at nice {} on {} thread(s); {}",
        settings.objects,
        settings.objects,
        settings.workers,
        settings.rounds,
        settings.trigger_concurrency,
        settings
            .guest_nice
            .map_or_else(|| "10 (the default)".to_string(), |n| n.to_string()),
        settings.guest_threads.map_or_else(
            || "half the cores' (the default)".to_string(),
            |n| n.to_string()
        ),
        settings.placement.describe()
    );
    let host_setup = trellis::HostSetup {
        namespace: NAMESPACE,
        workers: settings.workers,
        guest_nice: settings.guest_nice,
        guest_threads: settings.guest_threads,
        artifact_cache: settings
            .artifact_cache
            .then(|| dir.path().join("artifacts")),
        predicates: settings.predicates,
    };
    if host_setup.artifact_cache.is_some() && settings.only != Some(Side::Native) {
        let took = host_setup
            .warm_artifact_cache(dir.path())
            .expect("compiling the component into the artifact cache");
        println!(
            "Trellis: component compiled into the artifact cache in {:.2} s (`trellis check`); cold starts load it from there",
            took.as_secs_f64()
        );
    }
    let mut round = 0u64;
    let mut phases = Vec::new();
    let mut failures = Vec::new();
    for r in 0..settings.rounds {
        let order = if r % 2 == 0 {
            [Side::Trellis, Side::Native]
        } else {
            [Side::Native, Side::Trellis]
        };
        for side in order {
            if settings.only.is_some_and(|only| only != side) {
                continue;
            }
            let run = Server::start(&settings, &workload, &fixtures, &server_runtime, &harness)
                .and_then(|server| {
                    let env = Env {
                        settings: &settings,
                        workload: &workload,
                        cluster: &server.cluster,
                        client: &server.client,
                        clock: &server.clock,
                        harness: &harness,
                        system: &system,
                        dir: dir.path(),
                        trellis: &host_setup,
                        server_alone: server.alone,
                    };
                    run_side(&env, side, &mut round)
                });
            match run {
                Ok(done) => phases.extend(done),
                Err(e) => {
                    eprintln!("{}: {e}", side.label());
                    failures.push((side, e));
                }
            }
        }
    }
    report(&settings, &phases, &failures);
}

/// The API server of one system's run: a devcluster seeded with the workload, a harness
/// client and its clock offset, and what the server sustains alone.
///
/// Every run gets a fresh one. A server shared by all rounds drifts (what drifts was not
/// isolated; its event history is one thing that grows): with one server, each round was
/// slower than the one before for both systems (one system alone, 3 rounds: Trellis 2357 ->
/// 1989 -> 1887 objects/s, native 2231 -> 2114 -> 1973), so a ratio depended on which system
/// ran in which round. Seeded afresh, every run starts from the same server state.
struct Server {
    cluster: DevCluster,
    client: Client,
    clock: ServerClock,
    /// Status writes per second the server answered when the harness alone sent the systems'
    /// status patch to every Deployment, as many in flight as the systems have workers, before
    /// the system started: a yardstick of the server (and the machine) at the time of the run,
    /// not a ceiling the systems reach (they also watch, and reconcile; 34–54 % of it in the
    /// runs of docs/benchmarks/e2e.md).
    alone: f64,
}

impl Server {
    fn start(
        settings: &Settings,
        workload: &Workload,
        fixtures: &Path,
        server: &Runtime,
        harness: &Runtime,
    ) -> Result<Self, String> {
        let cluster = server
            .block_on(DevCluster::start(DevClusterOptions {
                namespaces: vec![NAMESPACE.into(), "default".into()],
                // Room for a whole run's events (each phase's triggers and status writes) with
                // margin, so no watch falls out of the window and relists mid-measurement.
                history: 6 * settings.objects.max(10_000),
                ..DevClusterOptions::default()
            }))
            .map_err(|e| format!("starting the devcluster: {e}"))?;
        let seeding = Instant::now();
        cluster
            .load_fixtures(fixtures)
            .map_err(|e| format!("seeding the devcluster: {e}"))?;
        println!(
            "  devcluster seeded in {:.1} s",
            seeding.elapsed().as_secs_f64()
        );
        let client = harness
            .block_on(async { cluster.client() })
            .map_err(|e| format!("a client of the devcluster: {e}"))?;
        let clock = harness
            .block_on(ServerClock::calibrate(&cluster, &client))
            .map_err(|e| format!("calibrating against the server's clock: {e}"))?;
        let writing = Instant::now();
        harness
            .block_on(workload::write_statuses(
                &client,
                workload,
                "written by the harness alone",
                usize::from(settings.workers),
            ))
            .map_err(|e| format!("measuring the server alone: {e}"))?;
        let alone = workload.objects as f64 / writing.elapsed().as_secs_f64();
        println!(
            "  the server alone: {alone:.0} status writes/s ({} in flight)",
            settings.workers
        );
        Ok(Self {
            cluster,
            client,
            clock,
            alone,
        })
    }
}

/// Starts `side`, measures its cold and hot phases, stops it.
fn run_side(env: &Env, side: Side, round: &mut u64) -> Result<Vec<Phase>, String> {
    // Cold: every status is stale before the system starts.
    *round += 1;
    env.harness
        .block_on(workload::trigger(
            env.client,
            env.workload,
            *round,
            env.settings.trigger_concurrency,
        ))
        .map_err(|e| format!("bumping the round before the cold start: {e}"))?;
    env.cluster.reset_accounting();
    let cpu = Cpu::now();
    let started = Instant::now();
    let running = env.system.block_on(Running::start(side, env))?;
    let measured = measure_running(env, side, &running, round, started, cpu);
    env.system.block_on(running.stop());
    measured
}

fn measure_running(
    env: &Env,
    side: Side,
    running: &Running,
    round: &mut u64,
    started: Instant,
    cpu: Cpu,
) -> Result<Vec<Phase>, String> {
    let observed = env.harness.block_on(measure::wait_for_statuses(
        env.cluster,
        env.workload,
        env.settings.timeout,
    ))?;
    let cold = phase(
        side,
        Kind::Cold,
        *round,
        env.workload,
        env.clock.micros(started),
        observed,
        cpu,
        running,
        Counts::default(),
        env.server_alone,
    );
    progress(&cold);
    env.harness
        .block_on(workload::verify(env.client, env.workload, *round))?;

    // Hot: a burst of updates to a running, idle system.
    let concurrency = env.settings.trigger_concurrency;
    let hot = triggered_phase(
        env,
        side,
        running,
        round,
        Kind::Hot,
        env.workload,
        |round| workload::trigger(env.client, env.workload, round, concurrency),
    )?;

    // Paced: updates below saturation, for the latency of one reconcile rather than of a
    // queue.
    let paced = Workload {
        objects: env.settings.paced_objects.min(env.workload.objects),
    };
    let rate = env.settings.paced_rate;
    let paced_phase = triggered_phase(env, side, running, round, Kind::Paced, &paced, |round| {
        workload::trigger_paced(env.client, &paced, round, rate)
    })?;
    Ok(vec![cold, hot, paced_phase])
}

/// Waits for `running` to be idle, bumps the round of `workload`'s objects with `trigger`,
/// and measures from the first trigger to the last status written.
fn triggered_phase<F: Future<Output = Result<(), kube::Error>>>(
    env: &Env,
    side: Side,
    running: &Running,
    round: &mut u64,
    kind: Kind,
    workload: &Workload,
    trigger: impl FnOnce(u64) -> F,
) -> Result<Phase, String> {
    env.harness.block_on(settle(running));
    *round += 1;
    env.cluster.reset_accounting();
    let cpu = Cpu::now();
    let before = Counts::of(running);
    env.harness
        .block_on(trigger(*round))
        .map_err(|e| format!("triggering round {round}: {e}"))?;
    let observed = env.harness.block_on(measure::wait_for_statuses(
        env.cluster,
        workload,
        env.settings.timeout,
    ))?;
    let first_trigger = observed
        .first_trigger
        .ok_or("the write log shows no trigger")?;
    let measured = phase(
        side,
        kind,
        *round,
        workload,
        first_trigger,
        observed,
        cpu,
        running,
        before,
        env.server_alone,
    );
    progress(&measured);
    env.harness
        .block_on(workload::verify(env.client, workload, *round))?;
    Ok(measured)
}

/// Reconcile and error counters of a running system.
#[derive(Default, Clone, Copy)]
struct Counts {
    reconciles: u64,
    errors: u64,
}

impl Counts {
    fn of(running: &Running) -> Self {
        Self {
            reconciles: running.reconciles(),
            errors: running.errors(),
        }
    }

    fn since(self, before: Self) -> Self {
        Self {
            reconciles: self.reconciles.saturating_sub(before.reconciles),
            errors: self.errors.saturating_sub(before.errors),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn phase(
    side: Side,
    kind: Kind,
    round: u64,
    workload: &Workload,
    start_micros: u64,
    observed: Observed,
    cpu_before: Cpu,
    running: &Running,
    counts_before: Counts,
    server_alone: f64,
) -> Phase {
    let cpu_after = Cpu::now();
    let counts = Counts::of(running).since(counts_before);
    let last = observed.status_written.iter().copied().max().unwrap_or(0);
    let latency = observed.triggered.as_ref().and_then(|triggered| {
        Percentiles::of(
            observed
                .status_written
                .iter()
                .zip(triggered)
                .map(|(&written, &triggered)| written.saturating_sub(triggered))
                .collect(),
        )
    });
    Phase {
        side,
        kind,
        round,
        objects: workload.objects,
        elapsed: Duration::from_micros(last.saturating_sub(start_micros).max(1)),
        trigger_window: observed
            .last_trigger
            .map(|end| Duration::from_micros(end.saturating_sub(start_micros))),
        latency,
        status_requests: observed.status_requests,
        status_failures: observed.status_failures,
        status_in_server: Duration::from_micros(observed.status_server_micros),
        first_status: Duration::from_micros(
            observed
                .first_status
                .map_or(0, |first| first.saturating_sub(start_micros)),
        ),
        reconciles: counts.reconciles,
        errors: counts.errors,
        system_cpu: cpu_before.system_since(&cpu_after),
        process_cpu: cpu_before.total_since(&cpu_after),
        threads: cpu_before.threads_since(&cpu_after),
        server_alone,
        server: observed.server,
    }
}

/// Waits until the system stops reconciling (its own status writes come back as events and are
/// reconciled once more, writing nothing): its reconcile counter unchanged for a second.
async fn settle(running: &Running) {
    let mut last = running.reconciles();
    let mut quiet_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = running.reconciles();
        if now != last {
            last = now;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= Duration::from_secs(1) {
            return;
        }
    }
}

fn ms(micros: u64) -> String {
    format!("{:.1} ms", micros as f64 / 1e3)
}

fn row(p: &Phase) -> String {
    // A paced phase's throughput is the harness's pace, not a share of anything.
    let share = match p.kind {
        Kind::Paced => "-".to_string(),
        Kind::Cold | Kind::Hot => format!("{:.0} %", 100.0 * p.share_of_server_alone()),
    };
    let (p50, p90, p99, max) = p.latency.as_ref().map_or_else(
        || ("-".into(), "-".into(), "-".into(), "-".into()),
        |l| (ms(l.p50), ms(l.p90), ms(l.p99), ms(l.max)),
    );
    format!(
        "| {} | {} | {:?} | {} | **{:.0}** | {:.0} ({share}) | {:.2} s | {} | {p50} | {p90} | {p99} | {max} | {} ({} failed) | {} | {} | {:.2} s | {:.0} µs | {:.2} s |",
        p.round,
        p.side.label(),
        p.kind,
        p.objects,
        p.throughput(),
        p.server_alone,
        p.elapsed.as_secs_f64(),
        p.trigger_window
            .map_or("-".to_string(), |w| format!("{:.2} s", w.as_secs_f64())),
        p.status_requests,
        p.status_failures,
        p.reconciles,
        p.errors,
        p.system_cpu.as_secs_f64(),
        p.system_cpu.as_secs_f64() * 1e6 / p.objects as f64,
        p.process_cpu.as_secs_f64(),
    )
}

fn progress(p: &Phase) {
    let (in_server, in_flight) = p.status_writes_in_server();
    eprintln!(
        "round {}: {} {:?}: {:.0} objects/s over {:.2} s{}; first status write at {:.2} s; \
         each {:.2} ms in the server, {:.1} there on average",
        p.round,
        p.side.label(),
        p.kind,
        p.throughput(),
        p.elapsed.as_secs_f64(),
        p.latency
            .as_ref()
            .map_or(String::new(), |l| format!(", p99 {}", ms(l.p99))),
        p.first_status.as_secs_f64(),
        in_server.as_secs_f64() * 1e3,
        in_flight,
    );
    // Per object, what each kind of thread ran and waited for a CPU: where a system's cycle
    // goes that is neither in the server nor computing.
    let per_object = |d: Duration| d.as_secs_f64() * 1e6 / p.objects as f64;
    let threads: Vec<String> = p
        .threads
        .iter()
        .filter(|(_, s)| per_object(s.running + s.waiting) >= 1.0)
        .map(|(name, s)| {
            format!(
                "{name} {:.0}+{:.0}",
                per_object(s.running),
                per_object(s.waiting)
            )
        })
        .collect();
    eprintln!(
        "  µs per object ran+waited for a CPU: {}",
        threads.join(", ")
    );
    // What the server was asked and sent, per object: when it is the bound, the work a
    // system gives it sets the rate.
    let each = |n: u64| n as f64 / p.objects as f64;
    let requests: Vec<String> = p
        .server
        .requests
        .iter()
        .map(|(what, &n)| format!("{what} {:.2}", each(n)))
        .collect();
    let watched: Vec<String> = p
        .server
        .watch
        .iter()
        .map(|(resource, served)| {
            format!(
                "{resource} {:.2} ({:.0} B)",
                each(served.objects),
                each(served.bytes)
            )
        })
        .collect();
    eprintln!(
        "  per object, requests: {}; watch events sent: {}",
        requests.join(", "),
        watched.join(", ")
    );
}

fn report(settings: &Settings, phases: &[Phase], failures: &[(Side, String)]) {
    println!("\n## Runs\n");
    println!(
        "| round | system | phase | objects | objects/s | server alone (share) | elapsed | triggers took | latency p50 | p90 | p99 | max | status write requests | reconciles | errors | system CPU | system CPU per object | process CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for p in phases {
        println!("{}", row(p));
    }
    for (side, error) in failures {
        println!("\n{} did not complete: {error}", side.label());
    }

    println!(
        "\n## Summary: medians over {} round(s), {} objects ({} paced at {}/s), {} workers each\n",
        settings.rounds,
        settings.objects,
        settings.paced_objects.min(settings.objects),
        settings.paced_rate,
        settings.workers
    );
    println!(
        "| phase | Trellis objects/s | native objects/s | throughput T/N | Trellis p50 | native p50 | Trellis p99 | native p99 | Trellis CPU/object | native CPU/object |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for kind in [Kind::Cold, Kind::Hot, Kind::Paced] {
        let of = |side: Side, f: &dyn Fn(&Phase) -> Option<f64>| {
            median(
                phases
                    .iter()
                    .filter(|p| p.side == side && p.kind == kind)
                    .filter_map(f)
                    .collect(),
            )
        };
        let both = |f: &dyn Fn(&Phase) -> Option<f64>| (of(Side::Trellis, f), of(Side::Native, f));
        let throughput = both(&|p| Some(p.throughput()));
        let p50 = both(&|p| p.latency.as_ref().map(|l| l.p50 as f64 / 1e3));
        let p99 = both(&|p| p.latency.as_ref().map(|l| l.p99 as f64 / 1e3));
        let cpu = both(&|p| Some(p.system_cpu.as_secs_f64() * 1e6 / p.objects as f64));
        let show =
            |v: Option<f64>, unit: &str| v.map_or("-".to_string(), |v| format!("{v:.0}{unit}"));
        let ratio = match (kind, throughput) {
            // The harness sets the pace: both systems keep up or neither does.
            (Kind::Paced, _) => "(set by the pace)".to_string(),
            (_, (Some(t), Some(n))) => format!("**{:.2}x**", t / n),
            _ => "-".to_string(),
        };
        println!(
            "| {kind:?} | {} | {} | {ratio} | {} | {} | {} | {} | {} | {} |",
            show(throughput.0, ""),
            show(throughput.1, ""),
            show(p50.0, " ms"),
            show(p50.1, " ms"),
            show(p99.0, " ms"),
            show(p99.1, " ms"),
            show(cpu.0, " µs"),
            show(cpu.1, " µs"),
        );
    }
    let cold_shares = |side: Side| {
        median(
            phases
                .iter()
                .filter(|p| p.side == side && p.kind == Kind::Cold)
                .map(Phase::share_of_server_alone)
                .collect(),
        )
    };
    if let (Some(t), Some(n)) = (cold_shares(Side::Trellis), cold_shares(Side::Native)) {
        println!(
            "\nCold throughput as a share of what the same server sustained alone just before (the harness sending the same status patch to every Deployment, {} in flight), median per system: Trellis {:.0} %, native {:.0} %: **{:.2}x**",
            settings.workers,
            100.0 * t,
            100.0 * n,
            t / n,
        );
    }
    // The rounds alternate T N, N T, ...: the i-th run of each system are next to each other
    // in time, so their ratio is the least touched by the machine's drift.
    let cold = |side: Side| -> Vec<f64> {
        phases
            .iter()
            .filter(|p| p.side == side && p.kind == Kind::Cold)
            .map(Phase::throughput)
            .collect()
    };
    let pairs: Vec<f64> = cold(Side::Trellis)
        .iter()
        .zip(cold(Side::Native))
        .map(|(t, n)| t / n)
        .collect();
    if let Some(middle) = median(pairs.clone()) {
        let each: Vec<String> = pairs.iter().map(|r| format!("{r:.2}x")).collect();
        println!(
            "\nCold throughput T/N of runs next to each other in time (the i-th of each system): {}; median **{middle:.2}x**",
            each.join(", ")
        );
    }
}
