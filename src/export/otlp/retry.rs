//! Retry timing and the circuit breaker.
//!
//! One export makes attempts until one succeeds, a permanent error comes
//! back, the circuit opens, or no further attempt fits before the export's
//! deadline (`deliver.rs` says how waits and timeouts are fitted to it).
//! Between attempts it waits what the backend asked for (`Retry-After`,
//! gRPC `RetryInfo`) or an exponential backoff with jitter. A wait the
//! backend asked for that reaches past the deadline is kept as a "not
//! before" instant, so the next export does not knock early either.
//!
//! The breaker counts consecutive failed *attempts*: a dead backend costs
//! at most `failure_threshold` attempts, then exports fail at once (no
//! network I/O) until the open period has passed; the first export after
//! that is a single probe, whose outcome closes the circuit or re-opens it
//! for twice as long (up to `max_open_for`).

use std::time::{Duration, Instant, SystemTime};

use super::config::{CircuitBreakerPolicy, RetryPolicy};
use crate::report::stats::CircuitState;

/// The delay before retry number `attempt` (0 for the first retry): a
/// random point in `[d/2, d]`, `d = min(initial · 2^attempt, max)`.
pub(crate) fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.min(30));
    let full = policy
        .initial_backoff
        .saturating_mul(factor)
        .min(policy.max_backoff);
    let half = full / 2;
    half + half.mul_f64(fastrand::f64())
}

/// Parses a `Retry-After` value: delay-seconds or an IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`). `None` when it is neither.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_imf_fixdate(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn parse_imf_fixdate(value: &str) -> Option<SystemTime> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let rest = value.split_once(", ")?.1;
    let mut parts = rest.split(' ');
    let day: u64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut clock = parts.next()?.split(':');
    let hour: u64 = clock.next()?.parse().ok()?;
    let minute: u64 = clock.next()?.parse().ok()?;
    let second: u64 = clock.next()?.parse().ok()?;
    if parts.next()? != "GMT" || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day as i64);
    let seconds = days.checked_mul(86_400)? + (hour * 3600 + minute * 60 + second) as i64;
    let seconds = u64::try_from(seconds).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the usual
/// era-based conversion: 400-year eras of 146 097 days).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Whether an export may go to the network now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Closed circuit: attempts with retries.
    Normal,
    /// Half-open: one attempt, no retries.
    Probe,
    /// Open: fail without I/O; the probe is due in this long.
    Rejected(Duration),
}

/// Closed → open → half-open → closed.
#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    policy: CircuitBreakerPolicy,
    /// Consecutive failed attempts while closed.
    failures: u32,
    /// `Some` while open or half-open: when the probe is allowed.
    open_until: Option<Instant>,
    /// Length of the current (or next) open period.
    open_for: Duration,
}

impl CircuitBreaker {
    pub(crate) fn new(policy: CircuitBreakerPolicy) -> Self {
        Self {
            policy,
            failures: 0,
            open_until: None,
            open_for: policy.open_for,
        }
    }

    /// The state as `engine.stats()` reports it.
    pub(crate) fn state(&self, now: Instant) -> CircuitState {
        match self.open_until {
            None => CircuitState::Closed,
            Some(until) if now >= until => CircuitState::HalfOpen,
            Some(_) => CircuitState::Open,
        }
    }

    pub(crate) fn admit(&self, now: Instant) -> Admission {
        match self.open_until {
            None => Admission::Normal,
            Some(until) if now >= until => Admission::Probe,
            Some(until) => Admission::Rejected(until - now),
        }
    }

    /// An attempt reached the backend and was accepted (or refused for
    /// good: the backend is up).
    pub(crate) fn on_success(&mut self) {
        if self.open_until.is_some() {
            log::info!(target: "hotmetrics", "OTLP circuit closed: the backend answered the probe");
        }
        self.failures = 0;
        self.open_until = None;
        self.open_for = self.policy.open_for;
    }

    /// An attempt failed. Returns true when the circuit is (now) open.
    pub(crate) fn on_failure(&mut self, now: Instant) -> bool {
        match self.open_until {
            Some(_) => {
                // A failed probe: open again, for longer.
                self.open_for = (self.open_for * 2).min(self.policy.max_open_for);
                self.open_until = Some(now + self.open_for);
                true
            }
            None => {
                self.failures += 1;
                if self.failures >= self.policy.failure_threshold {
                    log::warn!(
                        target: "hotmetrics",
                        "OTLP circuit opened after {} failed attempts; next probe in {:?}",
                        self.failures,
                        self.open_for
                    );
                    self.open_until = Some(now + self.open_for);
                    true
                } else {
                    false
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped_with_jitter() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
        };
        for attempt in 0..40 {
            let full =
                Duration::from_millis(100 * 2u64.pow(attempt.min(10))).min(policy.max_backoff);
            let delay = backoff(&policy, attempt);
            assert!(delay >= full / 2 && delay <= full, "{attempt}: {delay:?}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        // 784111777 is Sun, 06 Nov 1994 08:49:37 GMT.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_retry_after("Sun, 06 Foo 1994 08:49:37 GMT", now),
            None
        );
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn breaker_cycle() {
        let policy = CircuitBreakerPolicy {
            failure_threshold: 3,
            open_for: Duration::from_secs(10),
            max_open_for: Duration::from_secs(25),
        };
        let mut breaker = CircuitBreaker::new(policy);
        let t0 = Instant::now();
        assert_eq!(breaker.admit(t0), Admission::Normal);
        assert!(!breaker.on_failure(t0));
        assert!(!breaker.on_failure(t0));
        assert!(breaker.on_failure(t0));
        assert_eq!(breaker.state(t0), CircuitState::Open);
        assert_eq!(
            breaker.admit(t0 + Duration::from_secs(4)),
            Admission::Rejected(Duration::from_secs(6))
        );
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(breaker.state(t1), CircuitState::HalfOpen);
        assert_eq!(breaker.admit(t1), Admission::Probe);
        // Failed probe: open for 20 s, then capped at 25 s.
        assert!(breaker.on_failure(t1));
        assert_eq!(
            breaker.admit(t1),
            Admission::Rejected(Duration::from_secs(20))
        );
        let t2 = t1 + Duration::from_secs(20);
        assert!(breaker.on_failure(t2));
        assert_eq!(
            breaker.admit(t2),
            Admission::Rejected(Duration::from_secs(25))
        );
        breaker.on_success();
        assert_eq!(breaker.state(t2), CircuitState::Closed);
        assert_eq!(breaker.admit(t2), Admission::Normal);
        // Counting starts again from zero.
        assert!(!breaker.on_failure(t2));
    }
}
