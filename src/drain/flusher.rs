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
use super::controller::{self, Observation};
use super::shared::Shared;
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
            dropped_at_start: shared.pipeline.samples_dropped.load(Ordering::Relaxed),
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
    // Acquire: pairs with the Release in `Engine::shutdown`.
    while !shared.stop.load(Ordering::Acquire) {
        shared.pipeline.clear_wake();
        let started = Instant::now();
        let samples = {
            let mut aggregator = shared.aggregator();
            let (peak, _) = shared.drain(&mut aggregator);
            period.peak_utilisation = period.peak_utilisation.max(peak);
            shared.health.drained(peak);
            aggregator.samples_recorded
        };
        period.busy += started.elapsed();
        if period.started.elapsed() >= config.controller.period {
            overflowing = control(shared, &period, samples, overflowing);
            shared.health.end_period(
                &shared.config,
                &shared.stats,
                shared.pipeline.samples_dropped.load(Ordering::Relaxed),
                &mut shared.aggregator(),
            );
            period = Period::start(shared, samples);
        }
        if Instant::now() >= next_export {
            next_export += config.export_interval;
            if next_export < Instant::now() {
                next_export = Instant::now() + config.export_interval;
            }
            offer_snapshot(shared, exporters);
        }
        // Time spent parked is not busy time; only the drain above counts.
        thread::park_timeout(config.drain_interval);
    }
}

/// One controller step; returns whether the rings are overflowing now.
fn control(shared: &Shared, period: &Period, samples: u64, was_overflowing: bool) -> bool {
    let elapsed = period.started.elapsed().as_secs_f64();
    let dropped_now = shared.pipeline.samples_dropped.load(Ordering::Relaxed);
    let drops = dropped_now - period.dropped_at_start;
    let rate = f64::from(shared.pipeline.rate.rate());
    let observation = Observation {
        rate,
        peak_utilisation: period.peak_utilisation,
        samples: samples - period.samples_at_start,
        drops,
        busy_fraction: period.busy.as_secs_f64() / elapsed.max(1e-9),
        period_secs: elapsed,
    };
    shared.stats.set_utilisation(period.peak_utilisation);
    let next = controller::next_rate(&shared.config.controller, &observation) as f32;
    if next != rate as f32 {
        shared.pipeline.rate.publish(next);
        shared.stats.rate_changes.fetch_add(1, Ordering::Relaxed);
        log::info!(
            target: "hotmetrics",
            old_rate = rate,
            new_rate = f64::from(next),
            peak_utilisation = observation.peak_utilisation,
            drops = drops,
            busy_fraction = observation.busy_fraction;
            "sample rate {rate:.4} -> {next:.4} (peak ring use {:.0}%, {} drops, flusher busy {:.1}%)",
            observation.peak_utilisation * 100.0,
            drops,
            observation.busy_fraction * 100.0
        );
    }
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
    // An RMW read (not a load), pairing with the increment in
    // `Pipeline::spill`: see `Ring::is_closed_seqcst` for why.
    while pipeline.spilling.fetch_add(0, Ordering::SeqCst) != 0 && Instant::now() < deadline {
        thread::yield_now();
    }
    for (ring, final_tail) in pipeline.rings.iter().zip(finals) {
        drain_to(ring, aggregator, deadline, || final_tail);
    }
    // An owned ring has no final claim count: drain until everything its
    // holder published is in (a push that read the closed flag just before
    // it was set may still be publishing).
    for ring in pipeline.owned.iter() {
        drain_to(ring, aggregator, deadline, || ring.published_tail());
    }
    let dropped = pipeline.samples_dropped.load(Ordering::Relaxed);
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
