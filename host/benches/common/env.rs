//! Bench knobs from the environment, shared by the bench binaries (each includes this file
//! with `#[path]`).

/// `name` parsed as a `T`, or `default` when it is unset or does not parse.
pub fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
