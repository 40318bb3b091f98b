//! The engine: installation, snapshots, stats and shutdown.
//!
//! `install()` builds the [`Pipeline`] (rings + rate cell), publishes it in
//! the global slot, and starts the flusher thread and one thread per
//! exporter. The returned [`Engine`] is the guard: dropping it shuts the
//! engine down as `shutdown()` does.

mod builder;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

pub use builder::Builder;
pub(crate) use builder::Config;

use crate::aggregate::Aggregator;
use crate::error::{InstallError, ShutdownError};
use crate::export::{ExportWorker, Exporter};
use crate::flusher;
use crate::global;
use crate::health::{Health, Monitor};
use crate::pipeline::Pipeline;
use crate::registry;
use crate::snapshot::{Estimate, MetricValue, SeriesSnapshot, Snapshot};
use crate::stats::{SharedStats, Stats};

/// State shared by the engine handle, the flusher and the exporters.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) pipeline: Arc<Pipeline>,
    pub(crate) aggregator: Mutex<Aggregator>,
    pub(crate) stats: Arc<SharedStats>,
    pub(crate) start_time: SystemTime,
    pub(crate) stop: AtomicBool,
    /// Per-period health figures, written by the flusher.
    pub(crate) health: Monitor,
}

impl Shared {
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
        let dropped = self.pipeline.samples_dropped.load(Ordering::Relaxed);
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
        registry::run_collectors();
        let mut series = aggregator.series_snapshot();
        let stats = self.stats_with(aggregator, &series);
        append_engine_series(&mut series, &stats);
        Snapshot {
            series,
            stats,
            start_time: self.start_time,
            time: SystemTime::now(),
        }
    }

    fn stats_with(&self, aggregator: &Aggregator, series: &[SeriesSnapshot]) -> Stats {
        let mut stats = Stats::default();
        self.stats.fill(&mut stats);
        stats.samples_recorded = aggregator.samples_recorded;
        stats.samples_dropped = self.pipeline.samples_dropped.load(Ordering::Relaxed);
        stats.values_rejected =
            self.pipeline.values_rejected.load(Ordering::Relaxed) + aggregator.rejected;
        stats.series_overflowed = registry::overflowed();
        stats.sample_rate = f64::from(self.pipeline.rate.rate());
        let _ = series;
        stats.exact_calls = aggregator.exact_calls();
        stats.drain_lag = self.health.since_last_drain();
        stats.max_drain_gap = self.health.max_drain_gap();
        stats
    }
}

fn append_engine_series(series: &mut Vec<SeriesSnapshot>, stats: &Stats) {
    let counter = |value: f64| {
        MetricValue::Counter(Estimate {
            value,
            std_error: 0.0,
            exact: true,
        })
    };
    let figures = [
        (
            "hotmetrics.samples_recorded",
            counter(stats.samples_recorded as f64),
        ),
        (
            "hotmetrics.samples_dropped",
            counter(stats.samples_dropped as f64),
        ),
        ("hotmetrics.exact_calls", counter(stats.exact_calls as f64)),
        (
            "hotmetrics.values_rejected",
            counter(stats.values_rejected as f64),
        ),
        (
            "hotmetrics.series_overflowed",
            counter(stats.series_overflowed as f64),
        ),
        (
            "hotmetrics.rate_changes",
            counter(stats.rate_changes as f64),
        ),
        (
            "hotmetrics.drain_batches",
            counter(stats.drain_batches as f64),
        ),
        (
            "hotmetrics.drain_time_seconds",
            counter(stats.drain_time.as_secs_f64()),
        ),
        ("hotmetrics.exports_ok", counter(stats.exports_ok as f64)),
        (
            "hotmetrics.exports_failed",
            counter(stats.exports_failed as f64),
        ),
        (
            "hotmetrics.exports_skipped",
            counter(stats.exports_skipped as f64),
        ),
        (
            "hotmetrics.exporter_panics",
            counter(stats.exporter_panics as f64),
        ),
        (
            "hotmetrics.sample_rate",
            MetricValue::Gauge(stats.sample_rate),
        ),
        (
            "hotmetrics.ring_utilisation",
            MetricValue::Gauge(stats.ring_utilisation),
        ),
        (
            "hotmetrics.drain_lag_seconds",
            MetricValue::Gauge(stats.drain_lag.as_secs_f64()),
        ),
        (
            "hotmetrics.circuit_open",
            MetricValue::Gauge(match stats.circuit {
                crate::stats::CircuitState::Closed => 0.0,
                crate::stats::CircuitState::HalfOpen => 0.5,
                crate::stats::CircuitState::Open => 1.0,
            }),
        ),
    ];
    let no_labels: crate::handle::Labels = Arc::from(Vec::new());
    for (name, value) in figures {
        series.push(SeriesSnapshot {
            name: Arc::from(name),
            labels: no_labels.clone(),
            value,
            unit: None,
            description: None,
        });
    }
}

/// An installed engine, and the guard that keeps it installed.
///
/// Dropping it shuts the engine down (final drain and export), as
/// [`Engine::shutdown`] does.
#[derive(Debug)]
pub struct Engine {
    /// `None` for a disabled engine.
    shared: Option<Arc<Shared>>,
    flusher: Mutex<Option<JoinHandle<()>>>,
    workers: Mutex<Vec<ExportWorker>>,
    shut_down: AtomicBool,
}

impl Engine {
    /// Starts a builder with the default settings.
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub(crate) fn start(
        config: Config,
        exporters: Vec<Box<dyn Exporter>>,
    ) -> Result<Engine, InstallError> {
        if config.disabled {
            log::info!(target: "hotmetrics", "hotmetrics disabled by configuration; record! calls are no-ops");
            return Ok(Engine {
                shared: None,
                flusher: Mutex::new(None),
                workers: Mutex::new(Vec::new()),
                shut_down: AtomicBool::new(true),
            });
        }
        let pipeline = Arc::new(Pipeline::new(
            config.shards,
            config.buffer_capacity,
            config.sample_rate as f32,
            config.histogram_max,
        ));
        let shared = Arc::new(Shared {
            aggregator: Mutex::new(Aggregator::new(
                config.histogram_sigfig,
                config.histogram_resolution,
            )),
            pipeline: pipeline.clone(),
            stats: Arc::new(SharedStats::default()),
            start_time: SystemTime::now(),
            stop: AtomicBool::new(false),
            health: Monitor::new(),
            config,
        });
        registry::configure(&shared.config.never_sample, shared.config.cardinality_limit);
        if !global::install(pipeline.clone()) {
            return Err(InstallError::AlreadyInstalled);
        }
        let mut workers = Vec::with_capacity(exporters.len());
        for (index, exporter) in exporters.into_iter().enumerate() {
            match ExportWorker::spawn(exporter, index, shared.stats.clone()) {
                Ok(worker) => workers.push(worker),
                Err(error) => {
                    global::uninstall(&pipeline);
                    return Err(InstallError::Spawn(error));
                }
            }
        }
        let senders = workers.iter().map(ExportWorker::sender).collect();
        let flusher = match flusher::spawn(shared.clone(), senders) {
            Ok(handle) => handle,
            Err(error) => {
                global::uninstall(&pipeline);
                return Err(InstallError::Spawn(error));
            }
        };
        let _ = pipeline.flusher.set(flusher.thread().clone());
        log::info!(
            target: "hotmetrics",
            "hotmetrics engine installed: sample_rate={} shards={} slots_per_shard={} exporters={}",
            shared.config.sample_rate,
            pipeline.rings.len(),
            pipeline.rings[0].capacity(),
            workers.len()
        );
        Ok(Engine {
            shared: Some(shared),
            flusher: Mutex::new(Some(flusher)),
            workers: Mutex::new(workers),
            shut_down: AtomicBool::new(false),
        })
    }

    /// The current estimates, drained up to this instant.
    ///
    /// Calls recorded while the snapshot is taken may or may not be in it.
    /// A disabled or shut-down engine returns its last state (empty when
    /// disabled).
    pub fn snapshot(&self) -> Snapshot {
        match &self.shared {
            Some(shared) => {
                let mut aggregator = shared.aggregator();
                if !self.shut_down.load(Ordering::Relaxed) {
                    shared.drain(&mut aggregator);
                }
                shared.snapshot(&mut aggregator)
            }
            None => Snapshot {
                series: Vec::new(),
                stats: Stats::default(),
                start_time: SystemTime::now(),
                time: SystemTime::now(),
            },
        }
    }

    /// The engine's own figures.
    pub fn stats(&self) -> Stats {
        match &self.shared {
            Some(shared) => {
                let aggregator = shared.aggregator();
                shared.stats_with(&aggregator, &[])
            }
            None => Stats::default(),
        }
    }

    /// The engine's health, for a `/health` endpoint: healthy, or degraded
    /// with the reasons and their figures (see [`Reason`](crate::Reason)).
    ///
    /// Most reasons are computed by the flusher at the end of each control
    /// period (`controller_period`); drain lag and the circuit state are
    /// read now. A disabled engine is healthy; a shut-down one is degraded
    /// with [`Reason::ShutDown`](crate::Reason::ShutDown).
    ///
    /// ```
    /// let engine = hotmetrics::Engine::builder().install().unwrap();
    /// let health = engine.health();
    /// println!("{health}"); // "healthy", or "degraded: ..." with figures
    /// engine.shutdown().unwrap();
    /// assert!(!engine.health().is_healthy());
    /// ```
    pub fn health(&self) -> Health {
        match &self.shared {
            Some(shared) => shared
                .health
                .evaluate(shared, self.shut_down.load(Ordering::Relaxed)),
            None => Health::Healthy,
        }
    }

    /// The sample rate in force now.
    pub fn sample_rate(&self) -> f64 {
        self.shared
            .as_ref()
            .map_or(0.0, |shared| f64::from(shared.pipeline.rate.rate()))
    }

    /// Publishes a new sample rate now. With the adaptive controller on, the
    /// controller may change it again at its next period.
    ///
    /// # Errors
    ///
    /// [`ConfigError`](crate::ConfigError) unless `rate` is in `(0, 1]`.
    pub fn set_sample_rate(&self, rate: f64) -> Result<(), crate::ConfigError> {
        if !(builder::MIN_RATE..=1.0).contains(&rate) {
            return Err(crate::ConfigError::new(
                "sample_rate",
                rate,
                "a number in (0, 1], at least 1e-30",
            ));
        }
        if let Some(shared) = &self.shared {
            shared.pipeline.rate.publish(rate as f32);
            shared.stats.rate_changes.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// True when the engine was built disabled.
    pub fn is_disabled(&self) -> bool {
        self.shared.is_none()
    }

    /// Uninstalls the engine, drains everything accepted, and exports one
    /// last time. Later `record!` calls are no-ops. Calling it again does
    /// nothing and returns `Ok`.
    ///
    /// # Errors
    ///
    /// [`ShutdownError`] if the final export failed or did not finish within
    /// the shutdown timeout (the drain itself always completes).
    pub fn shutdown(&self) -> Result<(), ShutdownError> {
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let deadline = Instant::now() + shared.config.shutdown_timeout;
        global::uninstall(&shared.pipeline);
        shared.stop.store(true, Ordering::SeqCst);
        let mut result = Ok(());
        if let Some(handle) = self.lock_flusher().take() {
            handle.thread().unpark();
            if handle.join().is_err() {
                result = Err(ShutdownError::FlusherPanicked);
            }
        }
        let snapshot = {
            let mut aggregator = shared.aggregator();
            flusher::final_drain(shared, &mut aggregator, deadline);
            Arc::new(shared.snapshot(&mut aggregator))
        };
        let workers = std::mem::take(&mut *self.lock_workers());
        for worker in workers {
            let outcome = worker.finish(snapshot.clone(), deadline);
            if result.is_ok() {
                result = outcome;
            }
        }
        log::info!(
            target: "hotmetrics",
            samples_recorded = snapshot.stats.samples_recorded,
            samples_dropped = snapshot.stats.samples_dropped,
            values_rejected = snapshot.stats.values_rejected;
            "hotmetrics engine shut down: {} samples recorded, {} dropped (spilled), {} values rejected",
            snapshot.stats.samples_recorded,
            snapshot.stats.samples_dropped,
            snapshot.stats.values_rejected
        );
        result
    }

    fn lock_flusher(&self) -> MutexGuard<'_, Option<JoinHandle<()>>> {
        self.flusher
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_workers(&self) -> MutexGuard<'_, Vec<ExportWorker>> {
        self.workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown() {
            log::warn!(target: "hotmetrics", "shutdown on drop: {error}");
        }
    }
}
