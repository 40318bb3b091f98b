//! The per-series state that producers may write directly.
//!
//! Sampled calls never touch it (they go through the ring). It receives:
//! the exact totals folded in from per-thread cells (`exact.rs`) and the
//! exact calls past their memory bound as atomic adds, gauge sets, and the
//! spill of samples the ring could not take. Cells are
//! allocated once per series by the registry and live for the process, so a
//! callsite or handle can keep a `&'static` to its cell.

use super::sample::MetricId;
use super::spill::Spill;
use crate::sync::{AtomicF64, AtomicU32, AtomicU64, Ordering};

/// [`SeriesCell::exact_slot`] of a series with no per-thread slot yet.
pub(crate) const NO_EXACT_SLOT: u32 = u32::MAX;

/// The kind of instrument a series belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Kind {
    /// Monotonic sum of non-negative increments.
    Counter,
    /// Sum of signed deltas.
    UpDown,
    /// Last value set; never sampled.
    Gauge,
    /// Distribution of non-negative values.
    Histogram,
}

impl Kind {
    /// Lower-case name used in messages and the stdout exporter.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::UpDown => "updown",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Producer-writable state of one series.
#[derive(Debug)]
pub struct SeriesCell {
    pub(crate) id: MetricId,
    pub(crate) kind: Kind,
    /// What a handle call takes off the thread's countdown: 1 for a sampled
    /// series, `u64::MAX` for one whose every call is recorded (a gauge, or
    /// a name the engine's `never_sample` matches, set by the registry when
    /// an engine is installed); see `callsite.rs`.
    step: AtomicU64,
    /// Exact integer total (counters: Σ increments; up-down: Σ deltas as
    /// wrapping `i64`): the base the live threads' slots add to (see
    /// `exact.rs`; read it through `exact::totals`).
    pub(crate) exact_int: AtomicU64,
    /// Exact float total for non-integer exact values (base, as above).
    pub(crate) exact_float: AtomicF64,
    /// Number of exact calls folded into the two totals above.
    pub(crate) exact_calls: AtomicU64,
    /// Index of the series' slot in every thread's exact cells, handed out
    /// once under the exact tables' lock; [`NO_EXACT_SLOT`] until then.
    exact_slot: AtomicU32,
    /// Gauge value as bits; NaN bits while unset.
    pub(crate) gauge: AtomicF64,
    /// Samples the ring could not take.
    pub(crate) spill: Spill,
}

impl SeriesCell {
    pub(crate) fn new(id: MetricId, kind: Kind) -> Self {
        Self {
            id,
            kind,
            step: AtomicU64::new(if kind == Kind::Gauge { u64::MAX } else { 1 }),
            exact_int: AtomicU64::new(0),
            exact_float: AtomicF64::new(0.0),
            exact_calls: AtomicU64::new(0),
            exact_slot: AtomicU32::new(NO_EXACT_SLOT),
            gauge: AtomicF64::new(f64::NAN),
            spill: Spill::new(),
        }
    }

    /// The series' id.
    pub fn id(&self) -> MetricId {
        self.id
    }

    /// The series' kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// True when every call of the series is recorded (gauges always).
    pub(crate) fn is_exact(&self) -> bool {
        self.step() == u64::MAX
    }

    /// Marks the series exact (every call recorded) or sampled; a gauge
    /// stays exact.
    pub(crate) fn set_exact(&self, exact: bool) {
        let step = if exact || self.kind == Kind::Gauge {
            u64::MAX
        } else {
            1
        };
        self.step.store(step, Ordering::Relaxed);
    }

    /// The handle path's step (see the field).
    #[inline(always)]
    pub(crate) fn step(&self) -> u64 {
        self.step.load(Ordering::Relaxed)
    }

    /// The series' slot index in the threads' exact cells (see the field).
    #[inline(always)]
    pub(crate) fn exact_slot(&self) -> u32 {
        self.exact_slot.load(Ordering::Relaxed)
    }

    /// Sets the slot index; called once, under the exact tables' lock.
    pub(crate) fn set_exact_slot(&self, slot: u32) {
        self.exact_slot.store(slot, Ordering::Relaxed);
    }

    /// Adds an exact integer amount to the base (wrapping, so signed deltas
    /// work): a thread's fold at exit, or a call past the memory bound.
    pub(crate) fn add_exact_int(&self, amount: i64) {
        self.exact_int.fetch_add(amount as u64, Ordering::Relaxed);
        self.exact_calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds an exact non-integer amount to the base.
    pub(crate) fn add_exact_float(&self, amount: f64) {
        self.exact_float.add(amount);
        self.exact_calls.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_gauge(&self, value: f64) {
        self.gauge.store(value);
    }

    /// Clears every total: a newly installed engine starts from zero.
    pub(crate) fn reset(&self) {
        self.exact_int.store(0, Ordering::Relaxed);
        self.exact_float.store(0.0);
        self.exact_calls.store(0, Ordering::Relaxed);
        self.gauge.store(f64::NAN);
        self.spill.take();
    }
}
