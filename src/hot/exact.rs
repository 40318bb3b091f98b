//! Exact calls without a shared write: per-thread single-writer cells.
//!
//! An exact call (a `critical` or `updown` `record!`, a `never_sample`
//! name, an exact handle) must count every call, and a shared `fetch_add`
//! on the series' atomics costs a locked instruction and a cache line that
//! bounces between every thread counting the series. Instead each thread
//! counts in cells of its own, and the flusher adds them up:
//!
//! * **Slots.** Per series and thread, a `Slot`: the wrapping integer
//!   sum, the float sum (bits) and the call count, relaxed atomics that only
//!   the owning thread writes, with a load and a store (no locked
//!   instruction). A series gets a dense slot index on its first exact call
//!   ([`SeriesCell::exact_slot`]); slots come in `Page`s of
//!   [`SLOTS_PER_PAGE`], taken lazily, found through the thread's
//!   directory ([`Slots`], a `const` thread-local without destructor).
//! * **Reading.** A series' total is its base (the `SeriesCell` atomics:
//!   what exited threads folded in, and calls past the bound) plus the slot
//!   of every live thread, summed under the tables' lock
//!   ([`Tables::totals_by_id`] does every series in one pass).
//! * **Exit.** Each thread's registration ([`Owner`], a thread-local whose
//!   destructor runs at thread exit) folds the thread's slots into the
//!   bases and unregisters the thread under that same lock, so a reader
//!   counts each call once: in the slot before the fold, in the base after.
//! * **Epochs.** Installing an engine starts a new epoch
//!   ([`Tables::restart`]): the bases are cleared and every live table is
//!   stale until its owner, on its next exact call, zeroes its own slots
//!   (it is their only writer, so nothing it adds is overwritten) and
//!   takes the new epoch. Readers skip stale tables and a stale table's
//!   fold is dropped, so nothing from an earlier engine reaches the next.
//!   The fast path compares the published epoch with the thread's own.
//! * **Memory bound.** Slot indexes stop at `MAX_PAGES × SLOTS_PER_PAGE`
//!   (4096) series, so a thread holds at most [`MAX_PAGES`] pages (64 ×
//!   1.5 KiB), only those its exact series fall in; pages are recycled,
//!   not freed, so the memory is that of the most threads counting at
//!   once, not of every thread ever started (plus the 520-byte directory
//!   every thread has). A series past the bound, and a call whose thread
//!   cannot register
//!   (one made from a thread-local destructor after this thread's tables
//!   were folded), takes the shared path: a `fetch_add` on the base, as
//!   before, counted in [`Tables::shared_calls`]. Nothing is lost.
//! * **No unsafe.** Pages are leaked once and recycled: an exiting thread
//!   hands its pages back and the next thread that needs one takes it, so
//!   a page is a `&'static Page` and memory stays flat under thread churn.
//!
//! The shipping build uses one `static` [`Tables`]; the loom models and the
//! tests drive instances.

use super::callsite::{cell_of, Callsite, TAG_EXACT, TAG_MASK, TAG_SAMPLED};
use super::cell::{Kind, SeriesCell};
use super::exact_tables::{tables, Amount, Slots};
use super::pipeline;
use super::registry;
use super::value::Value;
use crate::sync::{const_thread_local, RefCell};

pub(crate) use super::exact_tables::Totals;

const_thread_local! {
    /// This thread's directory: `const`, no destructor.
    static SLOTS: Slots = Slots::new();
}

/// This thread's registration in the process's tables; its destructor
/// folds.
#[derive(Debug)]
struct Owner(Option<usize>);

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some(table) = self.0.take() {
            // Forget first: a later call (from another thread-local's
            // destructor) finds no slot and takes the shared path.
            let _ = SLOTS.try_with(Slots::forget);
            tables().exit(table);
        }
    }
}

const_thread_local! {
    static OWNER: RefCell<Owner> = RefCell::new(Owner(None));
}

/// Records an exact call of a counter or up-down counter `cell` (the
/// caller checked that an engine is installed): the thread's slot, or the
/// cold path; a value the series does not accept is rejected and counted.
#[inline]
pub(crate) fn add<V: Value>(cell: &'static SeriesCell, value: V) {
    add_signed(cell, cell.kind == Kind::UpDown, value);
}

/// [`add`], with the series' kind known to the caller (`signed`: up-down).
#[inline(always)]
fn add_signed<V: Value>(cell: &'static SeriesCell, signed: bool, value: V) {
    match value.to_i64() {
        Some(amount) if signed || amount >= 0 => {
            if !SLOTS.with(|slots| tables().add_int(slots, cell, amount)) {
                add_cold(cell, Amount::Int(amount));
            }
        }
        _ => add_float(cell, value.to_f64()),
    }
}

/// [`add`] for an amount that is not an `i64` (a float, a huge `u64`, a
/// negative counter increment).
#[inline(never)]
fn add_float(cell: &'static SeriesCell, amount: f64) {
    // The documented rules: counters take finite non-negative increments,
    // up-down counters any finite delta.
    if !(amount.is_finite() && (cell.kind == Kind::UpDown || amount >= 0.0)) {
        if let Some(pipeline) = pipeline::installed().as_ref() {
            pipeline.reject();
        }
        return;
    }
    if !SLOTS.with(|slots| tables().add_float(slots, cell, amount)) {
        add_cold(cell, Amount::Float(amount));
    }
}

#[cold]
#[inline(never)]
fn add_cold(cell: &'static SeriesCell, amount: Amount) {
    let _ = SLOTS.try_with(|slots| {
        let owner = OWNER.try_with(|owner| match owner.try_borrow_mut() {
            Ok(mut owner) => {
                tables().add_slow(slots, Some(&mut owner.0), cell, amount);
                true
            }
            Err(_) => false,
        });
        if !matches!(owner, Ok(true)) {
            // The registration is gone (thread exit) or busy.
            tables().add_slow(slots, None, cell, amount);
        }
    });
}

/// The inline entry of the exact `record!` forms (`critical counter`,
/// `critical updown`, `updown`): `signed` for the up-down forms.
#[inline(always)]
pub(crate) fn callsite_add<V: Value>(callsite: &'static Callsite, signed: bool, value: V) {
    let state = callsite.state();
    if state & TAG_MASK == TAG_EXACT {
        // With no engine, a resolved callsite returns here.
        if pipeline::is_active() {
            add_signed(cell_of(state), signed, value);
        }
        return;
    }
    callsite_cold(callsite, value);
}

/// The cold half of [`callsite_add`]: resolve the callsite on its first
/// call, check for an engine, then [`add`].
#[cold]
#[inline(never)]
fn callsite_cold<V: Value>(callsite: &'static Callsite, value: V) {
    let mut state = callsite.state();
    if state == 0 {
        state = registry::resolve_callsite(callsite);
    }
    let tag = state & TAG_MASK;
    if (tag == TAG_EXACT || tag == TAG_SAMPLED) && pipeline::is_active() {
        add(cell_of(state), value);
    }
}

/// Starts a new epoch: called when an engine is installed, after the
/// registry cleared the series' totals.
pub(crate) fn restart() {
    tables().restart();
}

/// The current exact totals of series 0, 1, 2, … (see
/// [`Tables::totals_by_id`]).
pub(crate) fn totals_by_id<'a>(
    cells: impl IntoIterator<Item = &'a SeriesCell>,
    out: &mut Vec<Totals>,
) {
    tables().totals_by_id(cells, out);
}

/// Exact calls that took the shared path, and pages and live tables now.
#[cfg(test)]
pub(crate) fn figures() -> (u64, (usize, usize)) {
    (tables().shared_calls(), tables().footprint())
}
