//! One guest call: a fresh store and instance, every limit armed, a classified report.
//!
//! The life of a call (each step can end it; every end is a [`CallReport`]):
//!
//! 1. *armed*: a new [`Store`] holds a deny-all WASI context with captured stdio, the memory
//!    cap, the budget meter, and the fuel budget; the epoch deadline fires on every tick;
//! 2. *instantiating*: a pool slot is taken and the component instantiated (its start code
//!    runs on the guest's fuel);
//! 3. *running*: `reconcile` runs on a fiber. On every epoch tick it yields to the runtime, and
//!    past the deadline the epoch callback fails it with [`DeadlineExceeded`]. An outer
//!    `tokio::time::timeout_at` on the same deadline also covers time spent waiting inside a
//!    host call, where no epoch check can run: the pending future (host call included) is
//!    dropped;
//! 4. *finished*: the store is dropped (freeing the slot), stdio goes to tracing, and the error,
//!    if any, is classified by root cause.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::PluginPre;
use super::budget::Meter;
use super::config::Budgets;
use super::host::{Action, PluginHost, ReconcileRequest};
use super::imports::{CallContext, GuestImports};
use super::limits::MemoryCap;
use super::outcome::{CallReport, Outcome, Phase, classify};
use super::stdio::{Capture, forward_to_tracing};

/// The wall-clock deadline of a call passed while the guest was running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline exceeded")]
pub struct DeadlineExceeded;

/// The data of one call's [`Store`]: each part owns one concern.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    cap: MemoryCap,
    pub(crate) imports: GuestImports,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// What a call needs besides the request; shared by every call of a plugin.
pub struct CallSetup<'a> {
    pub engine: &'a Engine,
    pub pre: &'a PluginPre<CallState>,
    pub plugin: &'a Arc<str>,
    pub budgets: &'a Budgets,
    pub table_elements: u32,
}

/// A deny-all WASI context: no files, environment, arguments, sockets or name lookup; stdin
/// closed; stdout and stderr captured. Clocks and randomness stay (Rust's std needs them).
fn deny_all_wasi(stdout: &Capture, stderr: &Capture) -> WasiCtx {
    WasiCtxBuilder::new()
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .allow_blocking_current_thread(false)
        .build()
}

impl CallSetup<'_> {
    /// A store for one call with every limit armed, and the stdio captures it writes to.
    fn store(
        &self,
        host: Arc<dyn PluginHost>,
        request: &ReconcileRequest,
        deadline: Instant,
    ) -> (Store<CallState>, Capture, Capture) {
        let stdout = Capture::new(self.budgets.stdio_bytes);
        let stderr = Capture::new(self.budgets.stdio_bytes);
        let context = CallContext {
            plugin: self.plugin.clone(),
            kind: request.kind.clone(),
            key: request.key.clone(),
        };
        let state = CallState {
            wasi: deny_all_wasi(&stdout, &stderr),
            table: ResourceTable::new(),
            cap: MemoryCap::new(self.budgets.memory_bytes, self.table_elements),
            imports: GuestImports::new(context, Meter::new(self.budgets), host),
        };
        let mut store = Store::new(self.engine, state);
        store.limiter(|state| &mut state.cap);
        store
            .set_fuel(self.budgets.fuel)
            .expect("the engine is built with fuel on");
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(wasmtime::Error::new(DeadlineExceeded))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store.set_epoch_deadline(1);
        (store, stdout, stderr)
    }

    /// Runs `reconcile` in a fresh instance and reports how it ended. Never panics on guest
    /// behaviour.
    pub async fn run(&self, host: Arc<dyn PluginHost>, request: &ReconcileRequest) -> CallReport {
        let started = Instant::now();
        let deadline = started + self.budgets.deadline();
        let (mut store, stdout, stderr) = self.store(host, request, deadline);

        let run = async {
            let instance = self
                .pre
                .instantiate_async(&mut store)
                .await
                .map_err(|e| (Phase::Instantiate, e))?;
            instance
                .call_reconcile(&mut store, request)
                .await
                .map_err(|e| (Phase::Call, e))
        };
        let result = tokio::time::timeout_at(deadline.into(), run).await;

        let fuel_used = self
            .budgets
            .fuel
            .saturating_sub(store.get_fuel().unwrap_or(0));
        let usage = store.data().imports.meter().usage();
        drop(store);
        let wall_time = started.elapsed();

        let out = stdout.take();
        let err = stderr.take();
        forward_to_tracing(self.plugin, "stdout", &out);
        forward_to_tracing(self.plugin, "stderr", &err);

        let outcome = match result {
            Ok(Ok(action)) => Outcome::Ok(action),
            Ok(Err((phase, error))) => {
                let stderr_text = format!("{}{}", err.head_text(), err.tail_text());
                classify(&error, phase, &stderr_text)
            }
            Err(_elapsed) => Outcome::Deadline,
        };
        log_outcome(self.plugin, request, &outcome, wall_time);
        CallReport {
            outcome,
            fuel_used,
            wall_time,
            usage,
            stdio_dropped_bytes: out.dropped + err.dropped,
        }
    }

    /// An instance kept across calls, for measuring what a fresh instance costs. It breaks
    /// invariant 3 (nothing survives between calls), so nothing but benchmarks may use it.
    pub async fn reused(&self, host: Arc<dyn PluginHost>) -> wasmtime::Result<ReusedInstance> {
        let request = ReconcileRequest {
            kind: super::host::Gvk {
                group: String::new(),
                version: String::new(),
                kind: String::new(),
            },
            key: super::host::ObjectKey {
                namespace: None,
                name: String::new(),
            },
            object: None,
        };
        // Far enough that no benchmark reaches it; fuel is refilled before every call.
        let deadline = Instant::now() + Duration::from_secs(24 * 3600);
        let (mut store, _, _) = self.store(host, &request, deadline);
        let instance = self.pre.instantiate_async(&mut store).await?;
        Ok(ReusedInstance {
            store,
            instance,
            fuel: self.budgets.fuel,
        })
    }
}

/// An instance kept across calls, for benchmarks only (it breaks invariant 3); from
/// `Plugin::reused_instance_for_benchmarks`.
pub struct ReusedInstance {
    store: Store<CallState>,
    instance: super::bindings::Plugin,
    fuel: u64,
}

impl ReusedInstance {
    pub async fn reconcile(&mut self, request: &ReconcileRequest) -> wasmtime::Result<Action> {
        self.store.set_fuel(self.fuel)?;
        self.instance.call_reconcile(&mut self.store, request).await
    }
}

fn log_outcome(plugin: &str, request: &ReconcileRequest, outcome: &Outcome, wall: Duration) {
    let namespace = request.key.namespace.as_deref().unwrap_or("");
    let name = request.key.name.as_str();
    let wall_us = wall.as_micros() as u64;
    match outcome {
        Outcome::Ok(_) => {
            tracing::debug!(
                plugin,
                namespace,
                name,
                outcome = outcome.name(),
                wall_us,
                "reconciled"
            )
        }
        other => tracing::warn!(
            plugin,
            namespace,
            name,
            outcome = other.name(),
            wall_us,
            detail = ?other,
            "reconcile failed"
        ),
    }
}
