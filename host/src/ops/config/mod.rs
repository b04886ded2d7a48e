//! The host config file: schema, loading, and validation that reports every mistake at once (issue 6).
