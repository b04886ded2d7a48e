//! Bench knobs from the environment, shared by the bench binaries (each includes this file
//! with `#[path]`). A knob that is set but does not parse stops the bench with its name and
//! value: a typo must not silently run the default workload and be reported as the asked one.

#![allow(
    dead_code,
    reason = "each bench binary includes this file and uses what it needs of it"
)]

/// `name` parsed as a `T`, or `default` when it is unset.
pub fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    env_opt(name).unwrap_or(default)
}

/// `name` parsed as a `T`, or `None` when it is unset.
pub fn env_opt<T: std::str::FromStr>(name: &str) -> Option<T> {
    let value = std::env::var(name).ok()?;
    Some(value.parse().unwrap_or_else(|_| {
        panic!(
            "{name}={value:?} is not a valid {}",
            std::any::type_name::<T>()
        )
    }))
}
