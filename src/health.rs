//! `engine.health()`: one answer for a `/health` endpoint.
//!
//! The engine is [`Health::Healthy`] or [`Health::Degraded`] with the
//! reasons, each carrying the figures that triggered it:
//!
//! * [`Reason::Drops`]: over the last period, more than
//!   `health_drop_threshold` of the samples were spilled on a full ring;
//! * [`Reason::DrainLagging`]: the flusher has not completed a drain for
//!   longer than `drain_lag_threshold`, or every drain of the last period
//!   found a ring above the controller's high-water mark;
//! * [`Reason::CircuitOpen`]: an exporter's circuit breaker is open (or
//!   probing);
//! * [`Reason::ExporterFault`]: an exporter panicked, failed or could not
//!   take a snapshot because it was still busy, and has not exported
//!   successfully since;
//! * [`Reason::Storm`]: a series' arrival rate over the last period was more
//!   than `storm_factor` times the lowest rate of the three periods before
//!   (with at least [`STORM_MIN_CALLS`] calls in the period);
//! * [`Reason::ShutDown`]: the engine was shut down.
//!
//! The period is the controller's (`controller_period`, 5 s by default).
//! Every figure is computed on the flusher side at the end of a period, from
//! the engine's counters and the weights of the samples drained during it;
//! nothing here runs on the hot path. Drain lag and the circuit state are
//! read live when `health()` is called, so a flusher that stopped running
//! is still seen. Each reason clears by itself once its cause is gone: at
//! the end of the first period without it (drops, fill, storm), at once
//! (drain lag, circuit), or after a successful export (exporter fault).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::aggregate::Aggregator;
use crate::engine::Shared;
use crate::handle::Labels;
use crate::stats::CircuitState;

/// Fewest estimated calls a series must see in one period before a jump in
/// its rate counts as a storm: below this, a jump is noise of a quiet
/// metric.
pub const STORM_MIN_CALLS: f64 = 1000.0;

/// How many earlier periods a storm is measured against.
const STORM_HISTORY: usize = 3;

/// The state of an engine, for a `/health` endpoint.
///
/// ```
/// let engine = hotmetrics::Engine::builder().install().unwrap();
/// match engine.health() {
///     hotmetrics::Health::Healthy => {}
///     hotmetrics::Health::Degraded(reasons) => {
///         for reason in &reasons {
///             eprintln!("metrics degraded: {reason}");
///         }
///     }
/// }
/// engine.shutdown().unwrap();
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Health {
    /// Nothing to report.
    Healthy,
    /// At least one reason, each with its figures.
    Degraded(Vec<Reason>),
}

impl Health {
    /// True for [`Health::Healthy`].
    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy)
    }

    /// The reasons (empty when healthy).
    pub fn reasons(&self) -> &[Reason] {
        match self {
            Health::Healthy => &[],
            Health::Degraded(reasons) => reasons,
        }
    }

    fn from_reasons(reasons: Vec<Reason>) -> Self {
        if reasons.is_empty() {
            Health::Healthy
        } else {
            Health::Degraded(reasons)
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Healthy => f.write_str("healthy"),
            Health::Degraded(reasons) => {
                f.write_str("degraded")?;
                for (index, reason) in reasons.iter().enumerate() {
                    f.write_str(if index == 0 { ": " } else { "; " })?;
                    reason.fmt(f)?;
                }
                Ok(())
            }
        }
    }
}

/// Why an engine is degraded.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Reason {
    /// Too many samples were spilled on a full ring over the last period
    /// (estimates stay unbiased, but with more variance than promised).
    Drops {
        /// Samples spilled during the period.
        dropped: u64,
        /// Samples drained during the period.
        drained: u64,
        /// `dropped / (dropped + drained)`.
        share: f64,
    },
    /// Draining does not keep up.
    DrainLagging {
        /// Time since the flusher last completed a drain pass.
        since_last_drain: Duration,
        /// Lowest ring fill (0–1) seen at a drain over the last period:
        /// above the high-water mark, the rings never emptied.
        min_fill: f64,
    },
    /// An exporter's circuit breaker is open or half open: its backend is
    /// failing and exports are being skipped.
    CircuitOpen {
        /// The worst circuit state among the exporters.
        state: CircuitState,
    },
    /// Exporters panicked, failed or were still busy when a snapshot was
    /// due, and none has exported successfully since.
    ExporterFault {
        /// Exporter panics in the period the fault was last seen.
        panics: u64,
        /// Failed exports in that period.
        failures: u64,
        /// Snapshots skipped because an exporter was still busy.
        skipped: u64,
        /// The most recent export error.
        last_error: Option<String>,
    },
    /// A series' arrival rate jumped.
    Storm {
        /// Metric name.
        metric: Arc<str>,
        /// The series' labels.
        labels: Labels,
        /// Estimated calls per second over the last period.
        calls_per_sec: f64,
        /// The lowest rate of the periods before it.
        baseline_per_sec: f64,
    },
    /// The engine was shut down: nothing is recorded any more.
    ShutDown,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Drops {
                dropped,
                drained,
                share,
            } => write!(
                f,
                "{dropped} samples spilled on full rings last period ({:.2} % of {})",
                share * 100.0,
                dropped + drained
            ),
            Reason::DrainLagging {
                since_last_drain,
                min_fill,
            } => write!(
                f,
                "draining lags: last drain {:.0} ms ago, rings never below {:.0} % full last period",
                since_last_drain.as_secs_f64() * 1000.0,
                min_fill * 100.0
            ),
            Reason::CircuitOpen { state } => {
                write!(f, "export circuit {}", state.as_str())
            }
            Reason::ExporterFault {
                panics,
                failures,
                skipped,
                last_error,
            } => {
                write!(
                    f,
                    "exporter fault: {panics} panics, {failures} failures, {skipped} snapshots skipped"
                )?;
                if let Some(error) = last_error {
                    write!(f, " (last error: {error})")?;
                }
                Ok(())
            }
            Reason::Storm {
                metric,
                labels,
                calls_per_sec,
                baseline_per_sec,
            } => {
                write!(f, "storm on {metric}")?;
                if !labels.is_empty() {
                    f.write_str("{")?;
                    for (index, (key, value)) in labels.iter().enumerate() {
                        let sep = if index == 0 { "" } else { "," };
                        write!(f, "{sep}{key}={value:?}")?;
                    }
                    f.write_str("}")?;
                }
                write!(
                    f,
                    ": {calls_per_sec:.0} calls/s, up from {baseline_per_sec:.0} calls/s"
                )
            }
            Reason::ShutDown => f.write_str("engine shut down"),
        }
    }
}

/// The thresholds, from the builder.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HealthConfig {
    /// Share of samples spilled over a period above which the engine is
    /// degraded.
    pub(crate) drop_threshold: f64,
    /// Rate jump that makes a storm.
    pub(crate) storm_factor: f64,
    /// Longest time without a completed drain before the engine is degraded.
    pub(crate) drain_lag: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            drop_threshold: 0.001,
            storm_factor: 10.0,
            drain_lag: Duration::from_millis(250),
        }
    }
}

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
    /// Scratch: estimated calls per series in the period just ended.
    arrivals: Vec<f64>,
}

/// Flusher-side health figures of one engine.
#[derive(Debug)]
pub(crate) struct Monitor {
    origin: Instant,
    /// Nanoseconds from `origin` to the end of the last completed drain
    /// pass. Written by whichever thread drains; read by `health()`.
    last_drain_ns: AtomicU64,
    /// Longest time between two drain passes so far, in nanoseconds.
    /// Written only by the flusher.
    max_gap_ns: AtomicU64,
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
                arrivals: Vec::new(),
            }),
            reasons: Mutex::new(Vec::new()),
        }
    }

    /// Called by the flusher after each drain pass, with the peak fill the
    /// pass found.
    pub(crate) fn drained(&self, peak_fill: f64) {
        let now = self.origin.elapsed().as_nanos() as u64;
        let previous = self.last_drain_ns.swap(now, Ordering::Relaxed);
        self.max_gap_ns
            .fetch_max(now.saturating_sub(previous), Ordering::Relaxed);
        let mut period = lock(&self.period);
        period.min_fill = Some(period.min_fill.map_or(peak_fill, |min| min.min(peak_fill)));
    }

    /// Longest time between two drain passes (or from install to the
    /// first) so far.
    pub(crate) fn max_drain_gap(&self) -> Duration {
        Duration::from_nanos(self.max_gap_ns.load(Ordering::Relaxed))
    }

    /// Time since the last completed drain pass (since install if none).
    pub(crate) fn since_last_drain(&self) -> Duration {
        let last = Duration::from_nanos(self.last_drain_ns.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last)
    }

    /// Ends a period: computes its reasons from the engine's counters and
    /// the drained weights, and starts the next one.
    pub(crate) fn end_period(&self, shared: &Shared, aggregator: &mut Aggregator) {
        let config = &shared.config.health;
        let stats = &shared.stats;
        let dropped = shared.pipeline.samples_dropped.load(Ordering::Relaxed);
        let drained = aggregator.samples_recorded;
        let panics = stats.exporter_panics.load(Ordering::Relaxed);
        let failures = stats.exports_failed.load(Ordering::Relaxed);
        let skipped = stats.exports_skipped.load(Ordering::Relaxed);
        let ok = stats.exports_ok.load(Ordering::Relaxed);
        let mut period = lock(&self.period);
        let elapsed = period.started.elapsed().as_secs_f64().max(1e-9);
        let mut reasons = Vec::new();

        let period_dropped = dropped.saturating_sub(period.dropped_at_start);
        let period_drained = drained.saturating_sub(period.drained_at_start);
        let share = period_dropped as f64 / (period_dropped + period_drained).max(1) as f64;
        if period_dropped > 0 && share > config.drop_threshold {
            reasons.push(Reason::Drops {
                dropped: period_dropped,
                drained: period_drained,
                share,
            });
        }

        if let Some(min_fill) = period.min_fill {
            if min_fill >= shared.config.controller.high_water {
                reasons.push(Reason::DrainLagging {
                    since_last_drain: self.since_last_drain(),
                    min_fill,
                });
            }
        }

        let new_panics = panics.saturating_sub(period.panics_at_start);
        let new_failures = failures.saturating_sub(period.failures_at_start);
        let new_skipped = skipped.saturating_sub(period.skipped_at_start);
        if new_panics + new_failures + new_skipped > 0 {
            let last_error = lock(&stats.last_export_error).clone();
            period.fault = Some(Reason::ExporterFault {
                panics: new_panics,
                failures: new_failures,
                skipped: new_skipped,
                last_error,
            });
        } else if ok > period.ok_at_start {
            period.fault = None;
        }
        if let Some(fault) = &period.fault {
            reasons.push(fault.clone());
        }

        let mut arrivals = std::mem::take(&mut period.arrivals);
        aggregator.take_period_arrivals(&mut arrivals);
        if period.history.len() < arrivals.len() {
            period.history.resize(arrivals.len(), [0.0; STORM_HISTORY]);
        }
        for (index, &calls) in arrivals.iter().enumerate() {
            let rate = calls / elapsed;
            let history = &mut period.history[index];
            let baseline = history
                .iter()
                .copied()
                .filter(|&earlier| earlier > 0.0)
                .fold(f64::INFINITY, f64::min);
            if baseline.is_finite()
                && calls >= STORM_MIN_CALLS
                && rate > config.storm_factor * baseline
            {
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
        period.arrivals = arrivals;

        period.started = Instant::now();
        period.dropped_at_start = dropped;
        period.drained_at_start = drained;
        period.panics_at_start = panics;
        period.failures_at_start = failures;
        period.skipped_at_start = skipped;
        period.ok_at_start = ok;
        period.min_fill = None;
        drop(period);
        *lock(&self.reasons) = reasons;
    }

    /// The engine's health now: the last period's reasons, plus the live
    /// checks (drain lag, circuit state).
    pub(crate) fn evaluate(&self, shared: &Shared, shut_down: bool) -> Health {
        if shut_down {
            return Health::Degraded(vec![Reason::ShutDown]);
        }
        let mut reasons = lock(&self.reasons).clone();
        let since_last_drain = self.since_last_drain();
        if since_last_drain > shared.config.health.drain_lag {
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
        let circuit = CircuitState::from_u8(shared.stats.circuit.load(Ordering::Relaxed));
        if circuit != CircuitState::Closed {
            reasons.push(Reason::CircuitOpen { state: circuit });
        }
        Health::from_reasons(reasons)
    }
}
