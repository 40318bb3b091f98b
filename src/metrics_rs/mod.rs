//! A [`metrics`](https://docs.rs/metrics/0.24) facade recorder backed by
//! hotmetrics (feature `metrics`).
//!
//! Most services, and the crates they depend on, record through the
//! `metrics` facade's macros. Installing this recorder sends all of it
//! through hotmetrics' sampled hot path, its per-series accuracy targets
//! and its exporters; the instrumentation does not change:
//!
//! ```
//! let engine = hotmetrics::Engine::builder().install().unwrap();
//! // In a program: metrics::set_global_recorder(hotmetrics::metrics_rs::Recorder::default())
//! let recorder = hotmetrics::metrics_rs::Recorder::default();
//! metrics::with_local_recorder(&recorder, || {
//!     metrics::describe_counter!("doc.facade.requests", metrics::Unit::Count, "Requests served");
//!     for _ in 0..10_000 {
//!         metrics::counter!("doc.facade.requests", "route" => "/pay").increment(1);
//!     }
//!     metrics::gauge!("doc.facade.queue_depth").set(17.0);
//! });
//! let snapshot = engine.snapshot();
//! let requests = snapshot.counter("doc.facade.requests", &[("route", "/pay")]).unwrap();
//! assert!((requests.value - 10_000.0).abs() <= 6.0 * requests.std_error.max(1.0));
//! assert_eq!(snapshot.gauge("doc.facade.queue_depth", &[]), Some(17.0));
//! engine.shutdown().unwrap();
//! ```
//!
//! The recorder records into whichever engine is installed, as `record!`
//! does: with none, every call is a cheap no-op. All `Recorder` values
//! share one process-wide state, so it is a zero-sized value and
//! `Recorder::default()` (or `Recorder::new()`, in a `static`) can be made
//! anywhere.
//!
//! # What a call costs
//!
//! The facade's macros call `register_counter` (or `_gauge`,
//! `_histogram`) on every call, and its `Counter` holds an
//! `Arc<dyn CounterFn>` that every call clones and drops. So:
//!
//! * **Registration is a lock-free lookup** (`cache.rs`): the key's
//!   precomputed hash probes a fixed table; the full key is compared on a
//!   hash match, so colliding keys never share a series. No lock and no
//!   allocation on a hit. A miss (the first call of a key) takes a lock,
//!   resolves the series in hotmetrics' registry and caches it.
//! * **Each thread holds its own `Arc`** for each series it records
//!   (`series.rs`), padded to its own cache lines: the reference count a
//!   call increments and decrements is touched by no other thread. That
//!   costs 256 bytes per thread and series the thread records, allocated
//!   on the thread's first call of the series.
//! * **The call itself** is a hotmetrics handle call on the resolved
//!   series: the series' step off the thread's countdown; an unsampled
//!   call writes nothing shared and allocates nothing.
//!
//! The table caches up to 6144 keys (label sets count separately). Keys
//! beyond that are resolved on every call (a lock and allocations) and
//! counted in [`Stats::uncached_registrations`]; each metric's
//! cardinality limit still holds.
//!
//! # Semantics
//!
//! * `counter!(..).increment(n)`: a hotmetrics counter add, sampled for the
//!   series' accuracy target like `record!(counter: ..)` (exact where the
//!   engine's `never_sample` prefixes match).
//! * `Counter::absolute(v)` sets the cumulative value: the series' total
//!   rises to `v` (in this engine). The call records, exactly, the part of
//!   `v` above the highest absolute value seen for the series so far; a
//!   value at or below it changes nothing (a counter never goes down).
//!   Use either `absolute` or `increment` on one series: mixed, the
//!   increments add to the highest absolute value.
//! * Gauges are exact: `set` sets, `increment` and `decrement` move the
//!   value atomically (a gauge never set starts from 0).
//! * `Histogram::record(v)` is a sampled histogram record;
//!   `record_many(v, n)` counts as `n` calls of `record(v)`, each its own
//!   sampling trial (it costs `n` countdown steps).
//! * `describe_counter!` / `_gauge!` / `_histogram!` declare the metric's
//!   unit and description, as the OpenTelemetry provider's instruments do:
//!   snapshots carry them, OTLP exports both (units in UCUM: `Seconds` →
//!   `s`, `Bytes` → `By`, `Count` → `{count}`, ...), Prometheus the
//!   description as `# HELP`. The first declaration of a name wins.
//! * Labels become attributes; label order does not matter; a key given
//!   twice keeps one value.
//!
//! # Refusals
//!
//! Nothing is silently dropped and nothing panics: a key hotmetrics
//! cannot record is refused once, logged with the reason, counted in
//! [`stats`], and its calls do nothing:
//!
//! * a name outside hotmetrics' rules ([`validate_name`](crate::validate_name):
//!   an ASCII letter, then letters, digits, `_`, `.`, `-`, `/`; so no `:`
//!   or spaces), or an empty or over-long label
//!   ([`Stats::refused_invalid`]);
//! * a name already registered as another kind, say a `gauge!` of a name
//!   some `counter!` registered first ([`Stats::refused_kind_conflict`]).
//!   Facade counters are hotmetrics counters, gauges gauges, histograms
//!   histograms.
//!
//! A `describe_*` of an invalid name is logged and ignored.

// `pub` items: the loom models reach the cache through `loom_api.rs`.
#[cfg_attr(not(loom), allow(unreachable_pub, dead_code))]
pub(crate) mod cache;
#[cfg(feature = "metrics")]
mod recorder;
#[cfg(feature = "metrics")]
mod series;
#[cfg(all(test, feature = "metrics"))]
mod tests;

#[cfg(feature = "metrics")]
pub use recorder::{install, stats, Recorder, Stats};
