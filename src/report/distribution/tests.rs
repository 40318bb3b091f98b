//! The log-linear layout: indices, bounds and error over the whole range,
//! counts that widen, memory by the structure's own accounting.

use super::*;

/// `n` values log-uniform over `[low, high)`.
fn log_uniform(rng: &mut fastrand::Rng, n: usize, low: f64, high: f64) -> Vec<f64> {
    let (a, b) = (low.ln(), high.ln());
    (0..n).map(|_| (a + (b - a) * rng.f64()).exp()).collect()
}

#[test]
fn precision_maps_to_bits() {
    let bits: Vec<u8> = (1..=5).map(bits_for_precision).collect();
    assert_eq!(bits, [2, 5, 8, 12, 15]);
    for digits in 1..=5 {
        let error = Distribution::new(bits_for_precision(digits), 1.0).relative_error();
        assert!(
            error <= 2.0 * 10f64.powi(-i32::from(digits)),
            "{digits}: {error}"
        );
    }
}

#[test]
fn index_and_bounds_round_trip_over_the_whole_range() {
    // Every accepted value (resolution 0.001 up to 0.001 × 2⁶²), every
    // precision: the bucket's bounds hold the value, the next bucket starts
    // where this one ends, and the midpoint is within the stated error.
    let mut rng = fastrand::Rng::with_seed(0x0b0c_7e75);
    let resolution = 0.001;
    let max = resolution * (1u64 << 62) as f64;
    for bits in [2, 5, 8, 12, 15] {
        let distribution = Distribution::new(bits, resolution);
        let bound = distribution.relative_error();
        let mut values = log_uniform(&mut rng, 20_000, resolution, max);
        values.extend([resolution, 1.0, 2.0, 3.0, 5.0, 1000.0, max]);
        for value in values {
            let index = distribution.index(value);
            let (lower, upper) = (distribution.lower(index), distribution.lower(index + 1));
            assert!(
                lower <= value && value < upper,
                "{bits}: {value} in [{lower}, {upper})"
            );
            assert_eq!(distribution.index(lower), index);
            assert_eq!(distribution.index(upper), index + 1);
            assert!((upper - lower) / lower <= 2.0 * bound * (1.0 + 1e-12));
            let midpoint = (lower + upper) / 2.0;
            let error = (midpoint - value).abs() / value;
            assert!(
                error <= bound,
                "{bits}: {value} read {midpoint}: {error} > {bound}"
            );
        }
    }
}

#[test]
fn quantiles_are_within_the_relative_error() {
    let mut rng = fastrand::Rng::with_seed(0x9a47);
    let mut values = log_uniform(&mut rng, 10_001, 1.0, 1e9);
    let mut distribution = Distribution::new(5, 0.001);
    for value in &values {
        distribution.record_n(*value, 3);
    }
    values.sort_unstable_by(f64::total_cmp);
    assert_eq!(distribution.total(), 3 * 10_001);
    for (q, rank) in [
        (0.0, 0),
        (0.25, 2500),
        (0.5, 5000),
        (0.99, 9900),
        (1.0, 10_000),
    ] {
        let exact = values[rank];
        let estimate = distribution.value_at_quantile(q).unwrap();
        let error = (estimate - exact).abs() / exact;
        assert!(
            error <= distribution.relative_error(),
            "p{q}: {estimate} vs {exact}"
        );
    }
    assert_eq!(Distribution::new(5, 0.001).value_at_quantile(0.5), None);
}

#[test]
fn values_below_the_resolution_count_as_zero() {
    let mut distribution = Distribution::new(5, 0.001);
    for value in [0.0, -0.0, 0.0004, 0.001, 7.0] {
        distribution.record_n(value, 1);
    }
    let buckets: Vec<(f64, u64)> = distribution.iter().collect();
    assert_eq!(buckets[0], (0.0, 3));
    assert_eq!(buckets.len(), 3);
    assert_eq!(distribution.value_at_quantile(0.5), Some(0.0));
    assert_eq!(distribution.count_at_or_below(0.0), 3);
    assert_eq!(distribution.count_at_or_below(6.99), 4);
    assert_eq!(distribution.count_at_or_below(7.0), 5);
    assert_eq!(distribution.count_at_or_below(-1.0), 0);
}

#[test]
fn counts_widen_instead_of_overflowing() {
    let mut distribution = Distribution::new(5, 0.001);
    distribution.record_n(10.0, 200);
    assert_eq!(distribution.counts.width(), 1);
    distribution.record_n(10.0, 100);
    assert_eq!(distribution.counts.width(), 2);
    distribution.record_n(1e6, 70_000);
    assert_eq!(distribution.counts.width(), 4);
    distribution.record_n(0.5, 1 << 40);
    assert_eq!(distribution.counts.width(), 8);
    let buckets: Vec<(f64, u64)> = distribution.iter().collect();
    assert_eq!(buckets.len(), 3);
    assert_eq!(buckets[0].1, 1 << 40);
    assert_eq!(buckets[1].1, 300);
    assert_eq!(buckets[2].1, 70_000);
    assert_eq!(distribution.total(), 300 + 70_000 + (1 << 40));
}

#[test]
fn the_window_grows_by_whole_octaves_both_ways() {
    let mut distribution = Distribution::new(5, 0.001);
    distribution.record_n(100.0, 1);
    assert_eq!(distribution.counts.len(), 32);
    distribution.record_n(1000.0, 1);
    distribution.record_n(1.5, 1);
    // 1 … 1024: octaves 0 to 9.
    assert_eq!(distribution.counts.len(), 10 * 32);
    let values: Vec<f64> = distribution.iter().map(|(value, _)| value).collect();
    assert_eq!(values.len(), 3);
    assert!(values.windows(2).all(|pair| pair[0] < pair[1]));
}

#[test]
fn memory_of_a_series_spanning_one_to_a_billion() {
    // 10⁴ log-uniform values: 30 octaves of 32 one-byte counts exact,
    // two-byte counts at weights of 1/0.03.
    let mut rng = fastrand::Rng::with_seed(0x3e3);
    let values = log_uniform(&mut rng, 10_000, 1.0, 1e9);
    for (weight, width) in [(1, 1), (33, 2)] {
        let mut distribution = Distribution::new(bits_for_precision(DEFAULT_PRECISION), 0.001);
        for value in &values {
            distribution.record_n(*value, weight);
        }
        assert_eq!(distribution.counts.width(), width);
        assert_eq!(distribution.counts.len(), 30 * 32);
        let bytes = distribution.bytes();
        assert!(bytes <= 30 * 32 * width + 128, "{bytes} bytes");
    }
}

#[test]
fn memory_of_a_pathological_series_is_bounded() {
    // Values over the whole accepted range, counts needing 8 bytes: 63
    // octaves of 32 eight-byte counts.
    let resolution = 0.001;
    let mut distribution = Distribution::new(bits_for_precision(DEFAULT_PRECISION), resolution);
    let mut value = resolution;
    while value < resolution * (1u64 << 62) as f64 {
        distribution.record_n(value, 1 << 33);
        value *= 1.01;
    }
    assert_eq!(distribution.counts.width(), 8);
    assert_eq!(distribution.counts.len(), 63 * 32);
    assert!(distribution.bytes() <= 63 * 32 * 8 + 128);
}

#[test]
fn the_legacy_histogram_holds_the_same_weights() {
    let mut distribution = Distribution::new(5, 0.001);
    distribution.record_n(2.0, 3);
    distribution.record_n(500.0, 4);
    let histogram = distribution.legacy_histogram();
    assert_eq!(histogram.len(), 7);
    assert_eq!(histogram.value_at_quantile(0.1), 2000);
}
