//! Conservation: every call is accounted for, exactly.
//!
//! Each producer thread seeds its sampler (`sampler::seed_this_thread`) and
//! steps a private copy of the same sampler in lockstep with its real calls,
//! so the test knows exactly which calls were sampled and with which `p`.
//! Rates are powers of two, so every weighted value `v/p` and every sum of
//! them is exact in `f64`. Per series the engine must then report:
//!
//! * exact calls: their exact total;
//! * sampled calls: samples drained + samples spilled = samples taken, and
//!   Σ v/p over both = Σ v/p of the samples taken, to the last bit;
//! * the engine's own counters: `samples_recorded + samples_spilled` = all
//!   samples taken, `exact_calls` = all exact calls.
//!
//! The unsampled calls are the rest: nothing is lost without account. A
//! property test explores producers, ring capacities and shards, rates,
//! drain pauses and concurrent snapshots; a stress test runs 10⁷ calls from
//! more producer threads than cores through a 4-slot ring.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};

use crate::export::InMemory;
use crate::hot::rate::RateCell;
use crate::hot::sampler::Sampler;
use crate::hot::thread::seed_this_thread;
use crate::test_support::engine_lock;
use crate::{Engine, Snapshot};

/// Histogram series, by label value.
const HISTOGRAMS: [&str; 3] = ["h0", "h1", "h2"];
/// Sampled counter series, by label value.
const COUNTERS: [&str; 2] = ["c0", "c1"];

/// What one producer did, as its replay saw it.
#[derive(Debug, Default, Clone)]
struct Expected {
    /// Per series (label value): samples taken, Σ 1/p, Σ v/p.
    sampled: HashMap<&'static str, (u64, f64, f64)>,
    /// Exact (critical) calls and their total.
    exact_calls: u64,
    exact_total: f64,
    /// Calls of every kind, sampled or not.
    calls: u64,
}

impl Expected {
    fn merge(&mut self, other: &Expected) {
        for (series, (samples, weight, value)) in &other.sampled {
            let entry = self.sampled.entry(series).or_default();
            entry.0 += samples;
            entry.1 += weight;
            entry.2 += value;
        }
        self.exact_calls += other.exact_calls;
        self.exact_total += other.exact_total;
        self.calls += other.calls;
    }

    fn samples(&self) -> u64 {
        self.sampled.values().map(|entry| entry.0).sum()
    }
}

/// One producer: `calls` calls over the series, chosen by its own
/// generator; its sampler seeded with `seed`; a yield every `yield_every`
/// calls and a 1 ms sleep every `sleep_every` (0: never).
#[derive(Clone, Debug)]
struct Producer {
    seed: u64,
    calls: u32,
    yield_every: u32,
    sleep_every: u32,
}

fn produce(producer: &Producer, rate: f32) -> Expected {
    let histograms: Vec<_> = HISTOGRAMS
        .iter()
        .map(|series| crate::histogram("conservation.hist").with_labels(&[("series", series)]))
        .collect();
    let counters: Vec<_> = COUNTERS
        .iter()
        .map(|series| crate::counter("conservation.count").with_labels(&[("series", series)]))
        .collect();
    let critical = crate::counter("conservation.critical").critical();
    seed_this_thread(producer.seed);
    let replay = Sampler::with_seed(producer.seed);
    let rate_cell = RateCell::new(rate);
    let mut choose = fastrand::Rng::with_seed(producer.seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut expected = Expected::default();
    let sampled = |expected: &mut Expected, series: &'static str, value: f64| {
        // The replay steps exactly as the thread's own sampler did.
        if replay.skip() {
            return;
        }
        if let Some(p) = replay.decide(&rate_cell, 1) {
            let entry = expected.sampled.entry(series).or_default();
            let p = f64::from(p);
            entry.0 += 1;
            entry.1 += 1.0 / p;
            entry.2 += value / p;
        }
    };
    for call in 1..=producer.calls {
        expected.calls += 1;
        match choose.u32(0..10) {
            0..=4 => {
                let which = choose.usize(0..HISTOGRAMS.len());
                let value = f64::from(choose.u32(0..1000));
                histograms[which].record(value);
                sampled(&mut expected, HISTOGRAMS[which], value);
            }
            5..=7 => {
                let which = choose.usize(0..COUNTERS.len());
                let value = choose.u32(1..=10);
                counters[which].add(value);
                sampled(&mut expected, COUNTERS[which], f64::from(value));
            }
            8 => {
                let value = choose.u32(1..=3);
                crate::record!(counter: "conservation.site", value);
                sampled(&mut expected, "site", f64::from(value));
            }
            _ => {
                let value = choose.u32(1..=5);
                critical.add(value);
                expected.exact_calls += 1;
                expected.exact_total += f64::from(value);
            }
        }
        if producer.yield_every > 0 && call % producer.yield_every == 0 {
            thread::yield_now();
        }
        if producer.sleep_every > 0 && call % producer.sleep_every == 0 {
            thread::sleep(Duration::from_millis(1));
        }
    }
    expected
}

/// The engine's figures for one sampled series: samples, Σ 1/p (count of a
/// histogram; `None` for a counter), Σ v/p.
fn observed(snapshot: &Snapshot, series: &str) -> (Option<u64>, Option<f64>, f64) {
    if HISTOGRAMS.contains(&series) {
        let histogram = snapshot
            .histogram("conservation.hist", &[("series", series)])
            .expect("histogram series exported");
        (
            Some(histogram.samples),
            Some(histogram.count.value),
            histogram.sum.value,
        )
    } else {
        let estimate = if series == "site" {
            snapshot.counter("conservation.site", &[])
        } else {
            snapshot.counter("conservation.count", &[("series", series)])
        };
        (None, None, estimate.map_or(0.0, |estimate| estimate.value))
    }
}

/// Checks a final snapshot against what the producers did.
fn assert_conserved(snapshot: &Snapshot, expected: &Expected) {
    let stats = &snapshot.stats;
    let mut histogram_samples = 0;
    for series in HISTOGRAMS.iter().chain(&COUNTERS).chain(&["site"]) {
        let (samples, weight, value) = expected.sampled.get(series).copied().unwrap_or_default();
        let (seen_samples, seen_weight, seen_value) = observed(snapshot, series);
        if let Some(seen_samples) = seen_samples {
            assert_eq!(seen_samples, samples, "{series}: drained + spilled samples");
            histogram_samples += samples;
        }
        if let Some(seen_weight) = seen_weight {
            assert_eq!(seen_weight, weight, "{series}: Σ 1/p");
        }
        assert_eq!(seen_value, value, "{series}: Σ v/p");
    }
    let critical = snapshot.counter("conservation.critical", &[]).unwrap();
    assert_eq!(critical.value, expected.exact_total, "exact total");
    assert!(critical.exact);
    assert_eq!(
        stats.exact_calls, expected.exact_calls,
        "engine's exact_calls"
    );
    assert_eq!(
        stats.samples_recorded + stats.samples_spilled,
        expected.samples(),
        "engine's samples_recorded + samples_spilled vs samples taken ({stats:?})"
    );
    assert!(histogram_samples <= expected.samples());
    assert_eq!(
        snapshot
            .counter("hotmetrics.samples_spilled", &[])
            .unwrap()
            .value,
        stats.samples_spilled as f64
    );
    assert!(expected.samples() + expected.exact_calls <= expected.calls);
}

/// One run: installs an engine, runs the producers (and, with
/// `snapshot_every`, a thread taking snapshots that drain concurrently with
/// the flusher), shuts down and checks the final export.
fn run_scenario(
    producers: &[Producer],
    capacity: usize,
    shards: usize,
    rate: f32,
    drain: Duration,
    snapshot_every: Option<Duration>,
) -> (Expected, Snapshot) {
    let store = InMemory::keeping(1);
    let engine = Engine::builder()
        .sample_rate(f64::from(rate))
        .adaptive(false)
        .buffer_capacity(capacity)
        .ring_shards(shards)
        .drain_interval(drain)
        .export_interval(Duration::from_secs(3600))
        .exporter(store.clone())
        .install()
        .expect("valid settings");
    let done = AtomicBool::new(false);
    let expected = thread::scope(|scope| {
        if let Some(every) = snapshot_every {
            let (engine, done) = (&engine, &done);
            scope.spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let _ = engine.snapshot();
                    thread::sleep(every);
                }
            });
        }
        let workers: Vec<_> = producers
            .iter()
            .map(|producer| scope.spawn(move || produce(producer, rate)))
            .collect();
        let mut expected = Expected::default();
        for worker in workers {
            expected.merge(&worker.join().expect("producer"));
        }
        done.store(true, Ordering::Relaxed);
        expected
    });
    engine.shutdown().expect("clean shutdown");
    let last = store.latest().expect("final export");
    (expected, Arc::unwrap_or_clone(last))
}

fn producer_strategy() -> impl Strategy<Value = Producer> {
    (
        any::<u64>(),
        0u32..6000,
        0u32..64,
        prop_oneof![Just(0u32), 200u32..2000],
    )
        .prop_map(|(seed, calls, yield_every, sleep_every)| Producer {
            seed,
            calls,
            yield_every,
            sleep_every,
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(debug_assertions) { 24 } else { 96 },
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x5eed_c0de),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_call_is_accounted_for(
        producers in proptest::collection::vec(producer_strategy(), 1..6),
        capacity in prop_oneof![Just(2usize), Just(4), 8usize..300],
        shards in 1usize..4,
        rate_shift in 0u32..6,
        drain_ms in prop_oneof![Just(1u64), 2u64..40],
        snapshot_ms in proptest::option::of(0u64..5),
    ) {
        let _lock = engine_lock();
        let rate = 1.0 / (1u32 << rate_shift) as f32;
        let (expected, snapshot) = run_scenario(
            &producers,
            capacity,
            shards,
            rate,
            Duration::from_millis(drain_ms),
            snapshot_ms.map(Duration::from_millis),
        );
        assert_conserved(&snapshot, &expected);
    }
}

/// 10⁷ calls from twice as many producer threads as cores (at least 6)
/// through one 4-slot ring: most samples spill, and every one is still
/// accounted for.
#[test]
fn ten_million_calls_through_a_tiny_ring_are_all_accounted_for() {
    let _lock = engine_lock();
    let cores = thread::available_parallelism().map_or(2, usize::from);
    let threads = (2 * cores).max(6);
    let total_calls = 10_000_000u32;
    let producers: Vec<Producer> = (0..threads as u64)
        .map(|index| Producer {
            seed: 0xfeed_0000 + index,
            calls: total_calls / threads as u32,
            yield_every: 0,
            sleep_every: 0,
        })
        .collect();
    let started = std::time::Instant::now();
    let (expected, snapshot) = run_scenario(&producers, 4, 1, 0.25, Duration::from_millis(1), None);
    println!(
        "stress: {} calls, {threads} threads, {} samples ({} drained, {} spilled), {:.1} s",
        expected.calls,
        expected.samples(),
        snapshot.stats.samples_recorded,
        snapshot.stats.samples_spilled,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        expected.calls,
        u64::from(total_calls / threads as u32) * threads as u64
    );
    assert!(snapshot.stats.samples_spilled > 0, "the ring must overflow");
    assert_conserved(&snapshot, &expected);
}
