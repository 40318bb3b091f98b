//! `record!` sites whose label values are expressions:
//! `record!(counter: "http.requests", 1, "route" => route)`.
//!
//! Such a site cannot resolve its series once: the series depends on the
//! values. It samples first and resolves after, as the OpenTelemetry
//! instruments do (`record::sampled_resolving`):
//!
//! * **The unsampled call is the literal site's.** The step taken off the
//!   countdown is the *metric's* sample-first step (the largest step any of
//!   its sampled series takes, `registry::apply_steps`), cached in the
//!   callsite as a literal site caches its series' step. The label
//!   expressions are expanded into a closure that only the cold branch
//!   calls: an unsampled call does not evaluate, format, hash or copy them.
//! * **A sampled call carries the probability of that step**, fixed before
//!   its trial, whatever step its series takes on its own (the rule of
//!   DESIGN.md §3b: the sample carries the `π` of the step it used).
//! * **Exact sites** (gauges, up-down counters, `critical` forms, names the
//!   engine's `never_sample` matches) evaluate the values on every call
//!   while an engine is installed, and record the call in full.
//!
//! A call that is recorded finds its series through its thread's cache
//! (`series_cache.rs`), keyed by the site and the values' texts, each
//! entry holding a `SeriesRef`: the series is held while cached and
//! released when the entry is evicted or the thread exits, so a series of
//! a label set that churned away is retired and its cell recycled like a
//! dropped handle's, and memory stays bounded under endless churn of label
//! values. A hit is one thread-local access and a comparison of the
//! values; a miss goes to the registry (a lock and an allocation: cold,
//! like every resolution). Label sets the cardinality limit routes to the
//! overflow series are not cached (a place may free up for them at any
//! time, and their values are not the overflow series' labels): each
//! recorded call of one asks the registry again.

use crate::sync::statics::Ordering;
use crate::sync::Arc;

use super::callsite::{DynamicCallsite, STEP_OFF, TAG_DISABLED, TAG_EXACT, TAG_SAMPLED};
use super::label::{LabelBuf, LabelValue};
use super::pipeline;
use super::registry::{self, SeriesRef};
use super::series_cache;
use super::slow;
use super::thread;
use super::value::Value;

/// Label values read into stack buffers; a site with more labels formats
/// the rest on the heap (cold path).
const INLINE_LABELS: usize = 8;

/// What the macro hands the entries: a closure that evaluates the call's
/// label values and passes them on. Only the cold branch calls it.
pub type Visit<'a> = &'a mut dyn FnMut(&[&dyn LabelValue]);

impl DynamicCallsite {
    /// Runs `record` with the series of a recorded call, given its values
    /// in key order, held for the call. `None` if refused.
    fn with_series<R>(
        &self,
        values: &[&dyn LabelValue],
        record: impl FnOnce(&SeriesRef) -> R,
    ) -> Option<R> {
        debug_assert_eq!(values.len(), self.keys.len());
        // The values are formatted (user code, which may itself record)
        // before the thread's cache is entered.
        if values.len() > INLINE_LABELS {
            let texts: Vec<String> = values
                .iter()
                .map(|value| value.label_str(&mut LabelBuf::new()).to_string())
                .collect();
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            return series_cache::with_series(self, &texts, || self.lookup(&texts), record);
        }
        let mut bufs = [LabelBuf::new(); INLINE_LABELS];
        let mut texts = [""; INLINE_LABELS];
        for ((text, buf), value) in texts.iter_mut().zip(bufs.iter_mut()).zip(values) {
            *text = value.label_str(buf);
        }
        let texts = &texts[..values.len()];
        series_cache::with_series(self, texts, || self.lookup(texts), record)
    }

    /// The series of `texts` from the registry (a miss of the thread's
    /// cache), and whether it may be cached (not the overflow series).
    #[cold]
    #[inline(never)]
    fn lookup(&self, texts: &[&str]) -> Option<(SeriesRef, bool)> {
        let labels: Vec<(Arc<str>, Arc<str>)> = self
            .keys
            .iter()
            .zip(texts)
            .map(|(key, text)| (Arc::from(*key), Arc::from(*text)))
            .collect();
        match registry::dynamic_series(self, &labels) {
            Ok(found) => Some(found),
            Err(error) => {
                if !self.refusal_logged.swap(true, Ordering::Relaxed) {
                    log::error!(
                        target: "hotmetrics",
                        "record! label set ignored (logged once per site): {error}"
                    );
                }
                None
            }
        }
    }
}

/// Entry point of sampled-kind macro calls with label expressions
/// (`counter`, `histogram`, `critical histogram`): the metric's step off
/// the countdown; `labels` runs only in the cold branch.
#[inline(always)]
pub fn sampled_dynamic<V, L>(callsite: &'static DynamicCallsite, value: V, labels: L)
where
    V: Value,
    L: FnOnce(Visit<'_>),
{
    let step = callsite.step();
    if thread::skip_by(step) {
        return;
    }
    dynamic_call(callsite, step, value, labels);
}

/// Entry point of exact macro calls with label expressions (`updown`,
/// `gauge`, `critical counter | updown`): every call recorded while an
/// engine is installed, its values evaluated only then.
#[inline(always)]
pub fn exact_dynamic<V, L>(callsite: &'static DynamicCallsite, value: V, labels: L)
where
    V: Value,
    L: FnOnce(Visit<'_>),
{
    if !pipeline::is_active() {
        return;
    }
    exact_call(callsite, value, labels);
}

/// Evaluates the values through `labels` and runs `record` with their
/// series, held for the call. `None` if refused.
fn with_series<L, R>(
    callsite: &DynamicCallsite,
    labels: L,
    record: impl FnOnce(&SeriesRef) -> R,
) -> Option<R>
where
    L: FnOnce(Visit<'_>),
{
    let mut record = Some(record);
    let mut result = None;
    labels(&mut |values| {
        if let Some(record) = record.take() {
            result = callsite.with_series(values, record);
        }
    });
    result
}

/// Records a sampled call whose countdown ran out during its `step`
/// trials, in the series of its values.
fn sampled_record<L: FnOnce(Visit<'_>)>(
    callsite: &DynamicCallsite,
    value: f64,
    step: u64,
    labels: L,
) {
    slow::resolving_call(value, step, |push| {
        with_series(callsite, labels, |series| push(series.cell())).is_some()
    });
}

/// The tag of `callsite`, resolving it on first use.
fn resolved(callsite: &'static DynamicCallsite) -> usize {
    match callsite.state() {
        0 => registry::resolve_dynamic(callsite),
        state => state,
    }
}

/// The cold half of [`sampled_dynamic`]: the countdown ran out during the
/// call's `step` trials, or the site is not sampled (`STEP_OFF`).
#[cold]
#[inline(never)]
fn dynamic_call<V, L>(callsite: &'static DynamicCallsite, step: u64, value: V, labels: L)
where
    V: Value,
    L: FnOnce(Visit<'_>),
{
    if step != STEP_OFF {
        if callsite.state() == TAG_SAMPLED {
            return sampled_record(callsite, value.to_f64(), step, labels);
        }
        // Re-tagged since the step was read: this call used up the
        // thread's countdown, so draw the next one, then treat the call as
        // what the site is now.
        slow::redraw(step);
    } else {
        slow::give_back(step);
    }
    match resolved(callsite) {
        TAG_SAMPLED => {
            // Just resolved (or re-tagged): a trial with the step in force
            // now, the one its sample carries.
            let step = match callsite.step() {
                STEP_OFF => 1,
                step => step,
            };
            if !thread::skip_by(step) {
                sampled_record(callsite, value.to_f64(), step, labels);
            }
        }
        TAG_EXACT if pipeline::is_active() => exact_resolved(callsite, value, labels),
        _ => {}
    }
}

/// The cold half of [`exact_dynamic`].
#[cold]
#[inline(never)]
fn exact_call<V, L>(callsite: &'static DynamicCallsite, value: V, labels: L)
where
    V: Value,
    L: FnOnce(Visit<'_>),
{
    if resolved(callsite) != TAG_DISABLED {
        exact_resolved(callsite, value, labels);
    }
}

/// Records an exact call of a resolved site in its series.
fn exact_resolved<V, L>(callsite: &'static DynamicCallsite, value: V, labels: L)
where
    V: Value,
    L: FnOnce(Visit<'_>),
{
    with_series(callsite, labels, |series| slow::exact(series.cell(), value));
}

/// Starts a `timed` call with label expressions: `Some` only if this call
/// is recorded; the values are evaluated then, before the block runs.
#[inline(always)]
pub fn timed_begin_dynamic<L>(callsite: &'static DynamicCallsite, labels: L) -> Option<slow::Timer>
where
    L: FnOnce(Visit<'_>),
{
    let step = callsite.step();
    if thread::skip_by(step) {
        return None;
    }
    timed_call(callsite, step, labels)
}

/// The cold half of [`timed_begin_dynamic`]: decides first (the probability
/// of the step this call took), then evaluates the values.
#[cold]
#[inline(never)]
fn timed_call<L>(callsite: &'static DynamicCallsite, step: u64, labels: L) -> Option<slow::Timer>
where
    L: FnOnce(Visit<'_>),
{
    let mut step = step;
    if step == STEP_OFF {
        slow::give_back(step);
        if resolved(callsite) != TAG_SAMPLED {
            return None;
        }
        step = match callsite.step() {
            STEP_OFF => 1,
            step => step,
        };
        if thread::skip_by(step) {
            return None;
        }
    } else if callsite.state() != TAG_SAMPLED {
        slow::redraw(step);
        return None;
    }
    let inclusion_prob = slow::decide_only(step)?;
    // The timer holds its series until it ends: the block may record
    // enough label sets to evict this one from the thread's cache.
    with_series(callsite, labels, |series| {
        slow::Timer::start_held(series.clone(), inclusion_prob)
    })
}
