//! Summary statistics shared by the bench binaries (each includes this file with `#[path]`).

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
