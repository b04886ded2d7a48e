//! Configuration of the sandbox: one [`EngineConfig`] for the process and one [`Budgets`] per
//! plugin.
//!
//! Both are plain serde structs so the host's YAML config (issue 6) can embed them as they are.
//! Every field has a documented default, unknown fields are rejected (a typo in a limit must not
//! silently leave the default in force), and [`EngineConfig::validate`] /
//! [`Budgets::validate`] name the field at fault, because a limit that cannot be enforced is
//! worse than no limit at all.
//!
//! Keys are camelCase in the config (`maxInstances`, `deadlineMs`), like every Kubernetes-facing
//! config, and [`ConfigError::field`] spells them that way. Durations are integer milliseconds
//! (`...Ms`) so the YAML stays unambiguous without a duration parser.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A configuration value that cannot be used, with the field that holds it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sandbox config: `{field}` {problem}")]
pub struct ConfigError {
    /// The field at fault, as spelled in the config (`budgets.memoryBytes`).
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Process-wide settings of the one wasmtime engine every plugin shares.
///
/// The pooling allocator reserves all instance slots up front; the pool sizes below are therefore
/// hard ceilings: `max_instances` is the most guest calls that can run at once across all
/// plugins (a call beyond it ends in [`Outcome::HostFault`](super::Outcome::HostFault), never in
/// a wait), and `max_memory_bytes` is the most memory any one plugin's budget may grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct EngineConfig {
    /// Guest calls that may run at the same time, across all plugins (pool slots).
    /// Default 64.
    pub max_instances: u32,
    /// Largest linear memory of one instance, in bytes; every plugin's
    /// `budgets.memoryBytes` must fit in it. Default 64 MiB.
    pub max_memory_bytes: u64,
    /// Core wasm instances one component may create (a Rust wasip2 component uses a handful).
    /// Default 16.
    pub max_core_instances_per_component: u32,
    /// Linear memories one component may define. Default 2.
    pub max_memories_per_component: u32,
    /// Tables one component may define. Default 8.
    pub max_tables_per_component: u32,
    /// Elements of one table, which is also the per-call table growth cap. Default 20 000.
    pub max_table_elements: u32,
    /// Wasm stack of a guest call, in bytes; deeper recursion ends in
    /// [`Outcome::StackOverflow`](super::Outcome::StackOverflow). wasmtime sets it per engine,
    /// so it is the same for every plugin. Default 512 KiB.
    pub max_wasm_stack_bytes: u64,
    /// Native stack of the fiber a guest call runs on; must exceed `max_wasm_stack_bytes` by
    /// enough for the host functions the guest calls. Default 2 MiB.
    pub async_stack_bytes: u64,
    /// Bytes of each linear memory kept resident when a pool slot is freed and reset in place
    /// (only the pages the guest dirtied, found with Linux's PAGEMAP_SCAN where available)
    /// instead of being returned to the kernel; the next call then takes no page faults on
    /// them. Costs up to this much resident memory per pool slot. Default 2 MiB.
    pub memory_keep_resident_bytes: u64,
    /// How often the epoch ticker advances the engine's epoch, in milliseconds. A running guest
    /// yields to the async runtime once per tick and its deadline is checked then, so this is
    /// both the longest a guest holds a runtime thread and the deadline's resolution.
    /// Default 5 ms.
    pub epoch_tick_ms: u64,
    /// Directory for compiled components, keyed by the engine's compatibility hash and the
    /// component's bytes, so a restart does not recompile. Must be writable only by the host's
    /// user: a compiled artifact is native code. None (the default) compiles in memory on every
    /// start.
    pub cache_dir: Option<PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_instances: 64,
            max_memory_bytes: 64 * MIB,
            max_core_instances_per_component: 16,
            max_memories_per_component: 2,
            max_tables_per_component: 8,
            max_table_elements: 20_000,
            max_wasm_stack_bytes: 512 * KIB,
            async_stack_bytes: 2 * MIB,
            memory_keep_resident_bytes: 2 * MIB,
            epoch_tick_ms: 5,
            cache_dir: None,
        }
    }
}

impl EngineConfig {
    /// Rejects settings wasmtime would refuse or that would make a limit meaningless.
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive("engine.maxInstances", self.max_instances.into())?;
        positive("engine.maxMemoryBytes", self.max_memory_bytes)?;
        positive(
            "engine.maxCoreInstancesPerComponent",
            self.max_core_instances_per_component.into(),
        )?;
        positive(
            "engine.maxMemoriesPerComponent",
            self.max_memories_per_component.into(),
        )?;
        positive("engine.maxWasmStackBytes", self.max_wasm_stack_bytes)?;
        positive("engine.epochTickMs", self.epoch_tick_ms)?;
        // Host functions run on the same fiber stack below the guest's frames: leave them at
        // least 256 KiB or a deep guest could make a host call overflow the native stack.
        if self.async_stack_bytes < self.max_wasm_stack_bytes + 256 * KIB {
            return Err(ConfigError::new(
                "engine.asyncStackBytes",
                format!(
                    "is {} but must be at least engine.maxWasmStackBytes ({}) + 256 KiB",
                    self.async_stack_bytes, self.max_wasm_stack_bytes
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn epoch_tick(&self) -> Duration {
        Duration::from_millis(self.epoch_tick_ms)
    }
}

/// What one call of one plugin may consume. Checked by [`Budgets::validate`] against the
/// engine it runs on.
///
/// Fuel, deadline and memory stop the guest outright; host calls, bytes and writes make further
/// imports answer `budget-exceeded` without doing any work; logs and stdio past their caps are
/// dropped and counted, never failing the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Budgets {
    /// Wasm fuel (about one unit per instruction), instantiation included. Default 1e9,
    /// about a second of pure compute on a 2 GHz core.
    pub fuel: u64,
    /// Wall-clock deadline of the whole call, instantiation and time spent inside host calls
    /// included, in milliseconds. Default 5000.
    pub deadline_ms: u64,
    /// Linear memory the guest may hold, summed over its memories, in bytes. At most the
    /// engine's `max_memory_bytes`. Default 32 MiB.
    pub memory_bytes: u64,
    /// Cache reads, writes and events the guest may ask for. Default 1000.
    pub host_calls: u32,
    /// Bytes the host may hand back to the guest (objects read, objects returned by writes).
    /// Default 16 MiB.
    pub returned_bytes: u64,
    /// Writes (apply, patch-status, create, delete) and events. Default 100.
    pub writes: u32,
    /// Bytes of structured log messages and fields; each line also costs
    /// [`LOG_LINE_OVERHEAD`](super::budget::LOG_LINE_OVERHEAD) bytes so that empty lines are
    /// not free. Default 64 KiB.
    pub log_bytes: u64,
    /// Bytes kept from each of stdout and stderr (forwarded to tracing). Default 16 KiB.
    pub stdio_bytes: u64,
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            fuel: 1_000_000_000,
            deadline_ms: 5_000,
            memory_bytes: 32 * MIB,
            host_calls: 1_000,
            returned_bytes: 16 * MIB,
            writes: 100,
            log_bytes: 64 * KIB,
            stdio_bytes: 16 * KIB,
        }
    }
}

impl Budgets {
    /// Rejects budgets that cannot be enforced on `engine`.
    pub fn validate(&self, engine: &EngineConfig) -> Result<(), ConfigError> {
        positive("budgets.fuel", self.fuel)?;
        positive("budgets.deadlineMs", self.deadline_ms)?;
        positive("budgets.memoryBytes", self.memory_bytes)?;
        if self.memory_bytes > engine.max_memory_bytes {
            return Err(ConfigError::new(
                "budgets.memoryBytes",
                format!(
                    "is {} but the engine's pool holds at most engine.maxMemoryBytes = {} per \
                     instance",
                    self.memory_bytes, engine.max_memory_bytes
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }
}

fn positive(field: &'static str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::new(field, "must be greater than 0"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let engine = EngineConfig::default();
        engine.validate().unwrap();
        Budgets::default().validate(&engine).unwrap();
    }

    #[test]
    fn partial_json_keeps_defaults_for_missing_fields() {
        let b: Budgets = serde_json::from_str(r#"{"fuel": 5, "writes": 2}"#).unwrap();
        assert_eq!(b.fuel, 5);
        assert_eq!(b.writes, 2);
        assert_eq!(b.deadline_ms, Budgets::default().deadline_ms);
        let e: EngineConfig = serde_json::from_str(r#"{"cacheDir": "/var/cache/x"}"#).unwrap();
        assert_eq!(e.cache_dir, Some(PathBuf::from("/var/cache/x")));
        assert_eq!(e.max_instances, 64);
    }

    #[test]
    fn unknown_fields_are_rejected_by_name() {
        let err = serde_json::from_str::<Budgets>(r#"{"fule": 5}"#).unwrap_err();
        assert!(err.to_string().contains("fule"), "{err}");
        let err = serde_json::from_str::<EngineConfig>(r#"{"maxInstance": 5}"#).unwrap_err();
        assert!(err.to_string().contains("maxInstance"), "{err}");
    }

    #[test]
    fn zero_limits_are_rejected_by_field() {
        let engine = EngineConfig::default();
        for (field, budgets) in [
            (
                "budgets.fuel",
                Budgets {
                    fuel: 0,
                    ..Budgets::default()
                },
            ),
            (
                "budgets.deadlineMs",
                Budgets {
                    deadline_ms: 0,
                    ..Budgets::default()
                },
            ),
            (
                "budgets.memoryBytes",
                Budgets {
                    memory_bytes: 0,
                    ..Budgets::default()
                },
            ),
        ] {
            assert_eq!(budgets.validate(&engine).unwrap_err().field, field);
        }
        let e = EngineConfig {
            epoch_tick_ms: 0,
            ..EngineConfig::default()
        };
        assert_eq!(e.validate().unwrap_err().field, "engine.epochTickMs");
        let e = EngineConfig {
            max_instances: 0,
            ..EngineConfig::default()
        };
        assert_eq!(e.validate().unwrap_err().field, "engine.maxInstances");
    }

    #[test]
    fn memory_budget_must_fit_the_pool() {
        let engine = EngineConfig {
            max_memory_bytes: MIB,
            ..EngineConfig::default()
        };
        let err = Budgets {
            memory_bytes: 2 * MIB,
            ..Budgets::default()
        }
        .validate(&engine)
        .unwrap_err();
        assert_eq!(err.field, "budgets.memoryBytes");
        assert!(err.to_string().contains("engine.maxMemoryBytes"), "{err}");
    }

    #[test]
    fn fiber_stack_must_leave_room_for_host_functions() {
        let e = EngineConfig {
            max_wasm_stack_bytes: MIB,
            async_stack_bytes: MIB,
            ..EngineConfig::default()
        };
        assert_eq!(e.validate().unwrap_err().field, "engine.asyncStackBytes");
    }
}
