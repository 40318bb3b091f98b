//! Error targeting: how much each series is sampled, a pure function of
//! what the last control period showed.
//!
//! # The target
//!
//! A series sampled with inclusion probability `π` has, over an accuracy
//! window of `N` calls with values of coefficient of variation `CV`, a
//! Horvitz–Thompson total whose relative variance is
//! `(1 + CV²)(1 − π) / (π N)`. Setting it to `ε²` gives the probability the
//! series needs:
//!
//! ```text
//! π = c / (ε² N + c),   c = 1 + CV²
//! ```
//!
//! (about `c / ε²` samples per window: 10⁴ for unit increments at ε = 1 %).
//! A histogram needs that for its count (`c = 1`) and, for the rank of
//! quantile `q` to be known to `±δ`, `π = q(1 − q) / (δ² N + q(1 − q))`:
//! the larger of the two, whatever the bucket layout.
//!
//! # From probabilities to steps
//!
//! Every sampled series shares the thread's countdown of Bernoulli(`p`)
//! trials and takes its own step `s` off it per call, so it is sampled with
//! `1 − (1 − p)^s`. The base rate `p` is a sixteenth of the smallest
//! probability any sampled series needs (a step is a whole number, at
//! least 1: sixteen trials or more per call keep every series within 1/16
//! above its need), and each series' step is the smallest whose
//! probability meets its need. A series that needs more
//! than the upper bound (½ by default) is recorded exactly instead: an
//! exact counter costs no sample at all, an exact histogram one sample per
//! call.
//!
//! # The budget
//!
//! The samples per second the flusher may drain (its CPU budget, or less
//! when the rings overflowed) bound the total. When the targets need more,
//! every target is relaxed by the same factor `k` (found by bisection), so
//! the worst relative error is as small as the budget allows; the series
//! left above their target are reported.
//!
//! A series whose rate is not known yet (no full period seen) keeps the
//! step it has: new counters start exact, new histograms at the starting
//! rate.

use crate::hot::cell::{Kind, STEP_OFF};
pub(crate) use crate::hot::sampler::{prob_of, step_for};

/// How many trials of the base rate the least-sampled series takes per
/// call (see `allocate`).
const GRANULARITY: f64 = 16.0;

/// What one sampled-kind series showed over the last period.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Demand {
    /// Counter or histogram (up-down counters and gauges are always exact
    /// and never reach the allocator).
    pub(crate) kind: Kind,
    /// Estimated calls per second over the last period; `None` while the
    /// series has not been seen for a full period.
    pub(crate) calls_per_sec: Option<f64>,
    /// Squared coefficient of variation of its values (counters; 0 when
    /// unknown, as for unit increments).
    pub(crate) cv2: f64,
}

/// The targets and limits of one allocation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Limits {
    /// Target relative standard error per window (`ε`).
    pub(crate) relative_error: f64,
    /// The quantile whose rank histograms should know (`q`) ...
    pub(crate) quantile: f64,
    /// ... to within this rank error (`δ`).
    pub(crate) rank_error: f64,
    /// Accuracy window, in seconds.
    pub(crate) window_secs: f64,
    /// Bounds on a sampled series' probability; above the upper one a
    /// series is exact.
    pub(crate) min_prob: f64,
    pub(crate) max_prob: f64,
    /// Samples per second the engine may take in all.
    pub(crate) samples_per_sec: f64,
}

/// What the allocator decided for one series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Choice {
    /// Not known yet: keep the current step.
    Keep,
    /// Every call recorded.
    Exact,
    /// Sampled with this step off the base rate, giving this probability.
    Sampled { step: u64, inclusion_prob: f64 },
}

impl Choice {
    /// The step to publish, if any (`STEP_OFF` for exact).
    pub(crate) fn step(self) -> Option<u64> {
        match self {
            Choice::Keep => None,
            Choice::Exact => Some(STEP_OFF),
            Choice::Sampled { step, .. } => Some(step),
        }
    }
}

/// One allocation.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Allocation {
    /// The base rate `p` of every thread's countdown; `None` when nothing is
    /// sampled (the current rate is kept).
    pub(crate) base_rate: Option<f64>,
    /// Per series, in the order of the demands.
    pub(crate) choices: Vec<Choice>,
    /// Per series: the relative standard error per window the choice is
    /// expected to give (0 when exact, `None` when not known).
    pub(crate) expected_error: Vec<Option<f64>>,
    /// The factor every target was relaxed by to fit the budget (1 when it
    /// fits).
    pub(crate) relaxed_by: f64,
    /// Expected samples per second.
    pub(crate) samples_per_sec: f64,
}

impl Allocation {
    /// Series expected to miss their target (the budget bound).
    pub(crate) fn misses(&self, limits: &Limits) -> usize {
        self.expected_error
            .iter()
            .filter(|error| error.is_some_and(|error| error > limits.relative_error * 1.0001))
            .count()
    }
}

/// The probability series `demand` needs for its targets relaxed by `k`,
/// with its calls per window `calls`.
fn needed(demand: &Demand, limits: &Limits, calls: f64, k: f64) -> f64 {
    let epsilon = limits.relative_error * k;
    let count_factor = if demand.kind == Kind::Histogram {
        1.0
    } else {
        1.0 + demand.cv2.max(0.0)
    };
    let count = count_factor / (epsilon * epsilon * calls + count_factor);
    if demand.kind != Kind::Histogram {
        return count;
    }
    let rank = limits.rank_error * k;
    let spread = limits.quantile * (1.0 - limits.quantile);
    count.max(spread / (rank * rank * calls + spread))
}

/// Per series: exact, or the probability it gets (bounded), for targets
/// relaxed by `k`; and the expected samples per second.
fn plan(demands: &[Demand], limits: &Limits, k: f64) -> (Vec<Option<f64>>, f64) {
    let mut total = 0.0;
    let probs = demands
        .iter()
        .map(|demand| {
            let rate = demand.calls_per_sec?;
            let calls = (rate * limits.window_secs).max(1.0);
            let prob = needed(demand, limits, calls, k);
            if prob > limits.max_prob {
                // Exact: a counter costs no sample, a histogram one per call.
                if demand.kind == Kind::Histogram {
                    total += rate;
                }
                Some(1.0)
            } else {
                let prob = prob.max(limits.min_prob);
                total += prob * rate;
                Some(prob)
            }
        })
        .collect();
    (probs, total)
}

/// The allocation for the next period.
pub(crate) fn allocate(demands: &[Demand], limits: &Limits) -> Allocation {
    let (mut probs, mut total) = plan(demands, limits, 1.0);
    let mut relaxed_by = 1.0;
    if total > limits.samples_per_sec {
        // The samples needed fall as the targets are relaxed: bisect on the
        // factor (in log space) for the smallest that fits.
        let (mut low, mut high) = (1.0f64, 2.0f64);
        while plan(demands, limits, high).1 > limits.samples_per_sec && high < 1e9 {
            low = high;
            high *= 4.0;
        }
        for _ in 0..60 {
            let mid = (low * high).sqrt();
            if plan(demands, limits, mid).1 > limits.samples_per_sec {
                low = mid;
            } else {
                high = mid;
            }
        }
        relaxed_by = high;
        (probs, total) = plan(demands, limits, high);
    }
    // A step is a whole number of trials, so a probability is met to within
    // one step: a base rate of which `GRANULARITY` trials give the smallest
    // need keeps every series within 1/GRANULARITY of its probability.
    let base_rate = probs
        .iter()
        .flatten()
        .copied()
        .filter(|&prob| prob < 1.0)
        .fold(None, |min: Option<f64>, prob| {
            Some(min.map_or(prob, |min| min.min(prob)))
        })
        .map(|min: f64| -((-min).ln_1p() / GRANULARITY).exp_m1());
    let mut choices = Vec::with_capacity(demands.len());
    let mut expected_error = Vec::with_capacity(demands.len());
    for (demand, prob) in demands.iter().zip(&probs) {
        let (choice, error) = match (prob, base_rate) {
            (None, _) => (Choice::Keep, None),
            (Some(prob), _) if *prob >= 1.0 => (Choice::Exact, Some(0.0)),
            (Some(prob), Some(base)) => {
                let step = step_for(*prob, base);
                let inclusion_prob = prob_of(base, step);
                let calls = (demand.calls_per_sec.unwrap_or(0.0) * limits.window_secs).max(1.0);
                let factor = if demand.kind == Kind::Histogram {
                    1.0
                } else {
                    1.0 + demand.cv2.max(0.0)
                };
                let error = (factor * (1.0 - inclusion_prob) / (inclusion_prob * calls)).sqrt();
                (
                    Choice::Sampled {
                        step,
                        inclusion_prob,
                    },
                    Some(error),
                )
            }
            (Some(_), None) => unreachable!("a sampled series sets the base rate"),
        };
        choices.push(choice);
        expected_error.push(error);
    }
    Allocation {
        base_rate,
        choices,
        expected_error,
        relaxed_by,
        samples_per_sec: total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            relative_error: 0.01,
            quantile: 0.99,
            rank_error: 0.001,
            window_secs: 10.0,
            min_prob: 1e-7,
            max_prob: 0.5,
            samples_per_sec: 1e7,
        }
    }

    fn counter(calls_per_sec: f64) -> Demand {
        Demand {
            kind: Kind::Counter,
            calls_per_sec: Some(calls_per_sec),
            cv2: 0.0,
        }
    }

    #[test]
    fn a_hot_counter_gets_about_ten_thousand_samples_per_window() {
        let limits = limits();
        let allocation = allocate(&[counter(1.6e7)], &limits);
        let Choice::Sampled { inclusion_prob, .. } = allocation.choices[0] else {
            panic!("{allocation:?}");
        };
        let per_window = inclusion_prob * 1.6e8;
        assert!((9_000.0..11_000.0).contains(&per_window), "{per_window}");
        assert!(inclusion_prob < 1e-3);
        assert!(allocation.expected_error[0].unwrap() <= 0.0100001);
    }

    #[test]
    fn rare_counters_are_exact_and_levels_of_need_get_their_steps() {
        let limits = limits();
        // 500 calls per second: 5 000 per window need π ≈ 0.67 > ½.
        let demands = [
            counter(1.6e7),
            counter(1.6e4),
            counter(500.0),
            counter(16.0),
        ];
        let allocation = allocate(&demands, &limits);
        assert_eq!(allocation.choices[3], Choice::Exact, "{allocation:?}");
        assert_eq!(allocation.choices[2], Choice::Exact, "{allocation:?}");
        let base = allocation.base_rate.unwrap();
        let Choice::Sampled { step: hot, .. } = allocation.choices[0] else {
            panic!()
        };
        let Choice::Sampled { step: warm, .. } = allocation.choices[1] else {
            panic!()
        };
        assert_eq!(hot, 16, "the hottest series sets the base rate");
        assert!(warm > 16 * 500, "{warm}");
        for (index, error) in allocation.expected_error.iter().enumerate() {
            assert!(error.unwrap() <= 0.0100001, "series {index}: {error:?}");
        }
        assert!(base < 1e-3);
    }

    #[test]
    fn steps_meet_the_probability_they_are_for() {
        for base in [1e-7, 1e-4, 0.01, 0.3] {
            for prob in [base, base * 1.5, 0.01, 0.2, 0.5] {
                if prob < base {
                    continue;
                }
                let step = step_for(prob, base);
                assert!(prob_of(base, step) >= prob * (1.0 - 1e-9), "{base} {prob}");
                if step > 1 {
                    assert!(prob_of(base, step - 1) < prob, "{base} {prob} {step}");
                }
            }
        }
    }

    #[test]
    fn values_that_vary_need_more_samples() {
        let limits = limits();
        let plain = allocate(&[counter(1e6)], &limits);
        let varied = allocate(
            &[Demand {
                cv2: 3.0,
                ..counter(1e6)
            }],
            &limits,
        );
        assert!(varied.samples_per_sec > 3.5 * plain.samples_per_sec);
    }

    #[test]
    fn histograms_need_samples_for_their_quantile() {
        let limits = Limits {
            rank_error: 0.0005,
            ..limits()
        };
        let histogram = Demand {
            kind: Kind::Histogram,
            ..counter(1e6)
        };
        let allocation = allocate(&[histogram], &limits);
        // p99 to ±0.0005: 0.0099 / 0.0005² ≈ 39 600 samples per window.
        let per_window = allocation.samples_per_sec * limits.window_secs;
        assert!((35_000.0..45_000.0).contains(&per_window), "{per_window}");
    }

    #[test]
    fn a_binding_budget_spreads_the_shortfall_evenly() {
        let limits = Limits {
            samples_per_sec: 1_000.0,
            ..limits()
        };
        let demands = [counter(1e7), counter(1e6), counter(1e5)];
        let allocation = allocate(&demands, &limits);
        assert!(allocation.samples_per_sec <= 1_000.0 * 1.001);
        assert!(allocation.relaxed_by > 1.0);
        assert_eq!(allocation.misses(&limits), 3);
        let errors: Vec<f64> = allocation
            .expected_error
            .iter()
            .flatten()
            .copied()
            .collect();
        let (worst, best) = (
            errors.iter().copied().fold(0.0, f64::max),
            errors.iter().copied().fold(f64::MAX, f64::min),
        );
        // Equal targets, relaxed alike: within the rounding of the steps.
        assert!(worst / best < 1.05, "{errors:?}");
    }

    #[test]
    fn unknown_series_keep_their_step_and_exact_histograms_count_against_the_budget() {
        let limits = limits();
        let demands = [
            Demand {
                calls_per_sec: None,
                ..counter(0.0)
            },
            Demand {
                kind: Kind::Histogram,
                ..counter(100.0)
            },
        ];
        let allocation = allocate(&demands, &limits);
        assert_eq!(allocation.choices[0], Choice::Keep);
        assert_eq!(allocation.choices[1], Choice::Exact);
        assert_eq!(allocation.base_rate, None);
        assert!((allocation.samples_per_sec - 100.0).abs() < 1e-9);
    }

    #[test]
    fn a_series_whose_rate_jumps_a_hundredfold_is_sampled_a_hundred_times_less() {
        // Simulated periods: the allocation follows each period's rate, and
        // the samples per window stay about the same.
        let limits = limits();
        let mut probs = Vec::new();
        for rate in [1e5, 1e5, 1e7, 1e7, 1e5] {
            let allocation = allocate(&[counter(rate), counter(2e4)], &limits);
            let Choice::Sampled { inclusion_prob, .. } = allocation.choices[0] else {
                panic!("{allocation:?}");
            };
            let per_window = inclusion_prob * rate * limits.window_secs;
            assert!((9_000.0..11_500.0).contains(&per_window), "{per_window}");
            probs.push(inclusion_prob);
        }
        let drop = probs[1] / probs[2];
        assert!((90.0..110.0).contains(&drop), "{probs:?}");
        assert!((probs[4] / probs[0] - 1.0).abs() < 0.07, "back: {probs:?}");
    }
}
