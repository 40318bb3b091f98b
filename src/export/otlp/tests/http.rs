//! The whole path: engine → exporter thread → HTTP → loopback collector,
//! decoded with `opentelemetry-proto`.

use std::time::Duration;

use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality,
};

use super::collector::{Collector, Reply};
use super::*;
use crate::export::exporter::Exporter;
use crate::export::otlp::{Compression, Temporality};
use crate::record;
use crate::test_support::engine_lock;

#[test]
fn engine_to_collector() {
    let _engine_lock = engine_lock();
    let collector = Collector::start(|_| Reply::ok());
    let exporter = quick(&collector.url())
        .service_name("e2e-service")
        .header("x-api-key", "k-123")
        .build()
        .unwrap();
    // Rings large enough for the whole burst: a flusher kept off the CPU by
    // tests running beside this one must not make the histogram's values
    // spill (spilled values keep count and sum but have no bucket).
    let engine = crate::Engine::builder()
        .sample_rate(0.05)
        .adaptive(false)
        .buffer_capacity(1 << 16)
        .export_interval(Duration::from_millis(50))
        .exporter(exporter)
        .install()
        .unwrap();
    for i in 0..200_000u64 {
        record!(counter: "e2e.sampled", 1);
        if i % 1000 == 0 {
            record!(critical counter: "e2e.requests", 1, "route" => "/a");
        }
    }
    record!(critical counter: "e2e.requests", 5, "route" => "/b");
    record!(critical updown: "e2e.active", 3);
    record!(critical updown: "e2e.active", -1);
    record!(gauge: "e2e.depth", 17.5);
    for value in [1.0, 5.0, 7.0, 30.0, 20000.0] {
        record!(critical histogram: "e2e.latency_ms", value);
    }
    assert!(
        collector.wait_until(Duration::from_secs(5), |received| !received.is_empty()),
        "periodic exports arrive"
    );
    let final_snapshot = engine.snapshot();
    engine.shutdown().unwrap();

    let received = collector.received();
    let last = received.last().unwrap();
    assert_eq!(last.path, "/v1/metrics");
    assert_eq!(last.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(last.header("x-api-key"), Some("k-123"));
    let request = &last.request;
    let resource = request.resource_metrics[0].resource.as_ref().unwrap();
    assert_eq!(
        string_attribute(&resource.attributes, "service.name").as_deref(),
        Some("e2e-service")
    );

    let requests = metric(request, "e2e.requests");
    let Some(Data::Sum(sum)) = &requests.data else {
        panic!("a sum")
    };
    assert!(sum.is_monotonic);
    assert_eq!(
        sum.aggregation_temporality,
        AggregationTemporality::Cumulative as i32
    );
    let by_route = |route: &str| {
        sum.data_points
            .iter()
            .find(|p| string_attribute(&p.attributes, "route").as_deref() == Some(route))
            .and_then(|p| p.value)
    };
    assert_eq!(by_route("/a"), Some(number_data_point::Value::AsInt(200)));
    assert_eq!(by_route("/b"), Some(number_data_point::Value::AsInt(5)));

    let sampled = &points(metric(request, "e2e.sampled"))[0];
    let estimate = final_snapshot.counter("e2e.sampled", &[]).unwrap();
    assert!(matches!(
        sampled.value,
        Some(number_data_point::Value::AsDouble(_))
    ));
    assert!(
        (value(sampled) - 200_000.0).abs() < 6.0 * estimate.std_error.max(1.0),
        "{} vs 200000 ± {}",
        value(sampled),
        estimate.std_error
    );

    let active = metric(request, "e2e.active");
    let Some(Data::Sum(sum)) = &active.data else {
        panic!("a sum")
    };
    assert!(!sum.is_monotonic);
    assert_eq!(value(&sum.data_points[0]), 2.0);
    assert_eq!(value(&points(metric(request, "e2e.depth"))[0]), 17.5);

    let Some(Data::Histogram(h)) = &metric(request, "e2e.latency_ms").data else {
        panic!("a histogram")
    };
    let point = &h.data_points[0];
    assert_eq!(point.count, 5);
    assert_eq!(point.sum, Some(20043.0));
    assert_eq!(point.bucket_counts[1], 2, "1 and 5 in (0, 5]");
    assert_eq!(point.bucket_counts.iter().sum::<u64>(), 5);
    assert_eq!((point.min, point.max), (Some(1.0), Some(20000.0)));

    // The engine's own figures, and a cumulative start time that holds
    // still from one export to the next.
    assert!(has_metric(request, "hotmetrics.samples_recorded"));
    assert!(has_metric(request, "hotmetrics.exports_ok"));
    let starts: Vec<u64> = received
        .iter()
        .filter(|r| has_metric(&r.request, "e2e.requests"))
        .map(|r| points(metric(&r.request, "e2e.requests"))[0].start_time_unix_nano)
        .collect();
    assert!(
        starts.windows(2).all(|pair| pair[0] == pair[1]),
        "{starts:?}"
    );
}

#[test]
fn gzip_and_delta_over_http() {
    let collector = Collector::start(|_| Reply::ok());
    let mut otlp = quick(&collector.url())
        .compression(Compression::Gzip)
        .temporality(Temporality::Delta)
        .build()
        .unwrap();
    let at = |value: f64, seconds| {
        snapshot_at(
            vec![series("c", &[], MetricValue::Counter(exact(value)))],
            seconds,
        )
    };
    otlp.export(&at(4.0, 1)).unwrap();
    otlp.export(&at(10.0, 2)).unwrap();
    let received = collector.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].header("content-encoding"), Some("gzip"));
    let deltas: Vec<f64> = received
        .iter()
        .map(|r| value(&points(metric(&r.request, "c"))[0]))
        .collect();
    assert_eq!(deltas, [4.0, 6.0]);
}

#[test]
fn partial_success_is_accepted() {
    use opentelemetry_proto::tonic::collector::metrics::v1::{
        ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
    };
    use prost::Message;
    let body = ExportMetricsServiceResponse {
        partial_success: Some(ExportMetricsPartialSuccess {
            rejected_data_points: 2,
            error_message: "2 points had bad names".into(),
        }),
    }
    .encode_to_vec();
    let collector = Collector::start(move |_| {
        Reply::ok()
            .header("Content-Type", "application/x-protobuf")
            .body(body.clone())
    });
    let mut otlp = quick(&collector.url()).build().unwrap();
    otlp.export(&snapshot_at(Vec::new(), 1)).unwrap();
    assert_eq!(collector.request_count(), 1, "not retried");
}
