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
use std::sync::Arc;
use std::time::Duration;

use super::stats::CircuitState;
use crate::hot::registry::Labels;

/// Fewest estimated calls a series must see in one period before a jump in
/// its rate counts as a storm: below this, a jump is noise of a quiet
/// metric.
pub const STORM_MIN_CALLS: f64 = 1000.0;

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

    pub(crate) fn from_reasons(reasons: Vec<Reason>) -> Self {
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
    /// The name predates [`Stats::samples_spilled`](crate::Stats::samples_spilled):
    /// spilled samples are still counted, not lost.
    Drops {
        /// Samples spilled during the period (still counted in their
        /// series).
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
