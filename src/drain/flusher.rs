//! The flusher thread: drains often, runs the controller, hands snapshots
//! to the exporters.
//!
//! Draining is what keeps the rings from overflowing, so it runs every
//! `drain_interval` (1 ms by default) and at once when a producer sees a
//! ring past its high-water mark. Exporting is slow and separate: the
//! flusher only builds a snapshot and offers it to each exporter thread
//! without waiting; a busy exporter skips that snapshot (values are
//! cumulative, so nothing is lost).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::aggregate::Aggregator;
use super::config::Config;
use super::controller::{self, ControllerMode, Observation};
use super::idle::{self, Idle};
use super::shared::Shared;
use super::targeting;
use crate::hot::ring::Ring;
use crate::report::snapshot::Snapshot;

/// Offers a snapshot to one exporter without waiting; `false` when the
/// exporter was still busy and skips it. Built by the engine from each
/// exporter's worker, so this side knows nothing of exporting.
pub(crate) type Feed = Box<dyn Fn(Arc<Snapshot>) -> bool + Send>;

/// What the flusher accumulates over one control period.
#[derive(Debug)]
struct Period {
    started: Instant,
    peak_utilisation: f64,
    samples_at_start: u64,
    dropped_at_start: u64,
    busy: Duration,
}

impl Period {
    fn start(shared: &Shared, samples: u64) -> Self {
        Self {
            started: Instant::now(),
            peak_utilisation: 0.0,
            samples_at_start: samples,
            dropped_at_start: shared.pipeline.samples_spilled.load(Ordering::Relaxed),
            busy: Duration::ZERO,
        }
    }
}

/// Starts the flusher thread.
pub(crate) fn spawn(shared: Arc<Shared>, exporters: Vec<Feed>) -> std::io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("hotmetrics-flusher".into())
        .spawn(move || run(&shared, &exporters))
}

fn run(shared: &Shared, exporters: &[Feed]) {
    let config = &shared.config;
    let mut period = Period::start(shared, 0);
    let mut next_export = Instant::now() + config.export_interval;
    let mut overflowing = false;
    let mut period_series = Vec::new();
    let mut cv2_memory = Vec::new();
    let mut sleep = config.drain_interval;
    let mut idle = Idle::default();
    let idle_check = config.idle_timeout.map(idle::check_interval);
    let mut next_idle_check = idle_check.map(|interval| Instant::now() + interval);
    // Error targeting learns the rates in a first, short period, so new
    // series leave their starting steps within a second.
    let mut period_length = if config.controller.mode == ControllerMode::ErrorTarget {
        config.controller.period.min(FIRST_PERIOD)
    } else {
        config.controller.period
    };
    // Acquire: pairs with the Release in `Engine::shutdown`.
    while !shared.stop.load(Ordering::Acquire) {
        shared.pipeline.clear_wake();
        let started = Instant::now();
        let (samples, drained) = {
            let mut aggregator = shared.aggregator();
            let (peak, drained) = shared.drain(&mut aggregator);
            period.peak_utilisation = period.peak_utilisation.max(peak);
            shared.health.drained(peak);
            (aggregator.samples_recorded, drained)
        };
        period.busy += started.elapsed();
        if period.started.elapsed() >= period_length {
            period_length = config.controller.period;
            let mut aggregator = shared.aggregator();
            aggregator.take_period(period.started, &mut period_series);
            let observed = observe(shared, &period, samples);
            overflowing = report_overflow(&observed, overflowing);
            if config.controller.mode == ControllerMode::ErrorTarget {
                targeting::retarget(
                    shared,
                    &mut aggregator,
                    &period_series,
                    &observed,
                    &mut cv2_memory,
                );
            } else {
                control(shared, &observed);
            }
            shared.health.end_period(
                &shared.config,
                &shared.stats,
                shared.pipeline.samples_spilled.load(Ordering::Relaxed),
                &aggregator,
                &period_series,
            );
            drop(aggregator);
            period = Period::start(shared, samples);
        }
        if let (Some(timeout), Some(check)) = (config.idle_timeout, next_idle_check) {
            if Instant::now() >= check {
                next_idle_check = idle_check.map(|interval| Instant::now() + interval);
                let mut aggregator = shared.aggregator();
                idle.check(&shared.pipeline, &mut aggregator, timeout);
            }
        }
        if Instant::now() >= next_export {
            next_export += config.export_interval;
            if next_export < Instant::now() {
                next_export = Instant::now() + config.export_interval;
            }
            offer_snapshot(shared, exporters);
        }
        // Time spent parked is not busy time; only the drain above counts.
        let deadlines = [
            next_export,
            period.started + period_length,
            next_idle_check.unwrap_or(next_export),
        ];
        sleep = next_sleep(config, sleep, drained, &deadlines);
        if drained == 0 {
            shared.health.idle(sleep);
        }
        thread::park_timeout(sleep);
    }
}

/// The first control period of an error-targeting engine, at most.
const FIRST_PERIOD: Duration = Duration::from_secs(1);

/// Longest sleep of an idle flusher: an idle engine wakes about twice a
/// second. What a wake-up costs depends on the machine: 0.015–0.08 % of a
/// core measured here for the flusher, where a thread that does nothing but
/// sleep and wake at the same pace is charged 0.03–0.06 % (virtual machines
/// charge a vCPU's halt and resume to the thread). The health monitor does
/// not count a planned idle sleep as drain lag.
const IDLE_SLEEP: Duration = Duration::from_millis(500);

/// How long to sleep before the next drain: `drain_interval` after a drain
/// that found samples; after one that found none, twice the last sleep, up
/// to [`IDLE_SLEEP`], never past the next export or control deadline. A producer that finds a ring past half
/// full wakes the flusher at once, so a burst after a quiet spell is
/// drained as it comes.
fn next_sleep(config: &Config, last: Duration, drained: usize, deadlines: &[Instant]) -> Duration {
    if drained > 0 {
        return config.drain_interval;
    }
    let now = Instant::now();
    let until_deadline = deadlines
        .iter()
        .map(|deadline| deadline.saturating_duration_since(now))
        .min()
        .unwrap_or(IDLE_SLEEP);
    (last * 2)
        .min(IDLE_SLEEP)
        .min(until_deadline)
        .max(config.drain_interval)
}

/// What the period just ended looked like.
fn observe(shared: &Shared, period: &Period, samples: u64) -> Observation {
    let elapsed = period.started.elapsed().as_secs_f64();
    let dropped_now = shared.pipeline.samples_spilled.load(Ordering::Relaxed);
    shared.stats.set_utilisation(period.peak_utilisation);
    Observation {
        rate: f64::from(shared.pipeline.rate.rate()),
        peak_utilisation: period.peak_utilisation,
        samples: samples - period.samples_at_start,
        drops: dropped_now - period.dropped_at_start,
        busy_fraction: period.busy.as_secs_f64() / elapsed.max(1e-9),
        period_secs: elapsed,
    }
}

/// Logs the start and end of ring overflow; returns whether the rings are
/// overflowing now.
fn report_overflow(observed: &Observation, was_overflowing: bool) -> bool {
    let (drops, elapsed) = (observed.drops, observed.period_secs);
    let overflowing = drops > 0;
    if overflowing && !was_overflowing {
        log::warn!(
            target: "hotmetrics",
            spilled = drops,
            period_secs = elapsed;
            "ring overflow: {drops} samples spilled in the last {elapsed:.1}s (estimates stay unbiased; lowering the rate)"
        );
    } else if !overflowing && was_overflowing {
        log::info!(target: "hotmetrics", "ring overflow ended");
    }
    overflowing
}

/// One step of the one-rate controllers (pressure, reference, fixed).
fn control(shared: &Shared, observation: &Observation) {
    let rate = observation.rate;
    let next = controller::next_rate(&shared.config.controller, observation) as f32;
    if next != rate as f32 {
        shared.pipeline.rate.publish(next);
        shared.stats.rate_changes.fetch_add(1, Ordering::Relaxed);
        log::info!(
            target: "hotmetrics",
            old_rate = rate,
            new_rate = f64::from(next),
            peak_utilisation = observation.peak_utilisation,
            drops = observation.drops,
            busy_fraction = observation.busy_fraction;
            "sample rate {rate:.4} -> {next:.4} (peak ring use {:.0}%, {} drops, flusher busy {:.1}%)",
            observation.peak_utilisation * 100.0,
            observation.drops,
            observation.busy_fraction * 100.0
        );
    }
}

fn offer_snapshot(shared: &Shared, exporters: &[Feed]) {
    if exporters.is_empty() {
        return;
    }
    let snapshot = {
        let mut aggregator = shared.aggregator();
        Arc::new(shared.snapshot(&mut aggregator))
    };
    for offer in exporters {
        if !offer(snapshot.clone()) {
            shared.stats.exports_skipped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The last drain, after the pipeline was uninstalled: close every ring,
/// wait for producers inside a spill, then drain every claimed position
/// (waiting, until `deadline`, for producers that claimed but have not yet
/// published).
pub(crate) fn final_drain(shared: &Shared, aggregator: &mut Aggregator, deadline: Instant) {
    let pipeline = &shared.pipeline;
    let finals: Vec<usize> = pipeline.rings.iter().map(|ring| ring.close()).collect();
    for ring in pipeline.owned.iter() {
        ring.close_owned();
    }
    if !pipeline.owned.is_empty() {
        // Between the close and the reads of the owned rings' `tail`: a
        // holder's push then either sees the close (and settles its slot
        // with the drain, see `ring.rs`) or is seen by the drain below.
        Ring::settle_closes();
    }
    // An RMW read (not a load), pairing with the increment in
    // `Pipeline::spill`: see `Ring::is_closed_seqcst` for why.
    while pipeline.spilling.fetch_add(0, Ordering::SeqCst) != 0 && Instant::now() < deadline {
        thread::yield_now();
    }
    for (ring, final_tail) in pipeline.rings.iter().zip(finals) {
        drain_to(ring, aggregator, deadline, || final_tail);
    }
    // An owned ring has no final claim count: drain until everything its
    // holder published is in. A push that read the closed flag just before
    // it was set and publishes after this read of `tail` sees the flag when
    // it reads it again, and takes its sample back (`Ring::push_owned`).
    for ring in pipeline.owned.iter() {
        drain_to(ring, aggregator, deadline, || ring.published_tail());
    }
    let dropped = pipeline.samples_spilled.load(Ordering::Relaxed);
    aggregator.collect_spills(dropped, true);
    shared
        .stats
        .samples_recorded
        .store(aggregator.samples_recorded, Ordering::Relaxed);
}

/// Drains `ring` until its head reaches `target()` (waiting for positions
/// still being published) or `deadline` passes.
fn drain_to(
    ring: &Ring,
    aggregator: &mut Aggregator,
    deadline: Instant,
    target: impl Fn() -> usize,
) {
    loop {
        ring.drain(ring.capacity(), |sample| aggregator.absorb(sample));
        if ring.head() == target() || Instant::now() >= deadline {
            break;
        }
        thread::yield_now();
    }
}
