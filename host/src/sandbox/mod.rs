//! The Wasm sandbox (see issue 2).
