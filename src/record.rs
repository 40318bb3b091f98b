//! What one `record!` or handle call does.
//!
//! The sampled kinds (counter, up-down, histogram) take the callsite's step
//! off the thread's countdown and branch on the borrow; that is the whole
//! unsampled path (the value is not even converted). Everything after it is
//! `#[cold]` and leaves through one call: the sampling decision (the next
//! skip from the thread's batch), the validation, the ring push and the
//! spill, reaching the pipeline through the sampler's own thread-local.
//! Exact calls (critical, gauges, `never_sample` names) have a step that
//! always borrows: they give the countdown back and go to the series' own
//! atomics, or through the ring with `p = 1` for histograms.

use std::time::Instant;

use crate::callsite::{cell_of, Callsite, STEP_OFF, TAG_EXACT, TAG_MASK, TAG_SAMPLED};
use crate::cell::{Kind, SeriesCell};
use crate::global;
use crate::pipeline::{self, Pipeline};
use crate::sample::Sample;
use crate::sampler::{Sampler, SAMPLER};

/// A number a `record!` or handle accepts.
///
/// Implemented for the primitive integers and floats. Integers keep their
/// exact value on exact paths; everything is carried as `f64` in samples.
pub trait Value: Copy {
    /// The value as `f64` (large integers round to the nearest `f64`).
    fn to_f64(self) -> f64;
    /// The value as `i64` if it is an integer that fits.
    fn to_i64(self) -> Option<i64>;
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl Value for $t {
            #[inline(always)]
            fn to_f64(self) -> f64 { self as f64 }
            #[inline(always)]
            fn to_i64(self) -> Option<i64> { i64::try_from(self).ok() }
        }
    )*};
}
int_value!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

impl Value for f64 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn to_i64(self) -> Option<i64> {
        None
    }
}

impl Value for f32 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn to_i64(self) -> Option<i64> {
        None
    }
}

/// Entry point of every sampled-kind macro call.
///
/// The common path is the callsite's step taken off the thread's countdown
/// and a branch on the borrow (see `callsite.rs`). Every other case leaves
/// through one cold call, so the compiler can move the computation of the
/// value (the caller's expression) into that cold block: an unsampled call
/// does not even evaluate its conversion.
#[inline(always)]
pub fn sampled<V: Value>(callsite: &'static Callsite, value: V) {
    let step = callsite.step();
    if SAMPLER.with(|sampler| sampler.skip_by(step)) {
        return;
    }
    off_the_fast_path(callsite, step, value);
}

/// Every sampled-kind call that borrowed from the countdown: a sampled
/// callsite whose countdown ran out (`step == 1`), or a callsite that is
/// exact, disabled or not resolved yet.
#[cold]
#[inline(never)]
fn off_the_fast_path<V: Value>(callsite: &'static Callsite, step: u64, value: V) {
    let state = callsite.state();
    if step != 1 {
        // Not the sampler's call: give the countdown back.
        SAMPLER.with(|sampler| sampler.give_back(step));
        not_sampled(callsite, state, value);
    } else if state & TAG_MASK == TAG_SAMPLED {
        sampled_slow(cell_of(state), value.to_f64());
    } else {
        // Re-tagged since the step was read: the countdown this call used up
        // is the thread's, so draw the next one, then treat the call as what
        // its callsite is now.
        redraw_only();
        not_sampled(callsite, state, value);
    }
}

/// Draws the next skip for a countdown that ran out on a call that is not
/// recorded through the sampler.
#[cold]
#[inline(never)]
fn redraw_only() {
    let guard = global::pipeline();
    SAMPLER.with(|sampler| match guard.as_ref() {
        Some(pipeline) => {
            let _ = sampler.decide(&pipeline.rate);
        }
        None => sampler.park(),
    });
}

/// Entry point of gauge macro calls (never sampled).
#[inline(always)]
pub fn gauge<V: Value>(callsite: &'static Callsite, value: V) {
    let state = callsite.state();
    if !global::is_active() {
        return;
    }
    if state & TAG_MASK == TAG_EXACT {
        set_gauge(cell_of(state), value.to_f64());
    } else {
        not_sampled(callsite, state, value);
    }
}

/// A handle call: the cell's step (1 sampled; `u64::MAX` exact or gauge,
/// and for a `critical` handle) off the countdown, as `record!` does.
#[inline(always)]
pub(crate) fn handle<V: Value>(cell: &'static SeriesCell, critical: bool, value: V) {
    let step = if critical { STEP_OFF } else { cell.step() };
    if SAMPLER.with(|sampler| sampler.skip_by(step)) {
        return;
    }
    handle_off_the_fast_path(cell, step, value);
}

#[cold]
#[inline(never)]
fn handle_off_the_fast_path<V: Value>(cell: &'static SeriesCell, step: u64, value: V) {
    if step == 1 {
        sampled_slow(cell, value.to_f64());
    } else {
        SAMPLER.with(|sampler| sampler.give_back(step));
        exact(cell, value);
    }
}

/// Sample first, resolve later: the path of a call whose series is only
/// known from arguments that are costly to look at (an OpenTelemetry
/// attribute list).
///
/// An unsampled call is the countdown check alone: `resolve` is not called,
/// so the arguments it captures are not hashed, sorted or copied. Only a
/// call whose countdown ran out resolves its series, then goes through the
/// same decision, validation and push as [`sampled_slow`]. The rare call
/// that ends up not sampled after resolving (the first trial of a fresh
/// thread) costs one wasted resolution, and no more.
#[cfg_attr(not(feature = "otel-api"), allow(dead_code))]
#[inline(always)]
pub(crate) fn sampled_resolving<V, F>(value: V, resolve: F)
where
    V: Value,
    F: FnOnce() -> Option<&'static SeriesCell>,
{
    if SAMPLER.with(|sampler| sampler.skip()) {
        return;
    }
    resolve_then_sample(value.to_f64(), resolve);
}

/// The cold half of [`sampled_resolving`].
#[cold]
#[inline(never)]
fn resolve_then_sample<F>(value: f64, resolve: F)
where
    F: FnOnce() -> Option<&'static SeriesCell>,
{
    if !global::is_active() {
        // No engine: do not pay for a lookup; check again in a while.
        SAMPLER.with(|sampler| sampler.park());
        return;
    }
    match resolve() {
        Some(cell) => sampled_slow(cell, value),
        // A refused series records nothing, but the countdown this call
        // exhausted is shared by every metric of the thread: draw the next
        // one as a sampled call would.
        None => redraw_only(),
    }
}

/// Exact, unresolved or disabled callsites.
#[cold]
#[inline(never)]
fn not_sampled<V: Value>(callsite: &'static Callsite, mut state: usize, value: V) {
    if state == 0 {
        // Resolved on first use even with no engine installed: a sampled
        // callsite then gets its step of 1, and its later calls stay on the
        // countdown path (an engine installed later re-tags it).
        state = crate::registry::resolve_callsite(callsite);
    }
    if !global::is_active() {
        return;
    }
    match state & TAG_MASK {
        TAG_SAMPLED if !SAMPLER.with(|sampler| sampler.skip()) => {
            sampled_slow(cell_of(state), value.to_f64());
        }
        TAG_EXACT => exact(cell_of(state), value),
        _ => {}
    }
}

/// A call whose countdown ran out: decide, validate, push.
///
/// The common case reaches the pipeline through the sampler's borrowed
/// pointer (one thread-local access for everything); the first sampled call
/// of a thread, a call with no engine and a push refused by a closed
/// (stale) pipeline go through [`sampled_through_handle`].
#[cold]
#[inline(never)]
pub(crate) fn sampled_slow(cell: &'static SeriesCell, value: f64) {
    let fallback = SAMPLER.with(|sampler| {
        let Some(pipeline) = sampler.cached_pipeline() else {
            return Some(None);
        };
        let sample = decide_sample(sampler, pipeline, cell, value)?;
        let pushed = match sampler.owned_ring() {
            // SAFETY: the sampler's ring pointer is set only while this
            // thread's handle holds that ring's claim (see `pipeline::Cached`).
            Some(ring) => unsafe { pipeline.submit_owned(ring, sample, &cell.spill) },
            None => submit_shared(sampler, pipeline, cell, sample),
        };
        if pushed {
            None
        } else {
            Some(Some(sample))
        }
    });
    if let Some(decided) = fallback {
        sampled_through_handle(cell, value, decided);
    }
}

/// [`sampled_slow`] through the thread's pipeline handle, which it
/// (re)loads: `decided` is the sample already decided on a pipeline that
/// turned out closed, pushed again without a second decision.
#[cold]
#[inline(never)]
fn sampled_through_handle(cell: &'static SeriesCell, value: f64, decided: Option<Sample>) {
    pipeline::with_current(decided, |pipeline, decided: Option<Sample>| {
        let Some(pipeline) = pipeline else {
            if decided.is_none() {
                SAMPLER.with(|sampler| sampler.park());
            }
            return Ok(());
        };
        // One access to the thread's sampler for the decision and the shard.
        let pushed = SAMPLER.with(|sampler| {
            let sample = match decided {
                Some(sample) => sample,
                None => decide_sample(sampler, pipeline, cell, value)?,
            };
            Some((submit_shared(sampler, pipeline, cell, sample), sample))
        });
        match pushed {
            Some((false, sample)) => Err(Some(sample)),
            _ => Ok(()),
        }
    });
}

/// Decides a call whose countdown ran out and checks its value: the sample
/// to push, or `None` (not sampled, or the value was rejected and counted).
#[inline(always)]
fn decide_sample(
    sampler: &Sampler,
    pipeline: &Pipeline,
    cell: &'static SeriesCell,
    value: f64,
) -> Option<Sample> {
    let inclusion_prob = sampler.decide(&pipeline.rate)?;
    if !valid(cell.kind, value, pipeline.histogram_max) {
        pipeline.reject();
        return None;
    }
    Some(Sample {
        id: cell.id,
        inclusion_prob,
        value,
    })
}

/// Pushes to this thread's shared shard of `pipeline` (see
/// [`Pipeline::submit`] for the result). Out of line: on the sampled path
/// it serves only threads that hold no owned ring.
#[inline(never)]
fn submit_shared(
    sampler: &Sampler,
    pipeline: &Pipeline,
    cell: &'static SeriesCell,
    sample: Sample,
) -> bool {
    let shard = sampler.shard(pipeline.rings.len(), || pipeline.assign_shard());
    pipeline.submit(shard, sample, &cell.spill)
}

/// Pushes one histogram value already decided on (exact calls, `timed`).
fn push_decided(cell: &'static SeriesCell, inclusion_prob: f32, value: f64) {
    pipeline::with_current((), |pipeline, ()| {
        let Some(pipeline) = pipeline else {
            return Ok(());
        };
        if !valid(Kind::Histogram, value, pipeline.histogram_max) {
            pipeline.reject();
            return Ok(());
        }
        let sample = Sample {
            id: cell.id,
            inclusion_prob,
            value,
        };
        if SAMPLER.with(|sampler| submit_shared(sampler, pipeline, cell, sample)) {
            Ok(())
        } else {
            Err(())
        }
    });
}

/// Records every call: atomics for counters, the ring with `p = 1` for
/// histograms, the cell for gauges.
#[inline(never)]
pub(crate) fn exact<V: Value>(cell: &'static SeriesCell, value: V) {
    if !global::is_active() {
        return;
    }
    match cell.kind {
        Kind::Counter | Kind::UpDown => match value.to_i64() {
            Some(amount) if cell.kind == Kind::UpDown || amount >= 0 => {
                cell.add_exact_int(amount);
            }
            _ => {
                let amount = value.to_f64();
                if valid(cell.kind, amount, f64::MAX) {
                    cell.add_exact_float(amount);
                } else {
                    reject();
                }
            }
        },
        Kind::Gauge => set_gauge(cell, value.to_f64()),
        Kind::Histogram => push_decided(cell, 1.0, value.to_f64()),
    }
}

fn set_gauge(cell: &'static SeriesCell, value: f64) {
    if value.is_finite() {
        cell.set_gauge(value);
    } else {
        reject();
    }
}

#[cold]
#[inline(never)]
fn reject() {
    if let Some(pipeline) = global::pipeline().as_ref() {
        pipeline.reject();
    }
}

/// The documented acceptance rules: counters take finite non-negative
/// increments, up-down counters any finite delta, histograms finite values in
/// `0..=histogram_max`.
///
/// Tested on the bits: after `+ 0.0` (which turns `−0` into `+0`), a
/// non-negative finite double is one whose bits are below those of `+∞`,
/// and non-negative doubles order like their bits; NaNs and negatives have
/// bit patterns above every accepted one. One compare per rule.
#[inline]
fn valid(kind: Kind, value: f64, histogram_max: f64) -> bool {
    const INFINITY_BITS: u64 = 0x7ff0_0000_0000_0000;
    let bits = (value + 0.0).to_bits();
    match kind {
        Kind::Counter => bits < INFINITY_BITS,
        Kind::UpDown | Kind::Gauge => bits & !(1 << 63) < INFINITY_BITS,
        Kind::Histogram => bits <= histogram_max.to_bits(),
    }
}

/// A started `timed` measurement: the clock was read because this call is
/// recorded.
#[derive(Debug)]
pub struct Timer {
    cell: &'static SeriesCell,
    start: Instant,
    exact: bool,
    inclusion_prob: f32,
}

/// Starts a `timed` call: `Some` only if this call is recorded.
#[inline(always)]
pub fn timed_begin(callsite: &'static Callsite) -> Option<Timer> {
    let state = callsite.state();
    if state & TAG_MASK == TAG_SAMPLED && SAMPLER.with(|sampler| sampler.skip()) {
        return None;
    }
    timed_begin_slow(callsite, state)
}

#[cold]
#[inline(never)]
fn timed_begin_slow(callsite: &'static Callsite, mut state: usize) -> Option<Timer> {
    if !global::is_active() {
        return None;
    }
    if state == 0 {
        state = crate::registry::resolve_callsite(callsite);
        if state & TAG_MASK == TAG_SAMPLED && SAMPLER.with(|sampler| sampler.skip()) {
            return None;
        }
    }
    match state & TAG_MASK {
        TAG_SAMPLED => {
            let inclusion_prob = pipeline::with_current((), |pipeline, ()| {
                Ok(pipeline
                    .and_then(|pipeline| SAMPLER.with(|sampler| sampler.decide(&pipeline.rate))))
            })
            .flatten()?;
            Some(Timer {
                cell: cell_of(state),
                start: Instant::now(),
                exact: false,
                inclusion_prob,
            })
        }
        TAG_EXACT => Some(Timer {
            cell: cell_of(state),
            start: Instant::now(),
            exact: true,
            inclusion_prob: 1.0,
        }),
        _ => None,
    }
}

/// Ends a `timed` call, recording the elapsed nanoseconds.
#[cold]
#[inline(never)]
pub fn timed_end(timer: Timer) {
    let elapsed_ns = timer.start.elapsed().as_nanos() as f64;
    if timer.exact {
        exact(timer.cell, elapsed_ns);
        return;
    }
    push_decided(timer.cell, timer.inclusion_prob, elapsed_ns);
}
