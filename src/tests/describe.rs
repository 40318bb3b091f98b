//! Units and descriptions declared from native code (`describe!`,
//! `describe`, `Builder::describe`) reach snapshots, the OTLP request
//! (`unit`, `description`) and the Prometheus exposition (`# UNIT`,
//! `# HELP`), as those the OpenTelemetry provider declares do.

use crate::test_support::engine_lock;
use crate::{describe, record, Engine};

#[cfg(any(feature = "otlp", feature = "prometheus"))]
const NO_ENV: [(&str, &str); 0] = [];

/// Declares, installs, records, and hands the snapshot to `check`.
fn with_described(check: impl FnOnce(&crate::Snapshot)) {
    let _lock = engine_lock();
    describe!(counter: "described.requests", unit: "{request}", "Requests served");
    describe!(histogram: "described.latency_seconds", unit: "s", "Time to serve");
    describe!(gauge: "described.depth", "Jobs waiting");
    describe("described.sent_bytes", "By", "Bytes sent");
    let engine = Engine::builder()
        .sample_rate(1.0)
        .adaptive(false)
        .describe("described.connections", "{connection}", "Open connections")
        .install()
        .unwrap();
    record!(counter: "described.requests", 1, "route" => "/a");
    record!(histogram: "described.latency_seconds", 0.25);
    record!(gauge: "described.depth", 3.0);
    record!(counter: "described.sent_bytes", 512);
    record!(updown: "described.connections", 2);
    check(&engine.snapshot());
    engine.shutdown().unwrap();
}

#[test]
fn snapshots_carry_what_native_code_declared() {
    with_described(|snapshot| {
        let of = |name: &str| {
            let series = snapshot
                .series
                .iter()
                .find(|series| &*series.name == name)
                .unwrap_or_else(|| panic!("{name}"));
            (series.unit.as_deref(), series.description.as_deref())
        };
        assert_eq!(
            of("described.requests"),
            (Some("{request}"), Some("Requests served"))
        );
        assert_eq!(
            of("described.latency_seconds"),
            (Some("s"), Some("Time to serve"))
        );
        assert_eq!(of("described.depth"), (None, Some("Jobs waiting")));
        assert_eq!(of("described.sent_bytes"), (Some("By"), Some("Bytes sent")));
        assert_eq!(
            of("described.connections"),
            (Some("{connection}"), Some("Open connections"))
        );
    });
}

#[test]
fn a_description_of_another_kind_is_refused_and_the_first_one_wins() {
    let _lock = engine_lock();
    describe!(counter: "described.twice", unit: "s", "First");
    describe!(counter: "described.twice", unit: "ms", "Second");
    describe!(gauge: "described.twice", "A gauge now");
    let engine = Engine::builder()
        .sample_rate(1.0)
        .adaptive(false)
        .install()
        .unwrap();
    record!(critical counter: "described.twice", 1);
    let snapshot = engine.snapshot();
    let series = snapshot.series("described.twice", &[]).unwrap();
    assert_eq!(series.unit.as_deref(), Some("s"));
    assert_eq!(series.description.as_deref(), Some("First"));
    engine.shutdown().unwrap();
}

#[cfg(feature = "otlp")]
#[test]
fn otlp_carries_unit_and_description() {
    with_described(|snapshot| {
        let otlp = crate::export::otlp::Otlp::builder()
            .env_vars(NO_ENV)
            .endpoint("http://unused")
            .build()
            .unwrap();
        let request = otlp.request(snapshot);
        let metric = |name: &str| {
            request.resource_metrics[0].scope_metrics[0]
                .metrics
                .iter()
                .find(|metric| metric.name == name)
                .unwrap_or_else(|| panic!("{name}"))
        };
        let requests = metric("described.requests");
        assert_eq!(
            (requests.unit.as_str(), requests.description.as_str()),
            ("{request}", "Requests served")
        );
        let latency = metric("described.latency_seconds");
        assert_eq!(
            (latency.unit.as_str(), latency.description.as_str()),
            ("s", "Time to serve")
        );
        let depth = metric("described.depth");
        assert_eq!(
            (depth.unit.as_str(), depth.description.as_str()),
            ("", "Jobs waiting")
        );
        assert_eq!(metric("described.connections").unit, "{connection}");
    });
}

#[cfg(feature = "prometheus")]
#[test]
fn prometheus_carries_help_and_unit() {
    use crate::export::prometheus::{Prometheus, PrometheusFormat};
    use crate::export::Exporter as _;

    with_described(|snapshot| {
        let prometheus = Prometheus::builder()
            .without_server()
            .env_vars(NO_ENV)
            .build()
            .unwrap();
        prometheus.clone().export(snapshot).unwrap();
        let text = prometheus.render();
        for line in [
            "# HELP described_requests_total Requests served\n",
            "# HELP described_latency_seconds Time to serve\n# UNIT described_latency_seconds seconds\n",
            "# HELP described_depth Jobs waiting\n",
            "# HELP described_sent_bytes_total Bytes sent\n# UNIT described_sent_bytes_total bytes\n",
            "# HELP described_connections Open connections\n",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
        // An annotation alone (`{request}`) is no unit.
        assert!(!text.contains("# UNIT described_requests"), "{text}");
        let open = prometheus.render_as(PrometheusFormat::OpenMetrics);
        for line in [
            "# UNIT described_latency_seconds seconds\n",
            "# UNIT described_sent_bytes bytes\n",
            "# HELP described_requests Requests served\n",
        ] {
            assert!(open.contains(line), "{line:?} in\n{open}");
        }
    });
}
