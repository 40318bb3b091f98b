//! One export: its attempts, the waits between them, and the deadline they
//! fit in.
//!
//! An export makes attempts until one is accepted, a permanent error comes
//! back, the circuit opens, or no further attempt fits before its deadline.
//! The deadline is the export timeout (`OTEL_METRIC_EXPORT_TIMEOUT`, 30 s)
//! from the export's start; once shutdown has begun it is the shutdown
//! deadline, or the export timeout from that moment if that ends first.
//!
//! ## Every attempt sends the newest data
//!
//! Before each attempt the export takes the newest snapshot that reached
//! the exporter thread ([`Inbox::refresh`]) and rebuilds the request if one
//! arrived. Under cumulative temporality that is simply the newest totals.
//! Under delta temporality the request is always `newest − last accepted`
//! (see `delta.rs`): the baseline moves only when the backend accepts, so
//! the data of failed attempts rides into the next one whatever snapshot
//! it is built from.
//!
//! ## Shutdown
//!
//! The wait between attempts is [`Inbox::wait`]: the final snapshot's
//! arrival wakes it. The export then switches to the shutdown deadline and
//! sends the final snapshot at once, unless the backend itself asked for
//! the wait (`Retry-After`, gRPC `RetryInfo`): that wait is kept when it
//! fits before the deadline, and ends the export when it does not.
//! Attempts go on with the usual backoff within what is left.
//!
//! ## Fitting into the deadline
//!
//! Each attempt's own timeout (`OTEL_EXPORTER_OTLP_TIMEOUT`) is capped by
//! the time left, and no attempt starts with less than [`MIN_ATTEMPT`]
//! left. A backoff that would reach past the deadline is cut short so that
//! one last attempt still fits, with [`LAST_ATTEMPT`] (or the request
//! timeout, if shorter) left for it; after that attempt the export gives
//! up. Without the cut, a 1 s → 2 s → 4 s backoff puts the fourth attempt
//! at up to 7 s, past the engine's 5 s shutdown budget.
//!
//! The circuit breaker still applies at shutdown, with one exception: an
//! open circuit does not refuse the final snapshot without trying. The
//! final export then goes as a probe would: one attempt.

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;

use super::exporter::Otlp;
use super::retry::{backoff, Admission};
use super::transport::Attempt;
use crate::error::ExportError;
use crate::export::inbox::Inbox;

/// The shortest time an attempt is given: with less left, none starts.
const MIN_ATTEMPT: Duration = Duration::from_millis(10);

/// What a backoff cut short at the deadline leaves for the last attempt
/// (less when the request timeout is shorter): a round trip to a collector
/// in the same region, with room to spare.
const LAST_ATTEMPT: Duration = Duration::from_millis(250);

/// The instant an export must be done by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    end: Instant,
    /// True once shutdown has begun: `end` is (at most) its deadline.
    shutdown: bool,
}

/// How long to wait before the next attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// The whole backoff.
    Full(Duration),
    /// The backoff cut short so one last attempt fits.
    Cut(Duration),
    /// No further attempt fits.
    GiveUp,
}

impl Window {
    /// An export started at `started` outside shutdown.
    fn periodic(started: Instant, export_timeout: Duration) -> Self {
        Self {
            end: started + export_timeout,
            shutdown: false,
        }
    }

    /// Shutdown has begun (seen at `now`), to be done by `deadline`.
    fn shutdown(now: Instant, export_timeout: Duration, deadline: Instant) -> Self {
        Self {
            end: deadline.min(now + export_timeout),
            shutdown: true,
        }
    }

    /// Whether an attempt starting at `at` fits.
    fn fits(&self, at: Instant) -> bool {
        at.checked_add(MIN_ATTEMPT)
            .is_some_and(|start_by| start_by <= self.end)
    }

    /// The timeout of an attempt starting at `now`: the request timeout,
    /// capped by the time left; `None` when too little is left.
    fn attempt_timeout(&self, now: Instant, timeout: Duration) -> Option<Duration> {
        let left = self.end.saturating_duration_since(now);
        (left >= MIN_ATTEMPT).then(|| timeout.min(left))
    }

    /// Fits a `backoff` starting at `now` before the end, leaving the last
    /// attempt `LAST_ATTEMPT` (or `timeout`, if shorter).
    fn fit(&self, now: Instant, backoff: Duration, timeout: Duration) -> Wait {
        let left = self.end.saturating_duration_since(now);
        let last = LAST_ATTEMPT.min(timeout).max(MIN_ATTEMPT);
        if backoff + last <= left {
            Wait::Full(backoff)
        } else if left >= MIN_ATTEMPT {
            Wait::Cut(left.saturating_sub(last))
        } else {
            Wait::GiveUp
        }
    }
}

/// Where an export stands between attempts.
struct Progress {
    window: Window,
    /// The next attempt starts at this instant.
    resume: Instant,
    /// The backend chose `resume` (it is not ours to cut short).
    asked: bool,
    /// The next attempt is the last one (its wait was cut short).
    last: bool,
    attempts: u32,
    /// Built from `inbox.current()`; `None` when that changed.
    request: Option<ExportMetricsServiceRequest>,
}

impl Progress {
    /// Takes the newest snapshot that arrived; when it brings the start of
    /// shutdown, switches to the shutdown deadline and returns true.
    fn take_arrivals(&mut self, inbox: &mut Inbox<'_>, export_timeout: Duration) -> bool {
        if inbox.refresh() {
            self.request = None;
        }
        match inbox.deadline() {
            Some(deadline) if !self.window.shutdown => {
                self.window = Window::shutdown(Instant::now(), export_timeout, deadline);
                self.last = false;
                true
            }
            _ => false,
        }
    }

    /// Sleeps until `resume`. An arrival wakes the sleep: a newer snapshot
    /// is taken; the start of shutdown ends a backoff of ours at once, and
    /// keeps a wait the backend asked for only if it fits the shutdown
    /// deadline (false when it does not).
    fn sleep(&mut self, inbox: &mut Inbox<'_>, export_timeout: Duration) -> bool {
        while let Some(left) = self
            .resume
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
        {
            if !inbox.wait(left) || !self.take_arrivals(inbox, export_timeout) {
                continue;
            }
            if !self.asked {
                // The final snapshot goes at once.
                self.resume = Instant::now();
            } else if !self.window.fits(self.resume) {
                return false;
            }
        }
        true
    }

    /// Plans the attempt after a retryable failure at `now`: after the wait
    /// the backend asked for, or after `backoff` (cut short if it would
    /// pass the deadline). False when no further attempt fits.
    fn plan(
        &mut self,
        now: Instant,
        retry_after: Option<Duration>,
        backoff: Duration,
        timeout: Duration,
    ) -> bool {
        if self.last {
            return false;
        }
        if let Some(after) = retry_after {
            // A wait too long for an `Instant` does not fit either.
            let Some(at) = now.checked_add(after) else {
                return false;
            };
            self.resume = at;
            self.asked = true;
            return self.window.fits(at);
        }
        self.asked = false;
        let wait = match self.window.fit(now, backoff, timeout) {
            Wait::Full(wait) => wait,
            Wait::Cut(wait) => {
                self.last = true;
                wait
            }
            Wait::GiveUp => return false,
        };
        self.resume = now + wait;
        true
    }

    fn gave_up(&self, reason: &str, started: Instant) -> ExportError {
        let limit = if self.window.shutdown {
            "the shutdown deadline"
        } else {
            "the export timeout"
        };
        ExportError::Transient(format!(
            "{reason} (gave up after {} attempts in {:.1}s: no further attempt fits before {limit})",
            self.attempts,
            started.elapsed().as_secs_f64()
        ))
    }
}

impl Otlp {
    /// One export of the newest snapshot `inbox` holds; see the module docs.
    pub(super) fn deliver(&mut self, inbox: &mut Inbox<'_>) -> Result<(), ExportError> {
        let export_timeout = self.config.export_timeout;
        let started = Instant::now();
        let mut progress = Progress {
            window: Window::periodic(started, export_timeout),
            resume: started,
            asked: false,
            last: false,
            attempts: 0,
            request: None,
        };
        progress.take_arrivals(inbox, export_timeout);
        let probe = match self.breaker.admit(started) {
            Admission::Normal => false,
            Admission::Probe => true,
            Admission::Rejected(_) if progress.window.shutdown => true,
            Admission::Rejected(wait) => {
                return Err(ExportError::Transient(format!(
                    "circuit open after repeated failures of {}; next probe in {:.1}s",
                    self.shown,
                    wait.as_secs_f64()
                )))
            }
        };
        if let Some(at) = self.not_before {
            if started >= at {
                self.not_before = None;
            } else if progress.window.shutdown && progress.window.fits(at) {
                progress.resume = at;
                progress.asked = true;
            } else {
                return Err(ExportError::Transient(format!(
                    "{} asked to wait; next attempt in {:.1}s",
                    self.shown,
                    (at - started).as_secs_f64()
                )));
            }
        }
        loop {
            if !progress.sleep(inbox, export_timeout) {
                self.not_before = Some(progress.resume);
                return Err(progress.gave_up("the backend asked to wait", started));
            }
            progress.take_arrivals(inbox, export_timeout);
            let now = Instant::now();
            let Some(timeout) = progress.window.attempt_timeout(now, self.config.timeout) else {
                return Err(progress.gave_up("no time left", started));
            };
            let request = progress
                .request
                .get_or_insert_with(|| self.request(inbox.current()));
            progress.attempts += 1;
            let (reason, retry_after) = match self.transport.send(request, timeout) {
                Attempt::Accepted {
                    rejected_points,
                    message,
                } => {
                    self.accepted(inbox.current(), rejected_points, message);
                    return Ok(());
                }
                Attempt::Permanent(message) => {
                    // Not retried. Under delta temporality this data is given
                    // up, or it would be re-sent (and refused) forever. It
                    // still counts as a failure, so a backend that refuses
                    // everything is only probed now and then.
                    self.breaker.on_failure(Instant::now());
                    if let Some(delta) = &mut self.delta {
                        delta.accept(inbox.current());
                    }
                    return Err(ExportError::Permanent(message));
                }
                Attempt::Retryable {
                    reason,
                    retry_after,
                } => (reason, retry_after),
            };
            let now = Instant::now();
            // A failed probe, or the failure that opens the circuit, ends
            // the export at once.
            if self.breaker.on_failure(now) || probe {
                // A wait the backend asked for holds for later exports too.
                if let Some(after) = retry_after {
                    self.not_before = now.checked_add(after);
                }
                return Err(ExportError::Transient(format!(
                    "{reason} (attempt {}; circuit open)",
                    progress.attempts
                )));
            }
            let wait = backoff(&self.config.retry, progress.attempts - 1);
            if !progress.plan(now, retry_after, wait, self.config.timeout) {
                // A wait the backend asked for holds for later exports too.
                if let Some(after) = retry_after {
                    self.not_before = now.checked_add(after);
                }
                return Err(progress.gave_up(&reason, started));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_backoff_that_fits_is_kept_whole() {
        let now = Instant::now();
        let window = Window::periodic(now, 5000 * MS);
        assert_eq!(
            window.fit(now, 1000 * MS, 10_000 * MS),
            Wait::Full(1000 * MS)
        );
        assert_eq!(
            window.fit(now, 4750 * MS, 10_000 * MS),
            Wait::Full(4750 * MS)
        );
    }

    #[test]
    fn a_backoff_past_the_end_is_cut_to_leave_the_last_attempt() {
        let now = Instant::now();
        let window = Window::periodic(now, 5000 * MS);
        assert_eq!(
            window.fit(now, 4000 * MS, 10_000 * MS),
            Wait::Full(4000 * MS)
        );
        let later = now + 2000 * MS;
        // 2 s + 4 s would end at 6 s: the wait ends 250 ms before 5 s.
        assert_eq!(
            window.fit(later, 4000 * MS, 10_000 * MS),
            Wait::Cut(2750 * MS)
        );
        // A shorter request timeout is all the last attempt needs.
        assert_eq!(window.fit(later, 4000 * MS, 100 * MS), Wait::Cut(2900 * MS));
        // Less than the last attempt's time left: it starts at once.
        let late = now + 4900 * MS;
        assert_eq!(
            window.fit(late, 1000 * MS, 10_000 * MS),
            Wait::Cut(Duration::ZERO)
        );
        let too_late = now + 4995 * MS;
        assert_eq!(window.fit(too_late, 1000 * MS, 10_000 * MS), Wait::GiveUp);
    }

    #[test]
    fn an_attempt_timeout_is_capped_by_the_time_left() {
        let now = Instant::now();
        let window = Window::periodic(now, 5000 * MS);
        assert_eq!(window.attempt_timeout(now, 10_000 * MS), Some(5000 * MS));
        assert_eq!(window.attempt_timeout(now, 200 * MS), Some(200 * MS));
        assert_eq!(window.attempt_timeout(now + 4995 * MS, 200 * MS), None);
        assert_eq!(window.attempt_timeout(now + 6000 * MS, 200 * MS), None);
    }

    #[test]
    fn at_shutdown_the_sooner_of_the_two_deadlines_holds() {
        let now = Instant::now();
        let shutdown = Window::shutdown(now, 30_000 * MS, now + 5000 * MS);
        assert_eq!(shutdown.end, now + 5000 * MS);
        assert!(shutdown.shutdown);
        let short = Window::shutdown(now, 2000 * MS, now + 5000 * MS);
        assert_eq!(short.end, now + 2000 * MS);
        assert!(shutdown.fits(now + 4990 * MS));
        assert!(!shutdown.fits(now + 4991 * MS));
    }
}
