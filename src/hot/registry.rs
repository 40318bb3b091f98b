//! The process-wide series registry: name + kind + label set → series cell.
//!
//! Cold side. Callsites and handles come here once to resolve their series;
//! the flusher comes here to learn the name and labels behind a new
//! `MetricId`. One mutex guards it: nothing on the per-call path takes it.
//!
//! Cells are leaked on creation and never freed, so `&'static SeriesCell`
//! can be cached anywhere. Each metric name admits at most the cardinality
//! limit of label sets, beyond which calls share one overflow series
//! (`otel.metric.overflow = "true"`).
//!
//! # Idle series
//!
//! With an idle timeout, the flusher retires a series nothing recorded for
//! that long ([`retire`]): it leaves `by_key` for the `retired` map, its
//! place under the cardinality limit is freed, its callsites go back to
//! unresolved and its step to `STEP_OFF`, so the next call of any holder
//! leaves the fast path and revives it ([`live`]) in the same cell, from
//! zero, with a new start time. A key has at most one cell at any time
//! (live in `by_key`, or retired in `retired`), so reviving in place never
//! makes two series of one label set.
//!
//! Memory stays bounded under endless churn of label values because cells
//! are pooled, not freed: a retired cell that no holder can reach any more
//! ([`SeriesRef`]s count themselves in [`SeriesCell::holders`]: handles,
//! and each thread's cache of the series of `record!` label expressions,
//! per entry (`series_cache.rs`); callsites with literal labels and other
//! `&'static` holders count once, for good) is *recycled*: its
//! index, cell and exact slot go to a free list and the next new series of
//! its kind takes them. The flusher observes the count at zero, then waits
//! until every ring has been drained past the positions claimed at that
//! moment, so no sample of the old series is still in a ring when another
//! label set takes the index ([`quiescent`], [`recycle`]). A value of a
//! retired series that still arrives (a call that raced the retirement) is
//! counted in [`retired_values`], never added to another series.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Instant, SystemTime};

use super::callsite::{
    cell_of, pack, Callsite, DynamicCallsite, STEP_OFF, TAG_DISABLED, TAG_EXACT, TAG_MASK,
    TAG_SAMPLED,
};
use super::cell::{Kind, SeriesCell};
use super::exact_tables::{tables, Totals};
use super::sample::MetricId;
use crate::error::RegistrationError;
use crate::sync::statics::{AtomicU64, Ordering};
use crate::sync::Arc;

pub use super::cell::Labels;

/// Default number of label sets per metric name.
pub const DEFAULT_CARDINALITY_LIMIT: usize = 2000;

/// Longest label key or value accepted, in bytes.
pub const MAX_LABEL_LEN: usize = 4096;

/// The attribute that marks the overflow series.
pub const OVERFLOW_KEY: &str = "otel.metric.overflow";

/// What the registry knows of one series.
#[derive(Clone, Debug)]
pub(crate) struct SeriesInfo {
    /// Its producer-side cell.
    pub(crate) cell: &'static SeriesCell,
    /// Metric name.
    pub(crate) name: Arc<str>,
    /// Instrument kind.
    pub(crate) kind: Kind,
    /// Labels, sorted by key.
    pub(crate) labels: Labels,
    /// When the series was registered or last restarted (the allocator
    /// measures a new series' rate from then).
    pub(crate) created: Instant,
    /// When the series restarted in its cell (revived after retirement, or
    /// a recycled cell): its cumulative start time. `None` for a series
    /// that started with the engine's data.
    pub(crate) restarted: Option<SystemTime>,
    /// The overflow series of its metric: never retired.
    pub(crate) overflow: bool,
}

/// Key of a label set's series.
type Key = (Arc<str>, Kind, Labels);

/// A resolved series that may be retired: what a cache of resolved series
/// (a handle, a per-callsite or per-recorder cache) holds.
///
/// It counts itself in its cell's holders for as long as it lives, so the
/// cell is never recycled for another label set under it; a call through
/// it does no reference counting ([`SeriesRef::cell`] is a plain read).
/// When its series has been retired, the next call that leaves the fast
/// path revives it ([`live`]): a holder needs no other action.
#[derive(Debug)]
pub(crate) struct SeriesRef(&'static SeriesCell);

impl SeriesRef {
    pub(crate) fn new(cell: &'static SeriesCell) -> Self {
        // Relaxed: taken under the registry lock, which the flusher's
        // recycling also takes after its fence.
        cell.holders.fetch_add(1, Ordering::Relaxed);
        Self(cell)
    }

    /// The series' cell (the same cell for as long as this lives).
    #[inline(always)]
    pub(crate) fn cell(&self) -> &'static SeriesCell {
        self.0
    }
}

impl Clone for SeriesRef {
    fn clone(&self) -> Self {
        // Relaxed: the count is above zero while `self` lives, so the cell
        // cannot be recycled in between (as `Arc::clone`).
        self.0.holders.fetch_add(1, Ordering::Relaxed);
        Self(self.0)
    }
}

impl Drop for SeriesRef {
    fn drop(&mut self) {
        // Release: this holder's calls (its samples' claims, its exact
        // slot writes) happen before the flusher's Acquire fence in
        // `quiescent`, which reads the count at zero.
        self.0.holders.fetch_sub(1, Ordering::Release);
    }
}

#[derive(Debug)]
struct Metric {
    kind: Kind,
    label_sets: usize,
    overflow: Option<&'static SeriesCell>,
    /// The step of calls that sample before they know their series (an
    /// OpenTelemetry instrument's `add` with attributes): one per metric,
    /// the largest its sampled series need (see `apply_steps`). Leaked, like
    /// cells, so instruments can keep it.
    step: &'static AtomicU64,
}

#[derive(Debug)]
struct Registry {
    series: Vec<SeriesInfo>,
    by_key: HashMap<Key, &'static SeriesCell>,
    /// Retired series that are not recycled yet, by key: revived in place
    /// when their key is looked up again.
    retired: HashMap<Key, &'static SeriesCell>,
    /// Indexes of recycled cells, by kind, for new series to take.
    free: HashMap<Kind, Vec<u32>>,
    /// Series restarted (revived or recycled) since the aggregator last
    /// synced; see [`sync`].
    changed: Vec<u32>,
    metrics: HashMap<Arc<str>, Metric>,
    callsites: Vec<&'static Callsite>,
    /// Resolved `record!` sites with label expressions.
    dynamic: Vec<&'static DynamicCallsite>,
    /// Addresses of the callsites in `callsites` (a retired series' callsites
    /// resolve again, and are listed once).
    callsite_set: HashSet<usize>,
    /// Values that reached a series after it was retired (see
    /// [`retired_values`]).
    retired_values: u64,
    /// Series retired.
    retirements: u64,
    never_sample: Vec<String>,
    /// The step a new counter starts with: `STEP_OFF` (exact until its rate
    /// is known) under error targeting, 1 otherwise.
    new_counter_step: u64,
    /// The step a new histogram starts with: the one that gives the
    /// engine's starting rate off the base rate in force (1 until the
    /// allocator changes the base rate).
    new_histogram_step: u64,
    /// The step sample-first calls of a new metric start with.
    sample_first_start: u64,
    cardinality_limit: usize,
    /// Label sets routed to an overflow series.
    overflowed: u64,
}

/// Bumped whenever a series restarts in its cell (see [`sync`]): the
/// aggregator asks the registry only when it moved.
static REVISION: AtomicU64 = AtomicU64::new(0);

/// Clears `cell`'s totals for a series that ends or starts in it: the exact
/// totals are rebased (returned), the spill taken (its samples returned),
/// the gauge unset.
fn clear(cell: &SeriesCell) -> (Totals, u64) {
    let totals = tables().rebase(cell);
    let spilled = cell.spill.take().samples;
    cell.gauge.store(f64::NAN);
    cell.take_gauge_set();
    (totals, spilled)
}

fn registry() -> MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            Mutex::new(Registry {
                series: Vec::new(),
                by_key: HashMap::new(),
                retired: HashMap::new(),
                free: HashMap::new(),
                changed: Vec::new(),
                metrics: HashMap::new(),
                callsites: Vec::new(),
                dynamic: Vec::new(),
                callsite_set: HashSet::new(),
                retired_values: 0,
                retirements: 0,
                never_sample: Vec::new(),
                new_counter_step: 1,
                new_histogram_step: 1,
                sample_first_start: 1,
                cardinality_limit: DEFAULT_CARDINALITY_LIMIT,
                overflowed: 0,
            })
        })
        .lock()
        // The registry's invariants hold between statements; a panic while
        // holding the lock (allocation failure) leaves it usable.
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Checks an instrument name: an ASCII letter, then up to 254 of
/// `A-Za-z0-9_.-/`.
///
/// # Errors
///
/// Says which rule the name breaks.
pub fn validate_name(name: &str) -> Result<(), &'static str> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Err("the name is empty"),
        Some(first) if !first.is_ascii_alphabetic() => {
            return Err("the first character must be an ASCII letter")
        }
        Some(_) => {}
    }
    if name.len() > 255 {
        return Err("the name is longer than 255 characters");
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/')) {
        return Err("only ASCII letters, digits, '_', '.', '-' and '/' are allowed");
    }
    Ok(())
}

/// Checks label keys and values: keys non-empty, keys and values at most
/// [`MAX_LABEL_LEN`] bytes.
pub(crate) fn validate_labels(
    name: &str,
    labels: &[(Arc<str>, Arc<str>)],
) -> Result<(), RegistrationError> {
    for (key, value) in labels {
        let reason = if key.is_empty() {
            Some("the key is empty")
        } else if key.len() > MAX_LABEL_LEN {
            Some("the key is longer than 4096 bytes")
        } else if value.len() > MAX_LABEL_LEN {
            Some("the value is longer than 4096 bytes")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(RegistrationError::InvalidLabel {
                name: name.to_string(),
                key: key.chars().take(64).collect(),
                reason,
            });
        }
    }
    Ok(())
}

impl Registry {
    fn exact_by_name(&self, name: &str) -> bool {
        self.never_sample
            .iter()
            .any(|prefix| name.starts_with(prefix.as_str()))
    }

    fn lookup(
        &mut self,
        name: &str,
        kind: Kind,
        labels: &[(Arc<str>, Arc<str>)],
    ) -> Result<&'static SeriesCell, RegistrationError> {
        validate_name(name).map_err(|reason| RegistrationError::InvalidName {
            name: name.chars().take(300).collect(),
            reason,
        })?;
        validate_labels(name, labels)?;
        let mut sorted = labels.to_vec();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        sorted.dedup_by(|a, b| a.0 == b.0);
        let name: Arc<str> = Arc::from(name);
        let labels: Labels = Arc::from(sorted);
        let key = (name.clone(), kind, labels.clone());
        if let Some(cell) = self.by_key.get(&key) {
            return Ok(cell);
        }
        self.metric(&name, kind)?;
        if let Some(&cell) = self.retired.get(&key) {
            return Ok(self.revive(cell));
        }
        let limit = self.cardinality_limit;
        let metric = self.metric(&name, kind)?;
        if metric.label_sets >= limit {
            return Ok(self.overflow(&name, kind));
        }
        metric.label_sets += 1;
        let cell = self.create(name, kind, labels);
        self.by_key.insert(key, cell);
        Ok(cell)
    }

    /// The overflow series of metric `name` (created on first use), for a
    /// label set past the cardinality limit.
    fn overflow(&mut self, name: &Arc<str>, kind: Kind) -> &'static SeriesCell {
        self.overflowed += 1;
        if let Some(cell) = self.metrics.get(name).and_then(|metric| metric.overflow) {
            return cell;
        }
        let overflow: Labels = Arc::from(vec![(Arc::from(OVERFLOW_KEY), Arc::from("true"))]);
        let cell = self.create(name.clone(), kind, overflow);
        // Held for good by its metric.
        cell.holders.fetch_add(1, Ordering::Relaxed);
        self.series[cell.id.index()].overflow = true;
        if let Some(metric) = self.metrics.get_mut(name) {
            metric.overflow = Some(cell);
        }
        let limit = self.cardinality_limit;
        log::warn!(
            target: "hotmetrics",
            "metric {name:?} reached its cardinality limit of {limit} label sets; \
             further label sets go to the overflow series"
        );
        cell
    }

    /// A new series: a recycled cell of its kind if there is one, else a
    /// new cell.
    fn create(&mut self, name: Arc<str>, kind: Kind, labels: Labels) -> &'static SeriesCell {
        if let Some(index) = self.free.get_mut(&kind).and_then(Vec::pop) {
            let index = index as usize;
            let cell = self.series[index].cell;
            let info = &mut self.series[index];
            info.name = name;
            info.labels = labels;
            info.overflow = false;
            cell.clear_critical();
            self.restart(index);
            cell.set_retired(false);
            return cell;
        }
        let id = MetricId(self.series.len() as u32);
        let cell: &'static SeriesCell = Box::leak(Box::new(SeriesCell::new(id, kind)));
        cell.pin(self.exact_by_name(&name), self.new_step(kind));
        self.series.push(SeriesInfo {
            cell,
            name,
            kind,
            labels,
            created: Instant::now(),
            restarted: None,
            overflow: false,
        });
        cell
    }

    /// Revives the retired `cell` in place under its key, if its metric has
    /// a place left under the cardinality limit; the overflow series
    /// otherwise (the cell stays retired, and the next call tries again).
    fn revive(&mut self, cell: &'static SeriesCell) -> &'static SeriesCell {
        if !cell.is_retired() {
            return cell;
        }
        let index = cell.id.index();
        let info = &self.series[index];
        let key = (info.name.clone(), info.kind, info.labels.clone());
        let limit = self.cardinality_limit;
        let Some(metric) = self.metrics.get_mut(&key.0) else {
            return cell;
        };
        if metric.label_sets >= limit {
            return self.overflow(&key.0, key.1);
        }
        metric.label_sets += 1;
        self.retired.remove(&key);
        self.by_key.insert(key, cell);
        self.restart(index);
        cell.set_retired(false);
        cell
    }

    /// Starts series `index` over in its cell: totals from zero (what
    /// arrived since they were last cleared is counted in
    /// `retired_values`), a new start time, its kind's starting step; the
    /// aggregator learns of it at its next sync.
    fn restart(&mut self, index: usize) {
        let cell = self.series[index].cell;
        let (totals, spilled) = clear(cell);
        self.retired_values += totals.calls + spilled;
        cell.pin(
            self.exact_by_name(&self.series[index].name),
            self.new_step(cell.kind),
        );
        let info = &mut self.series[index];
        info.created = Instant::now();
        info.restarted = Some(SystemTime::now());
        self.changed.push(index as u32);
        REVISION.fetch_add(1, Ordering::Relaxed);
    }

    /// Retires series `index` if it is live (not the overflow series):
    /// returns its exact totals then.
    fn retire(&mut self, index: usize) -> Option<Totals> {
        let info = self.series.get(index)?;
        let cell = info.cell;
        if info.overflow || cell.is_retired() {
            return None;
        }
        let key = (info.name.clone(), info.kind, info.labels.clone());
        self.by_key.remove(&key);
        if let Some(metric) = self.metrics.get_mut(&key.0) {
            metric.label_sets = metric.label_sets.saturating_sub(1);
        }
        self.retired.insert(key, cell);
        cell.set_retired(true);
        for callsite in &self.callsites {
            let state = callsite.state();
            let tag = state & TAG_MASK;
            if (tag == TAG_SAMPLED || tag == TAG_EXACT) && std::ptr::eq(cell_of(state), cell) {
                callsite.store(0);
            }
        }
        self.retirements += 1;
        let (totals, spilled) = clear(cell);
        // A spill the drain just before did not collect: a racing call.
        self.retired_values += spilled;
        Some(totals)
    }

    /// The metric `name`, registered as `kind` if it is new.
    fn metric(&mut self, name: &Arc<str>, kind: Kind) -> Result<&mut Metric, RegistrationError> {
        let start = self.sample_first_start;
        let metric = self.metrics.entry(name.clone()).or_insert_with(|| Metric {
            kind,
            label_sets: 0,
            overflow: None,
            step: Box::leak(Box::new(AtomicU64::new(start))),
        });
        if metric.kind != kind {
            return Err(RegistrationError::KindConflict {
                name: name.to_string(),
                existing: metric.kind.as_str(),
                requested: kind.as_str(),
            });
        }
        Ok(metric)
    }

    /// Every call of a series some critical call records is recorded: pins
    /// it and re-tags the other callsites of its series.
    fn make_critical(&self, cell: &SeriesCell) {
        if !cell.is_critical() {
            cell.make_critical();
            self.retag_callsites();
        }
    }

    /// The step a new (or newly configured) series of `kind` starts with.
    fn new_step(&self, kind: Kind) -> u64 {
        match kind {
            Kind::Counter => self.new_counter_step,
            Kind::Histogram => self.new_histogram_step,
            Kind::UpDown | Kind::Gauge => STEP_OFF,
        }
    }

    /// Writes each resolved callsite's word and step from its series' cell
    /// (only those that changed).
    fn retag_callsites(&self) {
        for &callsite in &self.callsites {
            let state = callsite.state();
            if state == 0 || state & TAG_MASK == TAG_DISABLED {
                continue;
            }
            let cell = cell_of(state);
            let retagged = pack(cell, self.tag(callsite, cell));
            let step = if retagged & TAG_MASK == TAG_SAMPLED {
                cell.step()
            } else {
                STEP_OFF
            };
            if retagged != state || step != callsite.step() {
                callsite.store(retagged);
            }
        }
        for &callsite in &self.dynamic {
            if callsite.state() == TAG_DISABLED {
                continue;
            }
            let (tag, step) = self.dynamic_tag(callsite);
            callsite.store(tag, step);
        }
    }

    /// The tag of a resolved dynamic site and its metric's sample-first
    /// step: exact for a kind, criticality or name that is always
    /// recorded, sampled otherwise.
    fn dynamic_tag(&self, callsite: &DynamicCallsite) -> (usize, u64) {
        let step = self
            .metrics
            .get(callsite.name)
            .map_or(1, |metric| metric.step.load(Ordering::Relaxed));
        if callsite.critical || callsite.kind.always_exact() || self.exact_by_name(callsite.name) {
            (TAG_EXACT, step)
        } else {
            (TAG_SAMPLED, step)
        }
    }

    fn tag(&self, callsite: &Callsite, cell: &SeriesCell) -> usize {
        if callsite.critical || callsite.kind == Kind::Gauge || cell.is_exact() {
            TAG_EXACT
        } else {
            TAG_SAMPLED
        }
    }
}

/// Resolves a callsite to its series and caches the tagged word in it.
#[cold]
#[inline(never)]
pub(crate) fn resolve_callsite(callsite: &'static Callsite) -> usize {
    let mut registry = registry();
    let state = callsite.state();
    if state != 0 {
        return state;
    }
    let labels: Vec<(Arc<str>, Arc<str>)> = callsite
        .labels
        .iter()
        .map(|(key, value)| (Arc::from(*key), Arc::from(*value)))
        .collect();
    let first = registry
        .callsite_set
        .insert(callsite as *const Callsite as usize);
    let state = match registry.lookup(callsite.name, callsite.kind, &labels) {
        Ok(cell) => {
            if first {
                // A callsite holds its cell for good: retired and revived,
                // never recycled (callsites are bounded by the code).
                cell.holders.fetch_add(1, Ordering::Relaxed);
            }
            if callsite.critical {
                registry.make_critical(cell);
            }
            pack(cell, registry.tag(callsite, cell))
        }
        Err(error) => {
            log::error!(target: "hotmetrics", "record! site ignored: {error}");
            TAG_DISABLED
        }
    };
    callsite.store(state);
    if first {
        registry.callsites.push(callsite);
    }
    state
}

/// Resolves a `record!` site with label expressions: registers its metric
/// (the name and kind are checked once, here) and caches its tag and the
/// metric's sample-first step in it. Its series are resolved per label
/// set, by [`dynamic_series`].
#[cold]
#[inline(never)]
pub(crate) fn resolve_dynamic(callsite: &'static DynamicCallsite) -> usize {
    let mut registry = registry();
    let state = callsite.state();
    if state != 0 {
        return state;
    }
    let checked = validate_name(callsite.name)
        .map_err(|reason| RegistrationError::InvalidName {
            name: callsite.name.chars().take(300).collect(),
            reason,
        })
        .and_then(|()| {
            let keys: Vec<(Arc<str>, Arc<str>)> = callsite
                .keys
                .iter()
                .map(|key| (Arc::from(*key), Arc::from("")))
                .collect();
            validate_labels(callsite.name, &keys)
        })
        .and_then(|()| {
            registry
                .metric(&Arc::from(callsite.name), callsite.kind)
                .map(|_| ())
        });
    let (state, step) = match checked {
        Ok(()) => registry.dynamic_tag(callsite),
        Err(error) => {
            log::error!(target: "hotmetrics", "record! site ignored: {error}");
            (TAG_DISABLED, STEP_OFF)
        }
    };
    callsite.store(state, step);
    registry.dynamic.push(callsite);
    state
}

/// The series of one label set of a dynamic site (a miss of the calling
/// thread's cache), made critical if the site is, held by the returned
/// [`SeriesRef`]; and whether it may be cached: not the overflow series,
/// which a label set leaves as soon as a place frees up for it.
pub(crate) fn dynamic_series(
    callsite: &DynamicCallsite,
    labels: &[(Arc<str>, Arc<str>)],
) -> Result<(SeriesRef, bool), RegistrationError> {
    let mut registry = registry();
    let cell = registry.lookup(callsite.name, callsite.kind, labels)?;
    if callsite.critical {
        registry.make_critical(cell);
    }
    let cacheable = !registry.series[cell.id.index()].overflow;
    Ok((SeriesRef::new(cell), cacheable))
}

/// Marks `cell` critical (a `critical` handle records it): exact from now
/// on, and every callsite of its series re-tagged.
pub(crate) fn make_critical(cell: &SeriesCell) {
    registry().make_critical(cell);
}

/// Finds or creates a series held for good (retired and revived, never
/// recycled): the tests' own series.
#[cfg(test)]
pub(crate) fn series(
    name: &str,
    kind: Kind,
    labels: &[(Arc<str>, Arc<str>)],
) -> Result<&'static SeriesCell, RegistrationError> {
    let cell = registry().lookup(name, kind, labels)?;
    cell.holders.fetch_add(1, Ordering::Relaxed);
    Ok(cell)
}

/// [`resolve`] for a cache keyed by the labels asked for (an
/// OpenTelemetry instrument's): also whether the series may be kept under
/// them, which the overflow series may not (a label set leaves it as soon
/// as a place frees up for it under the cardinality limit).
#[cfg_attr(not(feature = "otel-api"), allow(dead_code))]
pub(crate) fn resolve_for_cache(
    name: &str,
    kind: Kind,
    labels: &[(Arc<str>, Arc<str>)],
) -> Result<(SeriesRef, bool), RegistrationError> {
    let mut registry = registry();
    let cell = registry.lookup(name, kind, labels)?;
    let cacheable = !registry.series[cell.id.index()].overflow;
    Ok((SeriesRef::new(cell), cacheable))
}

/// Label sets each metric keeps live: a cache of one metric's series
/// needs no more entries than that.
#[cfg_attr(not(feature = "otel-api"), allow(dead_code))]
pub(crate) fn cardinality_limit() -> usize {
    registry().cardinality_limit
}

/// Finds or creates the series for a handle (or any cache of resolved
/// series): the cell is held for as long as the returned [`SeriesRef`] and
/// its clones live.
pub(crate) fn resolve(
    name: &str,
    kind: Kind,
    labels: &[(Arc<str>, Arc<str>)],
) -> Result<SeriesRef, RegistrationError> {
    let mut registry = registry();
    let cell = registry.lookup(name, kind, labels)?;
    Ok(SeriesRef::new(cell))
}

/// The cell a call of `cell` records into: `cell` itself, revived if it
/// was retired (or its metric's overflow series, when the cardinality
/// limit leaves it no place). Called on cold paths only.
#[inline]
pub(crate) fn live(cell: &'static SeriesCell) -> &'static SeriesCell {
    if cell.is_retired() {
        revive(cell)
    } else {
        cell
    }
}

#[cold]
#[inline(never)]
fn revive(cell: &'static SeriesCell) -> &'static SeriesCell {
    registry().revive(cell)
}

/// Retires the live series among `indexes` (the flusher found them idle):
/// each one retired, with its exact totals then.
pub(crate) fn retire(indexes: &[usize]) -> Vec<(usize, Totals)> {
    let mut registry = registry();
    indexes
        .iter()
        .filter_map(|&index| Some((index, registry.retire(index)?)))
        .collect()
}

/// The first half of recycling: the indexes of retired series no holder
/// can reach any more ([`SeriesCell::unheld`]). The caller then notes the
/// rings' claimed positions and calls [`recycle`] once they are drained.
pub(crate) fn quiescent(out: &mut Vec<u32>) {
    let registry = registry();
    out.clear();
    out.extend(
        registry
            .retired
            .values()
            .filter(|cell| cell.unheld())
            .map(|cell| cell.id.0),
    );
}

/// The second half: recycles the series among `indexes` that are still
/// retired and unheld (a lookup in between revives a series instead):
/// their keys are forgotten, their cells, indexes and exact slots go to the
/// free list of their kind. Returns how many.
pub(crate) fn recycle(indexes: &[u32]) -> usize {
    let mut registry = registry();
    let mut recycled = 0;
    for &index in indexes {
        let Some(info) = registry.series.get(index as usize) else {
            continue;
        };
        let cell = info.cell;
        if !cell.is_retired() || !cell.unheld() {
            continue;
        }
        let key = (info.name.clone(), info.kind, info.labels.clone());
        if !matches!(registry.retired.get(&key), Some(&held) if std::ptr::eq(held, cell)) {
            continue;
        }
        registry.retired.remove(&key);
        let (totals, spilled) = clear(cell);
        registry.retired_values += totals.calls + spilled;
        registry.free.entry(cell.kind).or_default().push(index);
        recycled += 1;
    }
    recycled
}

/// Series as [`sync`] returns them: each with whether it is live.
pub(crate) type Synced = Vec<(SeriesInfo, bool)>;

/// What moved since the aggregator last synced: series registered at index
/// `from` and after, and those that restarted in their cells below `from`
/// (revived or recycled), as they are now, each with whether it is live
/// (not retired), read under the lock with the rest: a series recycled for
/// another label set right after this returns is then seen retired under
/// its old labels, never live under them, and the caller learns of its
/// restart at its next sync.
///
/// `take`: the engine's aggregator, the one reader of restarts, takes them;
/// another reader (a test's own aggregator) leaves them for it.
pub(crate) fn sync(from: usize, take: bool) -> (Synced, Synced) {
    let mut registry = registry();
    let with_live = |info: &SeriesInfo| (info.clone(), !info.cell.is_retired());
    let new = registry
        .series
        .get(from..)
        .map(|infos| infos.iter().map(with_live).collect())
        .unwrap_or_default();
    let mut changed = if take {
        std::mem::take(&mut registry.changed)
    } else {
        registry.changed.clone()
    };
    changed.sort_unstable();
    changed.dedup();
    let restarted = changed
        .into_iter()
        .filter(|&index| (index as usize) < from)
        .filter_map(|index| registry.series.get(index as usize).map(with_live))
        .collect();
    (new, restarted)
}

/// Moves whenever a series restarts in its cell: [`sync`] has news.
pub(crate) fn revision() -> u64 {
    REVISION.load(Ordering::Relaxed)
}

/// Values that reached a series after it was retired (a call that raced
/// the retirement, a spill or exact value that came after it): counted
/// here, added to no series.
pub(crate) fn retired_values() -> u64 {
    registry().retired_values
}

/// Series retired so far.
pub(crate) fn retirements() -> u64 {
    registry().retirements
}

/// Applies a newly installed engine's settings: `never_sample` prefixes,
/// the step new counters start with (`STEP_OFF`: exact until their rate is
/// known) and the cardinality limit; resets every series' step and totals
/// so the engine starts from zero, and re-tags every resolved callsite.
pub(crate) fn configure(
    never_sample: &[String],
    new_counter_step: u64,
    sample_first_start: u64,
    cardinality_limit: usize,
) {
    let mut registry = registry();
    registry.never_sample = never_sample.to_vec();
    registry.new_counter_step = new_counter_step;
    registry.new_histogram_step = 1;
    registry.sample_first_start = sample_first_start;
    for metric in registry.metrics.values() {
        metric.step.store(sample_first_start, Ordering::Relaxed);
    }
    registry.cardinality_limit = cardinality_limit;
    registry.overflowed = 0;
    registry.retired_values = 0;
    registry.retirements = 0;
    // The new engine's aggregator starts from every series as it is.
    registry.changed.clear();
    for info in &registry.series {
        if info.cell.is_retired() {
            continue;
        }
        info.cell.pin(
            registry.exact_by_name(&info.name),
            registry.new_step(info.kind),
        );
        info.cell.reset();
    }
    registry.retag_callsites();
}

/// Sets the step of every series `step_of` has one for (pinned series keep
/// theirs; `STEP_OFF` makes a series exact for now) and the step new
/// histograms start with, then brings every resolved callsite in line.
/// Each metric's sample-first step becomes the largest step its sampled
/// series take, at most `sample_first_cap` (an exact series counts as the
/// cap: a call that samples before it knows its series cannot be exact).
/// Called by the allocator once per period.
pub(crate) fn apply_steps(
    mut step_of: impl FnMut(&SeriesInfo) -> Option<u64>,
    new_histogram_step: u64,
    sample_first_cap: u64,
) {
    let mut registry = registry();
    registry.new_histogram_step = new_histogram_step.max(1);
    let mut largest: HashMap<&Arc<str>, u64> = HashMap::new();
    for info in registry
        .series
        .iter()
        .filter(|info| !info.cell.is_retired())
    {
        if let Some(step) = step_of(info) {
            info.cell.set_step(step);
        }
        if !info.cell.is_pinned() {
            let step = info.cell.step().min(sample_first_cap).max(1);
            let entry = largest.entry(&info.name).or_insert(1);
            *entry = (*entry).max(step);
        }
    }
    for (name, metric) in &registry.metrics {
        if let Some(&step) = largest.get(name) {
            metric.step.store(step, Ordering::Relaxed);
        }
    }
    registry.retag_callsites();
}

/// The sample-first step of metric `name` (registering the metric as
/// `kind` if it is new): what an OpenTelemetry instrument takes off the
/// countdown before it looks at its attributes (a dynamic `record!` site
/// caches the same step, kept in line by `retag_callsites`).
///
/// # Errors
///
/// The metric's name is invalid, or it is registered as another kind.
pub(crate) fn metric_step(name: &str, kind: Kind) -> Result<&'static AtomicU64, RegistrationError> {
    validate_name(name).map_err(|reason| RegistrationError::InvalidName {
        name: name.chars().take(300).collect(),
        reason,
    })?;
    let mut registry = registry();
    Ok(registry.metric(&Arc::from(name), kind)?.step)
}

/// Number of label sets routed to overflow series so far.
pub(crate) fn overflowed() -> u64 {
    registry().overflowed
}

/// True if the installed engine's `never_sample` prefixes match `name`:
/// every call of that metric is recorded. Instruments that decide between
/// the sampled and the exact path before they resolve a series ask this once,
/// when they are created.
#[cfg_attr(not(feature = "otel-api"), allow(dead_code))]
pub(crate) fn never_sampled(name: &str) -> bool {
    registry().exact_by_name(name)
}

/// Cells ever made, and label sets live now (memory checks in tests).
#[cfg(test)]
pub(crate) fn footprint() -> (usize, usize) {
    let registry = registry();
    (registry.series.len(), registry.by_key.len())
}

/// Whether `cell` waits on its kind's free list to be taken by a new
/// series (tests).
#[cfg(test)]
pub(crate) fn is_recycled(cell: &SeriesCell) -> bool {
    let registry = registry();
    registry
        .free
        .get(&cell.kind)
        .is_some_and(|free| free.contains(&(cell.id.index() as u32)))
}
