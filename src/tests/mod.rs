//! The crate's tests. They live under `src/` (the repository's top level
//! holds only the crate, benches, loom models and examples) and drive the
//! public API as a user would; `crate::test_support::engine_lock` keeps
//! engine installs from overlapping.

mod burst;
mod config;
mod conservation;
mod controller;
mod describe;
mod dynamic_labels;
mod engine;
mod exact;
mod faults;
mod health;
mod histograms;
mod honesty;
mod hostile;
mod idle;
mod lifetime;
mod sampling;
mod steps_honesty;
mod summed_honesty;
mod targeting;
