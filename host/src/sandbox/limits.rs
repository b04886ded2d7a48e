//! The per-call memory cap.
//!
//! A guest whose allocator cannot grow memory usually aborts with an `unreachable` trap that is
//! indistinguishable from any other bug. Failing the growth with a typed error instead (the
//! "trap on grow failure" behaviour) stops the guest at the exact point it asked for too much
//! and lets the classifier report out-of-memory by root cause: the error wasmtime surfaces is
//! this [`MemoryCapExceeded`], not a `Trap`.
//!
//! The cap covers the sum of all the instance's linear memories, because a component may hold
//! more than one and the budget is for the plugin, not for one memory.

use wasmtime::ResourceLimiter;

/// A guest asked for more linear memory (or table elements) than its budget allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapExceeded {
    #[error(
        "memory cap exceeded: the guest asked to grow a memory from {current} to {desired} bytes, \
         {held} bytes held in all, cap {cap} bytes"
    )]
    Memory {
        current: usize,
        desired: usize,
        held: usize,
        cap: usize,
    },
    #[error("table cap exceeded: the guest asked for {desired} elements, cap {cap}")]
    Table { desired: usize, cap: usize },
}

/// Tracks the linear memory of one store against its cap.
#[derive(Debug)]
pub struct MemoryCap {
    cap: usize,
    table_elements: usize,
    held: usize,
}

impl MemoryCap {
    pub fn new(cap_bytes: u64, table_elements: u32) -> Self {
        Self {
            cap: usize::try_from(cap_bytes).unwrap_or(usize::MAX),
            table_elements: table_elements as usize,
            held: 0,
        }
    }

    /// Bytes of linear memory held now, across memories.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // `current` of this memory is already part of `held`; growth adds the difference.
        let after = self.held - current.min(self.held) + desired;
        if after > self.cap {
            return Err(wasmtime::Error::new(CapExceeded::Memory {
                current,
                desired,
                held: self.held,
                cap: self.cap,
            }));
        }
        self.held = after;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        // The pool's own per-memory maximum refused a growth we had admitted: the memory did
        // not grow, and we cannot tell by how much, so fail the call the same way.
        Err(error.context(CapExceeded::Memory {
            current: 0,
            desired: 0,
            held: self.held,
            cap: self.cap,
        }))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            return Err(wasmtime::Error::new(CapExceeded::Table {
                desired,
                cap: self.table_elements,
            }));
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 64 * 1024;

    #[test]
    fn growth_within_the_cap_is_allowed_and_tracked() {
        let mut cap = MemoryCap::new(4 * PAGE as u64, 10);
        assert!(cap.memory_growing(0, 2 * PAGE, None).unwrap());
        assert!(cap.memory_growing(2 * PAGE, 4 * PAGE, None).unwrap());
        assert_eq!(cap.held(), 4 * PAGE);
    }

    #[test]
    fn growth_past_the_cap_is_a_typed_error_not_a_refusal() {
        let mut cap = MemoryCap::new(4 * PAGE as u64, 10);
        cap.memory_growing(0, 3 * PAGE, None).unwrap();
        let err = cap.memory_growing(3 * PAGE, 5 * PAGE, None).unwrap_err();
        assert!(matches!(
            err.downcast_ref::<CapExceeded>(),
            Some(CapExceeded::Memory { cap, .. }) if *cap == 4 * PAGE
        ));
        assert_eq!(cap.held(), 3 * PAGE, "a refused growth holds nothing more");
    }

    #[test]
    fn the_cap_covers_all_memories_together() {
        let mut cap = MemoryCap::new(4 * PAGE as u64, 10);
        cap.memory_growing(0, 3 * PAGE, None).unwrap();
        // A second memory starting at 0 may only take what the first left.
        assert!(cap.memory_growing(0, PAGE, None).unwrap());
        assert!(cap.memory_growing(0, PAGE, None).is_err());
    }

    #[test]
    fn tables_are_capped() {
        let mut cap = MemoryCap::new(PAGE as u64, 10);
        assert!(cap.table_growing(0, 10, None).unwrap());
        let err = cap.table_growing(10, 11, None).unwrap_err();
        assert!(err.downcast_ref::<CapExceeded>().is_some());
    }
}
