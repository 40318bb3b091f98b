//! Exporters: where snapshots go.
//!
//! An exporter implements one method, [`Exporter::export`]. Each runs on its
//! own thread, fed by the flusher through a one-slot queue: a slow or dead
//! backend delays only its own thread, never draining, and a snapshot it
//! could not take is skipped (values are cumulative, the next one carries
//! the totals). A panic inside an exporter is caught and counted in
//! `stats().exporter_panics`.
//!
//! Built in: [`Stdout`] (aligned table or JSON lines), [`InMemory`] (for
//! tests), [`Otlp`] (OpenTelemetry over HTTP/protobuf, gRPC with the
//! `otlp-grpc` feature) and [`Prometheus`] (a `/metrics` endpoint). [`from_env`]
//! picks them by `OTEL_METRICS_EXPORTER`.

pub(crate) mod env;
pub(crate) mod exporter;
mod in_memory;
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "prometheus")]
pub mod prometheus;
#[cfg(any(feature = "otlp", feature = "prometheus"))]
mod rebucket;
pub(crate) mod select;
pub(crate) mod stdout;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

#[cfg(feature = "prometheus")]
pub use self::prometheus::Prometheus;
pub use exporter::Exporter;
pub use in_memory::InMemory;
#[cfg(feature = "otlp")]
pub use otlp::Otlp;
#[cfg(any(feature = "otlp", feature = "prometheus"))]
pub use rebucket::DEFAULT_BOUNDARIES;
pub use select::{from_env, from_vars};
pub use stdout::{Stdout, StdoutFormat};

use crate::error::{ExportError, ShutdownError};
use crate::report::snapshot::Snapshot;
use crate::report::stats::SharedStats;

/// Work for an exporter thread.
#[derive(Debug)]
pub(crate) enum Job {
    Export(Arc<Snapshot>),
    Final(Arc<Snapshot>, mpsc::Sender<Result<(), ExportError>>),
}

/// One exporter and the thread that runs it.
#[derive(Debug)]
pub(crate) struct ExportWorker {
    name: String,
    sender: SyncSender<Job>,
    thread: Option<JoinHandle<()>>,
}

impl ExportWorker {
    /// Starts the thread of exporter number `index` (its slot in the
    /// circuit-state figures).
    pub(crate) fn spawn(
        exporter: Box<dyn Exporter>,
        index: usize,
        stats: Arc<SharedStats>,
    ) -> std::io::Result<Self> {
        let name = exporter.name().to_string();
        let (sender, receiver) = mpsc::sync_channel(1);
        let thread = thread::Builder::new()
            .name("hotmetrics-export".into())
            .spawn(move || run(exporter, index, &receiver, &stats))?;
        Ok(Self {
            name,
            sender,
            thread: Some(thread),
        })
    }

    /// Offers a snapshot to this worker without waiting: `false` when it is
    /// still busy with the last one (or gone). What the flusher is given.
    pub(crate) fn feed(&self) -> impl Fn(Arc<Snapshot>) -> bool + Send + 'static {
        let sender = self.sender.clone();
        move |snapshot| sender.try_send(Job::Export(snapshot)).is_ok()
    }

    /// Hands over the final snapshot and waits for it until `deadline`.
    pub(crate) fn finish(
        mut self,
        snapshot: Arc<Snapshot>,
        deadline: Instant,
    ) -> Result<(), ShutdownError> {
        let (done, outcome) = mpsc::channel();
        let timed_out = || ShutdownError::ExportTimedOut {
            exporter: self.name.clone(),
        };
        // The queue may hold a periodic snapshot the thread has not taken
        // yet; wait for room until the deadline.
        let mut job = Job::Final(snapshot, done);
        loop {
            match self.sender.try_send(job) {
                Ok(()) => break,
                Err(mpsc::TrySendError::Full(back)) => {
                    if Instant::now() >= deadline {
                        return Err(timed_out());
                    }
                    job = back;
                    thread::sleep(Duration::from_millis(1));
                }
                Err(mpsc::TrySendError::Disconnected(_)) => return Err(timed_out()),
            }
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        match outcome.recv_timeout(wait) {
            Ok(Ok(())) => {
                if let Some(thread) = self.thread.take() {
                    let _ = thread.join();
                }
                Ok(())
            }
            Ok(Err(error)) => Err(ShutdownError::ExportFailed {
                exporter: self.name.clone(),
                error,
            }),
            Err(_) => Err(timed_out()),
        }
    }
}

fn run(mut exporter: Box<dyn Exporter>, index: usize, jobs: &Receiver<Job>, stats: &SharedStats) {
    let mut limiter = FailureLog::default();
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Export(snapshot) => {
                let outcome = guarded_export(&mut exporter, &snapshot, stats);
                record(&*exporter, index, &outcome, stats, &mut limiter);
            }
            Job::Final(snapshot, done) => {
                let mut outcome = guarded_export(&mut exporter, &snapshot, stats);
                record(&*exporter, index, &outcome, stats, &mut limiter);
                let closed = catch_unwind(AssertUnwindSafe(|| exporter.shutdown()))
                    .unwrap_or_else(|_| Err(ExportError::Panicked("in shutdown".into())));
                if outcome.is_ok() {
                    outcome = closed;
                }
                let _ = done.send(outcome);
                return;
            }
        }
    }
}

fn guarded_export(
    exporter: &mut Box<dyn Exporter>,
    snapshot: &Snapshot,
    stats: &SharedStats,
) -> Result<(), ExportError> {
    match catch_unwind(AssertUnwindSafe(|| exporter.export(snapshot))) {
        Ok(outcome) => outcome,
        Err(payload) => {
            stats.exporter_panics.fetch_add(1, Ordering::Relaxed);
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            Err(ExportError::Panicked(message))
        }
    }
}

fn record(
    exporter: &dyn Exporter,
    index: usize,
    outcome: &Result<(), ExportError>,
    stats: &SharedStats,
    limiter: &mut FailureLog,
) {
    stats.set_circuit(index, exporter.circuit_state());
    match outcome {
        Ok(()) => {
            stats.exports_ok.fetch_add(1, Ordering::Relaxed);
            limiter.recovered(exporter.name());
        }
        Err(error) => {
            stats.exports_failed.fetch_add(1, Ordering::Relaxed);
            stats.set_error(error.to_string());
            limiter.failed(exporter.name(), error);
        }
    }
}

/// Logs the first failure at once, then at most one summary per minute,
/// and the recovery.
#[derive(Debug, Default)]
struct FailureLog {
    last_logged: Option<Instant>,
    suppressed: u64,
    failing: bool,
}

impl FailureLog {
    const EVERY: Duration = Duration::from_secs(60);

    fn failed(&mut self, name: &str, error: &ExportError) {
        self.failing = true;
        let due = self
            .last_logged
            .is_none_or(|last| last.elapsed() >= Self::EVERY);
        if due {
            log::warn!(
                target: "hotmetrics",
                exporter = name,
                suppressed = self.suppressed;
                "export to {name} failed: {error} ({} similar failures not logged)",
                self.suppressed
            );
            self.last_logged = Some(Instant::now());
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
    }

    fn recovered(&mut self, name: &str) {
        if self.failing {
            log::info!(target: "hotmetrics", "export to {name} succeeded again");
            self.failing = false;
            self.last_logged = None;
            self.suppressed = 0;
        }
    }
}
