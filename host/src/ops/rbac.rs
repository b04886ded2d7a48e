//! Least-privilege RBAC for a config (`trellis rbac`, issue 6).
