//! The cold halves of the entries in `record.rs`: every call that borrowed
//! from the countdown comes here, through one of four doors (callsite,
//! handle cell, sample-first resolver, `timed`; `dynamic.rs` uses the
//! sample-first door and `timed`'s), and goes on in the same
//! three steps: route, then decide/check/push a sampled call, or record an
//! exact one.

use std::time::Instant;

use super::callsite::{cell_of, Callsite, STEP_OFF, TAG_EXACT, TAG_MASK, TAG_SAMPLED};
use super::cell::{Kind, SeriesCell};
use super::exact;
use super::pipeline::{self, Pipeline};
use super::registry::{self, SeriesRef};
use super::sample::Sample;
use super::thread::{self, Local, Reload};
use super::value::Value;

/// Where a call that left the fast path goes.
#[derive(Clone, Copy, Debug)]
enum Route {
    /// The countdown ran out on a sampled series during this call's `step`
    /// trials: decide, check, push.
    Sampled(&'static SeriesCell, u64),
    /// Every call of this series is recorded.
    Exact(&'static SeriesCell),
    /// A disabled series, or a sampled one whose call is not a sample.
    Nothing,
}

/// Routes a callsite's call that borrowed `step` from the countdown: a
/// sampled callsite whose countdown ran out during its `step` trials, or a
/// callsite that is exact, disabled or not resolved yet (`STEP_OFF`).
#[inline(always)]
fn route(callsite: &'static Callsite, step: u64) -> Route {
    let mut state = callsite.state();
    if step != STEP_OFF {
        if state & TAG_MASK == TAG_SAMPLED {
            return Route::Sampled(cell_of(state), step);
        }
        // Re-tagged since the step was read: the countdown this call used
        // up is the thread's, so draw the next one, then treat the call as
        // what its callsite is now.
        redraw(step);
    } else {
        // Not the sampler's call: give the countdown back.
        give_back(step);
        if state == 0 {
            // Resolved on first use even with no engine installed: a
            // sampled callsite then gets its series' step, and its later
            // calls stay on the countdown path (an engine installed later
            // re-tags it).
            state = registry::resolve_callsite(callsite);
        }
        if state & TAG_MASK == TAG_SAMPLED {
            // Just resolved, or re-tagged sampled since the step was read:
            // this call is a trial with the callsite's step now (1 if that
            // store is not visible yet; the sample carries what it used).
            let step = match callsite.step() {
                STEP_OFF => 1,
                step => step,
            };
            return if thread::skip_by(step) {
                Route::Nothing
            } else {
                Route::Sampled(cell_of(state), step)
            };
        }
    }
    match state & TAG_MASK {
        TAG_EXACT => exact_route(cell_of(state)),
        _ => Route::Nothing,
    }
}

/// The route of a call of an exact series: recorded while an engine is
/// installed (the one place an exact call asks), nothing otherwise.
#[inline(always)]
fn exact_route(cell: &'static SeriesCell) -> Route {
    if pipeline::is_active() {
        Route::Exact(cell)
    } else {
        Route::Nothing
    }
}

/// Records a routed call.
#[inline(always)]
fn record<V: Value>(route: Route, value: V) {
    match route {
        Route::Sampled(cell, step) => sample(cell, value.to_f64(), Pending::Undecided(step)),
        Route::Exact(cell) => exact(cell, value),
        Route::Nothing => {}
    }
}

/// The cold half of `record::sampled`.
#[cold]
#[inline(never)]
pub(super) fn callsite_call<V: Value>(callsite: &'static Callsite, step: u64, value: V) {
    record(route(callsite, step), value);
}

/// The cold half of `record::handle`.
#[cold]
#[inline(never)]
pub(super) fn cell_call<V: Value>(cell: &'static SeriesCell, step: u64, value: V) {
    let route = if step != STEP_OFF {
        Route::Sampled(cell, step)
    } else {
        thread::with(|local| local.sampler().give_back(step));
        exact_route(cell)
    };
    record(route, value);
}

/// The cold half of `record::gauge` for a callsite not resolved yet (a
/// gauge takes no step: it is always exact).
#[cold]
#[inline(never)]
pub(super) fn gauge_call<V: Value>(callsite: &'static Callsite, value: V) {
    let mut state = callsite.state();
    if state == 0 {
        state = registry::resolve_callsite(callsite);
    }
    if state & TAG_MASK == TAG_EXACT {
        record(exact_route(cell_of(state)), value);
    }
}

/// Gives back the countdown a call that is not the sampler's borrowed
/// (`STEP_OFF`).
pub(super) fn give_back(step: u64) {
    thread::with(|local| local.sampler().give_back(step));
}

/// The cold half of `record::sampled_resolving` (and of a `record!` site
/// with label expressions), whose countdown ran out during its `step`
/// trials. `with_series` finds the call's series and runs the push it is
/// given on it, with the series held until the push returns (a cache may
/// let go of it meanwhile, and a series no holder keeps can be recycled);
/// it returns false when the series was refused.
#[cold]
#[inline(never)]
pub(super) fn resolving_call<F>(value: f64, step: u64, with_series: F)
where
    F: FnOnce(&mut dyn FnMut(&'static SeriesCell)) -> bool,
{
    if !pipeline::is_active() {
        // No engine: do not pay for a lookup; check again in a while.
        thread::with(|local| local.sampler().park());
        return;
    }
    let found = with_series(&mut |cell| sample(cell, value, Pending::Undecided(step)));
    if !found {
        // A refused series records nothing, but the countdown this call
        // exhausted is shared by every metric of the thread: draw the next
        // one as a sampled call would.
        redraw(step);
    }
}

/// A started `timed` measurement: the clock was read because this call is
/// recorded.
#[derive(Debug)]
pub struct Timer {
    cell: &'static SeriesCell,
    start: Instant,
    /// The probability this call was recorded with (1 for an exact one).
    inclusion_prob: f32,
    /// Keeps `cell` from being recycled for another label set while the
    /// block runs, when the timer's series was found through a cache that
    /// may let go of it meanwhile (a `record!` site with label
    /// expressions); `None` for a callsite's own series, held for good.
    _held: Option<SeriesRef>,
}

/// The cold half of `record::timed_begin`: the clock is read only for a
/// call that is recorded, and the timer keeps the probability it was
/// recorded with.
#[cold]
#[inline(never)]
pub(super) fn timed_call(callsite: &'static Callsite, step: u64) -> Option<Timer> {
    let (cell, inclusion_prob) = match route(callsite, step) {
        Route::Sampled(cell, step) => (cell, decide_only(step)?),
        Route::Exact(cell) => (cell, 1.0),
        Route::Nothing => return None,
    };
    Some(Timer::start(cell, inclusion_prob))
}

impl Timer {
    /// Reads the clock for a call recorded with `inclusion_prob`.
    pub(super) fn start(cell: &'static SeriesCell, inclusion_prob: f32) -> Self {
        Self {
            cell,
            start: Instant::now(),
            inclusion_prob,
            _held: None,
        }
    }

    /// Reads the clock for a call recorded with `inclusion_prob` in the
    /// series `held`, which the timer holds until it ends.
    pub(super) fn start_held(held: SeriesRef, inclusion_prob: f32) -> Self {
        Self {
            cell: held.cell(),
            start: Instant::now(),
            inclusion_prob,
            _held: Some(held),
        }
    }
}

/// Ends a `timed` call, recording the elapsed nanoseconds.
#[cold]
#[inline(never)]
pub fn timed_end(timer: Timer) {
    let elapsed_ns = timer.start.elapsed().as_nanos() as f64;
    push_decided(timer.cell, timer.inclusion_prob, elapsed_ns);
}

/// Draws the next skip for a countdown that ran out (during `step` trials)
/// on a call that is not recorded through the sampler.
#[cold]
#[inline(never)]
pub(super) fn redraw(step: u64) {
    let _ = decide_only(step);
}

/// Decides a call whose countdown ran out during its `step` trials without
/// recording anything yet: the probability it is sampled with, or `None`
/// (not sampled, or no engine: the sampler parks).
pub(super) fn decide_only(step: u64) -> Option<f32> {
    let cached = thread::with(|local| {
        let pipeline = local.cached_pipeline()?;
        Some(local.sampler().decide(&pipeline.rate, step))
    });
    if let Some(decision) = cached {
        return decision;
    }
    let installed = pipeline::installed();
    thread::with(|local| match installed.as_deref() {
        Some(pipeline) => local.sampler().decide(&pipeline.rate, step),
        None => {
            local.sampler().park();
            None
        }
    })
}

/// Pushes one histogram value already decided on, with the probability it
/// was recorded with (exact calls: 1; `timed`: what `timed_call` drew).
pub(crate) fn push_decided(cell: &'static SeriesCell, inclusion_prob: f32, value: f64) {
    sample(cell, value, Pending::Decided(inclusion_prob));
}

/// Where a call stands before its sample is pushed.
#[derive(Clone, Copy, Debug)]
enum Pending {
    /// Its countdown ran out during its `step` trials: the sampler decides.
    Undecided(u64),
    /// Recorded with this probability already (exact calls: 1; `timed`).
    Decided(f32),
}

/// What one attempt at a sampled call did.
enum Attempt {
    /// Pushed, spilled, rejected or not sampled: the call is done.
    Done,
    /// The thread caches no pipeline (its first sampled call, or no engine).
    NoPipeline,
    /// The pipeline was closed (shut down, or a newer engine installed):
    /// the sample, decided once, to push to the installed one.
    Closed(Sample),
}

/// Decides (unless it is `Decided` already), checks and pushes one call of
/// `cell` through the thread's cached pipeline; when
/// there is none, or it was closed, reloads the thread's handle and tries
/// again, at most twice. A sample whose pipeline is closed on the last try
/// belongs to a call made after shutdown and is dropped like every such
/// call.
#[cold]
#[inline(never)]
fn sample(cell: &'static SeriesCell, value: f64, decided: Pending) {
    // A retired series comes back on its first recorded call.
    let cell = registry::live(cell);
    let mut pending: Option<Sample> = None;
    for attempt in 0..3 {
        if attempt > 0 && thread::reload() == Reload::Unavailable {
            sample_uncached(cell, value, decided, pending);
            return;
        }
        let outcome = thread::with(|local| match local.cached_pipeline() {
            Some(pipeline) => push(local, pipeline, cell, value, decided, pending),
            None => Attempt::NoPipeline,
        });
        match outcome {
            Attempt::Done => return,
            Attempt::Closed(sample) => pending = Some(sample),
            Attempt::NoPipeline if attempt > 0 => {
                // Reloaded, and still none: no engine installed.
                if matches!(decided, Pending::Undecided(_)) && pending.is_none() {
                    thread::with(|local| local.sampler().park());
                }
                return;
            }
            Attempt::NoPipeline => {}
        }
    }
}

/// [`sample`] when the thread's handle cannot be used (a call re-entering
/// one that is changing it, or a call from a thread-local destructor):
/// through the installed slot directly, to the thread's shared shard.
#[cold]
#[inline(never)]
fn sample_uncached(
    cell: &'static SeriesCell,
    value: f64,
    decided: Pending,
    pending: Option<Sample>,
) {
    let installed = pipeline::installed();
    thread::with(|local| {
        let Some(pipeline) = installed.as_deref() else {
            if matches!(decided, Pending::Undecided(_)) && pending.is_none() {
                local.sampler().park();
            }
            return;
        };
        // A pipeline that is not the cached one: `Local::push` takes the
        // shared shard.
        let _ = push(local, pipeline, cell, value, decided, pending);
    });
}

/// One attempt on `pipeline`: the sample `pending` from an earlier attempt,
/// or a new one decided (by the sampler, or as `decided` says) and checked;
/// then the push.
#[inline(always)]
fn push(
    local: &Local,
    pipeline: &Pipeline,
    cell: &'static SeriesCell,
    value: f64,
    decided: Pending,
    pending: Option<Sample>,
) -> Attempt {
    let sample = match pending {
        Some(sample) => sample,
        None => {
            let inclusion_prob = match decided {
                Pending::Decided(inclusion_prob) => inclusion_prob,
                Pending::Undecided(step) => match local.sampler().decide(&pipeline.rate, step) {
                    Some(inclusion_prob) => inclusion_prob,
                    None => return Attempt::Done,
                },
            };
            if !valid(cell.kind, value, pipeline.histogram_max) {
                pipeline.reject();
                return Attempt::Done;
            }
            Sample {
                id: cell.id,
                inclusion_prob,
                value,
            }
        }
    };
    if local.push(pipeline, sample, &cell.spill) {
        Attempt::Done
    } else {
        Attempt::Closed(sample)
    }
}

/// Records an exact call (routed while an engine is installed): the
/// thread's own cells for counters (`exact.rs`), the ring with `p = 1` for
/// histograms, the cell for gauges.
#[inline(never)]
pub(crate) fn exact<V: Value>(cell: &'static SeriesCell, value: V) {
    // A retired series comes back on its first recorded call.
    let cell = registry::live(cell);
    match cell.kind {
        Kind::Counter | Kind::UpDown => exact::add(cell, value),
        Kind::Gauge => set_gauge(cell, value.to_f64()),
        Kind::Histogram => push_decided(cell, 1.0, value.to_f64()),
    }
}

/// Sets a gauge, refusing (and counting) a value that is not finite.
pub(super) fn set_gauge(cell: &'static SeriesCell, value: f64) {
    if value.is_finite() {
        cell.set_gauge(value);
    } else {
        reject();
    }
}

/// Counts one value refused off the sampled path.
#[cold]
#[inline(never)]
pub(crate) fn reject() {
    if let Some(pipeline) = pipeline::installed().as_ref() {
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
