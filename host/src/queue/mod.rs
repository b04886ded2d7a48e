//! The per-plugin work queue (see issue 4).
