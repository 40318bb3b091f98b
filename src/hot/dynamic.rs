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
//! A call that is recorded finds its series through a small cache in the
//! callsite: [`CACHE_SLOTS`] words, each a series cell. A label set may
//! sit in two slots picked by a hash of its values; a hit is confirmed by
//! comparing the values with the cell's own labels (never by the hash
//! alone). A read is one or two loads; a miss goes to the registry (a lock
//! and an allocation: cold, like every resolution) and puts the cell in the
//! first of its slots if that is empty, else in the second, replacing what
//! was there. Cells are never
//! freed, so a slot can be replaced at any time without reclamation. Label
//! sets the cardinality limit routes to the overflow series are not cached
//! (their values are not the overflow series' labels): each recorded call
//! of one asks the registry again.

use crate::sync::statics::Ordering;
use crate::sync::Arc;

use super::callsite::{
    DynamicCallsite, CACHE_SLOTS, STEP_OFF, TAG_DISABLED, TAG_EXACT, TAG_SAMPLED,
};
use super::cell::SeriesCell;
use super::label::{LabelBuf, LabelValue};
use super::pipeline;
use super::registry;
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
    /// The series of a recorded call, given its values in key order: from
    /// the cache, or the registry on a miss. `None` if refused.
    fn series(&self, values: &[&dyn LabelValue]) -> Option<&'static SeriesCell> {
        debug_assert_eq!(values.len(), self.keys.len());
        if values.len() > INLINE_LABELS {
            let texts: Vec<String> = values
                .iter()
                .map(|value| value.label_str(&mut LabelBuf::new()).to_string())
                .collect();
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            return self.series_of(&texts);
        }
        let mut bufs = [LabelBuf::new(); INLINE_LABELS];
        let mut texts = [""; INLINE_LABELS];
        for ((text, buf), value) in texts.iter_mut().zip(bufs.iter_mut()).zip(values) {
            *text = value.label_str(buf);
        }
        self.series_of(&texts[..values.len()])
    }

    fn series_of(&self, texts: &[&str]) -> Option<&'static SeriesCell> {
        let slots = slots_of(self.keys, texts);
        for index in slots {
            // Acquire: pairs with the Release store in `miss`, so the cell's
            // labels (plain memory) are visible before they are compared.
            let cached = self.slots[index].load(Ordering::Acquire);
            if cached != 0 {
                // SAFETY: non-zero slot words are only stored in `miss`,
                // from a `&'static SeriesCell` (cells are leaked, never
                // freed).
                let cell: &'static SeriesCell = unsafe { &*(cached as *const SeriesCell) };
                if same_labels(&cell.labels, self.keys, texts) {
                    return Some(cell);
                }
            }
        }
        self.miss(slots, texts)
    }

    #[cold]
    #[inline(never)]
    fn miss(&self, slots: [usize; 2], texts: &[&str]) -> Option<&'static SeriesCell> {
        let labels: Vec<(Arc<str>, Arc<str>)> = self
            .keys
            .iter()
            .zip(texts)
            .map(|(key, text)| (Arc::from(*key), Arc::from(*text)))
            .collect();
        match registry::dynamic_series(self, &labels) {
            Ok(cell) => {
                if same_labels(&cell.labels, self.keys, texts) {
                    // The first of the two slots if it is empty, else the
                    // second (replacing what is there).
                    let [first, second] = slots;
                    let index = if self.slots[first].load(Ordering::Relaxed) == 0 {
                        first
                    } else {
                        second
                    };
                    // Release: pairs with the Acquire load in `series_of`.
                    self.slots[index].store(cell as *const SeriesCell as usize, Ordering::Release);
                }
                Some(cell)
            }
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

/// The two cache slots a label set may sit in: from an FNV-1a hash of
/// keys and values, two independent slots (a set is looked for in both).
fn slots_of(keys: &[&str], texts: &[&str]) -> [usize; 2] {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (key, text) in keys.iter().zip(texts) {
        for &byte in key.as_bytes().iter().chain(&[0xff]).chain(text.as_bytes()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        hash = (hash ^ 0xfe).wrapping_mul(0x0100_0000_01b3);
    }
    let hash = hash ^ (hash >> 29);
    let first = hash as usize % CACHE_SLOTS;
    let second = (hash >> 32) as usize % (CACHE_SLOTS - 1);
    // Never the first slot again.
    [first, (first + 1 + second) % CACHE_SLOTS]
}

/// True if a call's pairs (keys in call order; a repeated key counts once,
/// first occurrence first, as the registry keeps it) are exactly `labels`
/// (sorted by key, keys unique).
fn same_labels(labels: &[(Arc<str>, Arc<str>)], keys: &[&str], texts: &[&str]) -> bool {
    let first = |index: usize| !keys[..index].contains(&keys[index]);
    let distinct = (0..keys.len()).filter(|&index| first(index)).count();
    distinct == labels.len()
        && labels.iter().all(|(key, value)| {
            keys.iter()
                .position(|candidate| *candidate == &**key)
                .is_some_and(|index| texts[index] == &**value)
        })
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

/// Evaluates the values through `labels` and finds their series.
fn resolve<L: FnOnce(Visit<'_>)>(
    callsite: &DynamicCallsite,
    labels: L,
) -> Option<&'static SeriesCell> {
    let mut cell = None;
    labels(&mut |values| cell = callsite.series(values));
    cell
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
            return slow::resolving_call(value.to_f64(), step, || resolve(callsite, labels));
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
                slow::resolving_call(value.to_f64(), step, || resolve(callsite, labels));
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
    if let Some(cell) = resolve(callsite, labels) {
        slow::exact(cell, value);
    }
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
    let cell = resolve(callsite, labels)?;
    Some(slow::Timer::start(cell, inclusion_prob))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(Arc<str>, Arc<str>)> {
        pairs
            .iter()
            .map(|(key, value)| (Arc::from(*key), Arc::from(*value)))
            .collect()
    }

    #[test]
    fn a_call_matches_its_series_labels_in_any_key_order_first_key_winning() {
        let sorted = labels(&[("route", "/a"), ("status", "200")]);
        assert!(same_labels(&sorted, &["status", "route"], &["200", "/a"]));
        assert!(same_labels(&sorted, &["route", "status"], &["/a", "200"]));
        assert!(!same_labels(&sorted, &["route", "status"], &["/a", "500"]));
        assert!(!same_labels(&sorted, &["route"], &["/a"]));
        assert!(same_labels(
            &sorted,
            &["route", "status", "route"],
            &["/a", "200", "/b"]
        ));
        assert!(!same_labels(
            &sorted,
            &["route", "status", "route"],
            &["/b", "200", "/a"]
        ));
        assert!(same_labels(&labels(&[]), &[], &[]));
    }

    #[test]
    fn slots_spread_label_sets() {
        let used: std::collections::HashSet<usize> = (0..64)
            .flat_map(|index| slots_of(&["route"], &[&format!("/r{index}")]))
            .collect();
        assert_eq!(used.len(), CACHE_SLOTS);
    }
}
