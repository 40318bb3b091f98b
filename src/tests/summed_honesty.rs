//! Error bars across instances: the variances the exporters send, summed
//! as a backend sums them, give honest intervals for sums of estimates.
//!
//! Each of 1000 seeded trials is a time window over six independent
//! "instances", each its own [`Aggregator`] and seeded [`Sampler`] (the
//! code the engine runs, without threads), as six processes behind a
//! collector are. Every instance has its own base rate in [0.005, 0.05],
//! changed zero to two times during the window, its own step per series
//! (so the same series has a different inclusion probability in each
//! instance), and its own number of events; each event is one call of a
//! sampled counter and one of a sampled histogram, with values from a
//! distribution drawn per trial. The aggregators live across trials, so
//! a trial reads each instance's cumulative totals before and after, as
//! `increase()` over a window does.
//!
//! What a backend computes, `sum(increase(x_total))` and
//! `sum(increase(x_variance_total))`, must give an interval
//! `Σ ± 1.96·√(Σ variance)` that covers the true sum in 93–97 % of the
//! trials, for the counter total and the histogram's count and sum. Two
//! controls must fail the same check, which shows it can fail:
//!
//! * summing the instances' standard errors, which is what a standard
//!   error gauge invites (`sum(x_std_error)`): intervals too wide, cover
//!   nearly always;
//! * averaging the variances (`avg` where `sum` belongs): intervals too
//!   narrow.
//!
//! Run alone to see the figures (quoted in the README):
//! `cargo test --lib tests::summed_honesty -- --nocapture`.

use crate::drain::aggregate::Aggregator;
use crate::hot::cell::Kind;
use crate::hot::rate::RateCell;
use crate::hot::registry;
use crate::hot::sample::{MetricId, Sample};
use crate::hot::sampler::Sampler;
use crate::report::distribution::DEFAULT_PRECISION;

const Z95: f64 = 1.96;
const TRIALS: u32 = 1000;
const INSTANCES: usize = 6;

fn series_id(name: &str, kind: Kind) -> MetricId {
    registry::series(name, kind, &[])
        .expect("valid test metric")
        .id()
}

fn base_rate(rng: &mut fastrand::Rng) -> f64 {
    0.005 + 0.045 * rng.f64()
}

/// How a trial's values are drawn (the same for every instance).
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
            1 => Values::Uniform(rng.u32(2..=50)),
            _ => Values::LogNormal {
                median: 5.0 + 495.0 * rng.f64(),
                sigma: 0.2 + 0.6 * rng.f64(),
            },
        }
    }

    fn draw(self, rng: &mut fastrand::Rng) -> f64 {
        match self {
            Values::Ones => 1.0,
            Values::Uniform(max) => f64::from(rng.u32(1..=max)),
            Values::LogNormal { median, sigma } => {
                let u1 = 1.0 - rng.f64();
                let u2 = rng.f64();
                let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                median * (sigma * normal).exp()
            }
        }
    }
}

/// One instance's window: estimate and variance increases of the
/// counter total, histogram count and histogram sum, their truths, and
/// the counter's samples.
#[derive(Clone, Copy, Default)]
struct Window {
    estimate: [f64; 3],
    variance: [f64; 3],
    truth: [f64; 3],
    samples: u64,
}

/// Runs one instance through a window of `events` events.
fn run_instance(
    aggregator: &mut Aggregator,
    ids: (MetricId, MetricId),
    seed: u64,
    events: u32,
    values: (Values, Values),
    rng: &mut fastrand::Rng,
) -> Window {
    let (counter, histogram) = ids;
    let rate = RateCell::new(base_rate(rng) as f32);
    let sampler = Sampler::with_seed(seed);
    let mut steps = [rng.u64(1..=4), rng.u64(1..=4)];
    let mut changes: Vec<u32> = (0..rng.u32(0..=2)).map(|_| rng.u32(1..events)).collect();
    changes.sort_unstable();
    let before = (
        aggregator.totals(counter).expect("synced"),
        aggregator.totals(histogram).expect("synced"),
    );
    let mut window = Window::default();
    for event in 0..events {
        if changes.first() == Some(&event) {
            changes.remove(0);
            rate.publish(base_rate(rng) as f32);
            steps = [rng.u64(1..=4), rng.u64(1..=4)];
        }
        let increment = values.0.draw(rng);
        let latency = values.1.draw(rng);
        window.truth[0] += increment;
        window.truth[1] += 1.0;
        window.truth[2] += latency;
        for ((id, value), step) in [(counter, increment), (histogram, latency)]
            .into_iter()
            .zip(steps)
        {
            if sampler.skip_by(step) {
                continue;
            }
            if let Some(inclusion_prob) = sampler.decide(&rate, step) {
                window.samples += u64::from(id == counter);
                aggregator.absorb(Sample {
                    id,
                    inclusion_prob,
                    value,
                });
            }
        }
    }
    let after = (
        aggregator.totals(counter).unwrap(),
        aggregator.totals(histogram).unwrap(),
    );
    // totals: [Σ v/π, Σ v²(1−π)/π², Σ 1/π, Σ (1−π)/π²]
    window.estimate = [
        after.0[0] - before.0[0],
        after.1[2] - before.1[2],
        after.1[0] - before.1[0],
    ];
    window.variance = [
        after.0[1] - before.0[1],
        after.1[3] - before.1[3],
        after.1[1] - before.1[1],
    ];
    window
}

fn covers(estimate: f64, std_error: f64, truth: f64) -> bool {
    (estimate - truth).abs() <= Z95 * std_error
}

/// Trials covered, per quantity (counter, histogram count, sum), for the
/// summed variance and the two controls.
#[derive(Default)]
struct Coverage {
    summed_variance: [u32; 3],
    summed_std_errors: [u32; 3],
    averaged_variance: [u32; 3],
}

const QUANTITIES: [&str; 3] = ["counter", "histogram count", "histogram sum"];

#[test]
fn summed_variances_give_honest_intervals_for_sums_across_instances() {
    let _registry = crate::test_support::registry_without_engine();
    let ids = (
        series_id("summed.trial_counter", Kind::Counter),
        series_id("summed.trial_histogram", Kind::Histogram),
    );
    let mut instances: Vec<Aggregator> = (0..INSTANCES)
        .map(|_| Aggregator::beside_the_engine(DEFAULT_PRECISION, 0.001))
        .collect();
    let mut rng = fastrand::Rng::with_seed(0x05ee_d50f_1a57);
    let mut coverage = Coverage::default();
    let (mut fewest_samples, mut all_samples) = (u64::MAX, 0u64);
    for trial in 0..TRIALS {
        let values = (Values::pick(&mut rng), Values::pick(&mut rng));
        let windows: Vec<Window> = instances
            .iter_mut()
            .enumerate()
            .map(|(index, aggregator)| {
                // Independent streams: `Sampler::with_seed` sets the low
                // bit, so seeds 2k and 2k + 1 would be the same stream and
                // two instances would sample alike (correlated samples,
                // whose variances do not add).
                let seed = 0x9_0000 + 2 * (u64::from(trial) * INSTANCES as u64 + index as u64);
                let events = rng.u32(2_000..=12_000);
                run_instance(aggregator, ids, seed, events, values, &mut rng)
            })
            .collect();
        let samples: u64 = windows.iter().map(|w| w.samples).sum();
        fewest_samples = fewest_samples.min(samples);
        all_samples += samples;
        for q in 0..3 {
            let estimate: f64 = windows.iter().map(|w| w.estimate[q]).sum();
            let truth: f64 = windows.iter().map(|w| w.truth[q]).sum();
            let variance: f64 = windows.iter().map(|w| w.variance[q]).sum();
            let std_errors: f64 = windows.iter().map(|w| w.variance[q].sqrt()).sum();
            let covered = |std_error| u32::from(covers(estimate, std_error, truth));
            coverage.summed_variance[q] += covered(variance.sqrt());
            coverage.summed_std_errors[q] += covered(std_errors);
            coverage.averaged_variance[q] += covered((variance / INSTANCES as f64).sqrt());
        }
    }
    let share = |covered: u32| f64::from(covered) / f64::from(TRIALS);
    let mean_samples = all_samples as f64 / f64::from(TRIALS);
    println!(
        "sums over {INSTANCES} instances, {TRIALS} trials, {mean_samples:.0} counter samples per \
         trial summed (fewest {fewest_samples}):"
    );
    for (q, what) in QUANTITIES.iter().enumerate() {
        println!(
            "  {what}: ±1.96·√(Σ variance) covers {:.1} %; controls: ±1.96·Σ std_error {:.1} %, \
             ±1.96·√(mean variance) {:.1} %",
            100.0 * share(coverage.summed_variance[q]),
            100.0 * share(coverage.summed_std_errors[q]),
            100.0 * share(coverage.averaged_variance[q]),
        );
    }
    assert!(
        mean_samples >= 500.0 && fewest_samples >= 50,
        "too few samples per trial for an interval to mean something"
    );
    for (q, what) in QUANTITIES.iter().enumerate() {
        let honest = share(coverage.summed_variance[q]);
        assert!(
            (0.93..=0.97).contains(&honest),
            "{what}: the summed 95 % interval covered the truth in {:.1} % of trials",
            100.0 * honest
        );
        let too_wide = share(coverage.summed_std_errors[q]);
        assert!(
            too_wide > 0.97,
            "{what}: the summed-standard-error control should over-cover: {:.1} %",
            100.0 * too_wide
        );
        let too_narrow = share(coverage.averaged_variance[q]);
        assert!(
            too_narrow < 0.93,
            "{what}: the averaged-variance control should under-cover: {:.1} %",
            100.0 * too_narrow
        );
    }
}
