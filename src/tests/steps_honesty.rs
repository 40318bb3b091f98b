//! Statistical honesty of per-series steps, over 1000 seeded trials at the
//! sampler and aggregator level (the code the engine runs, without
//! threads).
//!
//! Each trial runs one thread's countdown at a base rate `p` drawn in
//! [0.005, 0.05] through three frequency classes of series: *hot* (a call
//! every event, step 1), *warm* (one event in 10) and *rare* (one in 100),
//! each with a counter and a histogram. Warm and rare series take steps of
//! their own, drawn so that their probability `1 − (1 − p)^s` is about 10×
//! and 100× the base rate (at most ½); the base rate and every step change
//! one to three times mid-run. The calls of all series interleave on the
//! one countdown, as on a real thread. In every class the nominal 95 %
//! interval `estimate ± 1.96·std_error` must cover the truth in 93–97 % of
//! the trials, for the counter total and the histogram's count and sum.
//!
//! The control corrects each sample with the probability its series has at
//! the end of the trial (its last step at the last base rate) instead of
//! the one the sample carries: it must fail, which shows the test can.

use crate::drain::aggregate::Aggregator;
use crate::drain::allocator::prob_of;
use crate::hot::cell::Kind;
use crate::hot::rate::RateCell;
use crate::hot::registry;
use crate::hot::sample::{MetricId, Sample};
use crate::hot::sampler::Sampler;
use crate::report::distribution::DEFAULT_PRECISION;

const Z95: f64 = 1.96;
const TRIALS: u64 = 1000;

/// One frequency class: how often it is called, and how its probability
/// relates to the base rate.
#[derive(Clone, Copy, Debug)]
struct Class {
    name: &'static str,
    every: u32,
    boost: f64,
}

const CLASSES: [Class; 3] = [
    Class {
        name: "hot",
        every: 1,
        boost: 1.0,
    },
    Class {
        name: "warm",
        every: 10,
        boost: 10.0,
    },
    Class {
        name: "rare",
        every: 100,
        boost: 100.0,
    },
];

/// The step giving about `boost × p` (at most ½), jittered ×0.5–2 so steps
/// differ between trials and changes.
fn draw_step(rng: &mut fastrand::Rng, class: Class, p: f64) -> u64 {
    if class.boost == 1.0 {
        return 1;
    }
    let target = (class.boost * p * (0.5 + 1.5 * rng.f64())).min(0.5);
    ((-target).ln_1p() / (-p).ln_1p()).round().max(1.0) as u64
}

fn lognormal(rng: &mut fastrand::Rng, median: f64, sigma: f64) -> f64 {
    let u1 = 1.0 - rng.f64();
    let u2 = rng.f64();
    let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    median * (sigma * normal).exp()
}

fn covers(estimate: f64, variance: f64, truth: f64) -> bool {
    (estimate - truth).abs() <= Z95 * variance.max(0.0).sqrt()
}

#[derive(Clone, Copy, Default)]
struct Tally {
    counter: u32,
    count: u32,
    sum: u32,
    control: u32,
    samples: u64,
}

#[test]
fn per_series_steps_keep_95_percent_intervals_honest_in_every_class() {
    let _registry = crate::test_support::registry_without_engine();
    let ids: Vec<(MetricId, MetricId)> = CLASSES
        .iter()
        .map(|class| {
            let id = |kind, suffix| {
                registry::series(&format!("steps.{}.{suffix}", class.name), kind, &[])
                    .expect("valid test metric")
                    .id()
            };
            (id(Kind::Counter, "counter"), id(Kind::Histogram, "latency"))
        })
        .collect();
    let mut aggregator = Aggregator::beside_the_engine(DEFAULT_PRECISION, 0.001);
    let mut rng = fastrand::Rng::with_seed(0x1234);
    let mut tallies = [Tally::default(); 3];
    for trial in 0..TRIALS {
        let mut p = 0.005 + 0.045 * rng.f64();
        let rate = RateCell::new(p as f32);
        let sampler = Sampler::with_seed((0x5_0000 + trial) << 1);
        let mut steps: Vec<u64> = CLASSES
            .iter()
            .map(|&class| draw_step(&mut rng, class, p))
            .collect();
        let events = rng.u32(20_000..=40_000);
        let mut changes: Vec<u32> = (0..rng.u32(1..=3)).map(|_| rng.u32(1..events)).collect();
        changes.sort_unstable();
        let before: Vec<_> = ids
            .iter()
            .map(|&(counter, histogram)| {
                (
                    aggregator.totals(counter).unwrap(),
                    aggregator.totals(histogram).unwrap(),
                )
            })
            .collect();
        let mut truth = [(0.0f64, 0.0f64, 0u32); 3];
        // Σ v over the counter's samples, for the control.
        let mut sampled_values = [0.0f64; 3];
        let mut samples = [0u64; 3];
        for event in 0..events {
            if changes.first() == Some(&event) {
                changes.remove(0);
                p = 0.005 + 0.045 * rng.f64();
                rate.publish(p as f32);
                for (step, &class) in steps.iter_mut().zip(&CLASSES) {
                    *step = draw_step(&mut rng, class, p);
                }
            }
            for (index, class) in CLASSES.iter().enumerate() {
                if event % class.every != 0 {
                    continue;
                }
                let increment = f64::from(rng.u32(1..=20));
                let latency = lognormal(&mut rng, 100.0, 0.8);
                truth[index].0 += increment;
                truth[index].1 += latency;
                truth[index].2 += 1;
                let (counter, histogram) = ids[index];
                for (id, value) in [(counter, increment), (histogram, latency)] {
                    let step = steps[index];
                    if sampler.skip_by(step) {
                        continue;
                    }
                    if let Some(inclusion_prob) = sampler.decide(&rate, step) {
                        if id == counter {
                            sampled_values[index] += value;
                            samples[index] += 1;
                        }
                        aggregator.absorb(Sample {
                            id,
                            inclusion_prob,
                            value,
                        });
                    }
                }
            }
        }
        let final_rate = f64::from(rate.rate());
        for (index, &(counter, histogram)) in ids.iter().enumerate() {
            let (counter_before, histogram_before) = before[index];
            let counter_after = aggregator.totals(counter).unwrap();
            let histogram_after = aggregator.totals(histogram).unwrap();
            let delta = |after: [f64; 4], before: [f64; 4], i: usize| after[i] - before[i];
            let (total, sum, calls) = truth[index];
            let tally = &mut tallies[index];
            tally.samples += samples[index];
            tally.counter += u32::from(covers(
                delta(counter_after, counter_before, 0),
                delta(counter_after, counter_before, 1),
                total,
            ));
            tally.sum += u32::from(covers(
                delta(histogram_after, histogram_before, 0),
                delta(histogram_after, histogram_before, 1),
                sum,
            ));
            tally.count += u32::from(covers(
                delta(histogram_after, histogram_before, 2),
                delta(histogram_after, histogram_before, 3),
                f64::from(calls),
            ));
            let current = prob_of(final_rate, steps[index]);
            tally.control += u32::from(covers(
                sampled_values[index] / current,
                delta(counter_after, counter_before, 1),
                total,
            ));
        }
    }
    let share = |covered: u32| f64::from(covered) / TRIALS as f64;
    for (class, tally) in CLASSES.iter().zip(&tallies) {
        println!(
            "{} (one event in {}): {:.0} counter samples per trial; coverage counter {:.1} %, \
             histogram count {:.1} %, sum {:.1} %; control with the final probability {:.1} %",
            class.name,
            class.every,
            tally.samples as f64 / TRIALS as f64,
            100.0 * share(tally.counter),
            100.0 * share(tally.count),
            100.0 * share(tally.sum),
            100.0 * share(tally.control),
        );
        assert!(
            tally.samples as f64 / TRIALS as f64 >= 100.0,
            "{}: too few samples per trial for an interval to mean something",
            class.name
        );
        for (what, covered) in [
            ("counter", tally.counter),
            ("histogram count", tally.count),
            ("histogram sum", tally.sum),
        ] {
            assert!(
                (0.93..=0.97).contains(&share(covered)),
                "{} {what}: the 95 % interval covered the truth in {:.1} % of trials",
                class.name,
                100.0 * share(covered)
            );
        }
    }
    let control = tallies.iter().map(|tally| tally.control).sum::<u32>();
    let control_share = f64::from(control) / (3 * TRIALS) as f64;
    assert!(
        control_share < 0.80,
        "the final-probability control should fail: {control} of {} covered",
        3 * TRIALS
    );
}
