//! What the integration tests of `trellis-host` share, one concept a module. A test file takes
//! the whole of it with `mod support;`; a benchmark or another support module takes only the
//! module it needs with `#[path = ".../support/<module>.rs"] mod <module>;`, which is why the
//! modules taken that way (components, configmap_cache, read_only_host, runtime) refer to no
//! other.
//!
//! Test code only: nothing here belongs in the library (none of it is a behaviour of the host).

#![allow(dead_code)] // each test binary uses a different part of it

pub mod cluster;
pub mod components;
pub mod configmap_cache;
pub mod informers;
pub mod keys;
pub mod metrics;
pub mod read_only_host;
pub mod runtime;
pub mod wait;
