//! The controller with real threads: a producer paced to a base arrival
//! rate steps to 10× and back, through one 64-slot ring drained every
//! millisecond, with 100 ms control periods.
//!
//! Criteria (as in the simulation of `controller.rs`): after the step the
//! rate settles within 3 control periods (plus the period in progress at
//! the step, which the test's clock cannot align with) and stays within
//! ±10 % once settled; samples spilled after the first period of the burst
//! stay below 0.1 % of samples; the rate goes back up to its home rate when
//! the load falls. The reference rule runs the same scenario for
//! comparison; both are printed.
//!
//! Wall-clock tests share the machine with whatever else runs: a flusher
//! descheduled for several milliseconds overflows a 64-slot ring whatever
//! the rate. The test is therefore `#[ignore]`d in the parallel suite and
//! run on its own by `.ci/run` (`cargo test --all-features --lib --
//! --ignored tests::burst --test-threads=1`), and it reads the longest gap
//! between two drain passes (`stats().max_drain_gap`) after each run:
//!
//! * always asserted: the controller reacts (the rate falls below half its
//!   home rate during the burst), spills stay below 1 % of samples after
//!   the first period of the burst, and the rate climbs back to at least
//!   three times its burst level once the load falls;
//! * asserted when no drain came more than [`QUIET_GAP`] after the one
//!   before and the producer never paused more than [`QUIET_PRODUCER_GAP`]
//!   (a machine quiet enough for millisecond drains): the strict criteria
//!   above. The adaptive run gets up to [`ATTEMPTS`] attempts, and the
//!   strict criteria must hold in one of them when any was quiet.
//!
//! Every attempt prints its figures, the strict ones included.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::drain::controller::ControllerMode;
use crate::test_support::engine_lock;
use crate::{record, Engine};

const PERIOD: Duration = Duration::from_millis(100);
const BEFORE: u32 = 5;
const BURST: u32 = 10;
const AFTER: u32 = 12;
const HOME_RATE: f64 = 0.15;
/// Calls per millisecond before and after the burst: 7.5 samples per
/// millisecond at the home rate, 11.7 % of the ring per millisecond between
/// drains.
const BASE_PER_MS: f64 = 50.0;
/// Longest gap between drains under which the strict criteria are asserted.
/// It follows from the load: the controller raises the rate only in a
/// period whose fullest ring stayed below the low-water mark (30 %), and at
/// the home rate a 2.5 ms gap fills 29 % of the ring. With longer gaps one
/// late drain in a period can hold the rate a step below home — what the
/// controller is meant to do on a machine that drains late, and not a
/// failure to recover.
const QUIET_GAP: Duration = Duration::from_micros(2500);
/// Longest pause of the producer under which the strict criteria are
/// asserted.
const QUIET_PRODUCER_GAP: Duration = Duration::from_micros(1500);
/// Adaptive runs before the verdict: the strict criteria must hold in one
/// of them if any was quiet.
const ATTEMPTS: u32 = 5;

#[derive(Clone, Copy, Debug)]
struct Reading {
    at: Duration,
    rate: f64,
    dropped: u64,
    recorded: u64,
}

#[derive(Debug)]
struct Outcome {
    settle_periods: f64,
    burst_rate: f64,
    drop_share_after_first: f64,
    recovery_periods: Option<f64>,
    rate_changes: u64,
    final_rate: f64,
    max_drain_gap: Duration,
    /// Longest time between two passes of the producer's loop (a pass
    /// sleeps 200 µs): a producer descheduled for longer catches up in one
    /// batch, which the ring sees as a burst of its own.
    producer_gap: Duration,
}

impl Outcome {
    /// What must hold on any machine.
    fn meets_robust_criteria(&self) -> bool {
        self.rate_changes > 0
            && self.burst_rate < 0.5 * HOME_RATE
            && self.drop_share_after_first < 0.01
            && self.final_rate >= (3.0 * self.burst_rate).min(HOME_RATE * 0.999)
    }

    fn quiet(&self) -> bool {
        self.max_drain_gap <= QUIET_GAP && self.producer_gap <= QUIET_PRODUCER_GAP
    }

    /// The criteria.
    fn meets_criteria(&self) -> bool {
        self.settle_periods <= 4.0
            && self.rate_changes > 0
            && self.burst_rate < 0.5 * HOME_RATE
            && self.drop_share_after_first < 0.001
            && self
                .recovery_periods
                .is_some_and(|periods| periods <= f64::from(AFTER))
    }
}

fn load_per_ms(at: Duration) -> f64 {
    let period = (at.as_secs_f64() / PERIOD.as_secs_f64()) as u32;
    if (BEFORE..BEFORE + BURST).contains(&period) {
        BASE_PER_MS * 10.0
    } else {
        BASE_PER_MS
    }
}

/// Calls due by `at`: the integral of the load.
fn due_by(at: Duration) -> f64 {
    let period_ms = PERIOD.as_secs_f64() * 1000.0;
    let ms = at.as_secs_f64() * 1000.0;
    let step = f64::from(BEFORE) * period_ms;
    let back = f64::from(BEFORE + BURST) * period_ms;
    BASE_PER_MS * ms.min(step)
        + 10.0 * BASE_PER_MS * (ms.min(back) - step).max(0.0)
        + BASE_PER_MS * (ms - back).max(0.0)
}

fn run(mode: ControllerMode) -> (Outcome, Vec<Reading>) {
    let engine = Engine::builder()
        .sample_rate(HOME_RATE)
        .rate_bounds(0.002, HOME_RATE)
        .controller_mode(mode)
        .controller_period(PERIOD)
        .ring_shards(1)
        .buffer_capacity(64)
        .drain_interval(Duration::from_millis(1))
        .install()
        .expect("valid settings");
    let total = PERIOD * (BEFORE + BURST + AFTER);
    let stop = AtomicBool::new(false);
    let (readings, producer_gap) = thread::scope(|scope| {
        let stop = &stop;
        let started = Instant::now();
        let producer = scope.spawn(move || {
            let mut done = 0.0f64;
            let mut longest_gap = Duration::ZERO;
            let mut last = started.elapsed();
            while !stop.load(Ordering::Relaxed) {
                let now = started.elapsed();
                longest_gap = longest_gap.max(now - last);
                last = now;
                let due = due_by(now);
                // Never catch up more than 2 ms of backlog at once: a
                // descheduled producer must not turn into an extra burst.
                done = done.max(due - 2.0 * load_per_ms(now));
                let batch = (due - done).clamp(0.0, 256.0) as u32;
                for _ in 0..batch {
                    record!(counter: "burst.calls", 1);
                }
                done += f64::from(batch);
                if batch < 256 {
                    thread::sleep(Duration::from_micros(200));
                }
            }
            longest_gap
        });
        let mut readings = Vec::new();
        while started.elapsed() < total {
            let stats = engine.stats();
            readings.push(Reading {
                at: started.elapsed(),
                rate: engine.sample_rate(),
                dropped: stats.samples_spilled,
                recorded: stats.samples_recorded,
            });
            thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        let producer_gap = producer.join().expect("the producer does not panic");
        (readings, producer_gap)
    });
    let stats = engine.stats();
    engine.shutdown().expect("clean shutdown");
    (
        analyse(
            &readings,
            stats.rate_changes,
            stats.max_drain_gap,
            producer_gap,
        ),
        readings,
    )
}

fn analyse(
    readings: &[Reading],
    rate_changes: u64,
    max_drain_gap: Duration,
    producer_gap: Duration,
) -> Outcome {
    let at = |periods: u32| PERIOD * periods;
    let step = at(BEFORE);
    let back = at(BEFORE + BURST);
    let last_before = |time: Duration| {
        readings
            .iter()
            .rev()
            .find(|reading| reading.at <= time)
            .copied()
            .unwrap_or(readings[0])
    };
    let burst_rate = last_before(back).rate;
    let unsettled = readings
        .iter()
        .filter(|reading| reading.at >= step && reading.at < back)
        .filter(|reading| (reading.rate / burst_rate - 1.0).abs() > 0.10)
        .map(|reading| reading.at)
        .max()
        .unwrap_or(step);
    let settle_periods = (unsettled.saturating_sub(step)).as_secs_f64() / PERIOD.as_secs_f64();
    let (from, to) = (last_before(step + 2 * PERIOD), last_before(back));
    let dropped = to.dropped.saturating_sub(from.dropped);
    let recorded = to.recorded.saturating_sub(from.recorded);
    let drop_share_after_first = dropped as f64 / (dropped + recorded).max(1) as f64;
    let recovery_periods = readings
        .iter()
        .find(|reading| reading.at >= back && reading.rate >= HOME_RATE * 0.999)
        .map(|reading| (reading.at - back).as_secs_f64() / PERIOD.as_secs_f64());
    Outcome {
        settle_periods,
        burst_rate,
        drop_share_after_first,
        recovery_periods,
        rate_changes,
        final_rate: readings.last().map_or(0.0, |reading| reading.rate),
        max_drain_gap,
        producer_gap,
    }
}

#[test]
#[ignore = "wall-clock: .ci/run runs it alone"]
fn a_ten_fold_step_with_real_threads_settles_and_recovers() {
    let _lock = engine_lock();
    let mut attempts = Vec::new();
    for attempt in 1..=ATTEMPTS {
        let (outcome, readings) = run(ControllerMode::Adaptive);
        println!(
            "adaptive, attempt {attempt}: {outcome:?} (criteria met: {}, quiet machine: {})",
            outcome.meets_criteria(),
            outcome.quiet()
        );
        let met = outcome.meets_criteria();
        attempts.push((outcome, readings));
        if met {
            break;
        }
    }
    let (reference, _) = run(ControllerMode::Reference);
    println!("reference (halve > 80 %, x1.5 < 30 %): {reference:?}");
    let (best, readings) = attempts.last().expect("one attempt");
    let trace: Vec<String> = readings
        .iter()
        .step_by(4)
        .map(|reading| format!("{:.2}s:{:.4}", reading.at.as_secs_f64(), reading.rate))
        .collect();
    let trace = trace.join(" ");
    assert!(
        attempts
            .iter()
            .any(|(outcome, _)| outcome.meets_robust_criteria()),
        "the controller did not react and recover; last: {best:?}\nrates: {trace}"
    );
    let quiet_attempts = attempts
        .iter()
        .filter(|(outcome, _)| outcome.quiet())
        .count();
    if quiet_attempts > 0 {
        assert!(
            attempts
                .iter()
                .any(|(outcome, _)| outcome.meets_criteria()),
            "no attempt met the criteria, {quiet_attempts} on a quiet machine; last: {best:?}\nrates: {trace}"
        );
    } else {
        println!(
            "strict criteria not asserted: in every attempt drains came more than {QUIET_GAP:?} apart or the producer paused more than {QUIET_PRODUCER_GAP:?}"
        );
    }
}
