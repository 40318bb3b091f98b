//! An OpenTelemetry `MeterProvider` backed by hotmetrics (feature `otel-api`).
//!
//! Code instrumented with the `opentelemetry` metrics API
//! (`meter.u64_counter("requests").build().add(1, &attributes)`) records
//! through hotmetrics' sampled hot path once this provider is installed;
//! the instrumentation does not change:
//!
//! ```
//! use opentelemetry::metrics::MeterProvider as _;
//! use opentelemetry::KeyValue;
//!
//! let engine = hotmetrics::Engine::builder().install().unwrap();
//! let provider = hotmetrics::otel::MeterProvider::new(&engine);
//! // The one-line switch: `opentelemetry::global::set_meter_provider(provider.clone());`
//!
//! let meter = provider.meter("checkout");
//! let requests = meter
//!     .u64_counter("doc.otel.requests")
//!     .with_unit("{request}")
//!     .build();
//! for _ in 0..10_000 {
//!     requests.add(1, &[KeyValue::new("route", "/pay"), KeyValue::new("status", "200")]);
//! }
//! let snapshot = engine.snapshot();
//! let total = snapshot
//!     .counter("doc.otel.requests", &[("route", "/pay"), ("status", "200")])
//!     .unwrap();
//! assert!((total.value - 10_000.0).abs() <= 6.0 * total.std_error.max(1.0));
//! engine.shutdown().unwrap();
//! ```
//!
//! # What a call costs
//!
//! `Counter::add`, `UpDownCounter::add` and `Histogram::record` sample
//! first and look at their attributes after: an unsampled call (97 % at the
//! default rate) is the API's virtual call plus the thread's countdown
//! check, and the attribute slice is not read, hashed, sorted or copied.
//! Only a sampled call resolves its attribute set to a series, through a
//! per-instrument cache (see `attributes.rs`), and pushes one sample that
//! carries its inclusion probability. Attribute sets that differ only in
//! order are one series; each metric admits the engine's cardinality limit
//! of sets, then shares the overflow series (`otel.metric.overflow=true`).
//!
//! Exact instruments record every call in full, with one cache lookup per
//! call: gauges (`Gauge::record`), names the engine's `never_sample`
//! prefixes match, and instruments marked critical.
//!
//! # Marking an instrument critical
//!
//! An instrument whose description starts with [`CRITICAL_MARKER`]
//! (`"[critical]"`) is never sampled, like `record!(critical counter: ..)`:
//!
//! ```
//! # use opentelemetry::metrics::MeterProvider as _;
//! # let engine = hotmetrics::Engine::builder().install().unwrap();
//! # let meter = hotmetrics::otel::MeterProvider::new(&engine).meter("payments");
//! let failed = meter
//!     .u64_counter("doc.otel.payments_failed")
//!     .with_description("[critical] Payments the processor refused")
//!     .build();
//! failed.add(1, &[]);
//! assert_eq!(engine.snapshot().counter("doc.otel.payments_failed", &[]).unwrap().value, 1.0);
//! # engine.shutdown().unwrap();
//! ```
//!
//! The marker lives in the instrumentation code, so it travels with the
//! instrument, and it does nothing under another SDK. It is an instruction
//! to this engine, not part of the text: the engine strips it, so
//! snapshots and the exporters (OTLP descriptions, Prometheus `# HELP`)
//! carry `"Payments the processor refused"`. To make metrics exact without
//! touching their code, give the engine `never_sample` name prefixes.
//!
//! # Observable instruments
//!
//! Their callbacks run on the flusher thread right before each snapshot
//! (export or `Engine::snapshot`); see `observable.rs`.
//!
//! # What carries through, and what differs from the SDK
//!
//! * Instrument name, unit and description reach every snapshot
//!   ([`SeriesSnapshot::unit`](crate::SeriesSnapshot::unit),
//!   [`description`](crate::SeriesSnapshot::description)) and the
//!   exporters. The first declaration of a name wins.
//! * Values are cumulative; histograms keep hotmetrics' full weighted
//!   distribution, so explicit bucket boundaries given to the builder are
//!   not used here (exporters choose buckets).
//! * Attribute values are carried as strings.
//! * The instrumentation scope (the meter's name) is not part of a series'
//!   identity: instruments of one name from two meters share their series.
//! * Instruments created while an engine is installed pick up its
//!   `never_sample` prefixes; measurements made while no engine is
//!   installed are dropped, as for `record!`.

mod attributes;
mod instruments;
mod observable;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use opentelemetry::metrics::{
    AsyncInstrumentBuilder, Callback, Counter, Gauge, Histogram, HistogramBuilder,
    InstrumentBuilder, InstrumentProvider, Meter, ObservableCounter, ObservableGauge,
    ObservableUpDownCounter, SyncInstrument, UpDownCounter,
};
use opentelemetry::InstrumentationScope;

use self::instruments::{Instrument, Refused};
use self::observable::{Collect, Observable};
use crate::drain::catalog;
use crate::engine::Engine;
use crate::hot::cell::Kind;
use crate::hot::registry;
use crate::hot::value::Value;

/// The description prefix that makes an instrument exact (never sampled).
///
/// Leading whitespace is ignored. The marker is stripped from the
/// description the engine keeps and exports (with the whitespace after
/// it); a description that was only the marker exports as none.
///
/// ```
/// assert!("[critical] Failed payments".starts_with(hotmetrics::otel::CRITICAL_MARKER));
/// ```
pub const CRITICAL_MARKER: &str = "[critical]";

/// A collection slower than this is logged: draining waits for it.
const SLOW_COLLECTION: Duration = Duration::from_millis(100);

/// An OpenTelemetry [`MeterProvider`](opentelemetry::metrics::MeterProvider)
/// whose instruments record through hotmetrics.
///
/// Cheap to clone; clones share their observable instruments. Install it
/// with `opentelemetry::global::set_meter_provider(provider)` or hand it to
/// the code that creates meters. Its instruments record into whichever
/// engine is installed; observable callbacks run until the last clone of the
/// provider, and every meter obtained from it, is dropped.
#[derive(Clone)]
pub struct MeterProvider {
    inner: Arc<ProviderInner>,
}

impl fmt::Debug for MeterProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeterProvider")
            .field("observables", &self.inner.observables().len())
            .field("callback_panics", &self.callback_panics())
            .finish()
    }
}

struct ProviderInner {
    /// Observable instruments, run by the collector at each snapshot.
    observables: Mutex<Vec<Arc<dyn Collect>>>,
    /// The registry id of this provider's collector, once it has one.
    collector: OnceLock<u64>,
    /// Observable callbacks that panicked.
    callback_panics: AtomicU64,
}

impl ProviderInner {
    fn observables(&self) -> MutexGuard<'_, Vec<Arc<dyn Collect>>> {
        // A plain list behind the lock: it is consistent between statements.
        self.observables
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs every observable instrument's callbacks (the collector).
    fn collect(&self) {
        let started = Instant::now();
        let observables: Vec<Arc<dyn Collect>> = self.observables().clone();
        let panics: u64 = observables
            .iter()
            .map(|observable| observable.collect())
            .sum();
        if panics > 0 {
            self.callback_panics.fetch_add(panics, Ordering::Relaxed);
        }
        let took = started.elapsed();
        if took > SLOW_COLLECTION {
            log::warn!(
                target: "hotmetrics",
                "observable callbacks took {took:?}; draining waited for them"
            );
        }
    }
}

impl Drop for ProviderInner {
    fn drop(&mut self) {
        if let Some(id) = self.collector.get() {
            catalog::remove_collector(*id);
        }
    }
}

impl MeterProvider {
    /// A provider recording through the installed engine. Install the
    /// engine first: instruments read its `never_sample` prefixes when they
    /// are created. With a disabled engine every measurement is a no-op.
    ///
    /// ```
    /// let engine = hotmetrics::Engine::builder().install().unwrap();
    /// opentelemetry::global::set_meter_provider(hotmetrics::otel::MeterProvider::new(&engine));
    /// # engine.shutdown().unwrap();
    /// ```
    pub fn new(engine: &Engine) -> Self {
        if engine.is_disabled() {
            log::info!(
                target: "hotmetrics",
                "OpenTelemetry meter provider over a disabled engine: measurements are no-ops"
            );
        }
        Self {
            inner: Arc::new(ProviderInner {
                observables: Mutex::new(Vec::new()),
                collector: OnceLock::new(),
                callback_panics: AtomicU64::new(0),
            }),
        }
    }

    /// How many observable callbacks have panicked so far (each was caught
    /// and logged; the flusher went on).
    ///
    /// ```
    /// use opentelemetry::metrics::MeterProvider as _;
    ///
    /// let engine = hotmetrics::Engine::builder().install().unwrap();
    /// let provider = hotmetrics::otel::MeterProvider::new(&engine);
    /// let _broken = provider
    ///     .meter("doc")
    ///     .u64_observable_gauge("doc.otel.broken")
    ///     .with_callback(|_| panic!("this callback is broken"))
    ///     .build();
    /// let _ = engine.snapshot(); // runs the callback, catches its panic
    /// assert_eq!(provider.callback_panics(), 1);
    /// # engine.shutdown().unwrap();
    /// ```
    pub fn callback_panics(&self) -> u64 {
        self.inner.callback_panics.load(Ordering::Relaxed)
    }
}

impl opentelemetry::metrics::MeterProvider for MeterProvider {
    fn meter_with_scope(&self, _scope: InstrumentationScope) -> Meter {
        Meter::new(Arc::new(Instruments {
            provider: self.inner.clone(),
        }))
    }
}

/// The `InstrumentProvider` behind every meter of a [`MeterProvider`].
struct Instruments {
    provider: Arc<ProviderInner>,
}

/// Whether `description` carries the [`CRITICAL_MARKER`].
pub(crate) fn is_critical(description: Option<&str>) -> bool {
    description.is_some_and(|text| text.trim_start().starts_with(CRITICAL_MARKER))
}

/// `description` without the [`CRITICAL_MARKER`]: what snapshots and
/// exporters carry. `None` when nothing is left.
pub(crate) fn exported_description(description: Option<&str>) -> Option<&str> {
    let text = description?;
    let text = match text.trim_start().strip_prefix(CRITICAL_MARKER) {
        Some(rest) => rest.trim_start(),
        None => text,
    };
    (!text.is_empty()).then_some(text)
}

/// Checks the name, records unit and description (without the critical
/// marker); `None` if refused.
fn declare(name: &str, unit: Option<&str>, description: Option<&str>) -> Option<Arc<str>> {
    if let Err(reason) = registry::validate_name(name) {
        log::error!(
            target: "hotmetrics",
            "OpenTelemetry instrument {name:?} not registered, its measurements are ignored: {reason}"
        );
        return None;
    }
    catalog::declare(name, unit, exported_description(description));
    Some(Arc::from(name))
}

impl Instruments {
    fn sync<T>(
        &self,
        name: &str,
        unit: Option<&str>,
        description: Option<&str>,
        kind: Kind,
    ) -> Arc<dyn SyncInstrument<T> + Send + Sync>
    where
        T: Value + Send + Sync + 'static,
    {
        let Some(name) = declare(name, unit, description) else {
            return Arc::new(Refused);
        };
        let exact = is_critical(description) || registry::never_sampled(&name);
        Arc::new(Instrument::new(name, kind, exact))
    }

    fn observable<T>(
        &self,
        name: &str,
        unit: Option<&str>,
        description: Option<&str>,
        kind: Kind,
        callbacks: Vec<Callback<T>>,
    ) where
        T: Value + Send + Sync + 'static,
    {
        let Some(name) = declare(name, unit, description) else {
            return;
        };
        if callbacks.is_empty() {
            return;
        }
        let provider = &self.provider;
        provider
            .observables()
            .push(Arc::new(Observable::new(name, kind, callbacks)));
        provider.collector.get_or_init(|| {
            let weak = Arc::downgrade(provider);
            catalog::add_collector(Arc::new(move || {
                if let Some(provider) = weak.upgrade() {
                    provider.collect();
                }
            }))
        });
    }
}

/// One `InstrumentProvider` method for a synchronous instrument.
macro_rules! sync_method {
    ($method:ident, $builder:ident, $ty:ident, $value:ty, $kind:expr) => {
        fn $method(&self, builder: $builder<'_, $ty<$value>>) -> $ty<$value> {
            $ty::new(self.sync::<$value>(
                &builder.name,
                builder.unit.as_deref(),
                builder.description.as_deref(),
                $kind,
            ))
        }
    };
}

/// One `InstrumentProvider` method for an observable instrument.
macro_rules! observable_method {
    ($method:ident, $ty:ident, $value:ty, $kind:expr) => {
        fn $method(&self, builder: AsyncInstrumentBuilder<'_, $ty<$value>, $value>) -> $ty<$value> {
            self.observable::<$value>(
                &builder.name,
                builder.unit.as_deref(),
                builder.description.as_deref(),
                $kind,
                builder.callbacks,
            );
            $ty::new()
        }
    };
}

impl InstrumentProvider for Instruments {
    sync_method!(u64_counter, InstrumentBuilder, Counter, u64, Kind::Counter);
    sync_method!(f64_counter, InstrumentBuilder, Counter, f64, Kind::Counter);
    sync_method!(
        i64_up_down_counter,
        InstrumentBuilder,
        UpDownCounter,
        i64,
        Kind::UpDown
    );
    sync_method!(
        f64_up_down_counter,
        InstrumentBuilder,
        UpDownCounter,
        f64,
        Kind::UpDown
    );
    sync_method!(u64_gauge, InstrumentBuilder, Gauge, u64, Kind::Gauge);
    sync_method!(i64_gauge, InstrumentBuilder, Gauge, i64, Kind::Gauge);
    sync_method!(f64_gauge, InstrumentBuilder, Gauge, f64, Kind::Gauge);
    sync_method!(
        u64_histogram,
        HistogramBuilder,
        Histogram,
        u64,
        Kind::Histogram
    );
    sync_method!(
        f64_histogram,
        HistogramBuilder,
        Histogram,
        f64,
        Kind::Histogram
    );

    observable_method!(
        u64_observable_counter,
        ObservableCounter,
        u64,
        Kind::Counter
    );
    observable_method!(
        f64_observable_counter,
        ObservableCounter,
        f64,
        Kind::Counter
    );
    observable_method!(
        i64_observable_up_down_counter,
        ObservableUpDownCounter,
        i64,
        Kind::UpDown
    );
    observable_method!(
        f64_observable_up_down_counter,
        ObservableUpDownCounter,
        f64,
        Kind::UpDown
    );
    observable_method!(u64_observable_gauge, ObservableGauge, u64, Kind::Gauge);
    observable_method!(i64_observable_gauge, ObservableGauge, i64, Kind::Gauge);
    observable_method!(f64_observable_gauge, ObservableGauge, f64, Kind::Gauge);
}
