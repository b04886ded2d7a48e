//! Placeholder until the queue benchmark lands.
fn main() {}
