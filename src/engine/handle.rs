//! The [`Engine`]: the handle an install returns, and the guard that keeps
//! the engine installed.
//!
//! `install()` builds the pipeline (rings + rate cell), publishes it in the
//! installed slot, and starts the flusher thread and one thread per
//! exporter. Dropping the handle shuts the engine down as `shutdown()` does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

use crate::drain::config::{Config, MIN_RATE};
use crate::drain::flusher::{self, Feed};
use crate::drain::shared::Shared;
use crate::error::{ConfigError, InstallError, ShutdownError};
use crate::export::exporter::Exporter;
use crate::export::{self, ExportWorker};
use crate::hot::exact;
use crate::hot::pipeline::{self, Pipeline};
use crate::hot::registry;
use crate::report::health::{Health, Reason};
use crate::report::snapshot::Snapshot;
use crate::report::stats::Stats;

/// An installed engine, and the guard that keeps it installed.
///
/// Dropping it shuts the engine down (final drain and export), as
/// [`Engine::shutdown`] does: keep it for as long as the program records
/// (`let engine = builder.install()?;`), not `builder.install()?;`.
#[derive(Debug)]
#[must_use = "dropping the Engine shuts it down at once: keep it (`let engine = ...install()?;`) for as long as the program records"]
pub struct Engine {
    /// `None` for a disabled engine.
    shared: Option<Arc<Shared>>,
    flusher: Mutex<Option<JoinHandle<()>>>,
    workers: Mutex<Vec<ExportWorker>>,
    shut_down: AtomicBool,
}

impl Engine {
    /// Starts an engine: builds its pipeline, publishes it in the installed
    /// slot, and starts one thread per exporter and the flusher.
    pub(crate) fn start(
        config: Config,
        exporters: Vec<Box<dyn Exporter>>,
    ) -> Result<Engine, InstallError> {
        if config.disabled {
            log::info!(target: "hotmetrics", "hotmetrics disabled by configuration; record! calls are no-ops");
            return Ok(Engine::new(None, None, Vec::new()));
        }
        let pipeline = Arc::new(Pipeline::new(
            config.shards,
            config.buffer_capacity,
            config.sample_rate as f32,
            config.histogram_max,
        ));
        let shared = Arc::new(Shared::new(config, pipeline.clone()));
        // Refuse before the registry resets anything: a second install
        // must not clear the running engine's totals.
        if pipeline::installed().is_some() {
            return Err(InstallError::AlreadyInstalled);
        }
        registry::configure(
            &shared.config.never_sample,
            shared.config.new_counter_step(),
            shared.config.sample_first_start(),
            shared.config.cardinality_limit,
        );
        // After the registry cleared the totals, before calls are accepted.
        exact::restart();
        if !pipeline::install(pipeline.clone()) {
            return Err(InstallError::AlreadyInstalled);
        }
        let threads = start_threads(&shared, exporters);
        let (flusher, workers) = threads.inspect_err(|_| pipeline::uninstall(&pipeline))?;
        let _ = pipeline.flusher.set(flusher.thread().clone());
        log::info!(
            target: "hotmetrics",
            "hotmetrics engine installed: sample_rate={} shards={} slots_per_shard={} exporters={}",
            shared.config.sample_rate,
            pipeline.rings.len(),
            pipeline.rings[0].capacity(),
            workers.len()
        );
        Ok(Engine::new(Some(shared), Some(flusher), workers))
    }

    fn new(
        shared: Option<Arc<Shared>>,
        flusher: Option<JoinHandle<()>>,
        workers: Vec<ExportWorker>,
    ) -> Self {
        Engine {
            shut_down: AtomicBool::new(shared.is_none()),
            shared,
            flusher: Mutex::new(flusher),
            workers: Mutex::new(workers),
        }
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
                shared.stats(&aggregator)
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
            Some(shared) if self.shut_down.load(Ordering::Relaxed) => {
                Health::Degraded(vec![Reason::ShutDown])
            }
            Some(shared) => shared.health.evaluate(&shared.config.health, &shared.stats),
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
    pub fn set_sample_rate(&self, rate: f64) -> Result<(), ConfigError> {
        if !(MIN_RATE..=1.0).contains(&rate) {
            return Err(ConfigError::new(
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
        // SeqCst: the one total order of `shutdown()` calls decides which
        // call does the work (the others return at once).
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let deadline = Instant::now() + shared.config.shutdown_timeout;
        pipeline::uninstall(&shared.pipeline);
        // Release: pairs with the Acquire in the flusher's loop condition
        // (the join below is what the final drain relies on).
        shared.stop.store(true, Ordering::Release);
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
        let outcome = export::finish_all(workers, &snapshot, deadline);
        if result.is_ok() {
            result = outcome;
        }
        log::info!(
            target: "hotmetrics",
            samples_recorded = snapshot.stats.samples_recorded,
            samples_spilled = snapshot.stats.samples_spilled,
            values_rejected = snapshot.stats.values_rejected;
            "hotmetrics engine shut down: {} samples recorded, {} spilled (still counted), {} values rejected",
            snapshot.stats.samples_recorded,
            snapshot.stats.samples_spilled,
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

/// Starts one thread per exporter, then the flusher that feeds them.
fn start_threads(
    shared: &Arc<Shared>,
    exporters: Vec<Box<dyn Exporter>>,
) -> Result<(JoinHandle<()>, Vec<ExportWorker>), InstallError> {
    let mut workers = Vec::with_capacity(exporters.len());
    for (index, exporter) in exporters.into_iter().enumerate() {
        let worker = ExportWorker::spawn(exporter, index, shared.stats.clone())
            .map_err(InstallError::Spawn)?;
        workers.push(worker);
    }
    let feeds = workers
        .iter()
        .map(|worker| Box::new(worker.feed()) as Feed)
        .collect();
    let flusher = flusher::spawn(shared.clone(), feeds).map_err(InstallError::Spawn)?;
    Ok((flusher, workers))
}
