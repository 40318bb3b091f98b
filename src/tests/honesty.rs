//! Statistical honesty over many seeded trials, at the sampler and
//! aggregator level (the code the engine runs, without threads, so 1000
//! trials take seconds).
//!
//! * **Coverage.** Each trial draws a rate in [0.01, 0.15], an event count
//!   and value distributions, changes the rate one to three times mid-run,
//!   and runs every event through a seeded [`Sampler`] into the
//!   [`Aggregator`]: one sampled counter call and one sampled histogram call
//!   per event, as a thread recording two metrics does. The nominal 95 %
//!   interval `estimate ± 1.96·std_error` must cover the truth in 93–97 % of
//!   1000 trials, for the counter total and for the histogram's count and
//!   sum. A control estimator that corrects with the rate in force at the
//!   end ("the current rate") must fail the same check, which shows the
//!   test can fail.
//! * **Quantiles.** 10⁶ values from a log-normal and from a bimodal
//!   distribution, sampled at 3 %: the estimated quantiles stay within the
//!   stated relative error of the exact ones (the figures are printed and
//!   quoted in the README).

use crate::drain::aggregate::Aggregator;
use crate::hot::cell::Kind;
use crate::hot::rate::RateCell;
use crate::hot::registry;
use crate::hot::sample::{MetricId, Sample};
use crate::hot::sampler::Sampler;
use crate::report::distribution::DEFAULT_PRECISION;

/// z for a two-sided 95 % interval.
const Z95: f64 = 1.96;

fn series_id(name: &str, kind: Kind) -> MetricId {
    registry::series(name, kind, &[])
        .expect("valid test metric")
        .id()
}

/// A standard normal draw (Box–Muller; one of the pair is enough here).
fn normal(rng: &mut fastrand::Rng) -> f64 {
    let u1 = 1.0 - rng.f64();
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn uniform_rate(rng: &mut fastrand::Rng) -> f32 {
    (0.01 + 0.14 * rng.f64()) as f32
}

/// The value distributions a trial may draw its counter increments and
/// histogram values from.
#[derive(Clone, Copy, Debug)]
enum Values {
    Ones,
    Uniform(u32),
    LogNormal { median: f64, sigma: f64 },
}

impl Values {
    fn pick(rng: &mut fastrand::Rng) -> Self {
        match rng.u32(0..3) {
            0 => Values::Ones,
            1 => Values::Uniform(rng.u32(2..=100)),
            _ => Values::LogNormal {
                median: 10.0 + 990.0 * rng.f64(),
                sigma: 0.2 + 0.6 * rng.f64(),
            },
        }
    }

    fn draw(self, rng: &mut fastrand::Rng) -> f64 {
        match self {
            Values::Ones => 1.0,
            Values::Uniform(max) => f64::from(rng.u32(1..=max)),
            Values::LogNormal { median, sigma } => median * (sigma * normal(rng)).exp(),
        }
    }
}

#[derive(Default)]
struct Coverage {
    trials: u32,
    counter: u32,
    count: u32,
    sum: u32,
    current_rate_counter: u32,
}

fn covers(estimate: f64, variance: f64, truth: f64) -> bool {
    (estimate - truth).abs() <= Z95 * variance.max(0.0).sqrt()
}

#[test]
fn nominal_95_percent_intervals_cover_the_truth_in_93_to_97_percent_of_1000_trials() {
    let _registry = crate::test_support::registry_without_engine();
    let counter = series_id("honesty.trial_counter", Kind::Counter);
    let histogram = series_id("honesty.trial_histogram", Kind::Histogram);
    let mut aggregator = Aggregator::beside_the_engine(DEFAULT_PRECISION, 0.001);
    let mut coverage = Coverage::default();
    let mut rng = fastrand::Rng::with_seed(0x0b5e_55ed);
    let mut rates_seen = (f32::MAX, f32::MIN);
    for trial in 0..1000u64 {
        let rate = RateCell::new(uniform_rate(&mut rng));
        let sampler = Sampler::with_seed((0x7_0000 + trial) << 1);
        let events = rng.u32(5_000..=50_000);
        let increments = Values::pick(&mut rng);
        let latencies = Values::pick(&mut rng);
        let mut changes: Vec<u32> = (0..rng.u32(1..=3)).map(|_| rng.u32(1..events)).collect();
        changes.sort_unstable();
        let before_counter = aggregator.totals(counter).expect("counter synced");
        let before_histogram = aggregator.totals(histogram).expect("histogram synced");
        let (mut truth_total, mut truth_sum) = (0.0, 0.0);
        let mut sampled_plain_total = 0.0;
        for event in 0..events {
            if changes.first() == Some(&event) {
                changes.remove(0);
                let next = uniform_rate(&mut rng);
                rate.publish(next);
            }
            let rate_now = rate.rate();
            rates_seen = (rates_seen.0.min(rate_now), rates_seen.1.max(rate_now));
            let increment = increments.draw(&mut rng);
            let latency = latencies.draw(&mut rng);
            truth_total += increment;
            truth_sum += latency;
            for (id, value) in [(counter, increment), (histogram, latency)] {
                if sampler.skip() {
                    continue;
                }
                if let Some(inclusion_prob) = sampler.decide(&rate, 1) {
                    if id == counter {
                        sampled_plain_total += value;
                    }
                    aggregator.absorb(Sample {
                        id,
                        inclusion_prob,
                        value,
                    });
                }
            }
        }
        let after_counter = aggregator.totals(counter).unwrap();
        let after_histogram = aggregator.totals(histogram).unwrap();
        let delta = |after: [f64; 4], before: [f64; 4], i: usize| after[i] - before[i];
        coverage.trials += 1;
        coverage.counter += u32::from(covers(
            delta(after_counter, before_counter, 0),
            delta(after_counter, before_counter, 1),
            truth_total,
        ));
        coverage.sum += u32::from(covers(
            delta(after_histogram, before_histogram, 0),
            delta(after_histogram, before_histogram, 1),
            truth_sum,
        ));
        coverage.count += u32::from(covers(
            delta(after_histogram, before_histogram, 2),
            delta(after_histogram, before_histogram, 3),
            f64::from(events),
        ));
        // The control: weight every sample by the rate in force at the end,
        // with the same variance as the real estimator.
        let current_rate = f64::from(rate.rate());
        coverage.current_rate_counter += u32::from(covers(
            sampled_plain_total / current_rate,
            delta(after_counter, before_counter, 1),
            truth_total,
        ));
    }
    let share = |covered: u32| f64::from(covered) / f64::from(coverage.trials);
    println!(
        "coverage of the nominal 95 % interval over {} trials (rates {:.3}–{:.3}): \
         counter {:.1} %, histogram count {:.1} %, histogram sum {:.1} %; \
         control corrected with the current rate: {:.1} %",
        coverage.trials,
        rates_seen.0,
        rates_seen.1,
        100.0 * share(coverage.counter),
        100.0 * share(coverage.count),
        100.0 * share(coverage.sum),
        100.0 * share(coverage.current_rate_counter),
    );
    for (what, covered) in [
        ("counter", coverage.counter),
        ("histogram count", coverage.count),
        ("histogram sum", coverage.sum),
    ] {
        assert!(
            (0.93..=0.97).contains(&share(covered)),
            "{what}: the 95 % interval covered the truth in {:.1} % of trials",
            100.0 * share(covered)
        );
    }
    assert!(
        share(coverage.current_rate_counter) < 0.80,
        "the current-rate control should fail: {:.1} %",
        100.0 * share(coverage.current_rate_counter)
    );
}

/// Exact `q`-quantile of sorted values: the smallest value with at least
/// `q·n` values at or below it.
fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The stated bound on the relative error of each quantile at 3 % of 10⁶
/// values (≈ 30 000 samples): about four binomial standard errors of the
/// rank, turned into value error by the density there, plus the
/// histogram's 0.1 % precision.
const QUANTILE_BOUNDS: [(f64, f64); 5] = [
    (0.50, 0.03),
    (0.90, 0.04),
    (0.99, 0.08),
    (0.999, 0.20),
    (0.25, 0.03),
];

fn check_quantiles(name: &str, mut draw: impl FnMut(&mut fastrand::Rng) -> f64, seed: u64) {
    let id = series_id(name, Kind::Histogram);
    let mut aggregator = Aggregator::beside_the_engine(DEFAULT_PRECISION, 0.001);
    let rate = RateCell::new(0.03);
    let sampler = Sampler::with_seed(seed);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut values = Vec::with_capacity(1_000_000);
    for _ in 0..1_000_000 {
        let value = draw(&mut rng);
        values.push(value);
        if sampler.skip() {
            continue;
        }
        if let Some(inclusion_prob) = sampler.decide(&rate, 1) {
            aggregator.absorb(Sample {
                id,
                inclusion_prob,
                value,
            });
        }
    }
    values.sort_unstable_by(f64::total_cmp);
    let series = aggregator.series_snapshot(f64::from(rate.rate()));
    let histogram = series
        .iter()
        .find(|series| &*series.name == name)
        .and_then(|series| match &series.value {
            crate::MetricValue::Histogram(histogram) => Some(histogram),
            _ => None,
        })
        .expect("histogram in the snapshot");
    let mut report = Vec::new();
    for (q, bound) in QUANTILE_BOUNDS {
        let exact = exact_quantile(&values, q);
        let estimate = histogram.quantile(q).expect("non-empty");
        let relative = (estimate - exact).abs() / exact;
        let rank = values.partition_point(|&v| v <= estimate) as f64 / values.len() as f64;
        report.push(format!(
            "p{}: {estimate:.2} vs {exact:.2} ({:.2} %, rank {:.4})",
            q * 100.0,
            relative * 100.0,
            rank
        ));
        assert!(
            relative <= bound,
            "{name} p{}: estimate {estimate} vs exact {exact}: {:.2} % > {:.0} %",
            q * 100.0,
            relative * 100.0,
            bound * 100.0
        );
    }
    println!(
        "{name}: {} samples of 10^6 values; {}",
        histogram.samples,
        report.join("; ")
    );
}

#[test]
fn quantiles_of_a_sampled_log_normal_stay_within_the_stated_error() {
    let _registry = crate::test_support::registry_without_engine();
    // Latencies: median 100, σ = 1 (p99.9 ≈ 22× the median).
    check_quantiles(
        "honesty.quantiles_log_normal",
        |rng| 100.0 * normal(rng).exp(),
        0x0001_0ca1,
    );
}

#[test]
fn quantiles_of_a_sampled_bimodal_distribution_stay_within_the_stated_error() {
    let _registry = crate::test_support::registry_without_engine();
    // 70 % fast path around 50, 30 % slow path around 500.
    check_quantiles(
        "honesty.quantiles_bimodal",
        |rng| {
            if rng.f64() < 0.7 {
                (50.0 + 5.0 * normal(rng)).max(0.0)
            } else {
                (500.0 + 50.0 * normal(rng)).max(0.0)
            }
        },
        0x000b_1da1,
    );
}
