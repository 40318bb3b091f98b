//! The consumer side: everything that runs on the flusher thread (or on a
//! caller taking a snapshot), never on a `record!` call.
//!
//! | file | what it holds |
//! |---|---|
//! | `shared.rs` | the state the engine, the flusher and the exporters' feed share: drain, snapshot, stats |
//! | `flusher.rs` | the flusher thread: drain often, run the controller, feed the exporters, final drain |
//! | `controller.rs` | the rate controller, a pure function tested by simulation |
//! | `aggregate.rs` | per-series estimators: Horvitz–Thompson totals and variances, weighted histograms |
//! | `health.rs` | the per-period figures behind `engine.health()` |
//! | `catalog.rs` | declared units and descriptions, observable collectors |
//! | `config.rs` | the validated settings this side reads |
//!
//! It imports the hot side (rings, cells, the registry) and `report/`;
//! nothing here imports `export/` or `engine/`.

pub(crate) mod aggregate;
pub(crate) mod allocator;
pub(crate) mod catalog;
pub(crate) mod config;
pub mod controller;
pub(crate) mod flusher;
pub(crate) mod health;
pub(crate) mod idle;
pub(crate) mod live;
pub(crate) mod shared;
pub(crate) mod targeting;
