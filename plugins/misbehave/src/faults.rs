//! Modes that break the guest itself: CPU, memory, stack, traps, panics, and state that would
//! survive between calls if the host reused instances.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use trellis_guest::{Action, Error};

use crate::params::Params;

/// Written on every iteration or frame, so the optimizer can neither drop the work nor turn
/// the recursion into a loop.
static PROGRESS: AtomicU64 = AtomicU64::new(0);

/// `loop`: spins forever without calling the host. Only fuel or the epoch deadline stop it.
pub fn spin() -> ! {
    loop {
        PROGRESS.fetch_add(1, Ordering::Relaxed);
    }
}

/// `memory`: allocates `chunk-bytes` (default 1 MiB) at a time and touches every page, until
/// allocation fails (the host's memory cap) or `limit-bytes` is reached (then `done`).
pub fn allocate(params: &Params) -> Result<Action, Error> {
    let chunk = params.number_or("chunk-bytes", 1 << 20)?.max(1);
    let limit = params.number("limit-bytes")?;
    let chunk =
        usize::try_from(chunk).map_err(|_| Error::permanent("data.chunk-bytes: too large"))?;
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut total: u64 = 0;
    while limit.is_none_or(|limit| total < limit) {
        // Non-zero bytes, so every page is really committed, not left to a zeroed mapping.
        held.push(vec![0xA5; chunk]);
        total += chunk as u64;
    }
    trellis_guest::info!(
        bytes = total,
        chunks = held.len(),
        "memory: allocated up to the limit"
    );
    Ok(Action::done())
}

#[inline(never)]
fn descend(depth: u64, limit: u64) -> u64 {
    if depth >= limit {
        return depth;
    }
    let below = descend(depth + 1, limit);
    // Work after the call keeps it out of tail position, and in a form LLVM cannot turn into
    // a loop: an atomic update (which may not move across the call) and a combination of the
    // callee's result that is not a single associative operation (an XOR alone was rewritten
    // as an accumulator loop, which ran out of fuel instead of overflowing the stack).
    PROGRESS.fetch_add(1, Ordering::Relaxed);
    below.wrapping_mul(31).wrapping_add(depth)
}

/// `recursion`: recurses without bound (a wasm stack overflow), or `depth` frames deep and
/// then `done`. Frames keep their state in wasm locals, not on the shadow stack in linear
/// memory, so it is the host's wasm stack cap that stops it.
pub fn recurse(params: &Params) -> Result<Action, Error> {
    let limit = params.number_or("depth", u64::MAX)?;
    let reached = descend(0, limit);
    trellis_guest::info!(depth = limit, checksum = reached, "recursion: returned");
    Ok(Action::done())
}

/// `trap`: executes `unreachable`.
pub fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

/// `panic`: panics with `message` (in a guest built with panic=abort, a trap after the panic
/// message is written to stderr).
pub fn panic(params: &Params) -> Result<Action, Error> {
    let message = params.text_or("message", "misbehave: panic requested")?;
    panic!("{message}");
}

static CALLS: AtomicU64 = AtomicU64::new(0);

/// `static-state`: counts calls in a static and reports the count both as a log field and as
/// the requeue delay in milliseconds. In a fresh instance per call, the answer is always 1 ms.
pub fn count_calls() -> Action {
    let calls = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    trellis_guest::info!(calls = calls, "static-state");
    Action::requeue_after(Duration::from_millis(calls))
}
