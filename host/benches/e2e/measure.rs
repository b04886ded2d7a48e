//! Turning the devcluster's write log into the benchmark's numbers.
//!
//! Every timestamp comes from the server: the write log records, per write request, when it
//! arrived and when it was answered, in microseconds since the server started. A trigger is
//! the harness's annotation patch of one Deployment; its status is written when the system
//! under test's first successful status write for that Deployment is answered. The harness
//! itself only converts its own start instant of a system to the server's clock
//! ([`ServerClock`]) and reads the log; it never times anything through a watch of its own, which
//! would take CPU from the systems measured.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use trellis_devcluster::{DevCluster, Snapshot, WriteRecord};

use crate::common_stats::nearest_rank;
use crate::workload::{NAMESPACE, TRIGGER_MANAGER, Workload};

/// The resource name the write log gives status writes of Deployments.
const STATUS: &str = "deployments.apps/status";

/// Maps harness instants to the server's write-log clock.
pub struct ServerClock {
    /// Server micros at `epoch`.
    at_epoch: u64,
    epoch: Instant,
}

impl ServerClock {
    /// Probes the server with a few writes: each write's log record lies between the harness's
    /// instants before and after it, so the tightest round trip bounds the offset (to well
    /// under a millisecond on loopback).
    pub async fn calibrate(cluster: &DevCluster, client: &Client) -> Result<Self, kube::Error> {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let name = "e2e-bench-clock";
        let _ = api
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
            )
            .await;
        let mut best: Option<(Duration, Self)> = None;
        for probe in 0..10 {
            let before = Instant::now();
            let patch = json!({"data": {"probe": probe.to_string()}});
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            let after = Instant::now();
            let Some(record) = cluster
                .writes()
                .into_iter()
                .rev()
                .find(|w| w.name == name && w.verb == "patch")
            else {
                continue;
            };
            let round_trip = after - before;
            // The request was handled somewhere inside [before, after]: take the middle.
            let mid = (record.started_micros + record.finished_micros) / 2;
            let clock = Self {
                at_epoch: mid,
                epoch: before + round_trip / 2,
            };
            if best.as_ref().is_none_or(|(rt, _)| round_trip < *rt) {
                best = Some((round_trip, clock));
            }
        }
        Ok(best.expect("probe writes are logged").1)
    }

    pub fn micros(&self, at: Instant) -> u64 {
        if at >= self.epoch {
            self.at_epoch + (at - self.epoch).as_micros() as u64
        } else {
            self.at_epoch
                .saturating_sub((self.epoch - at).as_micros() as u64)
        }
    }
}

/// What the write log says about one phase.
pub struct Observed {
    /// Per Deployment index: when its first successful status write was answered.
    pub status_written: Vec<u64>,
    /// Per Deployment index: when its trigger was answered (hot phase only).
    pub triggered: Option<Vec<u64>>,
    /// When the first trigger arrived and the last was answered (hot phase only).
    pub first_trigger: Option<u64>,
    pub last_trigger: Option<u64>,
    /// Status write requests: all, and those that failed (non-2xx).
    pub status_requests: u64,
    pub status_failures: u64,
    /// Summed over the status write requests: from arrival to answer, in the server.
    pub status_server_micros: u64,
    /// When the first status write arrived.
    pub first_status: Option<u64>,
    /// What the server was asked and sent (requests per verb and resource, watch events) from
    /// the phase's start to when its last status write was seen (taken once, then): with the
    /// server as the bound, the work each system gives it per object sets the rate.
    pub server: Snapshot,
}

/// Waits until every Deployment has had a successful status write since the accounting was
/// last reset, polling the server's counters (cheap) and reading the write log only when the
/// counters say it can be complete.
pub async fn wait_for_statuses(
    cluster: &DevCluster,
    workload: &Workload,
    timeout: Duration,
) -> Result<Observed, String> {
    let started = Instant::now();
    loop {
        let requests = status_requests(cluster);
        if requests >= workload.objects as u64 {
            let mut observed = read_log(&cluster.writes(), workload);
            let done = observed.status_written.iter().filter(|&&t| t > 0).count();
            if done == workload.objects {
                observed.server = cluster.accounting();
                return Ok(observed);
            }
            if started.elapsed() > timeout {
                return Err(format!(
                    "{done} of {} statuses written after {timeout:?} ({requests} status requests, {} failed)",
                    workload.objects, observed.status_failures
                ));
            }
        } else if started.elapsed() > timeout {
            return Err(format!(
                "only {requests} status requests of {} after {timeout:?}",
                workload.objects
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn status_requests(cluster: &DevCluster) -> u64 {
    cluster
        .accounting()
        .requests
        .iter()
        .filter(|(key, _)| key.ends_with(&format!(" {STATUS}")))
        .map(|(_, n)| n)
        .sum()
}

/// The write log's part of [`Observed`]; `server` is left empty for the caller.
fn read_log(writes: &[WriteRecord], workload: &Workload) -> Observed {
    let mut status_written = vec![0u64; workload.objects];
    let mut triggered = vec![0u64; workload.objects];
    let mut first_trigger: Option<u64> = None;
    let mut last_trigger: Option<u64> = None;
    let (mut status_requests, mut status_failures) = (0, 0);
    let mut status_server_micros = 0;
    let mut first_status: Option<u64> = None;
    let mut any_trigger = false;
    for w in writes.iter().filter(|w| w.namespace == NAMESPACE) {
        let Some(i) = Workload::index_of(&w.name).filter(|&i| i < workload.objects) else {
            continue;
        };
        let ok = (200..300).contains(&w.code);
        if w.resource == STATUS {
            status_requests += 1;
            status_server_micros += w.finished_micros.saturating_sub(w.started_micros);
            first_status = Some(first_status.map_or(w.started_micros, |f| f.min(w.started_micros)));
            if !ok {
                status_failures += 1;
            } else if w.resource_version.is_some() && status_written[i] == 0 {
                // Written is at least 1 µs after the server started; 0 means "not yet".
                status_written[i] = w.finished_micros.max(1);
            }
        } else if w.resource == "deployments.apps" && w.manager == TRIGGER_MANAGER && ok {
            any_trigger = true;
            triggered[i] = w.finished_micros;
            first_trigger =
                Some(first_trigger.map_or(w.started_micros, |f| f.min(w.started_micros)));
            last_trigger =
                Some(last_trigger.map_or(w.finished_micros, |l| l.max(w.finished_micros)));
        }
    }
    Observed {
        status_written,
        triggered: any_trigger.then_some(triggered),
        first_trigger,
        last_trigger,
        status_requests,
        status_failures,
        status_server_micros,
        first_status,
        server: Snapshot::default(),
    }
}

/// Nearest-rank percentiles of a sample, in the sample's unit.
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl Percentiles {
    /// `None` for no samples.
    pub fn of(mut samples: Vec<u64>) -> Option<Self> {
        samples.sort_unstable();
        Some(Self {
            p50: nearest_rank(&samples, 0.50)?,
            p90: nearest_rank(&samples, 0.90)?,
            p99: nearest_rank(&samples, 0.99)?,
            max: *samples.last()?,
        })
    }
}

/// CPU time of this process, split by thread name: the devcluster's and the harness's runtimes
/// run on named threads, everything else (the system under test, whatever threads it starts)
/// is counted as the system's.
#[derive(Clone, Default)]
pub struct Cpu {
    /// The whole process's, exited threads included (/proc/self/stat, 10 ms ticks).
    pub total: Duration,
    /// Per thread name: CPU used and time spent runnable but waiting for a CPU (the
    /// scheduler's run delay, /proc/<tid>/schedstat, in ns), summed over the threads of that
    /// name alive at the sample. What a system's threads wait for a CPU is the part of its
    /// cycle the machine, not the system, decides.
    pub threads: BTreeMap<String, Scheduled>,
}

/// CPU and run-queue wait of a set of threads.
#[derive(Clone, Copy, Default, Debug)]
pub struct Scheduled {
    pub running: Duration,
    pub waiting: Duration,
}

impl Cpu {
    pub fn now() -> Self {
        let total = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| ticks(&s))
            .unwrap_or_default();
        let mut threads = BTreeMap::<String, Scheduled>::new();
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for task in tasks.flatten() {
                let (Ok(name), Some(scheduled)) = (
                    std::fs::read_to_string(task.path().join("comm")),
                    std::fs::read_to_string(task.path().join("schedstat"))
                        .ok()
                        .and_then(|s| schedstat(&s)),
                ) else {
                    continue;
                };
                let sum = threads.entry(name.trim_end().to_string()).or_default();
                sum.running += scheduled.running;
                sum.waiting += scheduled.waiting;
            }
        }
        Self { total, threads }
    }

    /// CPU the threads whose names start with `prefix` ran.
    fn running_of(&self, prefix: &str) -> Duration {
        self.threads
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(_, scheduled)| scheduled.running)
            .sum()
    }

    /// CPU the system under test used between `self` (earlier) and `later`: the process's
    /// minus the devcluster's and the harness's threads'.
    pub fn system_since(&self, later: &Self) -> Duration {
        let total = later.total.saturating_sub(self.total);
        let others: Duration = [crate::SERVER_THREADS, crate::HARNESS_THREADS]
            .into_iter()
            .map(|prefix| {
                later
                    .running_of(prefix)
                    .saturating_sub(self.running_of(prefix))
            })
            .sum();
        total.saturating_sub(others)
    }

    pub fn total_since(&self, later: &Self) -> Duration {
        later.total.saturating_sub(self.total)
    }

    /// Per thread name, what its threads ran and waited between `self` and `later`; a name
    /// whose threads started in between counts from zero. A thread that ended in between takes
    /// its share with it (the sum under-counts): the phases sample while the system runs.
    pub fn threads_since(&self, later: &Self) -> BTreeMap<String, Scheduled> {
        later
            .threads
            .iter()
            .map(|(name, after)| {
                let before = self.threads.get(name).copied().unwrap_or_default();
                let delta = Scheduled {
                    running: after.running.saturating_sub(before.running),
                    waiting: after.waiting.saturating_sub(before.waiting),
                };
                (name.clone(), delta)
            })
            .collect()
    }
}

/// Time on a CPU and time runnable but waiting for one, from a /proc schedstat line
/// ("<run ns> <wait ns> <slices>").
fn schedstat(line: &str) -> Option<Scheduled> {
    let mut fields = line.split_whitespace();
    let running: u64 = fields.next()?.parse().ok()?;
    let waiting: u64 = fields.next()?.parse().ok()?;
    Some(Scheduled {
        running: Duration::from_nanos(running),
        waiting: Duration::from_nanos(waiting),
    })
}

/// utime + stime from a /proc stat line, in clock ticks of 10 ms (USER_HZ is 100 on Linux).
fn ticks(stat: &str) -> Option<Duration> {
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields after the name start at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}
