//! Observable instruments: their callbacks run on the flusher side, right
//! before each snapshot is built, never on a recording thread.
//!
//! The provider registers one collector with the registry (see
//! `catalog::run_collectors`); the engine runs it at the start of every
//! snapshot, under the flusher's aggregation lock. The collector calls every
//! observable instrument's callbacks, and each observation sets its series
//! outright: an observable counter or up-down counter reports the
//! cumulative total, which becomes the series' exact total; an observable
//! gauge sets the gauge. Nothing is sampled.
//!
//! A callback that panics is caught, counted
//! ([`MeterProvider::callback_panics`](super::MeterProvider::callback_panics))
//! and logged; the other callbacks and the flusher go on, and the series
//! keep their last observed values. Callbacks must be quick: draining waits
//! while they run (a collection over 100 ms is logged). A callback must not
//! call `Engine::snapshot`, which waits for the lock the callback runs under.

use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use opentelemetry::metrics::{AsyncInstrument, Callback};
use opentelemetry::KeyValue;

use super::attributes::SeriesCache;
use crate::hot::cell::{Kind, SeriesCell};
use crate::hot::record;
use crate::hot::registry;
use crate::hot::value::Value;
use crate::sync::Ordering;

/// Something the provider's collector runs at each snapshot.
pub(crate) trait Collect: Send + Sync {
    /// Runs the callbacks once; returns how many panicked.
    fn collect(&self) -> u64;
}

/// One observable instrument and its callbacks.
pub(crate) struct Observable<T> {
    series: SeriesCache,
    callbacks: Vec<Callback<T>>,
}

impl<T> std::fmt::Debug for Observable<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observable")
            .field("series", &self.series)
            .field("callbacks", &self.callbacks.len())
            .finish()
    }
}

impl<T> Observable<T> {
    pub(crate) fn new(name: Arc<str>, kind: Kind, callbacks: Vec<Callback<T>>) -> Self {
        Self {
            series: SeriesCache::new(name, kind),
            callbacks,
        }
    }
}

impl<T> Collect for Observable<T>
where
    T: Value + Send + Sync + 'static,
{
    fn collect(&self) -> u64 {
        let observer = Observer {
            series: &self.series,
            _value: PhantomData,
        };
        let mut panics = 0;
        for callback in &self.callbacks {
            if catch_unwind(AssertUnwindSafe(|| callback(&observer))).is_err() {
                panics += 1;
                log::error!(
                    target: "hotmetrics",
                    "a callback of observable instrument {:?} panicked; its series keep their last values",
                    self.series.name()
                );
            }
        }
        panics
    }
}

/// What a callback observes through.
struct Observer<'a, T> {
    series: &'a SeriesCache,
    _value: PhantomData<fn(T)>,
}

impl<T> AsyncInstrument<T> for Observer<'_, T>
where
    T: Value + Send + Sync,
{
    fn observe(&self, measurement: T, attributes: &[KeyValue]) {
        self.series.with_cell(attributes, |cell| {
            let cell = registry::live(cell);
            if !store(cell, measurement) {
                record::reject();
            }
        });
    }
}

/// Sets `cell` to an observed value: the cumulative total of a counter or
/// up-down counter, or a gauge's value. Returns false (nothing stored) for a
/// value the series' kind does not accept: NaN, ±∞, a negative counter
/// total.
pub(crate) fn store<T: Value>(cell: &SeriesCell, value: T) -> bool {
    let float = value.to_f64();
    if !float.is_finite() {
        return false;
    }
    match cell.kind {
        Kind::Gauge => cell.set_gauge(float),
        Kind::Counter | Kind::UpDown => {
            if cell.kind == Kind::Counter && float < 0.0 {
                return false;
            }
            // The observation replaces the total. Only this instrument
            // writes the series, and only from the collector, which runs
            // before the snapshot reads it on the same thread.
            match value.to_i64() {
                Some(total) => {
                    cell.exact_int.store(total as u64, Ordering::Relaxed);
                    cell.exact_float.store(0.0);
                }
                None => {
                    cell.exact_int.store(0, Ordering::Relaxed);
                    cell.exact_float.store(float);
                }
            }
            // One exact call: the series has data, recorded in full.
            cell.exact_calls.fetch_add(1, Ordering::Relaxed);
        }
        Kind::Histogram => return false,
    }
    true
}
