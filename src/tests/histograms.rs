//! Histogram series at the aggregator: snapshots share what did not
//! change, and a series' every copy stays within 8 KiB.

use std::sync::Arc;

use crate::drain::aggregate::Aggregator;
use crate::hot::cell::Kind;
use crate::hot::registry;
use crate::hot::sample::{MetricId, Sample};
use crate::report::distribution::DEFAULT_PRECISION;
use crate::report::snapshot::{HistogramSnapshot, MetricValue, SeriesSnapshot};

fn series_id(name: &str) -> MetricId {
    registry::series(name, Kind::Histogram, &[])
        .expect("valid test metric")
        .id()
}

fn record(aggregator: &mut Aggregator, id: MetricId, inclusion_prob: f32, value: f64) {
    aggregator.absorb(Sample {
        id,
        inclusion_prob,
        value,
    });
}

fn histogram<'a>(series: &'a [SeriesSnapshot], name: &str) -> &'a HistogramSnapshot {
    series
        .iter()
        .find(|series| &*series.name == name)
        .and_then(|series| match &series.value {
            MetricValue::Histogram(histogram) => Some(histogram),
            _ => None,
        })
        .expect("histogram in the snapshot")
}

#[test]
fn a_snapshot_shares_the_series_that_did_not_change() {
    let _registry = crate::test_support::registry_without_engine();
    let (quiet, busy) = ("histograms.share_quiet", "histograms.share_busy");
    let (quiet_id, busy_id) = (series_id(quiet), series_id(busy));
    let mut aggregator = Aggregator::beside_the_engine(DEFAULT_PRECISION, 0.001);
    for value in [1.0, 20.0, 300.0] {
        record(&mut aggregator, quiet_id, 1.0, value);
        record(&mut aggregator, busy_id, 1.0, value);
    }
    let first = aggregator.series_snapshot(0.03);
    record(&mut aggregator, busy_id, 1.0, 4000.0);
    let second = aggregator.series_snapshot(0.03);
    assert!(Arc::ptr_eq(
        &histogram(&first, quiet).distribution,
        &histogram(&second, quiet).distribution
    ));
    assert!(!Arc::ptr_eq(
        &histogram(&first, busy).distribution,
        &histogram(&second, busy).distribution
    ));
    // The earlier snapshot still reads what it read: the drain copied the
    // busy series before writing, since that snapshot held it.
    assert_eq!(histogram(&first, busy).distribution.total(), 3);
    assert_eq!(histogram(&second, busy).distribution.total(), 4);
    assert_eq!(histogram(&second, busy).quantile(1.0), Some(4000.0));
    // Nothing changed since: shared again, for both.
    let third = aggregator.series_snapshot(0.03);
    for name in [quiet, busy] {
        assert!(Arc::ptr_eq(
            &histogram(&second, name).distribution,
            &histogram(&third, name).distribution
        ));
    }
}

#[test]
fn a_released_snapshot_is_taken_back_without_a_copy() {
    let _registry = crate::test_support::registry_without_engine();
    let name = "histograms.reclaim";
    let id = series_id(name);
    let mut aggregator = Aggregator::beside_the_engine(DEFAULT_PRECISION, 0.001);
    record(&mut aggregator, id, 1.0, 5.0);
    let snapshot = aggregator.series_snapshot(0.03);
    let before = histogram(&snapshot, name).distribution.counts_address();
    drop(snapshot);
    record(&mut aggregator, id, 1.0, 6.0);
    let after = aggregator.series_snapshot(0.03);
    // The same buckets came back, written in place (5 and 6 share an
    // octave: no growth). Not the `Arc`'s own address: that the allocator
    // may or may not hand the freed block out again.
    assert_eq!(
        histogram(&after, name).distribution.counts_address(),
        before
    );
    assert_eq!(histogram(&after, name).distribution.total(), 2);
}

/// The bytes of every copy a histogram series has while the engine runs
/// with both exporters: the live buckets, the snapshot the Prometheus
/// exporter serves (the last one), and the OTLP delta baseline, which is
/// the snapshot before it while an export is in flight.
fn bytes_of_every_copy(name: &str, inclusion_prob: f32) -> (usize, f64, u64) {
    let id = series_id(name);
    let mut aggregator = Aggregator::beside_the_engine(DEFAULT_PRECISION, 0.001);
    let mut rng = fastrand::Rng::with_seed(0x8_0000 + u64::from(inclusion_prob.to_bits()));
    let (low, high) = (1f64.ln(), 1e9f64.ln());
    let mut draw = |aggregator: &mut Aggregator, n: usize| {
        for _ in 0..n {
            record(
                aggregator,
                id,
                inclusion_prob,
                (low + (high - low) * rng.f64()).exp(),
            );
        }
    };
    draw(&mut aggregator, 5_000);
    let baseline = aggregator.series_snapshot(0.03);
    draw(&mut aggregator, 5_000);
    let served = aggregator.series_snapshot(0.03);
    draw(&mut aggregator, 1);
    let (baseline, served) = (histogram(&baseline, name), histogram(&served, name));
    assert!(!Arc::ptr_eq(&baseline.distribution, &served.distribution));
    let arc_header = 2 * std::mem::size_of::<usize>();
    // The aggregator's figure counts the live buckets and the served
    // snapshot's (of this series: the registry, and so the aggregator,
    // also holds other tests' series); the baseline is one more copy.
    let bytes = aggregator.histogram_bytes_of(id) + baseline.distribution_bytes() + arc_header;
    let weight = f64::from(inclusion_prob).recip();
    let total = aggregator.series_snapshot(0.03);
    (
        bytes,
        10_001.0 * weight,
        histogram(&total, name).distribution.total(),
    )
}

#[test]
fn every_copy_of_a_series_over_one_to_a_billion_fits_8_kib() {
    let _registry = crate::test_support::registry_without_engine();
    for (name, inclusion_prob) in [
        ("histograms.memory_exact", 1.0),
        ("histograms.memory_3pct", 0.03),
    ] {
        let (bytes, weight, total) = bytes_of_every_copy(name, inclusion_prob);
        println!("{name}: 10^4 log-uniform values over 1 … 10^9, every copy: {bytes} bytes");
        assert!(bytes <= 8 * 1024, "{name}: {bytes} bytes");
        // Weights 1/p carried fractionally: the distribution's total stays
        // within one of Σ 1/p (p = 0.03 in f32 is not 3/100 exactly).
        assert!(
            (total as f64 - weight).abs() <= 1.0 + weight * 1e-6,
            "{total} vs {weight}"
        );
    }
}

#[test]
#[allow(deprecated)] // the HDR view is what is checked
fn the_deprecated_hdr_view_follows_later_writes() {
    let _registry = crate::test_support::registry_without_engine();
    let name = "histograms.legacy_view";
    let id = series_id(name);
    let mut aggregator = Aggregator::beside_the_engine(DEFAULT_PRECISION, 0.001);
    record(&mut aggregator, id, 1.0, 5.0);
    let first = aggregator.series_snapshot(0.03);
    assert_eq!(histogram(&first, name).distribution().0.len(), 1);
    drop(first);
    record(&mut aggregator, id, 1.0, 6.0);
    let second = aggregator.series_snapshot(0.03);
    assert_eq!(histogram(&second, name).distribution().0.len(), 2);
}
