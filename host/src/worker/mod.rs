//! The bounded worker pool of each plugin: queue -> cache -> sandbox -> outcome (issue 6).
