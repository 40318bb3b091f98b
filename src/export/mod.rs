//! Exporters: where snapshots go.
//!
//! An exporter implements one method, [`Exporter::export`]. Each runs on its
//! own thread, fed by the flusher through a one-slot queue: a slow or dead
//! backend delays only its own thread, never draining, and a snapshot it
//! could not take is skipped (values are cumulative, the next one carries
//! the totals). A panic inside an exporter is caught and counted in
//! `stats().exporter_panics`.
//!
//! At shutdown the final snapshot goes to every exporter thread at once,
//! with the instant by which `shutdown()` must return. An exporter busy
//! with a long export (retries against a failing backend) sees it arrive
//! through its [`Inbox`]: its backoff sleep wakes, and it sends the final
//! snapshot within what is left of the budget (see `inbox.rs`).
//!
//! Built in: [`Stdout`] (aligned table or JSON lines), [`InMemory`] (for
//! tests), [`Otlp`] (OpenTelemetry over HTTP/protobuf, gRPC with the
//! `otlp-grpc` feature) and [`Prometheus`] (a `/metrics` endpoint). [`from_env`]
//! picks them by `OTEL_METRICS_EXPORTER`.
//!
//! OTLP and Prometheus send, beside every estimated series, its cumulative
//! variance estimate as a monotonic sum (`<name>.variance`,
//! `<name>_variance_total`), which backends can sum across instances and
//! take over a window: see `variance.rs`.

pub(crate) mod env;
pub(crate) mod exporter;
mod in_memory;
pub(crate) mod inbox;
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "prometheus")]
pub mod prometheus;
#[cfg(any(feature = "otlp", feature = "prometheus"))]
mod rebucket;
pub(crate) mod select;
pub(crate) mod stdout;
#[cfg(any(feature = "otlp", feature = "prometheus"))]
pub(crate) mod variance;

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
pub use inbox::Inbox;
#[cfg(feature = "otlp")]
pub use otlp::Otlp;
#[cfg(any(feature = "otlp", feature = "prometheus"))]
pub use rebucket::DEFAULT_BOUNDARIES;
pub use select::{from_env, from_vars};
pub use stdout::{Stdout, StdoutFormat};

use crate::error::{ExportError, ShutdownError};
use crate::report::snapshot::Snapshot;
use crate::report::stats::SharedStats;
use inbox::{Job, Leftover};

/// Time kept back from an exporter's final deadline for its `shutdown()`
/// and the hand-back of the outcome, so an export that ends at its
/// deadline is still counted as in time.
const HAND_BACK: Duration = Duration::from_millis(20);

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
}

/// Hands the final snapshot to every exporter thread at once (a sleeping
/// retry wakes now, not when the exporters before it are done), then waits
/// for their outcomes until `deadline`. The first error wins.
pub(crate) fn finish_all(
    workers: Vec<ExportWorker>,
    snapshot: &Arc<Snapshot>,
    deadline: Instant,
) -> Result<(), ShutdownError> {
    let given = deadline.checked_sub(HAND_BACK).unwrap_or(deadline);
    let mut handing: Vec<(ExportWorker, Option<Job>, Receiver<_>)> = workers
        .into_iter()
        .map(|worker| {
            let (done, outcome) = mpsc::channel();
            let job = Job::Final {
                snapshot: snapshot.clone(),
                deadline: given,
                done,
            };
            (worker, Some(job), outcome)
        })
        .collect();
    // A queue may hold a periodic snapshot its thread has not taken yet:
    // wait for room until the deadline.
    loop {
        for (worker, job, _) in &mut handing {
            if let Some(ready) = job.take() {
                match worker.sender.try_send(ready) {
                    Ok(()) | Err(mpsc::TrySendError::Disconnected(_)) => {}
                    Err(mpsc::TrySendError::Full(back)) => *job = Some(back),
                }
            }
        }
        if handing.iter().all(|(_, job, _)| job.is_none()) || Instant::now() >= deadline {
            break;
        }
        thread::sleep(Duration::from_millis(1));
    }
    let mut result = Ok(());
    for (mut worker, _, outcome) in handing {
        let wait = deadline.saturating_duration_since(Instant::now());
        let outcome = match outcome.recv_timeout(wait) {
            Ok(Ok(())) => {
                if let Some(thread) = worker.thread.take() {
                    let _ = thread.join();
                }
                Ok(())
            }
            Ok(Err(error)) => Err(ShutdownError::ExportFailed {
                exporter: worker.name.clone(),
                error,
            }),
            // Not handed over, or no outcome in time (a job not handed
            // over drops its sender, which ends here too).
            Err(_) => Err(ShutdownError::ExportTimedOut {
                exporter: worker.name.clone(),
            }),
        };
        if result.is_ok() {
            result = outcome;
        }
    }
    result
}

/// The exporter thread: one export per job; a job that arrived during an
/// export and was not taken into it is exported next; the final one ends
/// the thread.
fn run(mut exporter: Box<dyn Exporter>, index: usize, jobs: &Receiver<Job>, stats: &SharedStats) {
    let mut limiter = FailureLog::default();
    let mut next = jobs.recv().ok();
    while let Some(job) = next.take() {
        let mut inbox = Inbox::queued(job, jobs);
        let mut outcome = guarded_export(&mut exporter, &mut inbox, stats);
        record(&*exporter, index, &outcome, stats, &mut limiter);
        stats
            .exports_skipped
            .fetch_add(inbox.superseded(), Ordering::Relaxed);
        next = match inbox.into_leftover() {
            Leftover::Final(done) => {
                let closed = catch_unwind(AssertUnwindSafe(|| exporter.shutdown()))
                    .unwrap_or_else(|_| Err(ExportError::Panicked("in shutdown".into())));
                if outcome.is_ok() {
                    outcome = closed;
                }
                let _ = done.send(outcome);
                return;
            }
            Leftover::Next(job) => Some(job),
            Leftover::Idle => jobs.recv().ok(),
        };
    }
}

fn guarded_export(
    exporter: &mut Box<dyn Exporter>,
    inbox: &mut Inbox<'_>,
    stats: &SharedStats,
) -> Result<(), ExportError> {
    match catch_unwind(AssertUnwindSafe(|| exporter.export_from(inbox))) {
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
