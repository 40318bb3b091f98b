//! The flusher-side half of `engine.health()`: the figures kept between
//! control periods, and the reasons computed from them (the public
//! [`Health`] and [`Reason`] live in `report/health.rs`, which explains
//! each reason and when it clears).
//!
//! Only the flusher writes the period state (one uncontended lock per drain
//! pass); `evaluate` reads the last period's reasons and adds the live
//! checks. The monitor is given what it reads (the settings, the engine's
//! counters, the aggregator), nothing more.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::aggregate::{Aggregator, PeriodSeries};
use super::config::{Config, HealthConfig};
use crate::report::health::{Health, Reason, STORM_MIN_CALLS};
use crate::report::stats::{CircuitState, SharedStats};

/// How many earlier periods a storm is measured against.
const STORM_HISTORY: usize = 3;

/// What the monitor remembers between periods. Only the flusher writes it
/// (one lock per drain pass, uncontended).
#[derive(Debug)]
struct Period {
    started: Instant,
    dropped_at_start: u64,
    drained_at_start: u64,
    panics_at_start: u64,
    failures_at_start: u64,
    skipped_at_start: u64,
    ok_at_start: u64,
    /// Lowest peak fill of a drain pass in this period; `None` before the
    /// first pass.
    min_fill: Option<f64>,
    /// Per series: arrival rates (calls/s) of the last periods, newest last;
    /// 0 for a period without calls.
    history: Vec<[f64; STORM_HISTORY]>,
    /// An exporter fault seen and not yet followed by a successful export.
    fault: Option<Reason>,
}

/// The engine's counters at the end of a period.
#[derive(Debug)]
struct Counters {
    dropped: u64,
    drained: u64,
    panics: u64,
    failures: u64,
    skipped: u64,
    ok: u64,
}

impl Counters {
    fn read(stats: &SharedStats, dropped: u64, drained: u64) -> Self {
        Self {
            dropped,
            drained,
            panics: stats.exporter_panics.load(Ordering::Relaxed),
            failures: stats.exports_failed.load(Ordering::Relaxed),
            skipped: stats.exports_skipped.load(Ordering::Relaxed),
            ok: stats.exports_ok.load(Ordering::Relaxed),
        }
    }
}

impl Period {
    /// Too many samples spilled this period.
    fn drops(&self, now: &Counters, threshold: f64) -> Option<Reason> {
        let dropped = now.dropped.saturating_sub(self.dropped_at_start);
        let drained = now.drained.saturating_sub(self.drained_at_start);
        let share = dropped as f64 / (dropped + drained).max(1) as f64;
        (dropped > 0 && share > threshold).then_some(Reason::Drops {
            dropped,
            drained,
            share,
        })
    }

    /// An exporter fault seen this period, or still standing from an
    /// earlier one (cleared by a successful export).
    fn exporter_fault(&mut self, now: &Counters, stats: &SharedStats) -> Option<Reason> {
        let panics = now.panics.saturating_sub(self.panics_at_start);
        let failures = now.failures.saturating_sub(self.failures_at_start);
        let skipped = now.skipped.saturating_sub(self.skipped_at_start);
        if panics + failures + skipped > 0 {
            let last_error = lock(&stats.last_export_error).clone();
            self.fault = Some(Reason::ExporterFault {
                panics,
                failures,
                skipped,
                last_error,
            });
        } else if now.ok > self.ok_at_start {
            self.fault = None;
        }
        self.fault.clone()
    }

    /// Series whose arrival rate this period jumped past `factor` times the
    /// lowest of the periods before; updates each series' history.
    fn storms(
        &mut self,
        series: &[PeriodSeries],
        aggregator: &Aggregator,
        factor: f64,
        reasons: &mut Vec<Reason>,
    ) {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        if self.history.len() < series.len() {
            self.history.resize(series.len(), [0.0; STORM_HISTORY]);
        }
        for (index, calls) in series.iter().map(|series| series.calls).enumerate() {
            let rate = calls / elapsed;
            let history = &mut self.history[index];
            let baseline = history
                .iter()
                .copied()
                .filter(|&earlier| earlier > 0.0)
                .fold(f64::INFINITY, f64::min);
            if baseline.is_finite() && calls >= STORM_MIN_CALLS && rate > factor * baseline {
                if let Some((metric, labels)) = aggregator.series_name(index) {
                    reasons.push(Reason::Storm {
                        metric,
                        labels,
                        calls_per_sec: rate,
                        baseline_per_sec: baseline,
                    });
                }
            }
            history.rotate_left(1);
            history[STORM_HISTORY - 1] = rate;
        }
    }

    /// Starts the next period from the counters now.
    fn restart(&mut self, now: &Counters) {
        self.started = Instant::now();
        self.dropped_at_start = now.dropped;
        self.drained_at_start = now.drained;
        self.panics_at_start = now.panics;
        self.failures_at_start = now.failures;
        self.skipped_at_start = now.skipped;
        self.ok_at_start = now.ok;
        self.min_fill = None;
    }
}

/// Flusher-side health figures of one engine.
#[derive(Debug)]
pub(crate) struct Monitor {
    origin: Instant,
    /// Nanoseconds from `origin` to the end of the last completed drain
    /// pass. Written by whichever thread drains; read by `health()`.
    last_drain_ns: AtomicU64,
    /// Longest time between two drain passes so far, not counting sleeps
    /// the flusher planned because the rings were empty, in nanoseconds.
    /// Written only by the flusher.
    max_gap_ns: AtomicU64,
    /// Nanoseconds from `origin` to the end of the flusher's current (or
    /// last) idle sleep: until then an idle flusher is not lagging.
    /// Written only by the flusher.
    idle_until_ns: AtomicU64,
    period: Mutex<Period>,
    /// Reasons found at the end of the last period.
    reasons: Mutex<Vec<Reason>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data: consistent between statements even after a panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Monitor {
    pub(crate) fn new() -> Self {
        let now = Instant::now();
        Self {
            origin: now,
            last_drain_ns: AtomicU64::new(0),
            max_gap_ns: AtomicU64::new(0),
            idle_until_ns: AtomicU64::new(0),
            period: Mutex::new(Period {
                started: now,
                dropped_at_start: 0,
                drained_at_start: 0,
                panics_at_start: 0,
                failures_at_start: 0,
                skipped_at_start: 0,
                ok_at_start: 0,
                min_fill: None,
                history: Vec::new(),
                fault: None,
            }),
            reasons: Mutex::new(Vec::new()),
        }
    }

    /// Called by the flusher after each drain pass, with the peak fill the
    /// pass found.
    pub(crate) fn drained(&self, peak_fill: f64) {
        let now = self.origin.elapsed().as_nanos() as u64;
        let previous = self.last_drain_ns.swap(now, Ordering::Relaxed);
        let due = previous.max(self.idle_until_ns.load(Ordering::Relaxed));
        self.max_gap_ns
            .fetch_max(now.saturating_sub(due), Ordering::Relaxed);
        let mut period = lock(&self.period);
        period.min_fill = Some(period.min_fill.map_or(peak_fill, |min| min.min(peak_fill)));
    }

    /// Longest time between two drain passes (or from install to the
    /// first) so far.
    pub(crate) fn max_drain_gap(&self) -> Duration {
        Duration::from_nanos(self.max_gap_ns.load(Ordering::Relaxed))
    }

    /// Time since the last completed drain pass (since install if none).
    ///
    /// A flusher asleep because the rings were empty is not lagging: the
    /// time counts from the end of its planned sleep (so a flusher that
    /// does not wake is still seen).
    pub(crate) fn since_last_drain(&self) -> Duration {
        let last = self.last_drain_ns.load(Ordering::Relaxed);
        let due = last.max(self.idle_until_ns.load(Ordering::Relaxed));
        self.origin
            .elapsed()
            .saturating_sub(Duration::from_nanos(due))
    }

    /// Called by the flusher before it sleeps `sleep` because its last
    /// drain found the rings empty.
    pub(crate) fn idle(&self, sleep: Duration) {
        let until = (self.origin.elapsed() + sleep).as_nanos() as u64;
        self.idle_until_ns.store(until, Ordering::Relaxed);
    }

    /// Ends a period: computes its reasons from the engine's counters and
    /// the drained weights, and starts the next one.
    pub(crate) fn end_period(
        &self,
        engine: &Config,
        stats: &SharedStats,
        dropped: u64,
        aggregator: &Aggregator,
        series: &[PeriodSeries],
    ) {
        let counters = Counters::read(stats, dropped, aggregator.samples_recorded);
        let mut period = lock(&self.period);
        let mut reasons = Vec::new();
        reasons.extend(period.drops(&counters, engine.health.drop_threshold));
        if let Some(min_fill) = period.min_fill {
            if min_fill >= engine.controller.high_water {
                reasons.push(Reason::DrainLagging {
                    since_last_drain: self.since_last_drain(),
                    min_fill,
                });
            }
        }
        reasons.extend(period.exporter_fault(&counters, stats));
        period.storms(series, aggregator, engine.health.storm_factor, &mut reasons);
        period.restart(&counters);
        drop(period);
        *lock(&self.reasons) = reasons;
    }

    /// The engine's health now: the last period's reasons, plus the live
    /// checks (drain lag, circuit state).
    pub(crate) fn evaluate(&self, config: &HealthConfig, stats: &SharedStats) -> Health {
        let mut reasons = lock(&self.reasons).clone();
        let since_last_drain = self.since_last_drain();
        if since_last_drain > config.drain_lag {
            match reasons
                .iter_mut()
                .find(|reason| matches!(reason, Reason::DrainLagging { .. }))
            {
                Some(Reason::DrainLagging {
                    since_last_drain: lag,
                    ..
                }) => *lag = since_last_drain,
                _ => reasons.push(Reason::DrainLagging {
                    since_last_drain,
                    min_fill: 0.0,
                }),
            }
        }
        let circuit = CircuitState::from_u8(stats.circuit.load(Ordering::Relaxed));
        if circuit != CircuitState::Closed {
            reasons.push(Reason::CircuitOpen { state: circuit });
        }
        Health::from_reasons(reasons)
    }
}
