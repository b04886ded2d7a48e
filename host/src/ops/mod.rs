//! Running the process: config, CLI commands, metrics and health endpoints, leadership.
//!
//! Everything here is about operating the host; none of it is on the data path of DESIGN.md's
//! diagram, which the other top-level modules own.

pub mod check;
pub mod cli;
pub mod config;
pub mod dev;
pub mod health;
pub mod http;
pub mod leader;
pub mod rbac;
pub mod signals;
pub mod telemetry;
