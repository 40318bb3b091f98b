//! The variance series (`export/variance.rs`) on the wire: decoded by the
//! loopback collector, each equals its snapshot's variance; exact series
//! carry none; under delta temporality the points sum back to the
//! cumulative values and variances, failed exports included; the switch.

use std::time::Duration;

use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality,
};

use super::collector::{Collector, Reply};
use super::*;
use crate::export::exporter::Exporter;
use crate::export::otlp::Temporality;
use crate::export::rebucket::fixtures::histogram;
use crate::export::InMemory;
use crate::record;
use crate::report::snapshot::HistogramSnapshot;
use crate::test_support::engine_lock;

const CUMULATIVE: i32 = AggregationTemporality::Cumulative as i32;
const DELTA: i32 = AggregationTemporality::Delta as i32;

/// Every estimate of a series, with the OTLP name its variance takes.
fn estimates(series: &SeriesSnapshot) -> Vec<(String, Estimate)> {
    match &series.value {
        MetricValue::Counter(estimate) | MetricValue::UpDown(estimate) => {
            vec![(series.name.to_string(), *estimate)]
        }
        MetricValue::Histogram(h) => vec![
            (format!("{}.count", series.name), h.count),
            (format!("{}.sum", series.name), h.sum),
        ],
        MetricValue::Gauge(_) => Vec::new(),
    }
}

/// The point of metric `name` whose attributes are the series' labels.
fn point_of<'a>(
    request: &'a ExportMetricsServiceRequest,
    name: &str,
    series: &SeriesSnapshot,
) -> &'a NumberDataPoint {
    points(metric(request, name))
        .iter()
        .find(|point| {
            point.attributes.len() == series.labels.len()
                && series.labels.iter().all(|(key, value)| {
                    string_attribute(&point.attributes, key).as_deref() == Some(&**value)
                })
        })
        .unwrap_or_else(|| panic!("{name} has a point for {:?}", series.labels))
}

/// Checks `request` against the cumulative `snapshot`: the variance of
/// every estimated series, nothing for the exact ones. Returns how many
/// variance points it checked.
fn check_cumulative_variances(request: &ExportMetricsServiceRequest, snapshot: &Snapshot) -> usize {
    let mut checked = 0;
    for series in &snapshot.series {
        for (name, estimate) in estimates(series) {
            let variance_name = format!("{name}.variance");
            if estimate.exact {
                assert!(!has_metric(request, &variance_name), "{name} is exact");
                continue;
            }
            let metric = metric(request, &variance_name);
            let Some(Data::Sum(sum)) = &metric.data else {
                panic!("{variance_name} is a sum")
            };
            assert!(sum.is_monotonic, "{variance_name}");
            assert_eq!(sum.aggregation_temporality, CUMULATIVE);
            let point = point_of(request, &variance_name, series);
            assert_eq!(
                point.value,
                Some(number_data_point::Value::AsDouble(estimate.variance())),
                "{variance_name} {:?}",
                series.labels
            );
            assert_eq!(point.start_time_unix_nano, nanos(snapshot.start_time));
            assert_eq!(point.time_unix_nano, nanos(snapshot.time));
            checked += 1;
        }
    }
    let names = &request.resource_metrics[0].scope_metrics[0].metrics;
    assert!(
        !names
            .iter()
            .any(|metric| metric.name.ends_with(".std_error")),
        "no standard-error gauge"
    );
    checked
}

fn sampled_histogram(values: &[f64], count_se: f64, sum_se: f64) -> HistogramSnapshot {
    let mut h = histogram(values, 30);
    h.count.std_error = count_se;
    h.sum.std_error = sum_se;
    h
}

fn mixed_snapshot() -> Snapshot {
    let mut unseen = Estimate::new(0.0, 0.0, false, 0);
    unseen.calls_upper_bound = Some(299.6);
    snapshot_at(
        vec![
            series(
                "http.requests",
                &[("route", "/a")],
                MetricValue::Counter(exact(42.0)),
            ),
            SeriesSnapshot {
                unit: Some("{request}".into()),
                ..series(
                    "ws.sent",
                    &[("shard", "1")],
                    MetricValue::Counter(sampled(1000.5, 31.3)),
                )
            },
            series(
                "ws.sent",
                &[("shard", "2")],
                MetricValue::Counter(sampled(20.0, 4.5)),
            ),
            series("ws.failed", &[], MetricValue::Counter(unseen)),
            series("ws.active", &[], MetricValue::UpDown(exact(-3.0))),
            series("queue.depth", &[], MetricValue::Gauge(17.0)),
            SeriesSnapshot {
                unit: Some("ms".into()),
                ..series(
                    "lat",
                    &[("op", "read")],
                    MetricValue::Histogram(sampled_histogram(&[3.0, 40.0], 7.7, 123.4)),
                )
            },
            series(
                "exact_lat",
                &[],
                MetricValue::Histogram(histogram(&[1.0], 1)),
            ),
            series(
                "hotmetrics.samples_recorded",
                &[],
                MetricValue::Counter(exact(12.0)),
            ),
        ],
        10,
    )
}

#[test]
fn decoded_variances_equal_the_snapshot_s() {
    let collector = Collector::start(|_| Reply::ok());
    let mut otlp = quick(&collector.url()).build().unwrap();
    let snapshot = mixed_snapshot();
    otlp.export(&snapshot).unwrap();
    let received = collector.accepted();
    let request = &received[0];
    // ws.sent ×2, ws.failed (no sample yet: zero, but there), lat count and sum.
    assert_eq!(check_cumulative_variances(request, &snapshot), 5);
    assert_eq!(
        value(point_of(request, "ws.failed.variance", &snapshot.series[3])),
        0.0
    );
    // Squared units; a histogram's count has none.
    let unit = |name: &str| metric(request, name).unit.clone();
    assert_eq!(unit("ws.sent.variance"), "{request^2}");
    assert_eq!(unit("lat.sum.variance"), "ms2");
    assert_eq!(unit("lat.count.variance"), "");
    assert_eq!(unit("ws.failed.variance"), "");
    assert!(metric(request, "ws.sent.variance")
        .description
        .contains("standard error"));
}

#[test]
fn engine_to_collector_variances_equal_the_final_snapshot_s() {
    let _engine_lock = engine_lock();
    let collector = Collector::start(|_| Reply::ok());
    let store = InMemory::new();
    let engine = crate::Engine::builder()
        .sample_rate(0.05)
        .adaptive(false)
        .export_interval(Duration::from_millis(50))
        .exporter(quick(&collector.url()).build().unwrap())
        .exporter(store.clone())
        .install()
        .unwrap();
    for i in 0..100_000u64 {
        record!(counter: "variance.e2e.sent", 1, "shard" => "a");
        record!(counter: "variance.e2e.sent", 3, "shard" => "b");
        record!(histogram: "variance.e2e.latency_ms", (1 + i % 700) as f64);
        if i % 1000 == 0 {
            record!(critical counter: "variance.e2e.exact", 1);
        }
    }
    engine.shutdown().unwrap();
    // The final snapshot went to both exporters.
    let last = store.latest().expect("the final snapshot");
    let received = collector.accepted();
    let request = received.last().expect("the final export");
    let checked = check_cumulative_variances(request, &last);
    assert!(
        checked >= 4,
        "two counters and the histogram's count and sum"
    );
    let sent = last
        .counter("variance.e2e.sent", &[("shard", "b")])
        .unwrap();
    assert!(!sent.exact && sent.samples > 1000 && sent.variance() > 0.0);
    assert!(!has_metric(request, "variance.e2e.exact.variance"));
}

/// Snapshot `k` of a run whose sampled series grow by seeded amounts.
fn growing(
    rng: &mut fastrand::Rng,
    totals: &mut [f64; 6],
    values: &mut Vec<f64>,
    k: u64,
) -> Snapshot {
    // counter value and variance, exact counter, histogram count
    // variance, sum variance (count and sum values follow `values`).
    totals[0] += 100.0 * rng.f64();
    totals[1] += 50.0 * rng.f64();
    totals[2] += f64::from(rng.u32(0..5));
    totals[3] += 3.0 * rng.f64();
    totals[4] += 900.0 * rng.f64();
    values.push(1.0 + 99.0 * rng.f64());
    snapshot_at(
        vec![
            series(
                "c",
                &[("k", "v")],
                MetricValue::Counter(sampled(totals[0], totals[1].sqrt())),
            ),
            series("x", &[], MetricValue::Counter(exact(totals[2]))),
            series(
                "h",
                &[],
                MetricValue::Histogram(sampled_histogram(
                    values,
                    totals[3].sqrt(),
                    totals[4].sqrt(),
                )),
            ),
        ],
        10 * k,
    )
}

#[test]
fn delta_points_sum_back_to_the_cumulative_failed_exports_included() {
    // Exports 2, 3 and 6 fail (Retry-After past the export's deadline).
    let (mut otlp, sent) = scripted(
        quick("http://unused").temporality(Temporality::Delta),
        |n| {
            if [2, 3, 6].contains(&n) {
                Attempt::Retryable {
                    reason: "down".into(),
                    retry_after: Some(Duration::from_secs(60)),
                }
            } else {
                accepted()
            }
        },
    );
    let mut rng = fastrand::Rng::with_seed(12);
    let (mut totals, mut values) = ([0.0; 6], Vec::new());
    let mut last = None;
    for k in 1..=9 {
        let snapshot = growing(&mut rng, &mut totals, &mut values, k);
        let outcome = otlp.export(&snapshot);
        assert_eq!(outcome.is_ok(), ![3, 4, 7].contains(&k), "export {k}");
        otlp.not_before = None;
        last = Some(snapshot);
    }
    let last = last.unwrap();
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 9, "one attempt per export");
    let accepted: Vec<_> = sent
        .iter()
        .enumerate()
        .filter(|(n, _)| ![2, 3, 6].contains(n))
        .map(|(_, request)| request)
        .collect();
    assert_eq!(accepted.len(), 6);
    let sum_of = |name: &str| -> f64 {
        accepted
            .iter()
            .map(|request| {
                let Some(Data::Sum(sum)) = &metric(request, name).data else {
                    panic!("{name} is a sum")
                };
                assert_eq!(sum.aggregation_temporality, DELTA, "{name}");
                assert!(sum.is_monotonic);
                value(&sum.data_points[0])
            })
            .sum()
    };
    let close = |got: f64, want: f64, what: &str| {
        assert!(
            (got - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{what}: deltas sum to {got}, cumulative {want}"
        );
    };
    let counter = last.counter("c", &[("k", "v")]).unwrap();
    close(sum_of("c"), counter.value, "counter");
    close(sum_of("c.variance"), counter.variance(), "counter variance");
    close(
        sum_of("x"),
        last.counter("x", &[]).unwrap().value,
        "exact counter",
    );
    let h = last.histogram("h", &[]).unwrap();
    close(
        sum_of("h.count.variance"),
        h.count.variance(),
        "count variance",
    );
    close(sum_of("h.sum.variance"), h.sum.variance(), "sum variance");
    for request in &accepted {
        assert!(!has_metric(request, "x.variance"), "exact: none");
        // A variance point covers the same interval as its value's.
        let value_start = points(metric(request, "c"))[0].start_time_unix_nano;
        let variance_point = &points(metric(request, "c.variance"))[0];
        assert_eq!(variance_point.start_time_unix_nano, value_start);
        assert_eq!(
            string_attribute(&variance_point.attributes, "k").as_deref(),
            Some("v")
        );
    }
}

#[test]
#[allow(deprecated)]
fn off_by_the_builder_or_the_environment() {
    let snapshot = mixed_snapshot();
    let has_variance = |builder: OtlpBuilder| {
        let request = builder.build().unwrap().request(&snapshot);
        request.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .any(|metric| metric.name.ends_with(".variance"))
    };
    assert!(has_variance(quick("http://unused")), "on by default");
    assert!(!has_variance(quick("http://unused").export_variance(false)));
    let env_off = || Otlp::builder().env_vars([("HOTMETRICS_EXPORT_VARIANCE", "false")]);
    assert!(!has_variance(env_off()));
    assert!(has_variance(env_off().export_variance(true)), "code wins");
    // The standard-error switch of earlier releases is an alias.
    assert!(!has_variance(
        quick("http://unused").std_error_gauges(false)
    ));
    assert!(has_variance(env_off().std_error_gauges(true)));
    let error = Otlp::builder()
        .env_vars([("HOTMETRICS_EXPORT_VARIANCE", "sometimes")])
        .build()
        .unwrap_err();
    assert_eq!(error.setting, "HOTMETRICS_EXPORT_VARIANCE");
    let chosen = crate::export::from_vars([
        ("OTEL_METRICS_EXPORTER", "otlp"),
        ("HOTMETRICS_EXPORT_VARIANCE", "sometimes"),
    ]);
    let Err(error) = chosen else {
        panic!("a bad HOTMETRICS_EXPORT_VARIANCE is refused")
    };
    assert_eq!(error.setting, "HOTMETRICS_EXPORT_VARIANCE");
}

#[test]
fn names_taken_by_the_program_or_another_variance_are_left_out() {
    let otlp = quick("http://unused").build().unwrap();
    let snapshot = snapshot_at(
        vec![
            series("x", &[], MetricValue::Counter(sampled(100.0, 3.0))),
            // The program's own metric of that name, after it.
            series("x.variance", &[], MetricValue::Counter(exact(7.0))),
            // A counter `h.count` and a histogram `h` both have a
            // `h.count.variance`: the first keeps it.
            series("h.count", &[], MetricValue::Counter(sampled(50.0, 2.0))),
            series(
                "h",
                &[],
                MetricValue::Histogram(sampled_histogram(&[1.0], 5.0, 6.0)),
            ),
        ],
        1,
    );
    let request = otlp.request(&snapshot);
    let x = points(metric(&request, "x.variance"));
    assert_eq!(x.len(), 1);
    assert_eq!(x[0].value, Some(number_data_point::Value::AsInt(7)));
    let count = points(metric(&request, "h.count.variance"));
    assert_eq!((count.len(), value(&count[0])), (1, 4.0));
    assert_eq!(value(&points(metric(&request, "h.sum.variance"))[0]), 36.0);
}
