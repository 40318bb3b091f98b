//! The console formats: every estimate with its relative error and its
//! samples, exact series marked, a series with no sample yet with its
//! bound on unseen calls.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::report::distribution::Distribution;

use crate::report::snapshot::{Estimate, HistogramSnapshot};
use crate::report::stats::Stats;

fn series(name: &str, value: MetricValue) -> SeriesSnapshot {
    SeriesSnapshot::new(name, Vec::<(Arc<str>, Arc<str>)>::new().into(), value)
}

fn snapshot() -> Snapshot {
    let mut unseen = Estimate::new(0.0, 0.0, false, 0);
    unseen.calls_upper_bound = Some(299.6);
    let mut distribution = Distribution::new(5, 0.001);
    distribution.record_n(3.0, 50);
    distribution.record_n(40.0, 50);
    let latency = HistogramSnapshot {
        count: Estimate::new(100.0, 12.5, false, 2),
        sum: Estimate::new(2150.0, 700.0, false, 2),
        min: Some(3.0),
        max: Some(40.0),
        min_max_exact: false,
        samples: 2,
        distribution: Arc::new(distribution),
    };
    Snapshot {
        series: vec![
            series(
                "ws.sent",
                MetricValue::Counter(Estimate::new(1000.0, 31.5, false, 1024)),
            ),
            series("ws.errors", MetricValue::Counter(unseen)),
            series("http.requests", MetricValue::Counter(Estimate::exact(42.0))),
            series("queue.depth", MetricValue::Gauge(17.0)),
            series("latency_ms", MetricValue::Histogram(latency)),
        ],
        stats: Stats::default(),
        start_time: UNIX_EPOCH + Duration::from_secs(1000),
        time: UNIX_EPOCH + Duration::from_secs(1010),
    }
}

/// The table's cells, split on runs of two spaces or more.
fn cells(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|cell| !cell.is_empty())
        .collect()
}

#[test]
fn table_rows_carry_relative_error_and_samples() {
    let text = Stdout::new().render(&snapshot());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        cells(lines[0]),
        ["series", "kind", "rel. err", "samples", "value"]
    );
    assert_eq!(
        cells(lines[1]),
        ["ws.sent", "counter", "3.15 %", "1024", "1000.0 ± 31.5"]
    );
    assert_eq!(
        cells(lines[2]),
        [
            "ws.errors",
            "counter",
            "-",
            "0",
            "0.0 ± 0.0 (≤ 299.6 calls unseen)"
        ]
    );
    assert_eq!(
        cells(lines[3]),
        ["http.requests", "counter", "exact", "-", "42"]
    );
    assert_eq!(cells(lines[4]), ["queue.depth", "gauge", "-", "-", "17"]);
    let latency = cells(lines[5]);
    assert_eq!(latency[..4], ["latency_ms", "histogram", "12.50 %", "2"]);
    assert!(
        latency[4].starts_with("count 100.0 ± 12.5"),
        "{}",
        latency[4]
    );
    // Columns line up: every row's kind starts where the header's does.
    let kind_at = lines[0].find("kind").unwrap();
    assert!(lines[1..]
        .iter()
        .all(|line| line[kind_at - 2..].starts_with("  ")));
}

#[test]
fn json_lines_carry_relative_error_and_samples() {
    let text = Stdout::json().render(&snapshot());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5);
    assert!(
        lines[0]
            .contains(r#""std_error":31.5,"relative_error":0.0315,"samples":1024,"exact":false"#),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains(r#""samples":0,"calls_upper_bound":299.6,"exact":false"#),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains(r#""relative_error":0,"samples":0,"exact":true"#),
        "{}",
        lines[2]
    );
    assert!(!lines[3].contains("samples"), "a gauge has none");
    assert!(
        lines[4].contains(
            r#""count_relative_error":0.125,"sum_relative_error":0.32558139534883723,"samples":2"#
        ),
        "{}",
        lines[4]
    );
}
