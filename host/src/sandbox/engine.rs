//! The one wasmtime [`Engine`] every plugin runs on, configured explicitly.
//!
//! Every setting the sandbox relies on is spelled out rather than left to wasmtime's defaults,
//! which change between releases (and some read environment variables):
//!
//! - fuel and epoch interruption on: fuel bounds compute, epochs bound wall time and make a
//!   running guest yield to the runtime once per tick;
//! - the pooling allocator, sized from [`EngineConfig`]: instantiation reuses pre-reserved
//!   slots (with copy-on-write memory images, and the pages a call dirtied reset in place up
//!   to `memory_keep_resident_bytes`), which is what makes a fresh instance per call
//!   affordable;
//! - `concurrency_support(false)`: we do not use component-model async, and skipping its
//!   per-store state cut a fresh call from ~118 µs to ~84 µs (DESIGN);
//! - wasm proposals a Rust `wasm32-wasip2` guest does not emit are off, so a component that
//!   needs them fails at load with a clear validation error instead of running on a feature we
//!   never tested (threads, shared memory, GC, exceptions, memory64, tail calls, ...);
//! - wasm backtraces on (trap messages name the guest function) but their details
//!   (DWARF line info) off, and never decided by an environment variable.

use std::num::NonZeroUsize;

use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig,
    Strategy, WasmBacktraceDetails, WasmFeatures,
};

use super::config::EngineConfig;

/// Builds the engine for `config`, which must already be validated.
pub fn build(config: &EngineConfig) -> wasmtime::Result<Engine> {
    let mut wasm = Config::new();

    // Compilation.
    wasm.strategy(Strategy::Cranelift)
        .cranelift_opt_level(OptLevel::Speed)
        .parallel_compilation(true)
        .debug_info(false)
        .wasm_backtrace_max_frames(NonZeroUsize::new(20))
        .wasm_backtrace_details(WasmBacktraceDetails::Disable);

    // Interruption: fuel for compute, epochs for wall time.
    wasm.consume_fuel(true).epoch_interruption(true);

    // Stacks: the wasm stack cap, inside a fiber stack with room for host functions.
    wasm.max_wasm_stack(to_usize(config.max_wasm_stack_bytes))
        .async_stack_size(to_usize(config.async_stack_bytes));

    // No component-model async: none of its per-store state.
    wasm.concurrency_support(false);

    // Wasm features: what Rust's wasm32-wasip2 emits, and nothing else.
    wasm.wasm_component_model(true)
        .wasm_bulk_memory(true)
        .wasm_multi_value(true)
        .wasm_simd(true)
        .wasm_relaxed_simd(false)
        .wasm_shared_everything_threads(false)
        .wasm_gc(false)
        .wasm_tail_call(false)
        .wasm_memory64(false)
        .wasm_multi_memory(false)
        .wasm_extended_const(false)
        .wasm_wide_arithmetic(false)
        .wasm_custom_page_sizes(false)
        .wasm_stack_switching(false)
        .wasm_branch_hinting(false)
        // These have no named setter without wasmtime's `threads`/`gc` cargo features.
        .wasm_features(
            WasmFeatures::THREADS | WasmFeatures::EXCEPTIONS | WasmFeatures::FUNCTION_REFERENCES,
            false,
        )
        // Rust emits reference types (`call_indirect` with a table index) by default.
        .wasm_features(WasmFeatures::REFERENCE_TYPES, true);

    // Memory: the pool, copy-on-write initial images.
    let slots = config.max_instances;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(slots)
        .total_core_instances(slots.saturating_mul(config.max_core_instances_per_component))
        .max_core_instances_per_component(config.max_core_instances_per_component)
        .total_memories(slots.saturating_mul(config.max_memories_per_component))
        .max_memories_per_component(config.max_memories_per_component)
        .max_memories_per_module(1)
        .total_tables(slots.saturating_mul(config.max_tables_per_component))
        .max_tables_per_component(config.max_tables_per_component)
        .table_elements(config.max_table_elements as usize)
        .total_stacks(slots)
        .max_memory_size(to_usize(config.max_memory_bytes))
        // Reset dirtied pages in place rather than page-faulting them back in on every call.
        .linear_memory_keep_resident(to_usize(config.memory_keep_resident_bytes))
        .table_keep_resident(config.max_table_elements as usize * 8)
        .pagemap_scan(Enabled::Auto);
    wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .memory_init_cow(true);

    Engine::new(&wasm)
}

fn to_usize(bytes: u64) -> usize {
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(max_instances: u32) -> Engine {
        build(&EngineConfig {
            max_instances,
            ..EngineConfig::default()
        })
        .unwrap()
    }

    fn store(engine: &Engine, fuel: u64) -> wasmtime::Store<()> {
        let mut store = wasmtime::Store::new(engine, ());
        store.set_fuel(fuel).unwrap();
        store.set_epoch_deadline(1_000_000);
        store
    }

    #[test]
    fn fuel_is_on_and_bounds_a_spinning_module() {
        let engine = engine(1);
        let module = wasmtime::Module::new(
            &engine,
            wat::parse_str(r#"(module (func (export "spin") (loop br 0)))"#).unwrap(),
        )
        .unwrap();
        let mut store = store(&engine, 10_000);
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
        let spin = instance
            .get_typed_func::<(), ()>(&mut store, "spin")
            .unwrap();
        let err = spin.call(&mut store, ()).unwrap_err();
        assert_eq!(
            err.downcast_ref::<wasmtime::Trap>(),
            Some(&wasmtime::Trap::OutOfFuel)
        );
    }

    #[test]
    fn epochs_are_on_and_interrupt_at_the_deadline() {
        let engine = engine(1);
        let module = wasmtime::Module::new(
            &engine,
            wat::parse_str(r#"(module (func (export "spin") (loop br 0)))"#).unwrap(),
        )
        .unwrap();
        let mut store = store(&engine, u64::MAX);
        store.set_epoch_deadline(1);
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
        let spin = instance
            .get_typed_func::<(), ()>(&mut store, "spin")
            .unwrap();
        let ticker = std::thread::spawn({
            let engine = engine.clone();
            move || engine.increment_epoch()
        });
        let err = spin.call(&mut store, ()).unwrap_err();
        ticker.join().unwrap();
        assert_eq!(
            err.downcast_ref::<wasmtime::Trap>(),
            Some(&wasmtime::Trap::Interrupt)
        );
    }

    #[test]
    fn the_pool_is_sized_from_the_config_and_slots_come_back() {
        // One slot of two memories: a third live memory has nowhere to go.
        let engine = engine(1);
        let module =
            wasmtime::Module::new(&engine, wat::parse_str("(module (memory 1))").unwrap()).unwrap();
        let mut live: Vec<_> = (0..2)
            .map(|_| {
                let mut s = store(&engine, 1000);
                wasmtime::Instance::new(&mut s, &module, &[]).unwrap();
                s
            })
            .collect();
        let mut third = store(&engine, 1000);
        let err = wasmtime::Instance::new(&mut third, &module, &[]).unwrap_err();
        assert!(
            format!("{err:#}").contains("maximum concurrent limit of 2"),
            "{err:#}"
        );
        live.pop();
        wasmtime::Instance::new(&mut third, &module, &[]).unwrap();
    }

    #[test]
    fn a_threads_module_is_rejected_at_validation() {
        let engine = build(&EngineConfig {
            max_instances: 1,
            ..EngineConfig::default()
        })
        .unwrap();
        // (module (memory 1 1 shared))
        let shared_memory = [
            0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x05, 0x04, 0x01, 0x03, 0x01, 0x01,
        ];
        let err = wasmtime::Module::new(&engine, shared_memory).unwrap_err();
        assert!(format!("{err:?}").contains("threads"), "{err:?}");
    }
}
