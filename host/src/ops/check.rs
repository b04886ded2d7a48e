//! `trellis check`: config, components and permissions validated without starting (issue 6).
