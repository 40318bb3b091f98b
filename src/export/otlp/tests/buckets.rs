//! Bucket counts against the exact counts of the values: a value lands in
//! its own bucket unless it sits just above a bound, within the
//! distribution's placement error.

use opentelemetry_proto::tonic::metrics::v1::metric::Data;

use super::*;
use crate::export::otlp::HistogramAggregation;
use crate::export::rebucket::fixtures::{histogram, near, placement_error, spread_values};
use crate::export::rebucket::DEFAULT_BOUNDARIES;

#[test]
fn explicit_bucket_counts_are_exact_but_next_to_a_bound() {
    let values = spread_values(0xb0c4);
    let otlp = quick("http://unused").build().unwrap();
    let request = otlp.request(&snapshot_at(
        vec![series(
            "lat",
            &[],
            MetricValue::Histogram(histogram(&values, 1)),
        )],
        1,
    ));
    let Some(Data::Histogram(h)) = &metric(&request, "lat").data else {
        panic!("an explicit histogram")
    };
    let point = &h.data_points[0];
    assert_eq!(point.explicit_bounds, DEFAULT_BOUNDARIES);
    assert_eq!(point.count, values.len() as u64);
    let bounds = &DEFAULT_BOUNDARIES;
    let mut moved = 0;
    for (i, count) in point.bucket_counts.iter().enumerate() {
        let inside =
            |v: f64| (i == 0 || v > bounds[i - 1]) && (i == bounds.len() || v <= bounds[i]);
        let exact = values.iter().filter(|v| inside(**v)).count() as i64;
        // Values of this bucket just above its lower bound may go below;
        // values just above its upper bound may come in.
        let out = i.checked_sub(1).map_or(0, |low| {
            values.iter().filter(|v| near(**v, bounds[low])).count()
        });
        let came = bounds
            .get(i)
            .map_or(0, |high| values.iter().filter(|v| near(**v, *high)).count());
        let diff = *count as i64 - exact;
        assert!(
            -(out as i64) <= diff && diff <= came as i64,
            "bucket {i}: {count} vs exact {exact} (−{out} … +{came})"
        );
        moved += diff.unsigned_abs();
    }
    // Each value that moved shows in two buckets; only values near a
    // bound may have.
    let near_any = values
        .iter()
        .filter(|v| bounds.iter().any(|bound| near(**v, *bound)))
        .count() as u64;
    assert!(
        moved <= 2 * near_any,
        "{moved} moved, {near_any} near a bound"
    );
    assert!(placement_error() < 0.05);
}

/// The exact exponential index at `scale`: the bucket `(base^i, base^(i+1)]`.
fn exponential_index(value: f64, scale: i32) -> i32 {
    (value.log2() * 2f64.powi(scale)).ceil() as i32 - 1
}

fn check_exponential(values: &[f64], max_buckets: usize) -> i32 {
    let otlp = quick("http://unused")
        .histogram_aggregation(HistogramAggregation::Base2Exponential)
        .max_exponential_buckets(max_buckets)
        .build()
        .unwrap();
    let request = otlp.request(&snapshot_at(
        vec![series(
            "lat",
            &[],
            MetricValue::Histogram(histogram(values, 1)),
        )],
        1,
    ));
    let Some(Data::ExponentialHistogram(e)) = &metric(&request, "lat").data else {
        panic!("an exponential histogram")
    };
    let point = &e.data_points[0];
    let positive = point.positive.as_ref().unwrap();
    assert!(positive.bucket_counts.len() <= max_buckets);
    assert_eq!(point.count, values.len() as u64);
    let scale = point.scale;
    let base = 2f64.powf(2f64.powi(-scale));
    let near_lower = |v: f64| near(v, base.powi(exponential_index(v, scale)));
    for (slot, count) in positive.bucket_counts.iter().enumerate() {
        let index = positive.offset + slot as i32;
        let mine = |v: &&f64| **v > 0.0 && exponential_index(**v, scale) == index;
        let exact = values.iter().filter(mine).count() as i64;
        let out = values
            .iter()
            .filter(mine)
            .filter(|v| near_lower(**v))
            .count() as i64;
        let came = values
            .iter()
            .filter(|v| **v > 0.0 && exponential_index(**v, scale) == index + 1)
            .filter(|v| near_lower(**v))
            .count() as i64;
        let diff = *count as i64 - exact;
        assert!(
            -out <= diff && diff <= came,
            "scale {scale} bucket {index}: {count} vs exact {exact} (−{out} … +{came})"
        );
    }
    scale
}

#[test]
fn exponential_bucket_counts_are_exact_but_next_to_a_bound() {
    // Wide: downscaled to fit 160 buckets.
    let scale = check_exponential(&spread_values(0xe4b0), 160);
    assert_eq!(scale, 2);
    // Narrow: the finest scale the precision supports, 4 at 2⁵ buckets
    // per octave.
    let mut rng = fastrand::Rng::with_seed(0x4a77);
    let narrow: Vec<f64> = (0..5000).map(|_| 1000.0 + 100.0 * rng.f64()).collect();
    assert_eq!(check_exponential(&narrow, 160), 4);
}
