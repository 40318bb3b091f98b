//! The same instrumentation run against `opentelemetry_sdk` (in-memory
//! exporter) and against this provider: at rate 1 the exported values agree;
//! at a sampled rate the estimates sit within their standard errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, SdkMeterProvider};

use crate::export::InMemory;
use crate::otel::MeterProvider;
use crate::report::snapshot::{MetricValue, Snapshot};
use crate::test_support::engine_lock;
use crate::Engine;

/// The SDK's default explicit bucket bounds, used to compare distributions.
const SDK_BOUNDS: [f64; 15] = [
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];

/// Latencies kept well away from the bucket bounds: hotmetrics' histogram
/// is exact to 0.1 %, the SDK's buckets are exact.
const LATENCIES: [f64; 11] = [
    0.5, 3.25, 7.0, 12.5, 30.0, 60.0, 90.0, 120.0, 400.0, 800.0, 3000.0,
];

/// One exported point, reduced to what both sides export.
#[derive(Clone, Debug, PartialEq)]
enum Point {
    Sum(f64),
    Gauge(f64),
    Histogram {
        count: f64,
        sum: f64,
        min: Option<f64>,
        max: Option<f64>,
        /// Cumulative counts at each of `SDK_BOUNDS`.
        at_or_below: Vec<f64>,
    },
}

type SeriesKey = (String, Vec<(String, String)>);

#[derive(Debug, Default)]
struct Exported {
    points: BTreeMap<SeriesKey, Point>,
    /// Name → (unit, description), empty strings when undeclared.
    meta: BTreeMap<String, (String, String)>,
}

/// The instrumentation under test: every instrument kind, attribute lists in
/// varying order, observable callbacks.
fn instrument_and_record(meter: &Meter, calls: u64) {
    let requests = meter
        .u64_counter("cmp.requests")
        .with_unit("{request}")
        .with_description("Requests served")
        .build();
    let bytes = meter.f64_counter("cmp.bytes").with_unit("By").build();
    let open = meter.i64_up_down_counter("cmp.open").build();
    let balance = meter.f64_up_down_counter("cmp.balance").build();
    let depth = meter.u64_gauge("cmp.depth").build();
    let temperature = meter.i64_gauge("cmp.temperature").with_unit("Cel").build();
    let load = meter.f64_gauge("cmp.load").build();
    let latency = meter
        .f64_histogram("cmp.latency")
        .with_unit("ms")
        .with_description("Handler latency")
        .build();
    let sizes = meter.u64_histogram("cmp.size").with_unit("By").build();
    let _ticks = meter
        .u64_observable_counter("cmp.obs.ticks")
        .with_description("Timer ticks")
        .with_callback(|observer| observer.observe(42, &[KeyValue::new("source", "timer")]))
        .build();
    let _cpu = meter
        .f64_observable_counter("cmp.obs.cpu")
        .with_unit("s")
        .with_callback(|observer| observer.observe(12.25, &[]))
        .build();
    let _queued = meter
        .i64_observable_up_down_counter("cmp.obs.queued")
        .with_callback(|observer| observer.observe(-7, &[KeyValue::new("queue", "a")]))
        .build();
    let _drift = meter
        .f64_observable_up_down_counter("cmp.obs.drift")
        .with_callback(|observer| observer.observe(-0.5, &[]))
        .build();
    let _threads = meter
        .u64_observable_gauge("cmp.obs.threads")
        .with_callback(|observer| observer.observe(8, &[]))
        .build();
    let _offset = meter
        .i64_observable_gauge("cmp.obs.offset")
        .with_callback(|observer| observer.observe(-3, &[]))
        .build();
    let _ratio = meter
        .f64_observable_gauge("cmp.obs.ratio")
        .with_callback(|observer| {
            observer.observe(0.75, &[KeyValue::new("pool", "db")]);
            observer.observe(0.25, &[KeyValue::new("pool", "cache")]);
        })
        .build();

    let routes = ["/", "/api", "/pay"];
    for i in 0..calls {
        let route = KeyValue::new("route", routes[(i % 3) as usize]);
        let status = KeyValue::new("status", if i % 10 == 0 { 500 } else { 200 });
        let method = KeyValue::new("method", "GET");
        // The same sets in different orders.
        let attributes = match i % 3 {
            0 => [route, status, method],
            1 => [method, route, status],
            _ => [status, method, route],
        };
        requests.add(1, &attributes);
        bytes.add((i % 7) as f64 * 1.5, &attributes[..2]);
        open.add(if i % 3 == 0 { -1 } else { 1 }, &[]);
        balance.add(if i % 2 == 0 { 2.5 } else { -1.0 }, &[]);
        depth.record(i % 50, &[]);
        temperature.record(-((i % 9) as i64), &[KeyValue::new("room", "b")]);
        load.record((i % 4) as f64 * 0.25, &[]);
        latency.record(
            LATENCIES[(i % LATENCIES.len() as u64) as usize],
            &attributes[2..],
        );
        sizes.record(64 + (i % 5) * 512, &[]);
    }
}

fn label_pairs<'a>(attributes: impl Iterator<Item = &'a KeyValue>) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = attributes
        .map(|pair| (pair.key.to_string(), pair.value.as_str().into_owned()))
        .collect();
    pairs.sort();
    pairs
}

fn from_sdk_data<T: Copy>(
    name: &str,
    data: &MetricData<T>,
    to_f64: fn(T) -> f64,
    out: &mut BTreeMap<SeriesKey, Point>,
) {
    match data {
        MetricData::Sum(sum) => {
            for point in sum.data_points() {
                let key = (name.to_string(), label_pairs(point.attributes()));
                out.insert(key, Point::Sum(to_f64(point.value())));
            }
        }
        MetricData::Gauge(gauge) => {
            for point in gauge.data_points() {
                let key = (name.to_string(), label_pairs(point.attributes()));
                out.insert(key, Point::Gauge(to_f64(point.value())));
            }
        }
        MetricData::Histogram(histogram) => {
            for point in histogram.data_points() {
                let bounds: Vec<f64> = point.bounds().collect();
                assert_eq!(bounds, SDK_BOUNDS, "the SDK's default bounds");
                let mut running = 0u64;
                let at_or_below = point
                    .bucket_counts()
                    .take(bounds.len())
                    .map(|count| {
                        running += count;
                        running as f64
                    })
                    .collect();
                let key = (name.to_string(), label_pairs(point.attributes()));
                out.insert(
                    key,
                    Point::Histogram {
                        count: point.count() as f64,
                        sum: to_f64(point.sum()),
                        min: point.min().map(to_f64),
                        max: point.max().map(to_f64),
                        at_or_below,
                    },
                );
            }
        }
        MetricData::ExponentialHistogram(_) => panic!("no exponential histograms configured"),
    }
}

fn from_sdk(resource: &ResourceMetrics) -> Exported {
    let mut exported = Exported::default();
    for scope in resource.scope_metrics() {
        for metric in scope.metrics() {
            let name = metric.name();
            exported.meta.insert(
                name.to_string(),
                (metric.unit().to_string(), metric.description().to_string()),
            );
            let points = &mut exported.points;
            match metric.data() {
                AggregatedMetrics::F64(data) => from_sdk_data(name, data, |v| v, points),
                AggregatedMetrics::U64(data) => from_sdk_data(name, data, |v| v as f64, points),
                AggregatedMetrics::I64(data) => from_sdk_data(name, data, |v| v as f64, points),
            }
        }
    }
    exported
}

fn from_hotmetrics(snapshot: &Snapshot) -> Exported {
    let mut exported = Exported::default();
    for series in snapshot
        .series
        .iter()
        .filter(|s| s.name.starts_with("cmp."))
    {
        let point = match &series.value {
            MetricValue::Counter(estimate) | MetricValue::UpDown(estimate) => {
                Point::Sum(estimate.value)
            }
            MetricValue::Gauge(value) => Point::Gauge(*value),
            MetricValue::Histogram(histogram) => Point::Histogram {
                count: histogram.count.value,
                sum: histogram.sum.value,
                min: histogram.min,
                max: histogram.max,
                at_or_below: SDK_BOUNDS
                    .iter()
                    .map(|bound| histogram.count_at_or_below(*bound).round())
                    .collect(),
            },
        };
        let labels = series
            .labels
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        exported
            .points
            .insert((series.name.to_string(), labels), point);
        exported.meta.insert(
            series.name.to_string(),
            (
                series.unit.as_deref().unwrap_or("").to_string(),
                series.description.as_deref().unwrap_or("").to_string(),
            ),
        );
    }
    exported
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn same_point(a: &Point, b: &Point) -> bool {
    match (a, b) {
        (Point::Sum(a), Point::Sum(b)) | (Point::Gauge(a), Point::Gauge(b)) => close(*a, *b),
        (
            Point::Histogram {
                count,
                sum,
                min,
                max,
                at_or_below,
            },
            Point::Histogram {
                count: count_b,
                sum: sum_b,
                min: min_b,
                max: max_b,
                at_or_below: at_or_below_b,
            },
        ) => {
            close(*count, *count_b)
                && close(*sum, *sum_b)
                && min == min_b
                && max == max_b
                && at_or_below == at_or_below_b
        }
        _ => false,
    }
}

fn run_sdk(calls: u64) -> Exported {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_periodic_exporter(exporter.clone())
        .build();
    instrument_and_record(&provider.meter("cmp"), calls);
    provider.force_flush().expect("the SDK flushes");
    let finished = exporter.get_finished_metrics().expect("the SDK exported");
    let last = finished.last().expect("one export");
    let exported = from_sdk(last);
    provider.shutdown().expect("the SDK shuts down");
    exported
}

#[test]
fn rate_one_exports_what_the_sdk_exports() {
    let calls = 3_000;
    let sdk = run_sdk(calls);

    let _lock = engine_lock();
    let store = InMemory::new();
    // Rings large enough that no sample spills: a spilled histogram sample
    // counts in `count` and `sum` but not in the distribution, which would
    // blur the bucket comparison by one.
    let engine = Engine::builder()
        .sample_rate(1.0)
        .adaptive(false)
        .buffer_capacity(1 << 16)
        .exporter(store.clone())
        .install()
        .expect("engine installs");
    let provider = MeterProvider::new(&engine);
    instrument_and_record(&provider.meter("cmp"), calls);
    engine.shutdown().expect("clean shutdown");
    let last = store.latest().expect("the final export");
    assert_eq!(last.stats.samples_spilled, 0, "no sample spilled");
    let ours = from_hotmetrics(&last);

    // Every instrument exported: 16 metrics, 29 series (6 request sets, 5
    // byte sets, 4 latency sets, 2 pools, one series for each of the rest).
    assert_eq!(sdk.meta.len(), 16, "{:?}", sdk.meta.keys());
    assert_eq!(sdk.points.len(), 29, "{:?}", sdk.points.keys());
    let requests: f64 = sdk
        .points
        .iter()
        .filter(|((name, _), _)| name == "cmp.requests")
        .map(|(_, point)| match point {
            Point::Sum(value) => *value,
            _ => 0.0,
        })
        .sum();
    assert_eq!(requests, calls as f64);
    assert_eq!(
        sdk.points.keys().collect::<Vec<_>>(),
        ours.points.keys().collect::<Vec<_>>(),
        "the same series"
    );
    for (key, expected) in &sdk.points {
        let got = &ours.points[key];
        assert!(
            same_point(expected, got),
            "{key:?}: SDK {expected:?}, hotmetrics {got:?}"
        );
    }
    assert_eq!(sdk.meta, ours.meta, "names, units and descriptions");
    assert_eq!(provider.callback_panics(), 0);
}

#[test]
fn sampled_estimates_cover_the_sdk_values() {
    let calls = 200_000;
    let sdk = run_sdk(calls);

    let _lock = engine_lock();
    let engine = Engine::builder()
        .sample_rate(0.05)
        .adaptive(false)
        .install()
        .expect("engine installs");
    let provider = MeterProvider::new(&engine);
    instrument_and_record(&provider.meter("cmp"), calls);
    let snapshot = Arc::new(engine.snapshot());
    engine.shutdown().expect("clean shutdown");

    let mut checked = 0;
    for series in snapshot
        .series
        .iter()
        .filter(|s| s.name.starts_with("cmp."))
    {
        let labels = series
            .labels
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        let key = (series.name.to_string(), labels);
        let expected = &sdk.points[&key];
        let estimates = match (&series.value, expected) {
            (MetricValue::Counter(estimate) | MetricValue::UpDown(estimate), Point::Sum(truth)) => {
                vec![(*estimate, *truth)]
            }
            (MetricValue::Histogram(histogram), Point::Histogram { count, sum, .. }) => {
                vec![(histogram.count, *count), (histogram.sum, *sum)]
            }
            // Gauges are never sampled: the last value, exactly.
            (MetricValue::Gauge(value), Point::Gauge(truth)) => {
                assert_eq!(value, truth, "{key:?}");
                continue;
            }
            (value, expected) => panic!("{key:?}: {value:?} against {expected:?}"),
        };
        for (estimate, truth) in estimates {
            // Observations, and up-down counters (a level is never sampled).
            let exact = series.name.starts_with("cmp.obs.")
                || matches!(series.value, MetricValue::UpDown(_));
            assert_eq!(
                estimate.exact, exact,
                "{key:?}: only observations and levels are exact"
            );
            if estimate.std_error == 0.0 {
                assert!(
                    close(estimate.value, truth),
                    "{key:?}: {estimate:?} vs {truth}"
                );
            } else {
                // Five standard errors: a false alarm about once in two
                // million runs per estimate.
                assert!(
                    (estimate.value - truth).abs() <= 5.0 * estimate.std_error,
                    "{key:?}: {estimate:?} vs {truth}"
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 15,
        "every sampled series was compared ({checked})"
    );
}
