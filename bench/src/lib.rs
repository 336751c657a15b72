//! Helpers for the step benchmarks.
