//! Error targeting end to end: the default engine on a mixed workload.
//!
//! Two threads record, on every iteration, a hot counter and a histogram,
//! and counters hit once per 10³, 10⁴ and 10⁵ iterations; an up-down level
//! gets +1/−1 pairs and then +37 per thread. The engine runs for many
//! control periods (50 ms) within an accuracy window of 1 s. Every counter
//! and the histogram's count must come out within 4 % of the truth (4
//! standard errors at the 1 % target) and the level exactly, in each of
//! the seeded runs; the hot series must be sampled sparsely (about 10⁴
//! samples per window, at or below 10⁻³ when it makes more than 10⁷ calls
//! per window), so the test cannot pass by recording everything.

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use crate::hot::thread::seed_this_thread;
use crate::record;
use crate::test_support::engine_lock;
use crate::{Engine, MetricValue, SeriesSnapshot, Snapshot};

const RUN: Duration = Duration::from_millis(1600);
const WINDOW: Duration = Duration::from_secs(1);

/// What one thread recorded: iterations, and calls of each rare counter.
#[derive(Clone, Copy, Debug, Default)]
struct Truth {
    iterations: u64,
    rare: [u64; 3],
}

fn workload(seed: u64) -> Truth {
    seed_this_thread(seed);
    let started = Instant::now();
    let mut truth = Truth::default();
    let mut state = seed | 1;
    'run: loop {
        for _ in 0..4096 {
            let i = truth.iterations;
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            record!(counter: "mixed.hot", 1);
            record!(histogram: "mixed.latency_us", (50 + (state >> 54)) as f64);
            if i % 1_000 == 0 {
                record!(counter: "mixed.rare_1e3", 1);
                truth.rare[0] += 1;
            }
            if i % 10_000 == 0 {
                record!(counter: "mixed.rare_1e4", 1);
                truth.rare[1] += 1;
            }
            if i % 100_000 == 0 {
                record!(counter: "mixed.rare_1e5", 1);
                truth.rare[2] += 1;
            }
            record!(updown: "mixed.level", 1);
            record!(updown: "mixed.level", -1);
            truth.iterations += 1;
            black_box(state);
        }
        if started.elapsed() >= RUN {
            break 'run;
        }
    }
    record!(updown: "mixed.level", 37);
    truth
}

fn series<'a>(snapshot: &'a Snapshot, name: &str) -> &'a SeriesSnapshot {
    snapshot
        .series
        .iter()
        .find(|series| &*series.name == name)
        .unwrap_or_else(|| panic!("{name} in the snapshot"))
}

fn run(seed: u64) {
    let engine = Engine::builder()
        .controller_period(Duration::from_millis(50))
        .accuracy_window(WINDOW)
        .install()
        .expect("default engine");
    let started = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|index| thread::spawn(move || workload(seed * 2 + index)))
        .collect();
    let truths: Vec<Truth> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let elapsed = started.elapsed().as_secs_f64();
    let snapshot = engine.snapshot();
    engine.shutdown().unwrap();
    let iterations: u64 = truths.iter().map(|truth| truth.iterations).sum();
    let rare = |k: usize| truths.iter().map(|truth| truth.rare[k]).sum::<u64>();
    let expected = [
        ("mixed.hot", iterations),
        ("mixed.rare_1e3", rare(0)),
        ("mixed.rare_1e4", rare(1)),
        ("mixed.rare_1e5", rare(2)),
    ];
    for (name, truth) in expected {
        let estimate = snapshot.counter(name, &[]).unwrap();
        let off = (estimate.value - truth as f64) / truth as f64;
        println!(
            "seed {seed}: {name}: {:.0} ± {:.0} ({} samples{}) vs {truth}: {:+.2} %",
            estimate.value,
            estimate.std_error,
            estimate.samples,
            if estimate.exact { ", exact" } else { "" },
            off * 100.0
        );
        assert!(off.abs() <= 0.04, "{name}: {off:+.4} off");
    }
    let MetricValue::Histogram(histogram) = &series(&snapshot, "mixed.latency_us").value else {
        panic!("a histogram");
    };
    let off = (histogram.count.value - iterations as f64) / iterations as f64;
    println!(
        "seed {seed}: histogram count {:.0} ± {:.0} ({} samples) vs {iterations}: {:+.2} %",
        histogram.count.value,
        histogram.count.std_error,
        histogram.samples,
        off * 100.0
    );
    assert!(off.abs() <= 0.04, "histogram count {off:+.4} off");
    let level = snapshot.updown("mixed.level", &[]).unwrap();
    assert!(level.exact, "a level is exact");
    assert_eq!(level.value, 74.0);

    let hot = series(&snapshot, "mixed.hot");
    let prob = hot.inclusion_prob.expect("the hot counter is sampled");
    let calls_per_window = iterations as f64 / elapsed * WINDOW.as_secs_f64();
    let samples_per_window = prob * calls_per_window;
    println!(
        "seed {seed}: hot counter π = {prob:.2e}, {calls_per_window:.2e} calls and \
         {samples_per_window:.0} samples per window, target met: {:?}",
        hot.target_met
    );
    // About 10⁴: the allocation follows each period's measured rate, so on
    // a machine whose speed varies during the run (other load) the run's
    // average lands within a few times of it.
    assert!(
        (3_000.0..=40_000.0).contains(&samples_per_window),
        "about 10⁴ samples per window, not {samples_per_window:.0}"
    );
    // Sparse: never near recording everything, and at most 1 % once the
    // hot counter makes millions of calls per window (a debug build on a
    // machine busy with other work may make fewer, and then needs more).
    assert!(prob <= 0.05, "sparse: π = {prob}");
    if calls_per_window > 4e6 {
        assert!(
            prob <= 0.01,
            "sparse: π = {prob} at {calls_per_window:.2e} calls per window"
        );
    }
    if calls_per_window > 1.2e7 {
        assert!(
            prob <= 1e-3,
            "π = {prob} at {calls_per_window:.2e} calls per window"
        );
    }
    assert_eq!(hot.target_met, Some(true));
    assert!(
        series(&snapshot, "mixed.rare_1e5").inclusion_prob.is_none(),
        "a counter that needs more than π = ½ is recorded exactly"
    );
}

#[test]
fn the_default_engine_meets_every_series_target_on_a_mixed_workload() {
    let _lock = engine_lock();
    for seed in [1, 2] {
        run(seed);
    }
}
