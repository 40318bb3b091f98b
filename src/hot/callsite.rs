//! The `static` a `record!` expands to, and its cached resolution.
//!
//! Looking a series up by name and labels costs a lock and a hash; doing it
//! per call is what makes other libraries slow. A callsite therefore
//! resolves once, on its first call with an engine installed, and caches a
//! tagged pointer to its series' cell in one word:
//!
//! * `0`: not resolved yet (first call, or no engine so far);
//! * `cell | TAG_SAMPLED`: the common case, calls go through the sampler;
//! * `cell | TAG_EXACT`: every call is recorded (critical, gauge, up-down,
//!   a name the engine's `never_sample` matches, or a series the allocator
//!   made exact);
//! * `TAG_DISABLED`: the registration was refused (bad name, kind clash);
//!   calls do nothing.
//!
//! The hot path does not read the word. It reads the callsite's *step*, the
//! amount a call takes off the thread's countdown: its series' step
//! `s ≥ 1` for a sampled callsite (the call is then sampled with
//! `π = 1 − (1 − p)^s`, see `sampler.rs`), [`STEP_OFF`] (`u64::MAX`) for
//! every other state, which no countdown can pay without borrowing. The
//! whole unsampled path is then
//! `countdown −= step` and a branch on the borrow, the same three
//! instructions as a bare countdown, and exact, disabled and unresolved
//! callsites still leave it on every call (the cold path gives the
//! countdown back). The step is written right after the word: the cold path
//! dispatches on the word itself, so a call that raced a re-tagging is
//! handled by what the word says.
//!
//! A `record!` whose label values are expressions expands to a
//! [`DynamicCallsite`] instead: the same step word (its metric's
//! sample-first step), a tag without a cell (the series depends on the
//! values); its series are found through each thread's cache
//! (`series_cache.rs`).
//!
//! Both are `Relaxed` loads of memory written at an engine install and when
//! the allocator changes the series' step (once per control period at
//! most), so their cache line stays shared.

use crate::sync::statics::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::cell::{Kind, SeriesCell};

pub(crate) const TAG_MASK: usize = 3;
pub(crate) const TAG_SAMPLED: usize = 1;
pub(crate) const TAG_EXACT: usize = 2;
pub(crate) const TAG_DISABLED: usize = 3;

/// The step of a callsite that is not sampled (exact, disabled, or not
/// resolved yet): larger than any countdown, so every call borrows.
pub(crate) use super::cell::STEP_OFF;

/// Static description of one `record!` site, plus its cached series.
#[derive(Debug)]
pub struct Callsite {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    pub(crate) labels: &'static [(&'static str, &'static str)],
    pub(crate) critical: bool,
    state: AtomicUsize,
    /// `1` when the word is tagged sampled, [`STEP_OFF`] otherwise.
    step: AtomicU64,
}

impl Callsite {
    /// A callsite; `const` so the macro can put it in a `static`.
    pub const fn new(
        name: &'static str,
        kind: Kind,
        labels: &'static [(&'static str, &'static str)],
        critical: bool,
    ) -> Self {
        Self {
            name,
            kind,
            labels,
            critical,
            state: AtomicUsize::new(0),
            step: AtomicU64::new(STEP_OFF),
        }
    }

    /// The metric name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The cached state word (see the module docs).
    #[inline(always)]
    pub(crate) fn state(&self) -> usize {
        // Relaxed: the word is written under the registry lock and points to a
        // cell that was fully built before (cells are published through the
        // registry's mutex, and the cell's fields are atomics).
        self.state.load(Ordering::Relaxed)
    }

    /// What a call takes off the thread's countdown (see the module docs).
    #[inline(always)]
    pub(crate) fn step(&self) -> u64 {
        self.step.load(Ordering::Relaxed)
    }

    pub(crate) fn store(&self, state: usize) {
        let step = if state & TAG_MASK == TAG_SAMPLED {
            cell_of(state).step()
        } else {
            STEP_OFF
        };
        self.state.store(state, Ordering::Relaxed);
        self.step.store(step, Ordering::Relaxed);
    }
}

/// Packs a cell pointer and a tag.
pub(crate) fn pack(cell: &'static SeriesCell, tag: usize) -> usize {
    cell as *const SeriesCell as usize | tag
}

/// The cell of a state word whose tag is `TAG_SAMPLED` or `TAG_EXACT`.
#[inline(always)]
pub(crate) fn cell_of(state: usize) -> &'static SeriesCell {
    debug_assert!(state & TAG_MASK == TAG_SAMPLED || state & TAG_MASK == TAG_EXACT);
    // SAFETY: such a word is only ever built by `pack` from a
    // `&'static SeriesCell` (cells are leaked by the registry and never
    // freed); `SeriesCell` is 8-aligned, so the two tag bits were zero.
    unsafe { &*((state & !TAG_MASK) as *const SeriesCell) }
}

/// Static description of one `record!` site with label expressions, plus
/// its cached step (its series are cached per thread, by
/// `series_cache.rs`).
#[derive(Debug)]
pub struct DynamicCallsite {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    /// The label keys, in the order of the call's values.
    pub(crate) keys: &'static [&'static str],
    pub(crate) critical: bool,
    /// `0` until resolved, then `TAG_SAMPLED`, `TAG_EXACT` or
    /// `TAG_DISABLED` (no cell: the series depends on the call). Written
    /// under the registry lock.
    state: AtomicUsize,
    /// The metric's sample-first step while tagged sampled, [`STEP_OFF`]
    /// otherwise. Written under the registry lock, right after `state`.
    step: AtomicU64,
    /// A refused label set was logged (once per site).
    pub(crate) refusal_logged: AtomicBool,
}

impl DynamicCallsite {
    /// A callsite; `const` so the macro can put it in a `static`.
    pub const fn new(
        name: &'static str,
        kind: Kind,
        keys: &'static [&'static str],
        critical: bool,
    ) -> Self {
        Self {
            name,
            kind,
            keys,
            critical,
            state: AtomicUsize::new(0),
            step: AtomicU64::new(STEP_OFF),
            refusal_logged: AtomicBool::new(false),
        }
    }

    /// The metric name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The resolution tag (see the field).
    #[inline(always)]
    pub(crate) fn state(&self) -> usize {
        // Relaxed: a tag, not a pointer; written under the registry lock.
        self.state.load(Ordering::Relaxed)
    }

    /// What a call takes off the thread's countdown.
    #[inline(always)]
    pub(crate) fn step(&self) -> u64 {
        self.step.load(Ordering::Relaxed)
    }

    /// Sets the tag and, for a sampled site, the metric's step.
    pub(crate) fn store(&self, state: usize, metric_step: u64) {
        let step = if state & TAG_MASK == TAG_SAMPLED {
            metric_step.max(1)
        } else {
            STEP_OFF
        };
        self.state.store(state, Ordering::Relaxed);
        self.step.store(step, Ordering::Relaxed);
    }
}
