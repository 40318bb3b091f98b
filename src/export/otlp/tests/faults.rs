//! A collector that fails, throttles, stalls or is not there: the exporter
//! retries as the specification says, never queues, keeps the recording
//! side free, and the right totals arrive once the backend is back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;

use super::collector::{unused_addr, Collector, Reply};
use super::*;
use crate::export::exporter::Exporter;
use crate::export::otlp::rpc::RpcStatus;
use crate::export::otlp::Temporality;
use crate::record;
use crate::report::stats::CircuitState;
use crate::test_support::engine_lock;
use crate::ExportError;

fn counter_snapshot(value: f64, seconds: u64) -> Snapshot {
    snapshot_at(
        vec![series("orders", &[], MetricValue::Counter(exact(value)))],
        seconds,
    )
}

fn orders(request: &ExportMetricsServiceRequest) -> f64 {
    value(&points(metric(request, "orders"))[0])
}

#[test]
fn first_requests_503_then_accepted_within_one_export() {
    let collector = Collector::start(|n| {
        if n < 4 {
            Reply::status(503)
        } else {
            Reply::ok()
        }
    });
    let mut otlp = quick(&collector.url()).build().unwrap();
    otlp.export(&counter_snapshot(42.0, 1)).unwrap();
    assert_eq!(collector.request_count(), 5, "four retries");
    let accepted = collector.accepted();
    assert_eq!(accepted.len(), 1);
    assert_eq!(orders(&accepted[0]), 42.0);
    assert_eq!(otlp.circuit_state(), CircuitState::Closed);
}

#[test]
fn retry_after_is_honoured() {
    let collector = Collector::start(|n| {
        if n == 0 {
            Reply::status(429).header("Retry-After", "1")
        } else {
            Reply::ok()
        }
    });
    let mut otlp = quick(&collector.url()).build().unwrap();
    otlp.export(&counter_snapshot(1.0, 1)).unwrap();
    let received = collector.received();
    assert_eq!(received.len(), 2);
    let gap = received[1].at - received[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "waited {gap:?}, not the 10 ms backoff"
    );
}

#[test]
fn retry_after_beyond_the_export_timeout_is_kept_for_the_next_export() {
    let collector = Collector::start(|_| Reply::status(503).header("Retry-After", "30"));
    let mut otlp = quick(&collector.url()).build().unwrap();
    let started = Instant::now();
    let error = otlp.export(&counter_snapshot(1.0, 1)).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "no pointless wait"
    );
    assert!(matches!(error, ExportError::Transient(_)), "{error}");
    // The next export does not knock before the 30 s are up.
    let error = otlp.export(&counter_snapshot(2.0, 2)).unwrap_err();
    assert!(error.to_string().contains("asked to wait"), "{error}");
    assert_eq!(collector.request_count(), 1);
}

#[test]
fn retry_info_in_the_body_is_honoured() {
    let status = RpcStatus::with_retry_delay(14, "busy", Duration::from_millis(400));
    let body = status.encode_to_vec();
    let collector = Collector::start(move |n| {
        if n == 0 {
            Reply::status(503)
                .header("Content-Type", "application/x-protobuf")
                .body(body.clone())
        } else {
            Reply::ok()
        }
    });
    let mut otlp = quick(&collector.url()).build().unwrap();
    otlp.export(&counter_snapshot(1.0, 1)).unwrap();
    let received = collector.received();
    assert!(received[1].at - received[0].at >= Duration::from_millis(380));
}

#[test]
fn a_slow_collector_times_out_and_the_next_export_carries_the_totals() {
    let collector = Collector::start(|n| {
        if n < 3 {
            Reply::ok().delay(Duration::from_millis(1500))
        } else {
            Reply::ok()
        }
    });
    let mut otlp = quick(&collector.url())
        .timeout(Duration::from_millis(200))
        .export_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let started = Instant::now();
    let error = otlp.export(&counter_snapshot(10.0, 1)).unwrap_err();
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1400),
        "bounded by the export timeout, not the 1.5 s reply: {took:?}"
    );
    assert!(error.to_string().contains("no answer"), "{error}");
    // Cumulative: the next snapshot's totals are what matter.
    assert!(collector.wait_until(Duration::from_secs(3), |r| r.len() >= 3));
    otlp.export(&counter_snapshot(25.0, 2)).unwrap();
    let last = collector.received().last().cloned().unwrap();
    assert_eq!(orders(&last.request), 25.0);
}

#[test]
fn down_at_start_then_up() {
    let addr = unused_addr();
    let mut otlp = quick(&format!("http://{addr}"))
        .circuit_breaker(CircuitBreakerPolicy {
            failure_threshold: 3,
            open_for: Duration::from_millis(200),
            max_open_for: Duration::from_secs(1),
        })
        .build()
        .unwrap();
    let error = otlp.export(&counter_snapshot(1.0, 1)).unwrap_err();
    assert!(error.to_string().contains("circuit open"), "{error}");
    assert_eq!(otlp.circuit_state(), CircuitState::Open);
    // While open: no network I/O at all, an immediate error.
    let started = Instant::now();
    assert!(otlp.export(&counter_snapshot(2.0, 2)).is_err());
    assert!(started.elapsed() < Duration::from_millis(50));

    let collector = Collector::start_on(addr, |_| Reply::ok()).expect("the port is still free");
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(otlp.circuit_state(), CircuitState::HalfOpen);
    otlp.export(&counter_snapshot(3.0, 3)).unwrap();
    assert_eq!(otlp.circuit_state(), CircuitState::Closed);
    assert_eq!(orders(&collector.accepted()[0]), 3.0);
}

#[test]
fn circuit_opens_probes_and_backs_off() {
    let collector = Collector::start(|_| Reply::status(503));
    let mut otlp = quick(&collector.url()).build().unwrap();
    assert!(otlp.export(&counter_snapshot(1.0, 1)).is_err());
    assert_eq!(collector.request_count(), 5, "threshold 5: then open");
    assert!(otlp.export(&counter_snapshot(2.0, 2)).is_err());
    assert_eq!(collector.request_count(), 5, "open: nothing sent");
    std::thread::sleep(Duration::from_millis(320));
    assert_eq!(otlp.circuit_state(), CircuitState::HalfOpen);
    assert!(otlp.export(&counter_snapshot(3.0, 3)).is_err());
    assert_eq!(collector.request_count(), 6, "one probe, no retries");
    assert_eq!(otlp.circuit_state(), CircuitState::Open);
    // The next open period is twice as long.
    std::thread::sleep(Duration::from_millis(320));
    assert_eq!(otlp.circuit_state(), CircuitState::Open);
    std::thread::sleep(Duration::from_millis(320));
    assert_eq!(otlp.circuit_state(), CircuitState::HalfOpen);
}

#[test]
fn permanent_errors_are_not_retried_and_carry_the_message() {
    let body = RpcStatus {
        code: 3,
        message: "metric \"orders\" has an invalid unit".into(),
        details: Vec::new(),
    }
    .encode_to_vec();
    let collector = Collector::start(move |_| {
        Reply::status(400)
            .header("Content-Type", "application/x-protobuf")
            .body(body.clone())
    });
    let mut otlp = quick(&collector.url())
        .header("authorization", "Bearer very-secret-token")
        .temporality(Temporality::Delta)
        .build()
        .unwrap();
    let error = otlp.export(&counter_snapshot(5.0, 1)).unwrap_err();
    assert!(matches!(error, ExportError::Permanent(_)), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("HTTP 400") && text.contains("invalid unit"),
        "{text}"
    );
    assert!(!text.contains("very-secret-token"));
    assert_eq!(collector.request_count(), 1, "not retried");
    // The refused delta is given up, not re-sent forever.
    assert_eq!(otlp.retained_series(), 1);
}

#[test]
fn a_long_outage_keeps_memory_bounded_and_delta_carries_everything() {
    let healthy = Arc::new(AtomicBool::new(false));
    let up = healthy.clone();
    let collector = Collector::start(move |_| {
        if up.load(Ordering::Relaxed) {
            Reply::ok()
        } else {
            Reply::status(503)
        }
    });
    let mut otlp = quick(&collector.url())
        .temporality(Temporality::Delta)
        .circuit_breaker(CircuitBreakerPolicy {
            failure_threshold: 3,
            open_for: Duration::from_millis(5),
            max_open_for: Duration::from_millis(20),
        })
        .build()
        .unwrap();
    let snapshot = |round: u64| {
        let list = (0..300)
            .map(|i| {
                let name = format!("series.{i}");
                series(
                    &name,
                    &[],
                    MetricValue::Counter(exact((round * (i + 1)) as f64)),
                )
            })
            .collect();
        snapshot_at(list, round)
    };
    let started = Instant::now();
    for round in 1..=400 {
        assert!(otlp.export(&snapshot(round)).is_err());
    }
    let outage = started.elapsed();
    // Nothing was accepted, so nothing is held; nothing is queued.
    assert_eq!(otlp.retained_series(), 0);
    // Attempts are bounded by the breaker: the threshold, then probes.
    let attempts = collector.request_count();
    assert!(
        attempts < 400,
        "{attempts} attempts for 400 exports in {outage:?}"
    );

    healthy.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(25));
    otlp.export(&snapshot(401)).unwrap();
    assert_eq!(otlp.retained_series(), 300);
    let last = collector.accepted().pop().unwrap();
    // The first accepted delta carries everything since the engine started.
    assert_eq!(value(&points(metric(&last, "series.7"))[0]), 401.0 * 8.0);
}

/// The engine keeps recording and draining at full speed while its
/// exporter is stuck on a collector that takes seconds to answer; the
/// right totals arrive once it answers promptly again.
#[test]
fn a_stalled_collector_does_not_touch_the_hot_path() {
    let _engine_lock = engine_lock();
    let healthy = Arc::new(AtomicBool::new(false));
    let up = healthy.clone();
    let collector = Collector::start(move |_| {
        if up.load(Ordering::Relaxed) {
            Reply::ok()
        } else {
            Reply::ok().delay(Duration::from_secs(2))
        }
    });
    let exporter = quick(&collector.url())
        .timeout(Duration::from_millis(1500))
        .export_timeout(Duration::from_secs(4))
        .build()
        .unwrap();
    // One rate for every sampled series, so the drain has samples at once.
    let engine = crate::Engine::builder()
        .sample_rate(0.03)
        .export_interval(Duration::from_millis(20))
        .exporter(exporter)
        .install()
        .unwrap();
    // Wait until the exporter is stuck inside a request.
    assert!(collector.wait_until(Duration::from_secs(2), |r| !r.is_empty()));
    let started = Instant::now();
    for _ in 0..300_000 {
        record!(critical counter: "stall.orders", 1);
        record!(counter: "stall.sampled", 1);
    }
    let recording = started.elapsed();
    assert!(
        recording < Duration::from_millis(1500),
        "recording is never blocked by the exporter: {recording:?}"
    );
    std::thread::sleep(Duration::from_millis(200));
    let stats = engine.stats();
    assert!(
        stats.exports_skipped > 0,
        "snapshots are skipped, not queued"
    );
    assert!(stats.samples_recorded > 0, "the drain kept going");

    healthy.store(true, Ordering::Relaxed);
    let arrived = collector.wait_until(Duration::from_secs(10), |received| {
        received.iter().any(|r| {
            r.status == 200
                && has_metric(&r.request, "stall.orders")
                && value(&points(metric(&r.request, "stall.orders"))[0]) == 300_000.0
        })
    });
    assert!(arrived, "the right total arrives after the stall");
    engine.shutdown().unwrap();
}

/// A collector that is down when the engine starts: the circuit opens
/// (visible in `engine.stats()`), closes when the collector comes up, and
/// the totals arrive.
#[test]
fn engine_with_a_collector_that_comes_up_later() {
    let _engine_lock = engine_lock();
    let addr = unused_addr();
    let exporter = quick(&format!("http://{addr}"))
        .circuit_breaker(CircuitBreakerPolicy {
            failure_threshold: 2,
            open_for: Duration::from_millis(100),
            max_open_for: Duration::from_millis(200),
        })
        .build()
        .unwrap();
    let engine = crate::Engine::builder()
        .export_interval(Duration::from_millis(20))
        .exporter(exporter)
        .install()
        .unwrap();
    for _ in 0..1000 {
        record!(critical counter: "later.orders", 1);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while engine.stats().circuit != CircuitState::Open && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(engine.stats().circuit, CircuitState::Open);
    assert!(engine.stats().exports_failed > 0);

    let collector = Collector::start_on(addr, |_| Reply::ok()).expect("the port is still free");
    for _ in 0..500 {
        record!(critical counter: "later.orders", 1);
    }
    let arrived = collector.wait_until(Duration::from_secs(5), |received| {
        received.iter().any(|r| {
            has_metric(&r.request, "later.orders")
                && value(&points(metric(&r.request, "later.orders"))[0]) == 1500.0
        })
    });
    assert!(arrived);
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(engine.stats().circuit, CircuitState::Closed);
    engine.shutdown().unwrap();
}
