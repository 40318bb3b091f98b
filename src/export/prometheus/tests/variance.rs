//! The variance counters (`export/variance.rs`), scraped over HTTP and
//! parsed: one `_variance_total` for every estimated series, equal to its
//! snapshot's variance, none for exact series, monotonic across scrapes;
//! and the switch.

use std::time::Instant;

use super::parse::Sample;
use super::*;
use crate::report::snapshot::HistogramSnapshot;

/// A variance sample checked: name, labels, value.
type Checked = (String, Vec<(String, String)>, f64);

/// Every estimate of a series, with the family its variance takes.
fn estimates(series: &SeriesSnapshot) -> Vec<(String, Estimate)> {
    let base = metric_name(&series.name);
    match &series.value {
        MetricValue::Counter(estimate) => {
            let family = base.strip_suffix("_total").unwrap_or(&base).to_string();
            vec![(family, *estimate)]
        }
        MetricValue::UpDown(estimate) => vec![(base, *estimate)],
        MetricValue::Histogram(h) => vec![
            (format!("{base}_count"), h.count),
            (format!("{base}_sum"), h.sum),
        ],
        MetricValue::Gauge(_) => Vec::new(),
    }
}

fn pairs(series: &SeriesSnapshot) -> Vec<(String, String)> {
    series
        .labels
        .iter()
        .map(|(key, value)| (label_name(key), value.to_string()))
        .collect()
}

/// Checks a scrape against `snapshot`; returns the variance samples it
/// checked, by (name, labels).
fn check(
    samples: &[Sample],
    types: &std::collections::BTreeMap<String, String>,
    snapshot: &Snapshot,
) -> Vec<Checked> {
    let mut checked = Vec::new();
    for series in &snapshot.series {
        let labels = pairs(series);
        let wanted: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for (family, estimate) in estimates(series) {
            let name = format!("{family}_variance_total");
            let found = find(samples, &name, &wanted);
            if estimate.exact {
                assert!(found.is_none(), "{name}: exact, no variance");
                continue;
            }
            let found = found.unwrap_or_else(|| panic!("{name} {wanted:?} scraped"));
            assert_eq!(found.2, estimate.variance(), "{name} {wanted:?}");
            assert_eq!(types[&name], "counter");
            checked.push((name, labels.clone(), found.2));
        }
    }
    assert!(!samples.iter().any(|s| s.0.ends_with("_std_error")));
    checked
}

fn sampled_histogram(values: &[f64], count_se: f64, sum_se: f64) -> HistogramSnapshot {
    let mut h = histogram(values, 20);
    h.count.std_error = count_se;
    h.sum.std_error = sum_se;
    h
}

/// A snapshot whose sampled series have grown by `step`.
fn at(step: f64) -> Snapshot {
    let mut unseen = estimate(0.0, 0.0, false);
    unseen.samples = 0;
    unseen.calls_upper_bound = Some(60.0);
    snapshot(vec![
        series(
            "http.requests",
            &[("route", "/a")],
            MetricValue::Counter(estimate(42.0 * step, 0.0, true)),
        ),
        series(
            "jobs_total",
            &[("queue", "eu")],
            MetricValue::Counter(estimate(1203.7 * step, 40.3 * step.sqrt(), false)),
        ),
        series(
            "ws.sent",
            &[],
            MetricValue::Counter(estimate(99.0 * step, 9.1 * step.sqrt(), false)),
        ),
        series("ws.failed", &[], MetricValue::Counter(unseen)),
        series(
            "ws.active",
            &[],
            MetricValue::UpDown(estimate(-3.0, 0.0, true)),
        ),
        series(
            "latency_ms",
            &[("op", "read")],
            MetricValue::Histogram(sampled_histogram(
                &[1.0, 5.0, 7.0],
                3.3 * step.sqrt(),
                17.1 * step.sqrt(),
            )),
        ),
        series(
            "exact_ms",
            &[],
            MetricValue::Histogram(histogram(&[2.0], 1)),
        ),
    ])
}

#[test]
fn a_variance_counter_for_every_estimated_series_monotonic_across_scrapes() {
    let prometheus = Prometheus::builder()
        .env_vars(NO_ENV)
        .address("127.0.0.1:0")
        .build()
        .unwrap();
    let addr = prometheus.local_addr().unwrap();
    let mut exporter = prometheus.clone();
    let mut previous: Vec<Checked> = Vec::new();
    for step in [1.0, 2.0, 2.0, 3.5] {
        let snapshot = at(step);
        exporter.export(&snapshot).unwrap();
        let (_, _, body) = http(addr, "GET /metrics HTTP/1.1\r\n\r\n");
        let (samples, types) = parse(&body);
        let checked = check(&samples, &types, &snapshot);
        // jobs, ws.sent, ws.failed (zero, but there), latency count and sum.
        assert_eq!(checked.len(), 5);
        for (name, labels, value) in &previous {
            let now = checked
                .iter()
                .find(|(n, l, _)| n == name && l == labels)
                .expect("the same series every scrape");
            assert!(now.2 >= *value, "{name} went down: {value} → {}", now.2);
        }
        previous = checked;
    }
    assert!(find_in(&previous, "jobs_variance_total") > 0.0);
    assert_eq!(find_in(&previous, "ws_failed_variance_total"), 0.0);

    // OpenMetrics: the family without `_total`, with its HELP.
    let (_, _, body) = http(
        addr,
        "GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0\r\n\r\n",
    );
    let (samples, types) = parse(&body);
    assert_eq!(types["jobs_variance"], "counter");
    assert_eq!(types["latency_ms_count_variance"], "counter");
    assert!(find(&samples, "jobs_variance_total", &[("queue", "eu")]).is_some());
    assert!(body.contains("# HELP jobs_variance Cumulative variance estimate of jobs_total"));
}

fn find_in(checked: &[Checked], name: &str) -> f64 {
    checked.iter().find(|(n, _, _)| n == name).unwrap().2
}

#[test]
fn engine_series_scraped_twice() {
    let _engine_lock = engine_lock();
    let prometheus = Prometheus::builder()
        .env_vars(NO_ENV)
        .address("127.0.0.1:0")
        .build()
        .unwrap();
    let addr = prometheus.local_addr().unwrap();
    let engine = crate::Engine::builder()
        .sample_rate(0.05)
        .adaptive(false)
        .export_interval(Duration::from_millis(20))
        .exporter(prometheus.clone())
        .install()
        .unwrap();
    const SENT: &str = "variance_scrape_sent_variance_total";
    let sent = |samples: &[Sample]| find(samples, SENT, &[("shard", "a")]).map_or(0.0, |s| s.2);
    // Scrapes until the sent counter's variance passes `above`.
    let scrape = |above: f64| {
        let started = Instant::now();
        loop {
            let (_, _, body) = http(addr, "GET /metrics HTTP/1.1\r\n\r\n");
            let (samples, types) = parse(&body);
            if sent(&samples) > above || started.elapsed() > Duration::from_secs(5) {
                break (samples, types);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let record = |calls: u64| {
        for i in 0..calls {
            record!(counter: "variance.scrape.sent", 1, "shard" => "a");
            record!(histogram: "variance.scrape.latency_ms", (1 + i % 300) as f64);
            if i % 100 == 0 {
                record!(critical counter: "variance.scrape.exact", 1);
            }
        }
    };
    record(20_000);
    let (first, types) = scrape(0.0);
    record(20_000);
    let (second, _) = scrape(sent(&first));
    engine.shutdown().unwrap();
    for (name, labels) in [
        (SENT, &[("shard", "a")][..]),
        ("variance_scrape_latency_ms_count_variance_total", &[]),
        ("variance_scrape_latency_ms_sum_variance_total", &[]),
    ] {
        let before = find(&first, name, labels)
            .unwrap_or_else(|| panic!("{name}"))
            .2;
        let after = find(&second, name, labels).unwrap().2;
        assert_eq!(types[name], "counter");
        assert!(
            before > 0.0 && after > before,
            "{name}: {before} then {after}"
        );
    }
    assert!(find(&second, "variance_scrape_exact_variance_total", &[]).is_none());
    assert!(find(&second, "variance_scrape_exact_total", &[]).is_some());
}

#[test]
#[allow(deprecated)]
fn off_by_the_builder_or_the_environment() {
    let render = |builder: PrometheusBuilder| {
        let prometheus = builder
            .without_server()
            .without_target_info()
            .build()
            .unwrap();
        prometheus.clone().export(&at(1.0)).unwrap();
        prometheus.render()
    };
    let quiet = || Prometheus::builder().env_vars(NO_ENV);
    let env_off = || Prometheus::builder().env_vars([("HOTMETRICS_EXPORT_VARIANCE", "0")]);
    assert!(render(quiet()).contains("_variance_total"), "on by default");
    assert!(!render(quiet().export_variance(false)).contains("_variance"));
    assert!(!render(env_off()).contains("_variance"));
    assert!(render(env_off().export_variance(true)).contains("_variance_total"));
    assert!(!render(quiet().std_error_gauges(false)).contains("_variance"));
    assert!(render(env_off().std_error_gauges(true)).contains("jobs_variance_total"));
    let error = Prometheus::builder()
        .without_server()
        .env_vars([("HOTMETRICS_EXPORT_VARIANCE", "sometimes")])
        .build()
        .unwrap_err();
    assert_eq!(error.setting, "HOTMETRICS_EXPORT_VARIANCE");
}

#[test]
fn names_taken_by_the_program_or_another_variance_are_left_out() {
    let prometheus = Prometheus::builder()
        .without_server()
        .without_target_info()
        .env_vars(NO_ENV)
        .build()
        .unwrap();
    prometheus
        .clone()
        .export(&snapshot(vec![
            series("x", &[], MetricValue::Counter(estimate(100.0, 3.0, false))),
            // The program's own counter of that family, after it.
            series(
                "x.variance",
                &[],
                MetricValue::Counter(estimate(7.0, 0.0, true)),
            ),
            series(
                "h.count",
                &[],
                MetricValue::Counter(estimate(50.0, 2.0, false)),
            ),
            series(
                "h",
                &[],
                MetricValue::Histogram(sampled_histogram(&[1.0], 5.0, 6.0)),
            ),
        ]))
        .unwrap();
    // The parser refuses a second `# TYPE` for one family.
    let (samples, _) = parse(&prometheus.render());
    let named = |name: &str| samples.iter().filter(|s| s.0 == name).count();
    assert_eq!(find(&samples, "x_variance_total", &[]).unwrap().2, 7.0);
    assert_eq!(named("x_variance_total"), 1);
    assert_eq!(
        find(&samples, "h_count_variance_total", &[]).unwrap().2,
        4.0
    );
    assert_eq!(named("h_count_variance_total"), 1);
    assert_eq!(find(&samples, "h_sum_variance_total", &[]).unwrap().2, 36.0);
}
