//! The process-wide series registry: name + kind + label set → series cell.
//!
//! Cold side. Callsites and handles come here once to resolve their series;
//! the flusher comes here to learn the name and labels behind a new
//! `MetricId`. One mutex guards it: nothing on the per-call path takes it.
//!
//! Cells are leaked on creation and never freed, so `&'static SeriesCell`
//! can be cached anywhere. Their number is bounded: each metric name admits
//! at most the cardinality limit of label sets, beyond which calls share one
//! overflow series (`otel.metric.overflow = "true"`).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use super::callsite::{
    cell_of, pack, Callsite, DynamicCallsite, STEP_OFF, TAG_DISABLED, TAG_EXACT, TAG_MASK,
    TAG_SAMPLED,
};
use super::cell::{Kind, SeriesCell};
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
    /// When the series was registered (the allocator measures a new
    /// series' rate from then).
    pub(crate) created: Instant,
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
    by_key: HashMap<(Arc<str>, Kind, Labels), &'static SeriesCell>,
    metrics: HashMap<Arc<str>, Metric>,
    callsites: Vec<&'static Callsite>,
    /// Resolved `record!` sites with label expressions.
    dynamic: Vec<&'static DynamicCallsite>,
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

fn registry() -> MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            Mutex::new(Registry {
                series: Vec::new(),
                by_key: HashMap::new(),
                metrics: HashMap::new(),
                callsites: Vec::new(),
                dynamic: Vec::new(),
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
        let limit = self.cardinality_limit;
        let metric = self.metric(&name, kind)?;
        if metric.label_sets >= limit {
            if let Some(cell) = metric.overflow {
                self.overflowed += 1;
                return Ok(cell);
            }
            let overflow: Labels = Arc::from(vec![(Arc::from(OVERFLOW_KEY), Arc::from("true"))]);
            let cell = self.create(name.clone(), kind, overflow);
            if let Some(metric) = self.metrics.get_mut(&name) {
                metric.overflow = Some(cell);
            }
            self.overflowed += 1;
            log::warn!(
                target: "hotmetrics",
                "metric {name:?} reached its cardinality limit of {limit} label sets; \
                 further label sets go to the overflow series"
            );
            return Ok(cell);
        }
        metric.label_sets += 1;
        let cell = self.create(name, kind, labels);
        self.by_key.insert(key, cell);
        Ok(cell)
    }

    fn create(&mut self, name: Arc<str>, kind: Kind, labels: Labels) -> &'static SeriesCell {
        let id = MetricId(self.series.len() as u32);
        let cell: &'static SeriesCell =
            Box::leak(Box::new(SeriesCell::with_labels(id, kind, labels.clone())));
        cell.pin(self.exact_by_name(&name), self.new_step(kind));
        self.series.push(SeriesInfo {
            cell,
            name,
            kind,
            labels,
            created: Instant::now(),
        });
        cell
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
    let state = match registry.lookup(callsite.name, callsite.kind, &labels) {
        Ok(cell) => {
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
    registry.callsites.push(callsite);
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

/// The series of one label set of a dynamic site (a miss of its cache);
/// made critical if the site is.
pub(crate) fn dynamic_series(
    callsite: &DynamicCallsite,
    labels: &[(Arc<str>, Arc<str>)],
) -> Result<&'static SeriesCell, RegistrationError> {
    let mut registry = registry();
    let cell = registry.lookup(callsite.name, callsite.kind, labels)?;
    if callsite.critical {
        registry.make_critical(cell);
    }
    Ok(cell)
}

/// Marks `cell` critical (a `critical` handle records it): exact from now
/// on, and every callsite of its series re-tagged.
pub(crate) fn make_critical(cell: &SeriesCell) {
    registry().make_critical(cell);
}

/// Finds or creates the series for a handle.
pub(crate) fn series(
    name: &str,
    kind: Kind,
    labels: &[(Arc<str>, Arc<str>)],
) -> Result<&'static SeriesCell, RegistrationError> {
    registry().lookup(name, kind, labels)
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
    for info in &registry.series {
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
    for info in &registry.series {
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

/// Series registered at index `from` and after, in id order.
pub(crate) fn series_since(from: usize) -> Vec<SeriesInfo> {
    let registry = registry();
    registry
        .series
        .get(from..)
        .map(<[_]>::to_vec)
        .unwrap_or_default()
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
