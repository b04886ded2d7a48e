//! Placeholder until the sandbox benchmark lands.
fn main() {}
