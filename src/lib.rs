//! # hotmetrics
//!
//! Lock-free, sampled metrics for hot paths, with statistically honest
//! estimates and OpenTelemetry-shaped output.
//!
//! Each thread decides locally, with a countdown, whether to sample a call
//! (an unsampled call is three instructions and no shared write), and only
//! sampled calls do any shared work: one push into a bounded lock-free ring.
//! A background flusher drains the rings, weights every sample by the
//! inverse of the probability it was taken with (Horvitz–Thompson), and
//! reports each total with its standard error and sample count. The OTLP
//! and Prometheus exporters send each estimated series' variance beside it,
//! which backends can sum across instances and take over windows.
//!
//! By default each series is sampled just enough for its own accuracy
//! target (1 % relative standard error per export interval): hot series
//! far below 1 %, rare ones and up-down levels exactly. A fixed rate, or
//! the buffer-pressure controller of earlier releases, are a setting away
//! ([`ControllerMode`]).
//!
//! ## Quick start
//!
//! ```
//! use hotmetrics::record;
//!
//! let engine = hotmetrics::Engine::builder()
//!     .install()
//!     .expect("valid configuration");
//!
//! for i in 0..100_000u64 {
//!     record!(counter: "requests", 1);
//!     record!(histogram: "latency_us", (i % 100) as f64);
//! }
//! record!(critical counter: "errors", 1); // never sampled
//!
//! let snapshot = engine.snapshot();
//! let requests = snapshot.counter("requests", &[]).unwrap();
//! // New counters are exact until their rate is known.
//! assert!((requests.value - 100_000.0).abs() <= 6.0 * requests.std_error);
//! assert_eq!(snapshot.counter("errors", &[]).unwrap().value, 1.0);
//! engine.shutdown().unwrap();
//! ```
//!
//! ## Data flow
//!
//! ```text
//! record! ─► thread-local countdown ─(sampled: id, value, π)─► ring ─► flusher
//!    │        (the series' step taken off it;                   │ full: │ Σ v/π, Σ v²(1−π)/π²
//!    │         no shared write when unsampled)                  ▼ spill ▼ per series
//!    └─ exact: thread's own cell (critical, up-down, rare)  allocator ◄── rates, spread, ring, CPU
//!                                                               │ base rate + every series' step
//!                                                               ▼
//!                                                      exporter threads ─► stdout / OTLP / ...
//! ```
//!
//! ## Where things are
//!
//! The source tree follows the data flow, and imports run one way (down
//! this list; `.ci/imports.py` checks that no file imports back up and that
//! no two files import each other in a circle):
//!
//! * `hot/`: everything a `record!` or handle call can reach: the callsite
//!   cache, the inline entries and their cold halves, the sampler, the
//!   thread-local state, the pipeline and its rings, the series registry and
//!   the handles. It imports nothing outside itself but `sync.rs` and
//!   `error.rs`.
//! * `report/`: what the consumer side builds and exporters read:
//!   [`Snapshot`], [`Stats`], [`Health`].
//! * `drain/`: the consumer side: the flusher thread, the allocator that
//!   sets each series' sampling for its accuracy target, the one-rate
//!   controller (`controller.rs`), the estimators (`aggregate.rs`), the
//!   health monitor.
//! * `export/`: the [`Exporter`](export::Exporter) trait and the exporters.
//! * `engine/`: the [`Engine`] handle and its [`Builder`].
//! * `otel/` (feature `otel-api`): the OpenTelemetry API provider.
//! * `testing.rs`: the test engine and [`testing::Watch`], for tests of
//!   code that records.
//! * `metrics_rs/` (feature `metrics`): the `metrics` facade recorder and
//!   its lock-free key cache.
//!
//! ## What runs per call
//!
//! An unsampled `record!(counter: ..)` takes its callsite's step (1) off
//! the thread's countdown and branches on the borrow: three instructions,
//! no shared write. Everything else (the sampling decision, validation, the
//! ring push, spilling on a full ring, resolving a callsite the first time,
//! exact handle calls) leaves through one `#[cold]` call into
//! `hot/slow.rs`. An exact `record!` (`critical counter`, `critical
//! updown`, `updown`) adds to the thread's own cell for its series with a
//! load and a store (`hot/exact.rs`), no shared write either.
//!
//! Design notes live beside the code, in the source (they document private
//! modules, so they are not in this API documentation): `hot/sampler.rs`
//! for the geometric skip, `hot/thread.rs` for the thread-local state and
//! its pointer rules, `hot/exact.rs` for the per-thread exact cells and
//! their fold at exit, `hot/ring.rs` for the queue protocol,
//! `drain/controller.rs` for the rate policy, `drain/aggregate.rs` for the
//! estimators.
//!
//! ## What is public
//!
//! Everything a user needs is at the root or under [`export`] (and
//! `otel` and `metrics_rs` with their features). A histogram's weighted distribution (log-linear
//! buckets, `report/distribution`) is not part of the API: read it
//! through [`HistogramSnapshot`]'s own methods. Three hidden paths exist: `__private` (what the macros expand
//! to), `loom_api` (built only under `--cfg loom`, for the models) and
//! `controller` (the rate policy's pure function and its inputs, kept
//! reachable for code written against earlier releases; [`ControllerMode`]
//! is at the root). None of them is a stable API.

mod drain;
mod engine;
mod error;
pub mod export;
mod hot;
mod macros;
#[cfg(any(feature = "metrics", loom))]
pub mod metrics_rs;
#[cfg(feature = "otel-api")]
pub mod otel;
mod report;
mod sync;
pub mod testing;

pub use drain::catalog::describe;
/// The one-rate controller's policy as a pure function. Not a stable API:
/// [`ControllerMode`] is re-exported at the root, and this path is kept
/// only for code written against earlier releases.
#[doc(hidden)]
pub use drain::controller;
pub use drain::controller::ControllerMode;
pub use engine::{Builder, Engine};
pub use error::{ConfigError, ExportError, InstallError, RegistrationError, ShutdownError};
pub use hot::cell::Kind;
pub use hot::handle::{
    counter, gauge, histogram, try_counter, try_gauge, try_histogram, try_updown, updown, Counter,
    Gauge, Histogram, UpDownCounter,
};
pub use hot::label::{LabelBuf, LabelValue, LABEL_BUF_LEN};
pub use hot::registry::{
    validate_name, Labels, DEFAULT_CARDINALITY_LIMIT, MAX_LABEL_LEN, OVERFLOW_KEY,
};
pub use hot::sample::MetricId;
pub use hot::value::{CounterValue, Value};
pub use report::health::{Health, Reason, STORM_MIN_CALLS};
pub use report::snapshot::{Estimate, HistogramSnapshot, MetricValue, SeriesSnapshot, Snapshot};
pub use report::stats::{CircuitState, Stats};

/// What the macros expand to. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::drain::catalog::describe_kind;
    pub use crate::hot::callsite::{Callsite, DynamicCallsite};
    pub use crate::hot::cell::Kind;
    pub use crate::hot::dynamic::{exact_dynamic, sampled_dynamic, timed_begin_dynamic, Visit};
    pub use crate::hot::label::LabelValue;
    pub use crate::hot::record::{
        exact_counter, exact_updown, gauge, sampled, timed_begin, timed_end, Timer,
    };
}

/// The pieces the loom models drive (see `loom_api.rs`). Only built under
/// `--cfg loom`.
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_api;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
