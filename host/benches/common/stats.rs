//! Summary statistics shared by the bench binaries (each includes this file with `#[path]`).

#![allow(
    dead_code,
    reason = "each bench binary includes this file and uses what it needs of it"
)]

/// The median of `values` (the mean of the two middle ones for an even count); `None` when
/// there are none.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

/// The `q` quantile (0 to 1) of `sorted` by nearest rank: the smallest sample with at least a
/// `q` share of the samples at or below it (so p99 of 100 samples is the 99th); `None` when
/// there are none.
pub fn nearest_rank<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied()
}
