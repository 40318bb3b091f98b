//! Snapshot → request, on hand-built snapshots.

use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality,
};

use super::*;
use crate::export::exporter::Exporter;
use crate::export::otlp::{HistogramAggregation, Temporality};
use crate::export::rebucket::fixtures::histogram;
use crate::hot::registry::OVERFLOW_KEY;

const CUMULATIVE: i32 = AggregationTemporality::Cumulative as i32;
const DELTA: i32 = AggregationTemporality::Delta as i32;

fn all_kinds() -> Vec<SeriesSnapshot> {
    vec![
        series(
            "http.requests",
            &[("route", "/a")],
            MetricValue::Counter(exact(42.0)),
        ),
        series(
            "http.requests",
            &[("route", "/b")],
            MetricValue::Counter(exact(7.0)),
        ),
        series("ws.sent", &[], MetricValue::Counter(sampled(1000.5, 31.0))),
        series("ws.active", &[], MetricValue::UpDown(exact(-3.0))),
        SeriesSnapshot {
            unit: Some("{item}".into()),
            description: Some("Items waiting".into()),
            inclusion_prob: None,
            target_met: None,
            start_time: None,
            ..series("queue.depth", &[], MetricValue::Gauge(17.0))
        },
        series(
            "latency_us",
            &[(OVERFLOW_KEY, "true")],
            MetricValue::Histogram(histogram(&[1.0, 5.0, 7.0, 30.0, 20000.0], 1)),
        ),
        series(
            "sampled_latency_us",
            &[],
            MetricValue::Histogram(histogram(&[3.0, 40.0], 30)),
        ),
        series(
            "hotmetrics.samples_recorded",
            &[],
            MetricValue::Counter(exact(12.0)),
        ),
    ]
}

#[test]
fn kinds_values_attributes_resource() {
    let otlp = quick("http://unused")
        .service_name("checkout")
        .resource_attribute("deployment.environment", "test")
        .build()
        .unwrap();
    let snapshot = snapshot_at(all_kinds(), 10);
    let request = otlp.request(&snapshot);

    let resource = request.resource_metrics[0].resource.as_ref().unwrap();
    assert_eq!(
        string_attribute(&resource.attributes, "service.name").as_deref(),
        Some("checkout")
    );
    assert_eq!(
        string_attribute(&resource.attributes, "deployment.environment").as_deref(),
        Some("test")
    );
    let scope = request.resource_metrics[0].scope_metrics[0]
        .scope
        .as_ref()
        .unwrap();
    assert_eq!(scope.name, "hotmetrics");
    assert_eq!(scope.version, env!("CARGO_PKG_VERSION"));

    // Two label sets of one name share a metric.
    let requests = metric(&request, "http.requests");
    let Some(Data::Sum(sum)) = &requests.data else {
        panic!("a sum")
    };
    assert!(sum.is_monotonic);
    assert_eq!(sum.aggregation_temporality, CUMULATIVE);
    assert_eq!(sum.data_points.len(), 2);
    let a = &sum.data_points[0];
    assert_eq!(
        string_attribute(&a.attributes, "route").as_deref(),
        Some("/a")
    );
    assert_eq!(
        a.value,
        Some(number_data_point::Value::AsInt(42)),
        "exact: an integer"
    );
    assert_eq!(a.start_time_unix_nano, nanos(snapshot.start_time));
    assert_eq!(a.time_unix_nano, nanos(snapshot.time));

    let sent = points(metric(&request, "ws.sent"));
    assert_eq!(
        sent[0].value,
        Some(number_data_point::Value::AsDouble(1000.5)),
        "estimated: a double"
    );

    let active = metric(&request, "ws.active");
    let Some(Data::Sum(sum)) = &active.data else {
        panic!("a sum")
    };
    assert!(!sum.is_monotonic);
    assert_eq!(
        sum.data_points[0].value,
        Some(number_data_point::Value::AsInt(-3))
    );

    let depth = metric(&request, "queue.depth");
    let Some(Data::Gauge(gauge)) = &depth.data else {
        panic!("a gauge")
    };
    assert_eq!(
        gauge.data_points[0].value,
        Some(number_data_point::Value::AsDouble(17.0))
    );

    let latency = metric(&request, "latency_us");
    let Some(Data::Histogram(h)) = &latency.data else {
        panic!("a histogram")
    };
    assert_eq!(h.aggregation_temporality, CUMULATIVE);
    let point = &h.data_points[0];
    assert_eq!(
        point.explicit_bounds,
        crate::export::DEFAULT_BOUNDARIES.to_vec()
    );
    assert_eq!(point.bucket_counts.len(), point.explicit_bounds.len() + 1);
    // 1 and 5 in (0, 5], 7 in (5, 10], 30 in (25, 50], 20000 above 10000.
    assert_eq!(point.bucket_counts[1], 2);
    assert_eq!(point.bucket_counts[2], 1);
    assert_eq!(point.bucket_counts[4], 1);
    assert_eq!(point.bucket_counts[15], 1);
    assert_eq!(point.count, 5);
    assert_eq!(point.sum, Some(20043.0));
    assert_eq!(
        (point.min, point.max),
        (Some(1.0), Some(20000.0)),
        "exact extremes are sent"
    );
    assert_eq!(
        attribute(&point.attributes, OVERFLOW_KEY),
        Some(any_value::Value::BoolValue(true))
    );

    let sampled = metric(&request, "sampled_latency_us");
    let Some(Data::Histogram(h)) = &sampled.data else {
        panic!("a histogram")
    };
    let point = &h.data_points[0];
    assert_eq!(point.count, 60);
    assert_eq!(point.bucket_counts.iter().sum::<u64>(), 60);
    assert_eq!(
        (point.min, point.max),
        (None, None),
        "sampled extremes are left out"
    );

    // Declared units and descriptions are carried.
    let depth = metric(&request, "queue.depth");
    assert_eq!(
        (depth.unit.as_str(), depth.description.as_str()),
        ("{item}", "Items waiting")
    );
    assert_eq!(metric(&request, "ws.sent").unit, "");
    // The engine's own figures go out like any metric.
    assert_eq!(
        value(&points(metric(&request, "hotmetrics.samples_recorded"))[0]),
        12.0
    );
    // The estimated series carry their variance (`variance.rs`), and no
    // standard-error gauge is left.
    assert!(has_metric(&request, "ws.sent.variance"));
    assert!(!has_metric(&request, "http.requests.variance"));
    assert!(!has_metric(&request, "ws.sent.std_error"));
}

#[test]
fn boundaries_per_metric_and_rounding_keeps_totals() {
    let otlp = quick("http://unused")
        .bucket_boundaries("sampled_latency_us", [10.0, 100.0])
        .build()
        .unwrap();
    let mut weighted = histogram(&[3.0, 40.0, 41.0], 1);
    // Fractional weights, as Horvitz–Thompson gives: 3 samples worth 10.4.
    weighted.count = sampled(10.4, 2.0);
    weighted.min_max_exact = false;
    let request = otlp.request(&snapshot_at(
        vec![series(
            "sampled_latency_us",
            &[],
            MetricValue::Histogram(weighted),
        )],
        5,
    ));
    let Some(Data::Histogram(h)) = &metric(&request, "sampled_latency_us").data else {
        panic!("a histogram")
    };
    let point = &h.data_points[0];
    assert_eq!(point.explicit_bounds, vec![10.0, 100.0]);
    assert_eq!(point.count, 10);
    assert_eq!(point.bucket_counts.iter().sum::<u64>(), point.count);
    assert_eq!(point.bucket_counts, vec![3, 7, 0]);
}

#[test]
fn exponential_histograms_from_the_environment() {
    let otlp = Otlp::builder()
        .env_vars([(
            "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
            "base2_exponential_bucket_histogram",
        )])
        .build()
        .unwrap();
    let values: Vec<f64> = (0..2000).map(|i| 0.5 + f64::from(i) * 37.3).collect();
    let mut h = histogram(&values, 1);
    h.distribution = std::sync::Arc::new({
        let mut d = (*h.distribution).clone();
        d.record_n(0.0, 1);
        d
    });
    h.count = exact(2001.0);
    h.min = Some(0.0);
    let request = otlp.request(&snapshot_at(
        vec![series("lat", &[], MetricValue::Histogram(h))],
        1,
    ));
    let Some(Data::ExponentialHistogram(e)) = &metric(&request, "lat").data else {
        panic!("an exponential histogram")
    };
    assert_eq!(e.aggregation_temporality, CUMULATIVE);
    let point = &e.data_points[0];
    let positive = point.positive.as_ref().unwrap();
    assert!(positive.bucket_counts.len() <= 160);
    assert!(point.scale <= 4, "no finer than the histogram precision");
    assert_eq!(point.zero_count, 1);
    assert_eq!(point.count, 2001);
    assert_eq!(
        positive.bucket_counts.iter().sum::<u64>() + point.zero_count,
        point.count
    );
    // The bucket range covers the values.
    let base = 2f64.powf(2f64.powi(-point.scale));
    let low = base.powi(positive.offset);
    let high = base.powi(positive.offset + positive.bucket_counts.len() as i32);
    assert!(
        low < 0.5 && high >= 0.5 + 1999.0 * 37.3 * 0.999,
        "{low} {high}"
    );
    assert_eq!(
        (point.min, point.max),
        (Some(0.0), Some(0.5 + 1999.0 * 37.3))
    );
}

#[test]
fn builder_picks_exponential_with_a_bucket_limit() {
    let otlp = quick("http://unused")
        .histogram_aggregation(HistogramAggregation::Base2Exponential)
        .max_exponential_buckets(20)
        .build()
        .unwrap();
    let h = histogram(&[0.001, 1.0, 1000.0, 1_000_000.0], 1);
    let request = otlp.request(&snapshot_at(
        vec![series("x", &[], MetricValue::Histogram(h))],
        1,
    ));
    let Some(Data::ExponentialHistogram(e)) = &metric(&request, "x").data else {
        panic!("an exponential histogram")
    };
    let positive = e.data_points[0].positive.as_ref().unwrap();
    assert!(positive.bucket_counts.len() <= 20);
    assert_eq!(positive.bucket_counts.iter().sum::<u64>(), 4);
}

fn step(counter: f64, values: &[f64], seconds: u64) -> Snapshot {
    snapshot_at(
        vec![
            series("c", &[], MetricValue::Counter(exact(counter))),
            series("u", &[], MetricValue::UpDown(exact(counter - 100.0))),
            series("h", &[], MetricValue::Histogram(histogram(values, 1))),
        ],
        seconds,
    )
}

fn counter_point(request: &ExportMetricsServiceRequest) -> (f64, u64, i32) {
    let Some(Data::Sum(sum)) = &metric(request, "c").data else {
        panic!("a sum")
    };
    (
        value(&sum.data_points[0]),
        sum.data_points[0].start_time_unix_nano,
        sum.aggregation_temporality,
    )
}

#[test]
fn delta_carries_a_failed_export_into_the_next() {
    let (mut otlp, sent) = scripted(
        quick("http://unused").temporality(Temporality::Delta),
        |n| {
            match n {
                // The second export's attempt fails.
                1 => Attempt::Retryable {
                    reason: "down".into(),
                    retry_after: Some(Duration::from_secs(60)),
                },
                _ => accepted(),
            }
        },
    );
    let first = step(10.0, &[1.0, 2.0], 10);
    otlp.export(&first).unwrap();
    let second = step(25.0, &[1.0, 2.0, 30.0], 20);
    assert!(otlp.export(&second).is_err());
    let third = step(40.0, &[1.0, 2.0, 30.0, 30.0, 700.0], 30);
    // Retry-After (60 s) is honoured across exports: no request now.
    let before = sent.lock().unwrap().len();
    assert!(otlp.export(&third).is_err());
    assert_eq!(sent.lock().unwrap().len(), before);
    otlp.not_before = None;
    otlp.export(&third).unwrap();

    let sent = sent.lock().unwrap();
    let (v, start, temporality) = counter_point(&sent[0]);
    assert_eq!(
        (v, start, temporality),
        (10.0, nanos(first.start_time), DELTA)
    );
    // The failed delta (15) rides along: 30 since the first export.
    let (v, start, _) = counter_point(sent.last().unwrap());
    assert_eq!((v, start), (30.0, nanos(first.time)));
    // Up-down counters stay cumulative.
    let Some(Data::Sum(updown)) = &metric(sent.last().unwrap(), "u").data else {
        panic!()
    };
    assert_eq!(updown.aggregation_temporality, CUMULATIVE);
    assert_eq!(value(&updown.data_points[0]), -60.0);
    // Histogram delta: 30, 30, 700 since the first export.
    let Some(Data::Histogram(h)) = &metric(sent.last().unwrap(), "h").data else {
        panic!()
    };
    assert_eq!(h.aggregation_temporality, DELTA);
    let point = &h.data_points[0];
    assert_eq!(point.count, 3);
    assert_eq!(point.sum, Some(760.0));
    assert_eq!(point.bucket_counts[4], 2);
    assert_eq!(point.bucket_counts[9], 1);
    // The interval's maximum is known (the cumulative one moved); its
    // minimum is not (the cumulative minimum did not move).
    assert_eq!((point.min, point.max), (None, Some(700.0)));
    assert_eq!(
        otlp.retained_series(),
        2,
        "one baseline per counter and histogram"
    );
}

/// A series retired after its idle timeout and recorded again starts over:
/// its points start at its own start time, and a delta counts from zero,
/// not from the earlier series' accepted value; a series that left the
/// snapshot leaves no baseline behind.
#[test]
fn a_restarted_series_starts_over_in_both_temporalities() {
    for temporality in [Temporality::Cumulative, Temporality::Delta] {
        let (mut otlp, sent) = scripted(quick("http://unused").temporality(temporality), |_| {
            accepted()
        });
        otlp.export(&step(10.0, &[1.0], 10)).unwrap();
        let mut back = step(2.0, &[1.0], 30);
        let restarted = back.start_time + Duration::from_secs(15);
        back.series[0].start_time = Some(restarted);
        otlp.export(&back).unwrap();
        let (v, start, _) = counter_point(sent.lock().unwrap().last().unwrap());
        assert_eq!((v, start), (2.0, nanos(restarted)), "{temporality:?}");
        // Retired again: gone from the snapshot, and from the baselines.
        otlp.export(&snapshot_at(Vec::new(), 40)).unwrap();
        assert_eq!(otlp.retained_series(), 0);
    }
}
