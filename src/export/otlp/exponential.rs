//! Base-2 exponential buckets from the engine's log-linear histograms.
//!
//! Bucket `i` at scale `s` covers `(base^i, base^(i+1)]`, `base =
//! 2^(2^-s)`. Placement starts at the finest scale the histogram's
//! precision supports (exponential buckets no narrower than its widest
//! relative bucket: scale 4 for 2⁵ buckets per octave, the default; scale
//! 7 for 2⁸, `histogram_precision(3)`), and pairs are merged
//! (`index >> 1`, one scale down) until the occupied range fits the bucket
//! limit, as the specification's downscaling does. Masses are fractional
//! until the very end (see `rebucket.rs`), so a delta is the bucket-wise
//! difference of two cumulative placements at the same scale.

use std::collections::BTreeMap;

use crate::export::rebucket::weighted_values;
use crate::report::snapshot::HistogramSnapshot;

/// The finest scale OpenTelemetry allows.
const MAX_SCALE: i32 = 20;

/// The finest useful scale for a distribution with `2^bits` buckets per
/// octave: exponential buckets no narrower than its buckets.
pub(crate) fn scale_for_bits(bits: u8) -> i32 {
    // A log-linear bucket is at most 2^-bits of its lowest value wide (at
    // the bottom of an octave). An exponential bucket at scale s is
    // ≈ ln 2 · 2^-s wide.
    let relative_width = (-f64::from(bits)).exp2();
    let scale = (std::f64::consts::LN_2 / relative_width).log2().floor() as i32;
    scale.clamp(0, MAX_SCALE)
}

/// Exponential-bucket masses at one scale.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ExponentialMasses {
    pub(crate) scale: i32,
    pub(crate) zero: f64,
    /// Bucket index → mass.
    pub(crate) buckets: BTreeMap<i32, f64>,
}

/// Index of the bucket holding `value` (> 0) at `scale`: the bucket whose
/// upper bound `base^(i+1)` is the first at or above `value`.
fn exponential_index(value: f64, scale: i32) -> i32 {
    let scaled = value.log2() * 2f64.powi(scale);
    (scaled.ceil() as i64 - 1).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

pub(crate) fn exponential_masses(histogram: &HistogramSnapshot, scale: i32) -> ExponentialMasses {
    let mut out = ExponentialMasses {
        scale,
        ..Default::default()
    };
    for (value, mass) in weighted_values(histogram) {
        if value <= 0.0 {
            out.zero += mass;
        } else {
            *out.buckets
                .entry(exponential_index(value, scale))
                .or_insert(0.0) += mass;
        }
    }
    out
}

impl ExponentialMasses {
    /// `self − earlier` at the same scale, bucket by bucket.
    pub(crate) fn minus(&self, earlier: &ExponentialMasses) -> ExponentialMasses {
        debug_assert_eq!(self.scale, earlier.scale);
        let mut out = self.clone();
        out.zero -= earlier.zero;
        for (index, mass) in &earlier.buckets {
            *out.buckets.entry(*index).or_insert(0.0) -= mass;
        }
        out
    }

    /// Merges bucket pairs until non-empty buckets span at most
    /// `max_buckets` indices.
    pub(crate) fn fit(mut self, max_buckets: usize) -> ExponentialMasses {
        self.buckets.retain(|_, mass| *mass > 0.0);
        loop {
            let span = match (self.buckets.keys().next(), self.buckets.keys().next_back()) {
                (Some(low), Some(high)) => i64::from(*high) - i64::from(*low) + 1,
                _ => return self,
            };
            if span <= max_buckets as i64 || self.scale <= -10 {
                return self;
            }
            let mut merged = BTreeMap::new();
            for (index, mass) in &self.buckets {
                *merged.entry(index >> 1).or_insert(0.0) += mass;
            }
            self.buckets = merged;
            self.scale -= 1;
        }
    }

    /// The offset and dense masses from the lowest non-empty bucket.
    pub(crate) fn dense(&self) -> (i32, Vec<f64>) {
        let (Some(low), Some(high)) = (
            self.buckets.keys().next().copied(),
            self.buckets.keys().next_back().copied(),
        ) else {
            return (0, Vec::new());
        };
        let mut dense = vec![0.0; (i64::from(high) - i64::from(low) + 1) as usize];
        for (index, mass) in &self.buckets {
            dense[(i64::from(*index) - i64::from(low)) as usize] = *mass;
        }
        (low, dense)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::rebucket::fixtures::histogram;

    #[test]
    fn scale_follows_precision() {
        use crate::report::distribution::bits_for_precision;
        let scale = |digits| scale_for_bits(bits_for_precision(digits));
        assert_eq!(scale(1), 1);
        assert_eq!(scale(2), 4);
        assert_eq!(scale(3), 7);
        assert_eq!(scale(5), 14);
    }

    #[test]
    fn exponential_indices_and_downscale() {
        // Powers of two close their bucket: 4 = 2^2 is the top of bucket 1
        // at scale 0 ((2, 4]).
        assert_eq!(exponential_index(4.0, 0), 1);
        assert_eq!(exponential_index(4.5, 0), 2);
        assert_eq!(exponential_index(1.0, 3), -1);
        assert_eq!(exponential_index(0.5, 0), -2);
        let h = histogram(&[0.0, 1.0, 3.0, 1000.0, 1_000_000.0], 1);
        let masses = exponential_masses(&h, scale_for_bits(5)).fit(8);
        let (offset, dense) = masses.dense();
        assert!(dense.len() <= 8, "{masses:?}");
        assert_eq!(masses.scale, -2);
        assert_eq!(masses.zero, 1.0);
        assert_eq!(dense.iter().sum::<f64>(), 4.0);
        // Downscaling by merging pairs agrees with placing at the final scale.
        for value in [1.0, 3.0, 1000.0, 1_000_000.0] {
            let index = exponential_index(value, masses.scale) - offset;
            assert!(dense[index as usize] >= 1.0, "{value} in bucket {index}");
        }
    }

    #[test]
    fn exponential_delta_subtracts() {
        let before = histogram(&[1.0, 2.0], 1);
        let after = histogram(&[1.0, 2.0, 2.0, 8.0], 1);
        let scale = 4;
        let delta = exponential_masses(&after, scale)
            .minus(&exponential_masses(&before, scale))
            .fit(160);
        let (_, dense) = delta.dense();
        assert_eq!(dense.iter().sum::<f64>(), 2.0);
    }
}
