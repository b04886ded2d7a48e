//! Which CPUs the API server and the system under test run on (`E2E_BENCH_PLACEMENT`).
//!
//! - **shared** (the default, every run before 2026-11-28): all threads may run on every CPU;
//!   the devcluster competes with the system for the machine's 2 cores.
//! - **split**: the devcluster's threads (and the harness's, the load generator) run on the
//!   last CPU, the system under test on the others. This is how a controller runs in a
//!   cluster: the API server is on machines of its own, and the controller's threads compete
//!   only with each other. It matters to Trellis in particular: its guests and its I/O thread
//!   run at nice 10 so that a looping plugin cannot delay the host's event path (issue 6's
//!   isolation requirement), and on shared CPUs that nice also puts them behind the API
//!   server (nice 0), which a cluster never does (docs/benchmarks/e2e.md, run S).
//!
//! Threads inherit their creator's CPU mask: `main` pins itself to the system's CPUs before any
//! runtime is built, so the system's runtime and every thread a system starts (Trellis's guest,
//! I/O and epoch threads) run there; the devcluster's and the harness's runtimes pin each of
//! their threads to the server's CPU when it starts.

/// Where the threads run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Shared,
    /// The CPUs this process was allowed at its start, split: the last for the server, the
    /// others for the system. Read once, before any thread is pinned (a pinned thread's own
    /// mask no longer shows the others).
    Split {
        server: usize,
        system: Vec<usize>,
    },
}

impl Placement {
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "shared" => Ok(Self::Shared),
            "split" => {
                let mut system = allowed_cpus()?;
                let Some(server) = system.pop().filter(|_| !system.is_empty()) else {
                    return Err(format!(
                        "E2E_BENCH_PLACEMENT=split needs 2 CPUs or more, this process may use {}",
                        system.len() + 1
                    ));
                };
                Ok(Self::Split { server, system })
            }
            other => Err(format!(
                "E2E_BENCH_PLACEMENT={other:?}: expected shared or split"
            )),
        }
    }

    /// Pins the calling thread (and so every thread it creates from now on) to the system's
    /// CPUs. Called by `main` before any runtime exists.
    pub fn pin_system(&self) -> Result<(), String> {
        match self {
            Placement::Shared => Ok(()),
            Placement::Split { system, .. } => pin_current_thread(system),
        }
    }

    /// Pins the calling thread to the server's CPU: `on_thread_start` of the devcluster's and
    /// the harness's runtimes.
    pub fn pin_server(&self) -> Result<(), String> {
        match self {
            Placement::Shared => Ok(()),
            Placement::Split { server, .. } => pin_current_thread(&[*server]),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Placement::Shared => "shared: every thread on every CPU".to_string(),
            Placement::Split { server, system } => format!(
                "split: devcluster and harness on CPU {server}, the system on CPU(s) {system:?}"
            ),
        }
    }
}

/// The CPUs the calling thread may run on, ascending.
fn allowed_cpus() -> Result<Vec<usize>, String> {
    // SAFETY: zeroed `cpu_set_t` is the empty set; sched_getaffinity(0, ...) fills it for the
    // calling thread; CPU_ISSET reads inside it for indices below CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(format!(
                "reading this process's CPUs: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok((0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect())
    }
}

fn pin_current_thread(cpus: &[usize]) -> Result<(), String> {
    // SAFETY: zeroed `cpu_set_t` is the empty set; CPU_SET writes inside it for indices below
    // CPU_SETSIZE (checked), and sched_setaffinity(0, ...) reads it for the calling thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            if cpu >= libc::CPU_SETSIZE as usize {
                return Err(format!("CPU {cpu} is beyond CPU_SETSIZE"));
            }
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(format!(
                "pinning a thread to CPUs {cpus:?}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}
