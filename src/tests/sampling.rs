//! Statistical honesty of the sampled estimates.
//!
//! Every test runs a fixed-rate or rate-changing engine, records a known
//! truth, and checks the Horvitz–Thompson estimates against it: individual
//! errors within 4 reported standard errors, and over many series the
//! reported standard error close to the spread actually observed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::test_support::engine_lock;
use crate::{record, Engine, Snapshot};

fn fixed_rate(rate: f64) -> Engine {
    Engine::builder()
        .sample_rate(rate)
        .adaptive(false)
        .buffer_capacity(1 << 14)
        .install()
        .unwrap()
}

/// z-scores (estimate − truth) / std_error of the counters `prefix{i}`.
fn z_scores(snapshot: &Snapshot, names: &[String], truth: f64) -> Vec<f64> {
    names
        .iter()
        .map(|name| {
            let estimate = snapshot.counter(name, &[]).unwrap();
            assert!(estimate.std_error > 0.0, "{name} has no spread");
            (estimate.value - truth) / estimate.std_error
        })
        .collect()
}

fn mean_and_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

#[test]
fn rate_three_percent_million_calls_within_four_std_errors() {
    let _lock = engine_lock();
    let engine = fixed_rate(0.03);
    thread::spawn(|| {
        for i in 0..1_000_000u64 {
            record!(counter: "stat.ones", 1);
            record!(counter: "stat.values", i % 7);
            record!(updown: "stat.updown", if i % 3 == 0 { -2 } else { 1 });
            record!(histogram: "stat.hist", (i % 100) as f64);
        }
    })
    .join()
    .unwrap();
    let snapshot = engine.snapshot();
    let truths = [
        ("stat.ones", 1_000_000.0),
        (
            "stat.values",
            (0..1_000_000u64).map(|i| (i % 7) as f64).sum::<f64>(),
        ),
    ];
    // A level is never sampled: exact in every mode.
    let level = snapshot.updown("stat.updown", &[]).unwrap();
    assert!(level.exact);
    assert_eq!(
        level.value,
        (0..1_000_000i64)
            .map(|i| if i % 3 == 0 { -2 } else { 1 })
            .sum::<i64>() as f64
    );
    for (name, truth) in truths {
        let estimate = snapshot.counter(name, &[]).unwrap();
        assert!(!estimate.exact);
        assert!(
            (estimate.value - truth).abs() <= 4.0 * estimate.std_error,
            "{name}: {} ± {} vs {truth}",
            estimate.value,
            estimate.std_error
        );
    }
    // A level is never sampled: the up-down counter is exact at any rate.
    let level = snapshot.updown("stat.updown", &[]).unwrap();
    let level_truth = (0..1_000_000u64)
        .map(|i| if i % 3 == 0 { -2.0 } else { 1.0 })
        .sum::<f64>();
    assert!(level.exact);
    assert_eq!((level.value, level.std_error), (level_truth, 0.0));
    let hist = snapshot.histogram("stat.hist", &[]).unwrap();
    assert!((hist.count.value - 1e6).abs() <= 4.0 * hist.count.std_error);
    let sum_truth = 10_000.0 * (0..100).sum::<u64>() as f64;
    assert!((hist.sum.value - sum_truth).abs() <= 4.0 * hist.sum.std_error);
    assert!(!hist.min_max_exact, "min and max of samples are not exact");
    let median = hist.quantile(0.5).unwrap();
    assert!((median - 49.5).abs() <= 3.0, "median {median}");
    engine.shutdown().unwrap();
}

#[test]
fn reported_std_error_matches_the_observed_spread() {
    let _lock = engine_lock();
    let engine = fixed_rate(0.03);
    let names: Vec<String> = (0..200).map(|i| format!("spread.rep{i}")).collect();
    let handles: Vec<_> = names.iter().map(|name| crate::counter(name)).collect();
    let per_series = 20_000u64;
    thread::scope(|scope| {
        scope.spawn(|| {
            for round in 0..per_series {
                for handle in &handles {
                    handle.add(1 + round % 3);
                }
            }
        });
    });
    let truth = (0..per_series)
        .map(|round| (1 + round % 3) as f64)
        .sum::<f64>();
    let snapshot = engine.snapshot();
    let estimates: Vec<f64> = names
        .iter()
        .map(|name| snapshot.counter(name, &[]).unwrap().value)
        .collect();
    let (mean, observed_sd) = mean_and_sd(&estimates);
    let reported_sd = names
        .iter()
        .map(|name| snapshot.counter(name, &[]).unwrap().std_error)
        .sum::<f64>()
        / names.len() as f64;
    let ratio = reported_sd / observed_sd;
    assert!(
        (0.75..=1.25).contains(&ratio),
        "reported {reported_sd:.1} vs observed {observed_sd:.1} (ratio {ratio:.3})"
    );
    // Unbiased: the mean of 200 estimates is within 4 standard errors of
    // the mean of the truth.
    let se_of_mean = observed_sd / (names.len() as f64).sqrt();
    assert!(
        (mean - truth).abs() <= 4.0 * se_of_mean,
        "mean {mean} vs {truth}"
    );
    engine.shutdown().unwrap();
}

#[test]
fn rate_changes_mid_run_keep_estimates_unbiased() {
    let _lock = engine_lock();
    let engine = Engine::builder()
        .sample_rate(0.03)
        .adaptive(false)
        .buffer_capacity(1 << 14)
        .install()
        .unwrap();
    let names: Vec<String> = (0..100).map(|i| format!("flip.rep{i}")).collect();
    let handles: Vec<_> = names.iter().map(|name| crate::counter(name)).collect();
    let done = Arc::new(AtomicBool::new(false));
    let per_series = 30_000u64;
    thread::scope(|scope| {
        let flipper_done = done.clone();
        let engine = &engine;
        scope.spawn(move || {
            let rates = [0.01, 0.15, 0.03, 0.08];
            let mut step = 0;
            while !flipper_done.load(Ordering::Relaxed) {
                engine.set_sample_rate(rates[step % rates.len()]).unwrap();
                step += 1;
                thread::sleep(Duration::from_micros(300));
            }
        });
        scope.spawn(|| {
            for _ in 0..per_series {
                for handle in &handles {
                    handle.add(1u64);
                }
            }
            done.store(true, Ordering::Relaxed);
        });
    });
    assert!(
        engine.stats().rate_changes > 10,
        "the rate must really change"
    );
    let snapshot = engine.snapshot();
    let z = z_scores(&snapshot, &names, per_series as f64);
    let (mean_z, sd_z) = mean_and_sd(&z);
    assert!(z.iter().all(|z| z.abs() < 4.5), "z-scores {z:?}");
    // Unbiased: the mean z-score of 100 series is within 4/√100 of 0; the
    // std errors are honest: the z-scores spread like a standard normal.
    assert!(mean_z.abs() < 0.4, "mean z {mean_z}");
    assert!((0.75..=1.25).contains(&sd_z), "sd of z {sd_z}");
    engine.shutdown().unwrap();
}

#[test]
fn controller_driven_rate_changes_keep_estimates_unbiased() {
    let _lock = engine_lock();
    let engine = Engine::builder()
        .sample_rate(0.15)
        .rate_bounds(0.01, 0.15)
        .controller_mode(crate::drain::controller::ControllerMode::Reference)
        .controller_period(Duration::from_millis(5))
        .buffer_capacity(16)
        .ring_shards(1)
        .install()
        .unwrap();
    let calls = 2_000_000u64;
    let workers: Vec<_> = (0..2)
        .map(|_| {
            thread::spawn(move || {
                for _ in 0..calls / 2 {
                    record!(counter: "controlled.calls", 1);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let snapshot = engine.snapshot();
    assert!(snapshot.stats.rate_changes > 0, "{:?}", snapshot.stats);
    let estimate = snapshot.counter("controlled.calls", &[]).unwrap();
    assert!(
        (estimate.value - calls as f64).abs() <= 4.0 * estimate.std_error,
        "{} ± {}",
        estimate.value,
        estimate.std_error
    );
    engine.shutdown().unwrap();
}
