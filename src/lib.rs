//! # hotmetrics
//!
//! Lock-free, sampled metrics for hot paths, with statistically honest
//! estimates and OpenTelemetry-shaped output.
//!
//! Recording a metric costs about a nanosecond: each thread decides locally,
//! with a countdown, whether to sample a call, and only sampled calls (3 % by
//! default) do any shared work: one push into a bounded lock-free ring. A
//! background flusher drains the rings, weights every sample by the inverse
//! of the probability it was taken with (Horvitz–Thompson), and reports each
//! total with its standard error.
//!
//! ## Quick start
//!
//! ```
//! use hotmetrics::record;
//!
//! let engine = hotmetrics::Engine::builder()
//!     .sample_rate(0.03)
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
//! assert!((requests.value - 100_000.0).abs() < 6.0 * requests.std_error.max(1.0));
//! assert_eq!(snapshot.counter("errors", &[]).unwrap().value, 1.0);
//! engine.shutdown().unwrap();
//! ```
//!
//! ## Data flow
//!
//! ```text
//! record! ─► thread-local countdown ─(sampled: id, value, p)─► ring shard ─► flusher
//!    │          (no shared write when unsampled)                  │ full:     │ Σ v/p, Σ v²(1−p)/p²
//!    │                                                            ▼ spill     ▼ per series
//!    └─ critical / gauge: the series' own atomics            controller ◄── ring use, drops, CPU
//!                                                                 │ new rate (epoch word)
//!                                                                 ▼
//!                                                        exporter threads ─► stdout / memory / ...
//! ```
//!
//! ## What runs per call
//!
//! An unsampled `record!(counter: ..)` loads its callsite's cached word,
//! decrements the thread's countdown and returns. Everything else (the
//! sampling draw, validation, the ring push, spilling on a full ring,
//! resolving a callsite the first time) sits behind `#[cold]` functions.
//!
//! Design notes live beside the code: [`sampler`](crate::__private) for the
//! geometric skip, `ring.rs` for the queue protocol, [`controller`] for the
//! rate policy, `aggregate.rs` for the estimators.

mod aggregate;
mod callsite;
// Public items here are reached from `loom_api` under `--cfg loom`.
#[cfg_attr(not(loom), allow(unreachable_pub, dead_code))]
mod cell;
pub mod controller;
mod engine;
mod error;
pub mod export;
mod flusher;
mod global;
mod handle;
mod health;
mod macros;
#[cfg(feature = "otel-api")]
pub mod otel;
// Public items here are reached from `loom_api` under `--cfg loom`.
#[cfg_attr(not(loom), allow(unreachable_pub, dead_code))]
mod pipeline;
// Public items here are reached from `loom_api` under `--cfg loom`.
#[cfg_attr(not(loom), allow(unreachable_pub, dead_code))]
mod rate;
mod record;
mod registry;
// Public items here are reached from `loom_api` under `--cfg loom`.
#[cfg_attr(not(loom), allow(unreachable_pub, dead_code))]
mod ring;
// Public items here are reached from `loom_api` under `--cfg loom`.
#[cfg_attr(not(loom), allow(unreachable_pub, dead_code))]
mod sample;
// Public items here are reached from `loom_api` under `--cfg loom`.
#[cfg_attr(not(loom), allow(unreachable_pub, dead_code))]
mod sampler;
mod snapshot;
// Public items here are reached from `loom_api` under `--cfg loom`.
#[cfg_attr(not(loom), allow(unreachable_pub, dead_code))]
mod spill;
mod stats;
mod sync;

pub use cell::Kind;
pub use engine::{Builder, Engine};
pub use error::{ConfigError, ExportError, InstallError, RegistrationError, ShutdownError};
pub use handle::{
    counter, gauge, histogram, try_counter, try_gauge, try_histogram, try_updown, updown, Counter,
    Gauge, Histogram, Labels, UpDownCounter,
};
pub use health::{Health, Reason, STORM_MIN_CALLS};
pub use record::Value;
pub use registry::{validate_name, DEFAULT_CARDINALITY_LIMIT, MAX_LABEL_LEN, OVERFLOW_KEY};
pub use sample::MetricId;
pub use snapshot::{Estimate, HistogramSnapshot, MetricValue, SeriesSnapshot, Snapshot};
pub use stats::{CircuitState, Stats};

/// What the macros expand to. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::callsite::Callsite;
    pub use crate::cell::Kind;
    pub use crate::record::{gauge, sampled, timed_begin, timed_end, Timer};
}

/// The pieces the loom models drive: the ring, the spill accumulators, the
/// rate cell and the sampler. Only built under `--cfg loom`.
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_api {
    pub use crate::rate::{RateCell, RateWord};
    pub use crate::ring::{PushError, Ring};
    pub use crate::sample::{MetricId, Sample};
    pub use crate::sampler::Sampler;
    pub use crate::spill::{Spill, SpillTotals};

    pub use crate::pipeline::Pipeline;

    /// A sample for series `id`.
    pub fn sample(id: u32, inclusion_prob: f32, value: f64) -> Sample {
        Sample {
            id: MetricId(id),
            inclusion_prob,
            value,
        }
    }

    /// A pipeline of one ring of `capacity` slots at `rate`.
    pub fn pipeline(capacity: usize, rate: f32) -> Pipeline {
        Pipeline::new(1, capacity, rate, f64::MAX)
    }

    /// What a producer does with a decided sample: push, or spill and
    /// count on a full ring. False when the ring was closed.
    pub fn submit(pipeline: &Pipeline, sample: Sample, spill: &Spill) -> bool {
        pipeline.submit(0, sample, spill)
    }

    /// [`submit`] from the thread holding the claim on the pipeline's
    /// owned ring ([`owned_ring`]).
    ///
    /// # Safety
    ///
    /// The calling thread holds that ring's claim (`Ring::try_claim`).
    pub unsafe fn submit_owned(pipeline: &Pipeline, sample: Sample, spill: &Spill) -> bool {
        // SAFETY: forwarded contract: the caller holds the claim.
        unsafe { pipeline.submit_owned(&pipeline.owned[0], sample, spill) }
    }

    /// The pipeline's (first) owned ring.
    pub fn owned_ring(pipeline: &Pipeline) -> &Ring {
        &pipeline.owned[0]
    }

    /// The pipeline's rate cell (the controller publishes here).
    pub fn rate(pipeline: &Pipeline) -> &RateCell {
        &pipeline.rate
    }

    /// The pipeline's ring.
    pub fn ring(pipeline: &Pipeline) -> &Ring {
        &pipeline.rings[0]
    }

    /// Producers inside a spill now (the shutdown hand-shake waits for 0),
    /// read as `flusher::final_drain` reads it (an RMW).
    pub fn spilling(pipeline: &Pipeline) -> usize {
        pipeline
            .spilling
            .fetch_add(0, crate::sync::Ordering::SeqCst)
    }

    /// Samples counted as spilled.
    pub fn samples_dropped(pipeline: &Pipeline) -> u64 {
        pipeline
            .samples_dropped
            .load(crate::sync::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
