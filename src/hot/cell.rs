//! The per-series state that producers may write directly.
//!
//! Sampled calls never touch it (they go through the ring). It receives:
//! the exact totals folded in from per-thread cells (`exact.rs`) and the
//! exact calls past their memory bound as atomic adds, gauge sets, and the
//! spill of samples the ring could not take. Cells are
//! allocated by the registry and never freed, so a callsite or handle can
//! keep a `&'static` to its cell; with an idle timeout a cell can be
//! *retired* (its series leaves the exports) and later revived in place,
//! or, once nothing holds it, recycled for another label set (see
//! `registry.rs`).

use super::sample::MetricId;
use super::spill::Spill;
use crate::sync::{
    fence, Arc, AtomicBool, AtomicF64, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

/// Labels as they are stored: shared, immutable key/value pairs, sorted by
/// key.
pub type Labels = Arc<[(Arc<str>, Arc<str>)]>;

/// The step of a series whose every call is recorded: no countdown can pay
/// it without borrowing (countdowns stay below `2^63`), so every call
/// leaves the fast path.
pub(crate) const STEP_OFF: u64 = u64::MAX;

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
    /// Gauges (a last value) and up-down counters (a level: its sampling
    /// variance would grow with every change ever made) record every call,
    /// in every mode.
    pub(crate) fn always_exact(self) -> bool {
        matches!(self, Kind::Gauge | Kind::UpDown)
    }

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
    /// What a call takes off the thread's countdown: the series' *step*
    /// `s ≥ 1` while it is sampled (each call then is sampled with
    /// `π = 1 − (1 − p)^s`), `STEP_OFF` while every call is recorded; see
    /// `callsite.rs`. Written by the registry (install, allocation).
    step: AtomicU64,
    /// Exact by design, whatever the allocation: a gauge, an up-down
    /// counter (a level is never sampled), a name the engine's
    /// `never_sample` matches, a series some `critical` call records.
    /// Written by the registry.
    pinned: AtomicBool,
    /// Some `critical` callsite or handle records this series: it stays
    /// exact across engines.
    critical: AtomicBool,
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
    /// The highest cumulative value a `metrics` facade `Counter::absolute`
    /// call has set in this engine (0 until one does): such a call records
    /// exactly the part above it. Only ever raised, with `fetch_max`;
    /// cleared with the totals when an engine is installed.
    absolute: AtomicU64,
    /// Samples the ring could not take.
    pub(crate) spill: Spill,
    /// What the exact totals had reached when the series last restarted
    /// in this cell (the live threads' slots then): subtracted from base
    /// plus slots, since a thread's slot is written by that thread only
    /// (see `exact_tables.rs`). Written under the exact tables' lock.
    pub(crate) exact_offset_int: AtomicU64,
    pub(crate) exact_offset_float: AtomicF64,
    pub(crate) exact_offset_calls: AtomicU64,
    /// The series left the exports after its idle timeout; the next call
    /// that reaches a cold path revives it (`registry::live`). Written
    /// under the registry lock.
    retired: AtomicBool,
    /// A gauge was set since the flusher last looked (its idle check).
    gauge_set: AtomicBool,
    /// Holders that may still call into the cell ([`SeriesRef`]s, plus one
    /// for good for callsites and other `&'static` holders): a retired cell
    /// is recycled only once this is zero.
    ///
    /// [`SeriesRef`]: super::registry::SeriesRef
    pub(crate) holders: AtomicUsize,
}

impl SeriesCell {
    pub(crate) fn new(id: MetricId, kind: Kind) -> Self {
        Self {
            id,
            kind,
            step: AtomicU64::new(if kind.always_exact() { STEP_OFF } else { 1 }),
            pinned: AtomicBool::new(kind.always_exact()),
            critical: AtomicBool::new(false),
            exact_int: AtomicU64::new(0),
            exact_float: AtomicF64::new(0.0),
            exact_calls: AtomicU64::new(0),
            exact_slot: AtomicU32::new(NO_EXACT_SLOT),
            gauge: AtomicF64::new(f64::NAN),
            absolute: AtomicU64::new(0),
            spill: Spill::new(),
            exact_offset_int: AtomicU64::new(0),
            exact_offset_float: AtomicF64::new(0.0),
            exact_offset_calls: AtomicU64::new(0),
            retired: AtomicBool::new(false),
            gauge_set: AtomicBool::new(false),
            holders: AtomicUsize::new(0),
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

    /// True when every call of the series is recorded now.
    pub(crate) fn is_exact(&self) -> bool {
        self.step() == STEP_OFF
    }

    /// True when the series is exact by design (see the field).
    pub(crate) fn is_pinned(&self) -> bool {
        self.pinned.load(Ordering::Relaxed)
    }

    /// Pins the series exact (`never_sample`), or unpins it to `step`; a
    /// kind that is always exact, and a critical series, stay pinned.
    pub(crate) fn pin(&self, exact_by_name: bool, step: u64) {
        let pinned = exact_by_name
            || self.kind.always_exact()
            || self.critical.load(Ordering::Relaxed);
        self.pinned.store(pinned, Ordering::Relaxed);
        self.step
            .store(if pinned { STEP_OFF } else { step }, Ordering::Relaxed);
    }

    /// True once a `critical` call records the series.
    pub(crate) fn is_critical(&self) -> bool {
        self.critical.load(Ordering::Relaxed)
    }

    /// Marks the series critical (a `critical` call records it): exact from
    /// now on, in this engine and the next.
    pub(crate) fn make_critical(&self) {
        self.critical.store(true, Ordering::Relaxed);
        self.pinned.store(true, Ordering::Relaxed);
        self.step.store(STEP_OFF, Ordering::Relaxed);
    }

    /// Forgets that a `critical` call recorded the series: a recycled cell
    /// starts a new label set's series.
    pub(crate) fn clear_critical(&self) {
        self.critical.store(false, Ordering::Relaxed);
    }

    /// True when no holder can reach the cell any more: every holder's
    /// calls then happen before what the caller does next.
    pub(crate) fn unheld(&self) -> bool {
        if self.holders.load(Ordering::Relaxed) != 0 {
            return false;
        }
        // Acquire: pairs with the Release decrement of the last holder
        // (`SeriesRef`'s drop): its samples' claims and its exact slot
        // writes happen before the caller's reads of the rings' claimed
        // positions and of the slots.
        fence(Ordering::Acquire);
        true
    }

    /// Sets the step of an unpinned series (`STEP_OFF`: exact for now).
    pub(crate) fn set_step(&self, step: u64) {
        if !self.is_pinned() && !self.retired.load(Ordering::Relaxed) {
            self.step.store(step.max(1), Ordering::Relaxed);
        }
    }

    /// The series' step (see the field).
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
        // A load first: the flag's line is the gauge's, already written;
        // the store is made once per idle check at most.
        if !self.gauge_set.load(Ordering::Relaxed) {
            self.gauge_set.store(true, Ordering::Relaxed);
        }
    }

    /// True if a gauge was set since the last call (the flusher's idle
    /// check).
    pub(crate) fn take_gauge_set(&self) -> bool {
        self.gauge_set.swap(false, Ordering::Relaxed)
    }

    /// True once the series was retired and until it is revived.
    ///
    /// Acquire: pairs with the Release in [`SeriesCell::set_retired`], so a
    /// caller that sees a revived cell sees it reset.
    #[inline]
    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Retires the series (`true`: every call leaves the fast path and
    /// revives it) or revives it, under the registry lock.
    ///
    /// Release: pairs with the Acquire in [`SeriesCell::is_retired`].
    pub(crate) fn set_retired(&self, retired: bool) {
        if retired {
            self.step.store(STEP_OFF, Ordering::Relaxed);
        }
        self.retired.store(retired, Ordering::Release);
    }

    /// Moves the gauge by `delta` (an unset gauge starts from 0).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn add_gauge(&self, delta: f64) {
        self.gauge.add_from_unset(delta);
    }

    /// Raises the series' absolute value to `value`; returns by how much
    /// it rose (0 if `value` is not above the highest seen).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn raise_absolute(&self, value: u64) -> u64 {
        let before = self.absolute.fetch_max(value, Ordering::Relaxed);
        value.saturating_sub(before)
    }

    /// Clears every total: a newly installed engine starts from zero.
    pub(crate) fn reset(&self) {
        self.exact_int.store(0, Ordering::Relaxed);
        self.exact_float.store(0.0);
        self.exact_calls.store(0, Ordering::Relaxed);
        self.exact_offset_int.store(0, Ordering::Relaxed);
        self.exact_offset_float.store(0.0);
        self.exact_offset_calls.store(0, Ordering::Relaxed);
        self.gauge.store(f64::NAN);
        self.gauge_set.store(false, Ordering::Relaxed);
        self.absolute.store(0, Ordering::Relaxed);
        self.spill.take();
    }
}
