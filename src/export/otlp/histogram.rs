//! One histogram series as one OTLP point: explicit buckets or base-2
//! exponential, cumulative or the difference from the accepted baseline.
//!
//! Masses stay fractional through the subtraction and are rounded last,
//! so a point's buckets always sum to its count. Min and max are sent only
//! when exact, and under delta only when the interval's extreme is known.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point::Buckets, ExponentialHistogramDataPoint, HistogramDataPoint,
};

use super::delta::{counter_delta, variance_delta};
use super::exponential::{exponential_masses, scale_for_bits};
use crate::export::rebucket::{explicit_masses, round_preserving_total};
use crate::report::snapshot::{Estimate, HistogramSnapshot};

/// A histogram as one point will show it: cumulative, or the difference
/// from the accepted baseline.
pub(crate) struct HistogramView<'a> {
    current: &'a HistogramSnapshot,
    accepted: Option<&'a HistogramSnapshot>,
    /// Sum of the point (cumulative or delta); its count comes from the
    /// bucket masses.
    sum: Estimate,
    /// Variance of the point's count and sum (`None`: exact).
    pub(crate) count_variance: Option<f64>,
    pub(crate) sum_variance: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
}

impl<'a> HistogramView<'a> {
    pub(crate) fn new(
        current: &'a HistogramSnapshot,
        accepted: Option<&'a HistogramSnapshot>,
        delta: bool,
    ) -> Self {
        let exact = current.min_max_exact;
        let (mut min, mut max) = if exact {
            (current.min, current.max)
        } else {
            (None, None)
        };
        if let (true, Some(accepted)) = (delta, accepted) {
            // The interval's extreme is known only if the cumulative one
            // moved during it.
            min = min.filter(|now| accepted.min.is_none_or(|before| *now < before));
            max = max.filter(|now| accepted.max.is_none_or(|before| *now > before));
        }
        let variance = |current: &Estimate, accepted: Option<&Estimate>| {
            (!current.exact).then(|| variance_delta(current, accepted))
        };
        let count_variance = variance(&current.count, accepted.map(|a| &a.count));
        let sum_variance = variance(&current.sum, accepted.map(|a| &a.sum));
        let sum = counter_delta(&current.sum, accepted.map(|a| &a.sum));
        Self {
            current,
            accepted,
            sum,
            count_variance,
            sum_variance,
            min,
            max,
        }
    }

    pub(crate) fn explicit(
        &self,
        bounds: &[f64],
        attributes: Vec<KeyValue>,
        start: u64,
        now: u64,
    ) -> HistogramDataPoint {
        let mut masses = explicit_masses(self.current, bounds);
        if let Some(accepted) = self.accepted {
            for (mass, before) in masses.iter_mut().zip(explicit_masses(accepted, bounds)) {
                *mass -= before;
            }
        }
        let (bucket_counts, count) = round_preserving_total(&masses);
        HistogramDataPoint {
            attributes,
            start_time_unix_nano: start,
            time_unix_nano: now,
            count,
            sum: Some(self.sum.value),
            bucket_counts,
            explicit_bounds: bounds.to_vec(),
            min: self.min.filter(|_| count > 0),
            max: self.max.filter(|_| count > 0),
            ..Default::default()
        }
    }

    pub(crate) fn exponential(
        &self,
        max_buckets: usize,
        attributes: Vec<KeyValue>,
        start: u64,
        now: u64,
    ) -> ExponentialHistogramDataPoint {
        let scale = scale_for_bits(self.current.distribution.bits());
        let mut masses = exponential_masses(self.current, scale);
        if let Some(accepted) = self.accepted {
            masses = masses.minus(&exponential_masses(accepted, scale));
        }
        let masses = masses.fit(max_buckets);
        let (offset, dense) = masses.dense();
        let mut all = Vec::with_capacity(dense.len() + 1);
        all.push(masses.zero);
        all.extend(dense);
        let (mut rounded, count) = round_preserving_total(&all);
        let zero_count = rounded.remove(0);
        ExponentialHistogramDataPoint {
            attributes,
            start_time_unix_nano: start,
            time_unix_nano: now,
            count,
            sum: Some(self.sum.value),
            scale: masses.scale,
            zero_count,
            positive: Some(Buckets {
                offset,
                bucket_counts: rounded,
            }),
            negative: None,
            min: self.min.filter(|_| count > 0),
            max: self.max.filter(|_| count > 0),
            zero_threshold: 0.0,
            ..Default::default()
        }
    }
}
