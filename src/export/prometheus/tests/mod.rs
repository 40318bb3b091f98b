//! Rendering rules, and scraping the endpoint over HTTP and parsing what
//! comes back.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

mod buckets;
mod parse;
mod slow_clients;
mod variance;

use super::render::{label_name, metric_name, number};
use super::*;
use crate::export::rebucket::fixtures::histogram;
use crate::record;
use crate::report::snapshot::{Estimate, MetricValue, SeriesSnapshot};
use crate::report::stats::Stats;
use crate::test_support::engine_lock;
use parse::{find, parse};

const NO_ENV: [(&str, &str); 0] = [];

fn series(name: &str, pairs: &[(&str, &str)], value: MetricValue) -> SeriesSnapshot {
    let mut labels: Vec<(Arc<str>, Arc<str>)> = pairs
        .iter()
        .map(|(k, v)| (Arc::from(*k), Arc::from(*v)))
        .collect();
    labels.sort();
    SeriesSnapshot {
        name: Arc::from(name),
        labels: labels.into(),
        value,
        unit: None,
        description: None,
        inclusion_prob: None,
        target_met: None,
        start_time: None,
    }
}

fn estimate(value: f64, std_error: f64, exact: bool) -> Estimate {
    Estimate::new(value, std_error, exact, if exact { 0 } else { 100 })
}

fn snapshot(series: Vec<SeriesSnapshot>) -> Snapshot {
    Snapshot {
        series,
        stats: Stats::default(),
        start_time: UNIX_EPOCH + Duration::from_secs(1000),
        time: UNIX_EPOCH + Duration::from_secs(1010),
    }
}

fn sample_snapshot() -> Snapshot {
    snapshot(vec![
        series(
            "http.requests",
            &[("route", "/a")],
            MetricValue::Counter(estimate(42.0, 0.0, true)),
        ),
        series(
            "http.requests",
            &[("route", "/b\"q\"\n")],
            MetricValue::Counter(estimate(7.0, 0.0, true)),
        ),
        series(
            "jobs_total",
            &[],
            MetricValue::Counter(estimate(1203.7, 40.0, false)),
        ),
        SeriesSnapshot {
            description: Some("Open sockets\\now".into()),
            inclusion_prob: None,
            target_met: None,
            start_time: None,
            ..series(
                "ws.active-connections",
                &[],
                MetricValue::UpDown(estimate(-3.0, 0.0, true)),
            )
        },
        series(
            "queue.depth",
            &[("1st", "x"), ("__meta", "y")],
            MetricValue::Gauge(0.25),
        ),
        series(
            "label.clash",
            &[("a.b", "1"), ("a_b", "2")],
            MetricValue::Gauge(1.0),
        ),
        series(
            "latency_ms",
            &[("op", "read")],
            MetricValue::Histogram(histogram(&[1.0, 5.0, 7.0, 30.0, 20000.0], 1)),
        ),
        series("9lives", &[], MetricValue::Gauge(9.0)),
    ])
}

#[test]
fn names_and_numbers() {
    assert_eq!(metric_name("http.server.duration"), "http_server_duration");
    assert_eq!(metric_name("a..b--c"), "a_b_c");
    assert_eq!(metric_name("9lives"), "_9lives");
    assert_eq!(metric_name("ns:sub"), "ns:sub");
    assert_eq!(label_name("service.name"), "service_name");
    assert_eq!(label_name("1st"), "key_1st");
    assert_eq!(label_name("__meta"), "key___meta");
    assert_eq!(number(42.0), "42");
    assert_eq!(number(0.25), "0.25");
    assert_eq!(number(-3.0), "-3");
    assert_eq!(number(f64::INFINITY), "+Inf");
    assert_eq!(number(f64::NAN), "NaN");
    assert_eq!(number(1e20), "1e20");
}

#[test]
fn text_format() {
    let prometheus = Prometheus::builder()
        .without_server()
        .env_vars(NO_ENV)
        .service_name("shop")
        .build()
        .unwrap();
    let mut exporter = prometheus.clone();
    exporter.export(&sample_snapshot()).unwrap();
    let text = prometheus.render();
    let (samples, types) = parse(&text);

    assert_eq!(types["http_requests_total"], "counter");
    assert_eq!(
        find(&samples, "http_requests_total", &[("route", "/a")])
            .unwrap()
            .2,
        42.0
    );
    assert_eq!(
        find(&samples, "http_requests_total", &[("route", "/b\"q\"\n")])
            .unwrap()
            .2,
        7.0
    );
    // No `_total_total`.
    assert_eq!(types["jobs_total"], "counter");
    assert_eq!(find(&samples, "jobs_total", &[]).unwrap().2, 1203.7);
    assert_eq!(types["ws_active_connections"], "gauge");
    assert!(text.contains("# HELP ws_active_connections Open sockets\\\\now\n# TYPE ws_active_connections gauge\n"), "{text}");
    assert_eq!(
        find(&samples, "ws_active_connections", &[]).unwrap().2,
        -3.0
    );
    assert_eq!(
        find(
            &samples,
            "queue_depth",
            &[("key_1st", "x"), ("key___meta", "y")]
        )
        .unwrap()
        .2,
        0.25
    );
    assert_eq!(
        find(&samples, "label_clash", &[("a_b", "1;2")]).unwrap().2,
        1.0
    );
    assert_eq!(find(&samples, "_9lives", &[]).unwrap().2, 9.0);

    assert_eq!(types["latency_ms"], "histogram");
    let bucket = |le: &str| {
        find(&samples, "latency_ms_bucket", &[("op", "read"), ("le", le)])
            .unwrap()
            .2
    };
    assert_eq!(bucket("0"), 0.0);
    assert_eq!(bucket("5"), 2.0);
    assert_eq!(bucket("10"), 3.0);
    assert_eq!(bucket("50"), 4.0);
    assert_eq!(bucket("10000"), 4.0);
    assert_eq!(bucket("+Inf"), 5.0);
    let buckets: Vec<f64> = samples
        .iter()
        .filter(|s| s.0 == "latency_ms_bucket")
        .map(|s| s.2)
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "cumulative");
    assert_eq!(
        find(&samples, "latency_ms_count", &[("op", "read")])
            .unwrap()
            .2,
        5.0
    );
    assert_eq!(
        find(&samples, "latency_ms_sum", &[("op", "read")])
            .unwrap()
            .2,
        20043.0
    );

    assert!(
        find(&samples, "target_info", &[]).is_none(),
        "target_info has labels"
    );
    let target = samples.iter().find(|s| s.0 == "target_info").unwrap();
    assert_eq!(
        target.1.get("service_name").map(String::as_str),
        Some("shop")
    );
    assert!(!text.contains("# EOF"));
}

#[test]
fn openmetrics_format() {
    let prometheus = Prometheus::builder()
        .without_server()
        .env_vars(NO_ENV)
        .build()
        .unwrap();
    prometheus.clone().export(&sample_snapshot()).unwrap();
    let text = prometheus.render_as(PrometheusFormat::OpenMetrics);
    assert!(text.ends_with("# EOF\n"));
    let (samples, types) = parse(&text);
    assert_eq!(
        types["http_requests"], "counter",
        "OpenMetrics names the family without _total"
    );
    assert_eq!(types["target"], "info");
    assert!(find(&samples, "http_requests_total", &[("route", "/a")]).is_some());
    assert!(
        find(
            &samples,
            "latency_ms_bucket",
            &[("op", "read"), ("le", "5.0")]
        )
        .is_some(),
        "canonical le"
    );
}

#[test]
fn variance_by_default_and_boundaries() {
    let prometheus = Prometheus::builder()
        .without_server()
        .without_target_info()
        .env_vars(NO_ENV)
        .bucket_boundaries("latency_ms", [10.0])
        .build()
        .unwrap();
    prometheus.clone().export(&sample_snapshot()).unwrap();
    let (samples, types) = parse(&prometheus.render());
    assert_eq!(
        find(&samples, "jobs_variance_total", &[]).unwrap().2,
        1600.0,
        "no _total_variance_total"
    );
    assert!(
        find(&samples, "http_requests_variance_total", &[("route", "/a")]).is_none(),
        "exact"
    );
    assert!(!samples.iter().any(|s| s.0.ends_with("_std_error")));
    assert!(!types.contains_key("target_info"));
    let les: Vec<&str> = samples
        .iter()
        .filter(|s| s.0 == "latency_ms_bucket")
        .map(|s| s.1["le"].as_str())
        .collect();
    assert_eq!(les, ["10", "+Inf"]);
    assert!(Prometheus::builder()
        .without_server()
        .default_bucket_boundaries([1.0, f64::NAN])
        .build()
        .is_err());
}

/// Sends `request` and returns (status line, headers, body).
fn http(addr: SocketAddr, request: &str) -> (String, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_string(), headers.to_lowercase(), body.to_string())
}

#[test]
fn scrape_over_http() {
    let prometheus = Prometheus::builder()
        .env_vars([
            ("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1"),
            ("OTEL_EXPORTER_PROMETHEUS_PORT", "0"),
        ])
        .build()
        .unwrap();
    let addr = prometheus.local_addr().unwrap();
    let mut exporter = prometheus.clone();
    exporter.export(&sample_snapshot()).unwrap();

    let (status, headers, body) = http(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n",
    );
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers.contains("content-type: text/plain; version=0.0.4"),
        "{headers}"
    );
    let (samples, _) = parse(&body);
    assert_eq!(
        find(&samples, "http_requests_total", &[("route", "/a")])
            .unwrap()
            .2,
        42.0
    );

    let (_, headers, body) = http(
        addr,
        "GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n\r\n",
    );
    assert!(
        headers.contains("application/openmetrics-text"),
        "{headers}"
    );
    assert!(body.ends_with("# EOF\n"));

    let (status, _, body) = http(addr, "HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", ""));
    assert_eq!(
        http(addr, "GET /other HTTP/1.1\r\n\r\n").0,
        "HTTP/1.1 404 Not Found"
    );
    assert_eq!(
        http(addr, "POST /metrics HTTP/1.1\r\n\r\n").0,
        "HTTP/1.1 405 Method Not Allowed"
    );

    // A second exporter cannot take the same port.
    let error = Prometheus::builder()
        .env_vars(NO_ENV)
        .address(addr.to_string())
        .build()
        .unwrap_err();
    assert_eq!(error.setting, "address");
    let error = Prometheus::builder()
        .env_vars([("OTEL_EXPORTER_PROMETHEUS_PORT", "http")])
        .build()
        .unwrap_err();
    assert_eq!(error.setting, "OTEL_EXPORTER_PROMETHEUS_PORT");

    // Shutting the exporter down frees the port.
    exporter.shutdown().unwrap();
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err());
    assert!(
        prometheus.render().contains("http_requests_total"),
        "render still works"
    );
}

#[test]
fn engine_snapshots_are_scraped() {
    let _engine_lock = engine_lock();
    let prometheus = Prometheus::builder()
        .env_vars(NO_ENV)
        .address("127.0.0.1:0")
        .build()
        .unwrap();
    let addr = prometheus.local_addr().unwrap();
    let engine = crate::Engine::builder()
        .export_interval(Duration::from_millis(20))
        .exporter(prometheus.clone())
        .install()
        .unwrap();
    for _ in 0..250 {
        record!(critical counter: "scrape.orders", 1, "shop" => "eu");
    }
    for value in [3.0, 30.0, 300.0] {
        record!(critical histogram: "scrape.latency_ms", value);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let samples = loop {
        let (_, _, body) = http(addr, "GET /metrics HTTP/1.1\r\n\r\n");
        let (samples, _) = parse(&body);
        let done = find(&samples, "scrape_orders_total", &[("shop", "eu")])
            .is_some_and(|s| s.2 == 250.0)
            && find(&samples, "scrape_latency_ms_count", &[]).is_some_and(|s| s.2 == 3.0);
        if done || std::time::Instant::now() > deadline {
            break samples;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        find(&samples, "scrape_orders_total", &[("shop", "eu")])
            .unwrap()
            .2,
        250.0
    );
    assert_eq!(
        find(&samples, "scrape_latency_ms_bucket", &[("le", "5")])
            .unwrap()
            .2,
        1.0
    );
    assert!(
        find(&samples, "hotmetrics_samples_recorded_total", &[]).is_some(),
        "the engine's own figures"
    );
    engine.shutdown().unwrap();
}
