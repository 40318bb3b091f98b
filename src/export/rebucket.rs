//! Re-bucketing the engine's weighted log-linear histograms into explicit
//! buckets, shared by the OTLP and Prometheus exporters.
//!
//! Every histogram series holds a weighted distribution (each sample counted
//! about 1/p times) whose total is scaled to the series' estimated count, so
//! samples that spilled (counted, but without a place in the distribution)
//! are spread in proportion. From it we compute fractional *masses* per
//! bucket (and, for delta output, subtract the accepted masses) and only
//! then round to the integers both formats require, with the
//! largest-remainder method so the buckets sum exactly to the rounded count.
//!
//! A value is placed by the lowest value of its bucket, so a value
//! recorded exactly on a boundary (5.0 with bound 5) lands in the bucket
//! that bound closes, as the `(lower, upper]` buckets of OpenTelemetry and
//! Prometheus (`le`) want.

use crate::report::snapshot::HistogramSnapshot;

/// OpenTelemetry's default explicit bucket boundaries.
pub const DEFAULT_BOUNDARIES: [f64; 15] = [
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];

/// `(value, mass)` pairs: where the weight of a histogram sits.
pub(crate) fn weighted_values(histogram: &HistogramSnapshot) -> Vec<(f64, f64)> {
    histogram.weighted_values()
}

/// Masses of `histogram` in the buckets `(-∞, b0], (b0, b1], …, (bn, +∞)`:
/// `boundaries.len() + 1` entries.
pub(crate) fn explicit_masses(histogram: &HistogramSnapshot, boundaries: &[f64]) -> Vec<f64> {
    let mut masses = vec![0.0; boundaries.len() + 1];
    for (value, mass) in weighted_values(histogram) {
        let bucket = boundaries.partition_point(|bound| *bound < value);
        masses[bucket] += mass;
    }
    masses
}

/// Rounds masses to integers summing to `round(Σ masses)` (negative or
/// non-finite masses count as 0): floors, then the leftover units go to the
/// largest remainders. Returns the counts and their total.
pub(crate) fn round_preserving_total(masses: &[f64]) -> (Vec<u64>, u64) {
    let clean: Vec<f64> = masses
        .iter()
        .map(|m| if m.is_finite() && *m > 0.0 { *m } else { 0.0 })
        .collect();
    let total = clean.iter().sum::<f64>().round() as u64;
    let mut counts: Vec<u64> = clean.iter().map(|m| m.floor() as u64).collect();
    let floored: u64 = counts.iter().sum();
    let left = total.saturating_sub(floored) as usize;
    if left > 0 {
        let mut order: Vec<usize> = (0..clean.len()).collect();
        order.sort_by(|a, b| {
            let ra = clean[*a] - clean[*a].floor();
            let rb = clean[*b] - clean[*b].floor();
            rb.total_cmp(&ra).then(a.cmp(b))
        });
        // Σ remainders ≥ left, and each is < 1: `left` distinct buckets.
        for index in order.into_iter().take(left) {
            counts[index] += 1;
        }
    }
    let sum = counts.iter().sum();
    (counts, sum)
}

/// Test histograms.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::sync::Arc;

    use crate::report::distribution::{bits_for_precision, Distribution, DEFAULT_PRECISION};
    use crate::report::snapshot::{Estimate, HistogramSnapshot};

    /// How far above a bucket bound a value may sit and still be counted
    /// below it: the width of a bucket relative to its lowest value, at
    /// the default precision (2⁻⁵).
    pub(crate) fn placement_error() -> f64 {
        (-f64::from(bits_for_precision(DEFAULT_PRECISION))).exp2()
    }

    /// Whether `value` sits just above `bound`, within the placement error:
    /// the one case where it may be counted in the bucket `bound` closes.
    pub(crate) fn near(value: f64, bound: f64) -> bool {
        value > bound && value <= bound * (1.0 + placement_error())
    }

    /// 10⁴ seeded values log-uniform over 0.01 … 10⁵, with every default
    /// boundary itself and values just either side of some.
    pub(crate) fn spread_values(seed: u64) -> Vec<f64> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let (low, high) = (0.01f64.ln(), 1e5f64.ln());
        let mut values: Vec<f64> = (0..10_000)
            .map(|_| (low + (high - low) * rng.f64()).exp())
            .collect();
        for bound in super::DEFAULT_BOUNDARIES {
            values.extend([bound, bound * 1.001, bound * 0.999, bound * 1.05]);
        }
        values
    }

    /// A histogram holding `values`, each weighted `weight`, resolution
    /// 0.001, the default precision. Exact when `weight` is 1.
    pub(crate) fn histogram(values: &[f64], weight: u64) -> HistogramSnapshot {
        let mut distribution = Distribution::new(bits_for_precision(DEFAULT_PRECISION), 0.001);
        for value in values {
            distribution.record_n(*value, weight);
        }
        let count = (values.len() as u64 * weight) as f64;
        let sum = values.iter().sum::<f64>() * weight as f64;
        let exact = weight == 1;
        HistogramSnapshot {
            count: Estimate::new(count, 0.0, exact, values.len() as u64),
            sum: Estimate::new(sum, 0.0, exact, values.len() as u64),
            min: values.iter().copied().reduce(f64::min),
            max: values.iter().copied().reduce(f64::max),
            min_max_exact: exact,
            samples: values.len() as u64,
            distribution: Arc::new(distribution),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::histogram;
    use super::*;

    #[test]
    fn explicit_buckets_are_upper_inclusive() {
        let h = histogram(&[0.0, 5.0, 5.5, 10.0, 10000.0, 20000.0], 1);
        let masses = explicit_masses(&h, &[0.0, 5.0, 10.0, 10000.0]);
        assert_eq!(masses, vec![1.0, 1.0, 2.0, 1.0, 1.0]);
    }

    #[test]
    fn weights_scale_to_the_estimated_count() {
        let mut h = histogram(&[1.0, 100.0], 10);
        // Two more spilled samples' worth of count, spread in proportion.
        h.count.value = 24.0;
        let masses = explicit_masses(&h, &[50.0]);
        assert_eq!(masses, vec![12.0, 12.0]);
    }

    #[test]
    fn spilled_histograms_use_the_mean() {
        let mut h = histogram(&[], 1);
        h.count.value = 4.0;
        h.sum.value = 30.0;
        let masses = explicit_masses(&h, &[5.0, 10.0]);
        assert_eq!(masses, vec![0.0, 4.0, 0.0]);
    }

    #[test]
    fn rounding_keeps_the_total() {
        let (counts, total) = round_preserving_total(&[0.4, 0.4, 0.4, 1.8, -0.2]);
        assert_eq!(total, 3);
        assert_eq!(counts.iter().sum::<u64>(), 3);
        assert_eq!(counts, vec![1, 0, 0, 2, 0]);
        assert_eq!(round_preserving_total(&[]), (vec![], 0));
        let (counts, total) = round_preserving_total(&[1.0 / 3.0; 9]);
        assert_eq!((counts.iter().sum::<u64>(), total), (3, 3));
    }
}
