//! What one `record!` or handle call does: the inline entries.
//!
//! Every entry has the same shape. It takes a *step* off the thread's
//! countdown (the callsite's or the cell's: 1 for a sampled series,
//! `STEP_OFF` for an exact, disabled or unresolved one) and branches on
//! the borrow; that is the whole unsampled path, and the value is not even
//! converted. Every other call leaves through one `#[cold]` function in
//! `slow.rs`, which reads straight through:
//!
//! 1. **route** the call: sampled (the countdown ran out on a sampled
//!    series), exact, or nothing (disabled, or no engine);
//! 2. a sampled call is **decided** (the next skip from the thread's batch
//!    says it is a sample, with the probability it was drawn at), its value
//!    **checked**, and the sample **pushed** to the thread's ring, or
//!    spilled and counted when the ring is full;
//! 3. an exact call goes to the thread's own cells (counters, up-down
//!    counters: `exact.rs`), the series' gauge, or through the ring with
//!    `p = 1` (histograms).
//!
//! Gauges are never sampled and take no step; `timed` reads the clock only
//! for a call that step 2 (or 3) records. The forms known exact at compile
//! time (`critical counter`, `critical updown`, `updown`) take no step
//! either: [`exact_counter`] and [`exact_updown`] add to the thread's own
//! cell inline.

use super::callsite::{cell_of, Callsite, STEP_OFF, TAG_EXACT, TAG_MASK};
use super::cell::SeriesCell;
use super::exact;
use super::pipeline;
use super::slow;
use super::thread;
use super::value::Value;

/// Entry point of every sampled-kind macro call (counter, up-down,
/// histogram, and their `critical` forms, whose callsites are exact).
///
/// One cold exit, so the compiler can move the computation of the value
/// (the caller's expression) into it.
#[inline(always)]
pub fn sampled<V: Value>(callsite: &'static Callsite, value: V) {
    let step = callsite.step();
    if thread::skip_by(step) {
        return;
    }
    slow::callsite_call(callsite, step, value);
}

/// A handle call: the cell's step (1 sampled; `STEP_OFF` exact or gauge,
/// and for a `critical` handle) off the countdown, as `record!` does.
#[inline(always)]
pub(crate) fn handle<V: Value>(cell: &'static SeriesCell, critical: bool, value: V) {
    let step = if critical { STEP_OFF } else { cell.step() };
    if thread::skip_by(step) {
        return;
    }
    slow::cell_call(cell, step, value);
}

/// Sample first, resolve later: the path of a call whose series is only
/// known from arguments that are costly to look at (an OpenTelemetry
/// attribute list).
///
/// An unsampled call is the countdown check alone: `with_series` is not
/// called, so the arguments it captures are not hashed, sorted or copied.
/// Only a call whose countdown ran out resolves its series, then goes
/// through the same decision, validation and push as every sampled call,
/// which `with_series` runs with the series held (see
/// `slow::resolving_call`). The rare call
/// that ends up not sampled after resolving (the first trial of a fresh
/// thread) costs one wasted resolution, and no more.
///
/// `step` is the metric's sample-first step: one per instrument, since the
/// series is not known before the decision.
#[cfg_attr(not(feature = "otel-api"), allow(dead_code))]
#[inline(always)]
pub(crate) fn sampled_resolving<V, F>(value: V, step: u64, with_series: F)
where
    V: Value,
    F: FnOnce(&mut dyn FnMut(&'static SeriesCell)) -> bool,
{
    if thread::skip_by(step) {
        return;
    }
    slow::resolving_call(value.to_f64(), step, with_series);
}

#[cfg_attr(not(feature = "otel-api"), allow(unused_imports))]
pub(crate) use slow::reject;
#[cfg_attr(
    not(any(feature = "otel-api", feature = "metrics")),
    allow(unused_imports)
)]
pub(crate) use slow::{exact, push_decided};
pub use slow::{timed_end, Timer};

/// Entry point of gauge macro calls (never sampled, no step).
#[inline(always)]
pub fn gauge<V: Value>(callsite: &'static Callsite, value: V) {
    let state = callsite.state();
    if !pipeline::is_active() {
        return;
    }
    if state & TAG_MASK == TAG_EXACT {
        slow::set_gauge(cell_of(state), value.to_f64());
    } else {
        slow::gauge_call(callsite, value);
    }
}

/// Moves a gauge by `delta` (the `metrics` facade's `Gauge::increment` and
/// `decrement`): exact, like every gauge call; a delta that is not finite
/// is refused and counted.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) fn gauge_add(cell: &'static SeriesCell, delta: f64) {
    if !pipeline::is_active() {
        return;
    }
    if delta.is_finite() {
        cell.add_gauge(delta);
    } else {
        slow::reject();
    }
}

/// Starts a `timed` call: `Some` only if this call is recorded.
#[inline(always)]
pub fn timed_begin(callsite: &'static Callsite) -> Option<Timer> {
    let step = callsite.step();
    if thread::skip_by(step) {
        return None;
    }
    slow::timed_call(callsite, step)
}

/// Entry point of `record!(critical counter: ..)`: every call recorded in
/// the thread's own cell (see `exact.rs`), no countdown.
#[inline(always)]
pub fn exact_counter<V: Value>(callsite: &'static Callsite, value: V) {
    exact::callsite_add(callsite, false, value);
}

/// Entry point of `record!(updown: ..)` and `record!(critical updown: ..)`:
/// a level is never sampled; as [`exact_counter`], deltas signed.
#[inline(always)]
pub fn exact_updown<V: Value>(callsite: &'static Callsite, value: V) {
    exact::callsite_add(callsite, true, value);
}
