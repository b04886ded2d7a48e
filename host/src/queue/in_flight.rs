//! The set of keys held by workers, as start times in reusable slots.
//!
//! The processing set itself is the keys whose entry is `InFlight` (see `entry.rs`); this slab
//! keeps their start times (the only copy: a finish gets its key's start back from here) where
//! a metrics scrape can read them without walking every entry.
//! `workqueue_unfinished_work_seconds` and `workqueue_longest_running_processor_seconds` are
//! computed from it at scrape time, so the hot path pays one slot write per take and one per
//! finish instead of updating gauges (controller-runtime runs a goroutine every 500 ms for this).

use tokio::time::Instant;

/// Start times of in-flight keys.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    starts: Vec<Option<Instant>>,
    free: Vec<u32>,
    count: usize,
}

/// What a scrape reports about in-flight work.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct InFlightStats {
    /// Keys held by workers.
    pub count: usize,
    /// Sum of how long each held key has been held, in seconds.
    pub unfinished_seconds: f64,
    /// How long the longest-held key has been held, in seconds.
    pub longest_seconds: f64,
}

impl InFlight {
    /// Records a start; returns the slot to pass to [`InFlight::finish`].
    pub(crate) fn start(&mut self, now: Instant) -> u32 {
        self.count += 1;
        if let Some(slot) = self.free.pop() {
            self.starts[slot as usize] = Some(now);
            return slot;
        }
        self.starts.push(Some(now));
        u32::try_from(self.starts.len() - 1).unwrap_or(u32::MAX)
    }

    /// Frees `slot`, returning its start time. Unknown or already-free slots are ignored
    /// (`None`).
    pub(crate) fn finish(&mut self, slot: u32) -> Option<Instant> {
        let started = self.starts.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        self.count -= 1;
        Some(started)
    }

    pub(crate) fn count(&self) -> usize {
        self.count
    }

    pub(crate) fn stats(&self, now: Instant) -> InFlightStats {
        let mut stats = InFlightStats {
            count: self.count,
            ..InFlightStats::default()
        };
        for start in self.starts.iter().flatten() {
            let held = now.saturating_duration_since(*start).as_secs_f64();
            stats.unfinished_seconds += held;
            stats.longest_seconds = stats.longest_seconds.max(held);
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stats_sum_and_max_and_slots_are_reused() {
        let t0 = Instant::now();
        let mut f = InFlight::default();
        let a = f.start(t0);
        let b = f.start(t0 + Duration::from_secs(2));
        let s = f.stats(t0 + Duration::from_secs(5));
        assert_eq!(s.count, 2);
        assert_eq!(s.unfinished_seconds, 8.0);
        assert_eq!(s.longest_seconds, 5.0);
        assert_eq!(f.finish(a), Some(t0));
        assert_eq!(f.finish(a), None, "double finish is ignored");
        assert_eq!(f.finish(99), None, "unknown slot is ignored");
        assert_eq!(f.count(), 1);
        let c = f.start(t0);
        assert_eq!(c, a, "freed slot reused");
        assert_eq!(f.finish(b), Some(t0 + Duration::from_secs(2)));
        assert_eq!(f.finish(c), Some(t0));
        assert_eq!(f.stats(t0), InFlightStats::default());
    }
}
