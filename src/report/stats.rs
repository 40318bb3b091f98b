//! The engine's own figures, read with `engine.stats()` and exported as
//! `hotmetrics.*` series with every snapshot.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// State of an exporter's circuit breaker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CircuitState {
    /// Exports flow normally.
    #[default]
    Closed,
    /// Repeated failures: exports are skipped until a probe is due.
    Open,
    /// One probe export is allowed to test the backend.
    HalfOpen,
}

impl CircuitState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }

    pub(crate) fn from_u8(value: u8) -> Self {
        match value {
            1 => CircuitState::Open,
            2 => CircuitState::HalfOpen,
            _ => CircuitState::Closed,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            CircuitState::Closed => 0,
            CircuitState::Open => 1,
            CircuitState::HalfOpen => 2,
        }
    }
}

/// The engine's figures at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Samples drained from the rings and aggregated.
    pub samples_recorded: u64,
    /// Samples a full ring refused, whose weighted values went to their
    /// series' spill accumulators: nothing is lost, every spilled sample is
    /// still counted in its series' estimate (it only leaves the
    /// histogram's distribution out, which is scaled to the count).
    pub samples_spilled: u64,
    /// The same figure as [`samples_spilled`](Stats::samples_spilled),
    /// under its old name: these samples were never dropped.
    #[deprecated(
        note = "renamed `samples_spilled`: the samples are spilled into their series and still counted, not dropped"
    )]
    pub samples_dropped: u64,
    /// Exact calls recorded straight into their series (critical and
    /// `never_sample` counters).
    pub exact_calls: u64,
    /// Values refused: NaN, ±∞, negative counter increments, histogram
    /// values outside the tracked range.
    pub values_rejected: u64,
    /// Label sets routed to an overflow series by the cardinality limit.
    pub series_overflowed: u64,
    /// Sample rate in force now.
    pub sample_rate: f64,
    /// Times the controller changed the rate.
    pub rate_changes: u64,
    /// Peak ring fill (0–1) over the last control period.
    pub ring_utilisation: f64,
    /// Drain passes that found at least one sample.
    pub drain_batches: u64,
    /// Time spent draining, in total.
    pub drain_time: Duration,
    /// Successful exports.
    pub exports_ok: u64,
    /// Failed exports.
    pub exports_failed: u64,
    /// Snapshots not handed to an exporter because it was still busy with
    /// the previous one (cumulative values: nothing is lost).
    pub exports_skipped: u64,
    /// Exporter panics caught by the engine.
    pub exporter_panics: u64,
    /// Circuit state of the exporters (the worst one).
    pub circuit: CircuitState,
    /// The most recent export error, if any.
    pub last_export_error: Option<String>,
    /// Time since the flusher last completed a drain pass: a few
    /// milliseconds normally; growing when the flusher is starved or stuck
    /// (see [`Engine::health`](crate::Engine::health)).
    pub drain_lag: Duration,
    /// Longest time between two drain passes since the engine was
    /// installed: about `drain_interval` on a healthy machine; tens of
    /// milliseconds and more show a flusher that was starved or stalled.
    pub max_drain_gap: Duration,
    /// Series retired after their idle timeout
    /// ([`Builder::idle_timeout`](crate::Builder::idle_timeout)); each
    /// left the exports and freed its place under the cardinality limit.
    pub series_retired: u64,
    /// Values that reached a series after it was retired and were added to
    /// no series: a call that raced the retirement, or its sample still in
    /// a ring. Zero unless calls come just as their series goes idle.
    pub retired_values: u64,
    /// Bytes the histogram series' distributions hold: each series' live
    /// buckets and, when it is a separate copy, the one the last snapshot
    /// holds (which the exporters share by reference). About 1 KiB per
    /// series spanning 1 … 10⁹ at the default precision.
    pub histogram_bytes: u64,
}

/// Figures written by the flusher and export threads.
#[derive(Debug, Default)]
pub(crate) struct SharedStats {
    pub(crate) samples_recorded: AtomicU64,
    pub(crate) rate_changes: AtomicU64,
    pub(crate) utilisation_bits: AtomicU64,
    pub(crate) drain_batches: AtomicU64,
    pub(crate) drain_time_ns: AtomicU64,
    pub(crate) exports_ok: AtomicU64,
    pub(crate) exports_failed: AtomicU64,
    pub(crate) exports_skipped: AtomicU64,
    pub(crate) exporter_panics: AtomicU64,
    /// The worst circuit state over all exporters.
    pub(crate) circuit: AtomicU8,
    /// Each exporter's circuit state, by exporter index.
    pub(crate) circuits: Mutex<Vec<CircuitState>>,
    pub(crate) last_export_error: Mutex<Option<String>>,
}

impl SharedStats {
    pub(crate) fn set_utilisation(&self, value: f64) {
        self.utilisation_bits
            .store(value.to_bits(), Ordering::Relaxed);
    }

    /// Records exporter `index`'s circuit state and publishes the worst of
    /// all exporters (open, then half-open, then closed) in `circuit`.
    pub(crate) fn set_circuit(&self, index: usize, state: CircuitState) {
        let mut states = self
            .circuits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if states.len() <= index {
            states.resize(index + 1, CircuitState::Closed);
        }
        states[index] = state;
        let worst = states
            .iter()
            .copied()
            .max_by_key(|state| match state {
                CircuitState::Closed => 0,
                CircuitState::HalfOpen => 1,
                CircuitState::Open => 2,
            })
            .unwrap_or_default();
        self.circuit.store(worst.to_u8(), Ordering::Relaxed);
    }

    pub(crate) fn set_error(&self, message: String) {
        *self
            .last_export_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(message);
    }

    /// Fills the fields this struct owns.
    pub(crate) fn fill(&self, stats: &mut Stats) {
        stats.samples_recorded = self.samples_recorded.load(Ordering::Relaxed);
        stats.rate_changes = self.rate_changes.load(Ordering::Relaxed);
        stats.ring_utilisation = f64::from_bits(self.utilisation_bits.load(Ordering::Relaxed));
        stats.drain_batches = self.drain_batches.load(Ordering::Relaxed);
        stats.drain_time = Duration::from_nanos(self.drain_time_ns.load(Ordering::Relaxed));
        stats.exports_ok = self.exports_ok.load(Ordering::Relaxed);
        stats.exports_failed = self.exports_failed.load(Ordering::Relaxed);
        stats.exports_skipped = self.exports_skipped.load(Ordering::Relaxed);
        stats.exporter_panics = self.exporter_panics.load(Ordering::Relaxed);
        stats.circuit = CircuitState::from_u8(self.circuit.load(Ordering::Relaxed));
        stats.last_export_error = self
            .last_export_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
    }
}
