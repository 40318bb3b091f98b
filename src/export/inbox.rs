//! What an exporter thread is handed ([`Job`]s on a one-slot queue), as
//! seen from inside one export ([`Inbox`]).
//!
//! The flusher offers each exporter thread a snapshot every
//! `export_interval` through a one-slot queue, and `shutdown()` puts the
//! final snapshot in the same queue with the instant by which it must be
//! delivered. An export that takes long — retries against a failing
//! backend, seconds of backoff — would otherwise keep sending the snapshot
//! it started with and sleep through the start of shutdown, while the
//! final snapshot waits in the queue behind it.
//!
//! An [`Inbox`] lets such an export look at the queue while it works:
//!
//! * [`Inbox::refresh`] takes the newest snapshot waiting, so a retry sends
//!   the newest cumulative totals rather than a stale request;
//! * [`Inbox::wait`] is the backoff sleep, woken as soon as anything arrives
//!   (a newer snapshot, or the final one at shutdown);
//! * [`Inbox::deadline`] says, once shutdown has begun, by when the final
//!   snapshot must be delivered.
//!
//! Snapshots are cumulative, so a newer one replaces an older one without
//! loss; the one replaced is counted in `stats().exports_skipped`, as a
//! snapshot the exporter was too busy to take always was. An exporter that
//! does not override [`Exporter::export_from`](crate::export::Exporter::export_from)
//! exports [`Inbox::current`] and never sees the rest: the worker loop hands
//! it whatever arrived next, the final snapshot included.

use std::fmt;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::ExportError;
use crate::report::snapshot::Snapshot;

/// Where the outcome of the final export goes.
type Done = Sender<Result<(), ExportError>>;

/// Work for an exporter thread.
#[derive(Debug)]
pub(crate) enum Job {
    Export(Arc<Snapshot>),
    /// The last job a queue carries.
    Final {
        snapshot: Arc<Snapshot>,
        /// When `shutdown()` stops waiting for the outcome.
        deadline: Instant,
        done: Done,
    },
}

impl Job {
    /// The snapshot, and for the final one its deadline and outcome channel.
    fn split(self) -> (Arc<Snapshot>, Option<(Instant, Done)>) {
        match self {
            Job::Export(snapshot) => (snapshot, None),
            Job::Final {
                snapshot,
                deadline,
                done,
            } => (snapshot, Some((deadline, done))),
        }
    }
}

/// The snapshot an exporter is delivering, and a view of what arrives
/// while it does: newer snapshots, and the start of shutdown.
///
/// The engine calls [`Exporter::export_from`](crate::export::Exporter::export_from)
/// with one. An exporter that retries uses it so that every attempt sends
/// the newest data and a backoff sleep ends when shutdown begins:
///
/// ```
/// use std::time::{Duration, Instant};
/// use hotmetrics::export::{Exporter, Inbox};
/// use hotmetrics::{ExportError, Snapshot};
///
/// /// Refuses twice, then takes the snapshot.
/// struct Flaky { refusals: u32, sent: usize }
///
/// impl Flaky {
///     fn send(&mut self, snapshot: &Snapshot) -> Result<(), ExportError> {
///         if self.refusals > 0 {
///             self.refusals -= 1;
///             return Err(ExportError::Transient("busy".into()));
///         }
///         self.sent = snapshot.series.len();
///         Ok(())
///     }
/// }
///
/// impl Exporter for Flaky {
///     fn export(&mut self, snapshot: &Snapshot) -> Result<(), ExportError> {
///         self.export_from(&mut Inbox::fixed(snapshot))
///     }
///
///     fn export_from(&mut self, inbox: &mut Inbox<'_>) -> Result<(), ExportError> {
///         let mut backoff = Duration::from_millis(1);
///         loop {
///             inbox.refresh(); // the newest snapshot, if one arrived
///             let error = match self.send(inbox.current()) {
///                 Ok(()) => return Ok(()),
///                 Err(error) => error,
///             };
///             // Once shutdown has begun, stop at its deadline.
///             if inbox.deadline().is_some_and(|at| Instant::now() + backoff > at) {
///                 return Err(error);
///             }
///             inbox.wait(backoff); // woken early by a newer snapshot or shutdown
///             backoff *= 2;
///         }
///     }
/// }
///
/// let now = std::time::SystemTime::now();
/// let snapshot = Snapshot::new(Vec::new(), Default::default(), now, now);
/// let mut flaky = Flaky { refusals: 2, sent: usize::MAX };
/// flaky.export(&snapshot).unwrap();
/// assert_eq!(flaky.sent, 0);
/// ```
pub struct Inbox<'a> {
    current: Current<'a>,
    /// The exporter thread's queue; `None` for an [`Inbox::fixed`].
    jobs: Option<&'a Receiver<Job>>,
    /// Received by `wait` or `refresh`, not yet made current.
    pending: Option<Job>,
    /// Once the final snapshot has arrived (pending or current): by when
    /// it must be delivered.
    deadline: Option<Instant>,
    /// `Some` exactly when `current` is the final snapshot: where its
    /// outcome goes.
    done: Option<Done>,
    /// Snapshots replaced by a newer one before they were delivered.
    superseded: u64,
}

enum Current<'a> {
    Borrowed(&'a Snapshot),
    Queued(Arc<Snapshot>),
}

impl fmt::Debug for Inbox<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox")
            .field("snapshot_time", &self.current().time)
            .field("newer_waiting", &self.pending.is_some())
            .field("deadline", &self.deadline)
            .field("is_final", &self.done.is_some())
            .finish_non_exhaustive()
    }
}

/// What is left of an inbox once its export returned.
#[derive(Debug)]
pub(crate) enum Leftover {
    /// The final snapshot was the one exported: its outcome goes here.
    Final(Done),
    /// A job arrived during the export and was not taken: export it next.
    Next(Job),
    /// Nothing: wait for the next job.
    Idle,
}

impl<'a> Inbox<'a> {
    /// An inbox holding `snapshot` alone: nothing newer arrives and shutdown
    /// never begins. For calling
    /// [`export_from`](crate::export::Exporter::export_from) outside the engine
    /// (tests, an exporter wrapping another).
    pub fn fixed(snapshot: &'a Snapshot) -> Self {
        Self::with(Current::Borrowed(snapshot), None)
    }

    /// The inbox of an exporter thread, starting with `job`.
    pub(crate) fn queued(job: Job, jobs: &'a Receiver<Job>) -> Self {
        let (snapshot, finish) = job.split();
        let mut inbox = Self::with(Current::Queued(snapshot), Some(jobs));
        inbox.finish(finish);
        inbox
    }

    fn with(current: Current<'a>, jobs: Option<&'a Receiver<Job>>) -> Self {
        Self {
            current,
            jobs,
            pending: None,
            deadline: None,
            done: None,
            superseded: 0,
        }
    }

    /// The snapshot to deliver now: the one the export started with, or
    /// the newest taken by [`Inbox::refresh`] since.
    pub fn current(&self) -> &Snapshot {
        match &self.current {
            Current::Borrowed(snapshot) => snapshot,
            Current::Queued(snapshot) => snapshot,
        }
    }

    /// Makes the newest snapshot that has arrived the current one; true
    /// when it changed. Once the final snapshot is current, nothing
    /// replaces it.
    pub fn refresh(&mut self) -> bool {
        while let Some(job) = self.jobs.and_then(|jobs| jobs.try_recv().ok()) {
            self.hold(job);
        }
        match self.pending.take() {
            Some(job) => {
                self.superseded += 1;
                self.make_current(job);
                true
            }
            None => false,
        }
    }

    /// Sleeps up to `timeout`, or until a newer snapshot or the final one
    /// arrives (at once if one is already waiting). Returns true when woken
    /// by an arrival: call [`Inbox::refresh`] to take it, and look at
    /// [`Inbox::deadline`], which may just have been set.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        if self.pending.is_some() {
            return true;
        }
        let Some(jobs) = self.jobs else {
            thread::sleep(timeout);
            return false;
        };
        let started = Instant::now();
        match jobs.recv_timeout(timeout) {
            Ok(job) => {
                self.hold(job);
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => {
                // The engine is gone; nothing will arrive.
                thread::sleep(timeout.saturating_sub(started.elapsed()));
                false
            }
        }
    }

    /// `Some` once shutdown has begun (the final snapshot has arrived,
    /// whether or not it is current yet): the instant by which it must be
    /// delivered. Later attempts are wasted: `shutdown()` has returned.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// True when [`Inbox::current`] is the final snapshot.
    pub fn is_final(&self) -> bool {
        self.done.is_some()
    }

    /// Snapshots replaced by a newer one before they were delivered.
    pub(crate) fn superseded(&self) -> u64 {
        self.superseded
    }

    /// What the worker loop does next.
    pub(crate) fn into_leftover(mut self) -> Leftover {
        if let Some(done) = self.done.take() {
            return Leftover::Final(done);
        }
        match self.pending.take() {
            Some(job) => Leftover::Next(job),
            None => Leftover::Idle,
        }
    }

    /// Keeps `job` as the newest arrival (the final snapshot is the last
    /// job a queue ever carries).
    fn hold(&mut self, job: Job) {
        if let Job::Final { deadline, .. } = &job {
            self.deadline = Some(*deadline);
        }
        if self.pending.replace(job).is_some() {
            self.superseded += 1;
        }
    }

    fn make_current(&mut self, job: Job) {
        let (snapshot, finish) = job.split();
        self.current = Current::Queued(snapshot);
        self.finish(finish);
    }

    fn finish(&mut self, finish: Option<(Instant, Done)>) {
        if let Some((deadline, done)) = finish {
            self.deadline = Some(deadline);
            self.done = Some(done);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;
    use crate::report::stats::Stats;

    fn at(seconds: u64) -> Arc<Snapshot> {
        Arc::new(Snapshot {
            series: Vec::new(),
            stats: Stats::default(),
            start_time: UNIX_EPOCH,
            time: UNIX_EPOCH + Duration::from_secs(seconds),
        })
    }

    fn time(inbox: &Inbox<'_>) -> SystemTime {
        inbox.current().time
    }

    #[test]
    fn refresh_takes_the_newest_and_counts_the_ones_replaced() {
        let (sender, jobs) = mpsc::sync_channel(1);
        let mut inbox = Inbox::queued(Job::Export(at(1)), &jobs);
        assert!(!inbox.refresh());
        sender.send(Job::Export(at(2))).unwrap();
        assert!(
            inbox.wait(Duration::from_secs(5)),
            "an arrival wakes the wait"
        );
        sender.send(Job::Export(at(3))).unwrap();
        assert!(inbox.wait(Duration::from_secs(5)), "one is already waiting");
        assert!(inbox.refresh());
        assert_eq!(time(&inbox), UNIX_EPOCH + Duration::from_secs(3));
        // 1 and 2 were never delivered.
        assert_eq!(inbox.superseded(), 2);
        assert!(matches!(inbox.into_leftover(), Leftover::Idle));
    }

    #[test]
    fn the_final_snapshot_brings_the_deadline_and_is_never_replaced() {
        let (sender, jobs) = mpsc::sync_channel(1);
        let (done, _outcome) = mpsc::channel();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut inbox = Inbox::queued(Job::Export(at(1)), &jobs);
        let started = Instant::now();
        assert!(!inbox.wait(Duration::from_millis(20)));
        assert!(started.elapsed() >= Duration::from_millis(20));
        sender
            .send(Job::Final {
                snapshot: at(9),
                deadline,
                done,
            })
            .unwrap();
        assert!(inbox.wait(Duration::from_secs(5)));
        assert_eq!(inbox.deadline(), Some(deadline), "known before it is taken");
        assert!(!inbox.is_final());
        assert!(inbox.refresh());
        assert!(inbox.is_final());
        assert_eq!(time(&inbox), UNIX_EPOCH + Duration::from_secs(9));
        assert!(matches!(inbox.into_leftover(), Leftover::Final(_)));
    }

    #[test]
    fn an_arrival_not_taken_is_exported_next() {
        let (sender, jobs) = mpsc::sync_channel(1);
        let mut inbox = Inbox::queued(Job::Export(at(1)), &jobs);
        sender.send(Job::Export(at(2))).unwrap();
        assert!(inbox.wait(Duration::from_secs(5)));
        assert_eq!(inbox.superseded(), 0);
        match inbox.into_leftover() {
            Leftover::Next(Job::Export(snapshot)) => assert_eq!(snapshot.time, at(2).time),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_fixed_feed_only_sleeps() {
        let snapshot = at(1);
        let mut inbox = Inbox::fixed(&snapshot);
        let started = Instant::now();
        assert!(!inbox.wait(Duration::from_millis(10)));
        assert!(started.elapsed() >= Duration::from_millis(10));
        assert!(!inbox.refresh());
        assert_eq!(inbox.deadline(), None);
        assert!(matches!(inbox.into_leftover(), Leftover::Idle));
    }
}
