//! What the engine handle, the flusher and the exporters' feed share: the
//! pipeline, the aggregator behind its lock, the engine's figures, and the
//! three things done with them (drain, snapshot, stats).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use super::aggregate::Aggregator;
use super::catalog;
use super::config::Config;
use super::health::Monitor;
use crate::hot::pipeline::Pipeline;
use crate::hot::registry::{self, Labels};
use crate::report::snapshot::{Estimate, MetricValue, SeriesSnapshot, Snapshot};
use crate::report::stats::{CircuitState, SharedStats, Stats};

/// State shared by the engine handle, the flusher and the exporters.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) pipeline: Arc<Pipeline>,
    pub(crate) aggregator: Mutex<Aggregator>,
    pub(crate) stats: Arc<SharedStats>,
    pub(crate) start_time: SystemTime,
    /// Set by `shutdown()`; the flusher stops at its next pass.
    pub(crate) stop: AtomicBool,
    /// Per-period health figures, written by the flusher.
    pub(crate) health: Monitor,
}

impl Shared {
    /// A new engine's shared state around `pipeline`.
    pub(crate) fn new(config: Config, pipeline: Arc<Pipeline>) -> Self {
        Self {
            aggregator: Mutex::new(Aggregator::new(
                config.histogram_sigfig,
                config.histogram_resolution,
            )),
            pipeline,
            stats: Arc::new(SharedStats::default()),
            start_time: SystemTime::now(),
            stop: AtomicBool::new(false),
            health: Monitor::new(),
            config,
        }
    }

    pub(crate) fn aggregator(&self) -> MutexGuard<'_, Aggregator> {
        self.aggregator
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Drains every ring once into the aggregator; returns the peak fill
    /// (0–1) seen and how many samples were drained.
    pub(crate) fn drain(&self, aggregator: &mut Aggregator) -> (f64, usize) {
        let started = Instant::now();
        let mut peak: f64 = 0.0;
        let mut drained = 0;
        for ring in self.pipeline.all_rings() {
            let fill = ring.len() as f64 / ring.capacity() as f64;
            peak = peak.max(fill);
            drained += ring.drain(ring.capacity(), |sample| aggregator.absorb(sample));
        }
        let dropped = self.pipeline.samples_spilled.load(Ordering::Relaxed);
        aggregator.collect_spills(dropped, false);
        if drained > 0 {
            self.stats.drain_batches.fetch_add(1, Ordering::Relaxed);
            self.stats
                .drain_time_ns
                .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        self.stats
            .samples_recorded
            .store(aggregator.samples_recorded, Ordering::Relaxed);
        (peak, drained)
    }

    /// Builds a snapshot from the aggregator (drain first for freshness).
    pub(crate) fn snapshot(&self, aggregator: &mut Aggregator) -> Snapshot {
        // Observed values (OpenTelemetry observable instruments) are
        // recorded now, on this side, so they are in the series below.
        catalog::run_collectors();
        let mut series = aggregator.series_snapshot(f64::from(self.pipeline.rate.rate()));
        let stats = self.stats(aggregator);
        series.extend(engine_series(&stats));
        Snapshot {
            series,
            stats,
            start_time: self.start_time,
            time: SystemTime::now(),
        }
    }

    /// The engine's own figures, with the aggregator's share of them.
    pub(crate) fn stats(&self, aggregator: &Aggregator) -> Stats {
        let mut stats = Stats::default();
        self.stats.fill(&mut stats);
        stats.samples_recorded = aggregator.samples_recorded;
        stats.samples_spilled = self.pipeline.samples_spilled.load(Ordering::Relaxed);
        #[allow(deprecated)] // the old name, kept for a release
        {
            stats.samples_dropped = stats.samples_spilled;
        }
        stats.values_rejected =
            self.pipeline.values_rejected.load(Ordering::Relaxed) + aggregator.rejected;
        stats.series_overflowed = registry::overflowed();
        stats.series_retired = registry::retirements();
        stats.retired_values = registry::retired_values() + aggregator.retired_values;
        stats.sample_rate = f64::from(self.pipeline.rate.rate());
        stats.exact_calls = aggregator.exact_calls();
        stats.drain_lag = self.health.since_last_drain();
        stats.max_drain_gap = self.health.max_drain_gap();
        stats.histogram_bytes = aggregator.histogram_bytes();
        stats
    }
}

/// The engine's figures as series of their own, under `hotmetrics.`.
fn engine_series(stats: &Stats) -> impl Iterator<Item = SeriesSnapshot> {
    let counter = |value: f64| MetricValue::Counter(Estimate::exact(value));
    let circuit = match stats.circuit {
        CircuitState::Closed => 0.0,
        CircuitState::HalfOpen => 0.5,
        CircuitState::Open => 1.0,
    };
    let figures = [
        ("samples_recorded", counter(stats.samples_recorded as f64)),
        ("samples_spilled", counter(stats.samples_spilled as f64)),
        ("exact_calls", counter(stats.exact_calls as f64)),
        ("values_rejected", counter(stats.values_rejected as f64)),
        ("series_overflowed", counter(stats.series_overflowed as f64)),
        ("series_retired", counter(stats.series_retired as f64)),
        ("retired_values", counter(stats.retired_values as f64)),
        ("rate_changes", counter(stats.rate_changes as f64)),
        ("drain_batches", counter(stats.drain_batches as f64)),
        (
            "drain_time_seconds",
            counter(stats.drain_time.as_secs_f64()),
        ),
        ("exports_ok", counter(stats.exports_ok as f64)),
        ("exports_failed", counter(stats.exports_failed as f64)),
        ("exports_skipped", counter(stats.exports_skipped as f64)),
        ("exporter_panics", counter(stats.exporter_panics as f64)),
        ("sample_rate", MetricValue::Gauge(stats.sample_rate)),
        (
            "ring_utilisation",
            MetricValue::Gauge(stats.ring_utilisation),
        ),
        (
            "drain_lag_seconds",
            MetricValue::Gauge(stats.drain_lag.as_secs_f64()),
        ),
        ("circuit_open", MetricValue::Gauge(circuit)),
    ];
    let no_labels: Labels = Arc::from(Vec::new());
    let series = figures
        .into_iter()
        .map(move |(name, value)| SeriesSnapshot {
            name: Arc::from(format!("hotmetrics.{name}")),
            labels: no_labels.clone(),
            value,
            unit: None,
            description: None,
            inclusion_prob: None,
            target_met: None,
            start_time: None,
        });
    // The old name of `samples_spilled`, exported for one more release so
    // that dashboards and alerts can move over; its description says so.
    let old_name = SeriesSnapshot {
        description: Some(Arc::from(
            "Deprecated: the same count as hotmetrics.samples_spilled (spilled samples are still counted); removed in the next release",
        )),
        ..SeriesSnapshot::new(
            "hotmetrics.samples_dropped",
            Arc::from(Vec::new()),
            MetricValue::Counter(Estimate::exact(stats.samples_spilled as f64)),
        )
    };
    series.chain(std::iter::once(old_name))
}
