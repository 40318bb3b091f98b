//! The engine end to end: criticality, lifecycle, configuration errors,
//! bad input, thread churn. (Exactness at rate 1 from two threads is in
//! `tests/recording.rs`, on the test engine, with no lock.)

use std::thread;
use std::time::Duration;

use crate::export::InMemory;
use crate::test_support::{engine_lock, exact_engine, rss_bytes};
use crate::{record, Engine, InstallError, MetricValue};

#[test]
fn critical_and_never_sample_are_exact_at_a_low_rate() {
    let _lock = engine_lock();
    let engine = Engine::builder()
        .sample_rate(0.01)
        .adaptive(false)
        .never_sample(["audit."])
        .install()
        .unwrap();
    thread::spawn(|| {
        for _ in 0..100_000 {
            record!(critical counter: "crit.failures", 2);
            record!(critical updown: "crit.level", -1);
            record!(critical histogram: "crit.latency", 5.0);
            record!(counter: "audit.logins", 1);
            crate::counter("audit.dynamic")
                .with_labels(&[("k", "v")])
                .add(1u32);
        }
    })
    .join()
    .unwrap();
    let snapshot = engine.snapshot();
    let exact = |name: &str| snapshot.counter(name, &[]).unwrap();
    assert_eq!(exact("crit.failures").value, 200_000.0);
    assert_eq!(
        snapshot.updown("crit.level", &[]).unwrap().value,
        -100_000.0
    );
    assert_eq!(exact("audit.logins").value, 100_000.0);
    assert_eq!(
        snapshot
            .counter("audit.dynamic", &[("k", "v")])
            .unwrap()
            .value,
        100_000.0
    );
    let latency = snapshot.histogram("crit.latency", &[]).unwrap();
    assert_eq!(latency.count.value, 100_000.0);
    assert_eq!(latency.sum.value, 500_000.0);
    assert!(latency.min_max_exact);
    assert!(snapshot.stats.exact_calls >= 400_000);
    engine.shutdown().unwrap();
}

#[test]
fn gauges_static_labels_handles_and_timed() {
    let _lock = engine_lock();
    let engine = exact_engine();
    record!(gauge: "queue.depth", 17.0);
    record!(gauge: "queue.depth", 12);
    record!(counter: "http.requests", 1, "route" => "/api", "status" => "200");
    record!(counter: "http.requests", 1, "status" => "200", "route" => "/api");
    record!(counter: "http.requests", 1, "route" => "/", "status" => "500");
    let route = String::from("/dyn");
    let handle =
        crate::counter("http.requests").with_labels(&[("route", &route), ("status", "200")]);
    handle.add(5u64);
    crate::gauge("temp").with_labels(&[("room", "a")]).set(21.5);
    crate::updown("conns").add(-4i64);
    crate::histogram("sizes").record(128u32);
    let out = record!(timed: "work.latency_ns", { (0..1000u64).sum::<u64>() });
    assert_eq!(out, 499_500);
    let snapshot = engine.snapshot();
    assert_eq!(snapshot.gauge("queue.depth", &[]), Some(12.0));
    let api = [("route", "/api"), ("status", "200")];
    assert_eq!(snapshot.counter("http.requests", &api).unwrap().value, 2.0);
    let root = [("route", "/"), ("status", "500")];
    assert_eq!(snapshot.counter("http.requests", &root).unwrap().value, 1.0);
    let dynamic = [("route", "/dyn"), ("status", "200")];
    assert_eq!(
        snapshot.counter("http.requests", &dynamic).unwrap().value,
        5.0
    );
    assert_eq!(snapshot.gauge("temp", &[("room", "a")]), Some(21.5));
    assert_eq!(snapshot.updown("conns", &[]).unwrap().value, -4.0);
    assert_eq!(snapshot.histogram("sizes", &[]).unwrap().sum.value, 128.0);
    let timed = snapshot.histogram("work.latency_ns", &[]).unwrap();
    assert_eq!(timed.count.value, 1.0);
    assert!(timed.max.unwrap() > 0.0);
    engine.shutdown().unwrap();
}

#[test]
fn no_engine_and_after_shutdown_are_no_ops() {
    let _lock = engine_lock();
    // Nothing installed: nothing happens, nothing panics.
    thread::spawn(|| {
        for _ in 0..10_000 {
            record!(counter: "noop.before", 1);
            record!(critical counter: "noop.before_critical", 1);
            record!(gauge: "noop.gauge", 1.0);
            let _ = record!(timed: "noop.timed", { 1 });
        }
    })
    .join()
    .unwrap();
    let store = InMemory::new();
    let engine = Engine::builder()
        .sample_rate(1.0)
        .adaptive(false)
        .exporter(store.clone())
        .install()
        .unwrap();
    thread::spawn(|| {
        for _ in 0..1000 {
            record!(counter: "lifecycle.during", 1);
        }
    })
    .join()
    .unwrap();
    engine.shutdown().unwrap();
    // After shutdown: no-ops, and the final export holds everything.
    thread::spawn(|| {
        for _ in 0..1000 {
            record!(counter: "lifecycle.during", 1);
            record!(critical counter: "lifecycle.after", 1);
        }
    })
    .join()
    .unwrap();
    let last = store.latest().expect("final export");
    assert_eq!(last.counter("lifecycle.during", &[]).unwrap().value, 1000.0);
    assert_eq!(
        engine
            .snapshot()
            .counter("lifecycle.during", &[])
            .unwrap()
            .value,
        1000.0
    );
    assert!(engine.shutdown().is_ok(), "a second shutdown is a no-op");
}

#[test]
fn shutdown_exports_everything_accepted_and_reinstall_starts_from_zero() {
    let _lock = engine_lock();
    for round in 0..3 {
        let store = InMemory::new();
        let engine = Engine::builder()
            .sample_rate(1.0)
            .adaptive(false)
            .buffer_capacity(64)
            .exporter(store.clone())
            .install()
            .unwrap();
        let workers: Vec<_> = (0..4)
            .map(|_| {
                thread::spawn(|| {
                    for _ in 0..50_000 {
                        record!(counter: "reinstall.calls", 1);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        drop(engine);
        let last = store.latest().expect("final export on drop");
        let calls = last.counter("reinstall.calls", &[]).unwrap();
        assert_eq!(calls.value, 200_000.0, "round {round}");
    }
}

#[test]
fn second_install_is_refused() {
    let _lock = engine_lock();
    let engine = Engine::builder().install().unwrap();
    match Engine::builder().install() {
        Err(InstallError::AlreadyInstalled) => {}
        other => panic!("expected AlreadyInstalled, got {other:?}"),
    }
    engine.shutdown().unwrap();
    let again = Engine::builder().install().expect("free after shutdown");
    again.shutdown().unwrap();
}

#[test]
fn bad_input_is_rejected_and_counted() {
    let _lock = engine_lock();
    let engine = Engine::builder()
        .sample_rate(1.0)
        .adaptive(false)
        .histogram_resolution(1.0)
        .install()
        .unwrap();
    thread::spawn(|| {
        record!(counter: "bad.counter", f64::NAN);
        record!(counter: "bad.counter", f64::INFINITY);
        record!(counter: "bad.counter", -1);
        record!(counter: "bad.counter", -0.5);
        record!(counter: "bad.counter", 2);
        record!(critical counter: "bad.critical", -3);
        record!(critical counter: "bad.critical", f64::NEG_INFINITY);
        record!(updown: "bad.updown", f64::NAN);
        record!(updown: "bad.updown", -7);
        record!(gauge: "bad.gauge", f64::NAN);
        record!(gauge: "bad.gauge", 3.0);
        record!(histogram: "bad.hist", -1.0);
        record!(histogram: "bad.hist", f64::INFINITY);
        record!(histogram: "bad.hist", 1e300);
        record!(histogram: "bad.hist", 5e-324);
        record!(histogram: "bad.hist", 10.0);
    })
    .join()
    .unwrap();
    let snapshot = engine.snapshot();
    assert_eq!(snapshot.counter("bad.counter", &[]).unwrap().value, 2.0);
    assert_eq!(snapshot.counter("bad.critical", &[]).unwrap().value, 0.0);
    assert_eq!(snapshot.updown("bad.updown", &[]).unwrap().value, -7.0);
    assert_eq!(snapshot.gauge("bad.gauge", &[]), Some(3.0));
    let hist = snapshot.histogram("bad.hist", &[]).unwrap();
    assert_eq!(hist.count.value, 2.0, "subnormal and 10 accepted");
    assert_eq!(snapshot.stats.values_rejected, 11);
    engine.shutdown().unwrap();
}

#[test]
fn invalid_names_and_kind_clashes_are_refused_at_registration() {
    let _lock = engine_lock();
    let engine = exact_engine();
    for name in ["", "9lives", "has space", "ümlaut", &"x".repeat(256)] {
        let error = crate::try_counter(name).unwrap_err();
        assert!(error.to_string().contains("invalid metric name"), "{error}");
    }
    crate::counter("clash.metric").add(1u8);
    let error = crate::try_histogram("clash.metric").unwrap_err();
    assert!(
        error
            .to_string()
            .contains("already registered as a counter"),
        "{error}"
    );
    // The logging constructor gives a handle that ignores its calls.
    let ignored = crate::histogram("clash.metric");
    assert!(!ignored.is_registered());
    ignored.record(1.0);
    let huge = "v".repeat(crate::MAX_LABEL_LEN + 1);
    let refused = crate::counter("labels.long").with_labels(&[("k", &huge)]);
    assert!(!refused.is_registered());
    record!(counter: "bad name", 1);
    let snapshot = engine.snapshot();
    assert!(snapshot.find("bad name", &[]).next().is_none());
    engine.shutdown().unwrap();
}

#[test]
fn cardinality_limit_routes_excess_label_sets_to_overflow() {
    let _lock = engine_lock();
    let engine = Engine::builder()
        .sample_rate(1.0)
        .adaptive(false)
        .cardinality_limit(10)
        .install()
        .unwrap();
    let base = crate::counter("card.requests");
    for i in 0..50 {
        let value = format!("user-{i}");
        base.with_labels(&[("user", &value)]).add(1u8);
    }
    let snapshot = engine.snapshot();
    let series: Vec<_> = snapshot.find("card.requests", &[]).collect();
    // The limit counts every label set, the empty one included: the
    // unlabelled series and 9 user sets, then the overflow series.
    assert_eq!(series.len(), 10 + 1);
    let overflow = snapshot
        .counter("card.requests", &[(crate::OVERFLOW_KEY, "true")])
        .unwrap();
    assert_eq!(overflow.value, 41.0);
    assert_eq!(snapshot.stats.series_overflowed, 41);
    engine.shutdown().unwrap();
}

#[test]
fn short_lived_threads_are_all_counted_and_memory_stays_flat() {
    let _lock = engine_lock();
    let engine = exact_engine();
    let spawn_batch = |count: usize| {
        for _ in 0..count {
            thread::spawn(|| {
                for _ in 0..100 {
                    record!(counter: "churn.calls", 1);
                    record!(critical counter: "churn.critical", 1);
                }
            })
            .join()
            .unwrap();
        }
    };
    spawn_batch(200);
    let before = rss_bytes().unwrap_or(0);
    spawn_batch(1000);
    let after = rss_bytes().unwrap_or(0);
    let snapshot = engine.snapshot();
    assert_eq!(
        snapshot.counter("churn.calls", &[]).unwrap().value,
        120_000.0
    );
    assert_eq!(
        snapshot.counter("churn.critical", &[]).unwrap().value,
        120_000.0
    );
    let growth = after.saturating_sub(before);
    assert!(
        growth < 4 << 20,
        "RSS grew by {growth} bytes over 1000 threads"
    );
    engine.shutdown().unwrap();
}

#[test]
fn tiny_ring_with_a_slow_drain_spills_and_stays_unbiased() {
    let _lock = engine_lock();
    let engine = Engine::builder()
        .sample_rate(0.5)
        .rate_bounds(0.5, 0.5)
        .buffer_capacity(2)
        .ring_shards(1)
        .drain_interval(Duration::from_millis(200))
        .install()
        .unwrap();
    let calls = 400_000u64;
    thread::spawn(move || {
        for _ in 0..calls {
            record!(counter: "spill.calls", 1);
            record!(histogram: "spill.values", 3.0);
        }
    })
    .join()
    .unwrap();
    let snapshot = engine.snapshot();
    assert!(snapshot.stats.samples_spilled > 0, "the ring must overflow");
    let estimate = snapshot.counter("spill.calls", &[]).unwrap();
    let error = (estimate.value - calls as f64).abs();
    assert!(
        error <= 4.0 * estimate.std_error,
        "estimate {} ± {} for {calls}",
        estimate.value,
        estimate.std_error
    );
    let hist = snapshot.histogram("spill.values", &[]).unwrap();
    assert!((hist.count.value - calls as f64).abs() <= 4.0 * hist.count.std_error);
    assert!((hist.sum.value - 3.0 * calls as f64).abs() <= 4.0 * hist.sum.std_error);
    assert_eq!(hist.max, Some(3.0));
    engine.shutdown().unwrap();
}

#[test]
fn disabled_engine_installs_nothing() {
    let _lock = engine_lock();
    let engine = Engine::builder()
        .from_vars([("HOTMETRICS_DISABLED", "true")])
        .unwrap()
        .install()
        .unwrap();
    assert!(engine.is_disabled());
    record!(critical counter: "disabled.calls", 1);
    assert!(engine.snapshot().series.is_empty());
    // Another engine may be installed: the disabled one holds nothing.
    let real = Engine::builder().install().unwrap();
    real.shutdown().unwrap();
    engine.shutdown().unwrap();
}

#[test]
fn engine_figures_are_exported_as_series() {
    let _lock = engine_lock();
    let engine = exact_engine();
    thread::spawn(|| {
        for _ in 0..10 {
            record!(counter: "figures.calls", 1);
        }
    })
    .join()
    .unwrap();
    let snapshot = engine.snapshot();
    let recorded = snapshot
        .counter("hotmetrics.samples_recorded", &[])
        .unwrap();
    assert_eq!(recorded.value, snapshot.stats.samples_recorded as f64);
    assert!(recorded.value >= 10.0);
    assert_eq!(snapshot.gauge("hotmetrics.sample_rate", &[]), Some(1.0));
    for name in [
        "hotmetrics.samples_spilled",
        "hotmetrics.samples_dropped", // the old name, for one release
        "hotmetrics.values_rejected",
        "hotmetrics.drain_batches",
        "hotmetrics.exports_ok",
        "hotmetrics.exports_failed",
    ] {
        assert!(snapshot.counter(name, &[]).is_some(), "{name}");
    }
    assert!(matches!(
        snapshot
            .find("hotmetrics.ring_utilisation", &[])
            .next()
            .map(|s| &s.value),
        Some(MetricValue::Gauge(_))
    ));
    let stats = engine.stats();
    assert!(stats.samples_recorded >= 10);
    engine.shutdown().unwrap();
}

#[test]
fn a_panicking_exporter_does_not_take_the_engine_down() {
    struct Panics;
    impl crate::export::Exporter for Panics {
        fn export(&mut self, _: &crate::Snapshot) -> Result<(), crate::ExportError> {
            panic!("exporter bug");
        }
    }
    let _lock = engine_lock();
    let store = InMemory::new();
    let engine = Engine::builder()
        .export_interval(Duration::from_millis(20))
        .exporter(Panics)
        .exporter(store.clone())
        .install()
        .unwrap();
    // A panic prints a backtrace, which can take a while on a loaded machine.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while engine.stats().exporter_panics == 0 && std::time::Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    record!(critical counter: "panics.calls", 1);
    let stats = engine.stats();
    assert!(stats.exporter_panics >= 1, "{stats:?}");
    assert!(stats.exports_ok >= 1);
    let outcome = engine.shutdown();
    assert!(
        matches!(outcome, Err(crate::ShutdownError::ExportFailed { .. })),
        "{outcome:?}"
    );
    assert_eq!(
        store
            .latest()
            .unwrap()
            .counter("panics.calls", &[])
            .unwrap()
            .value,
        1.0
    );
}

#[test]
fn a_blocked_exporter_makes_shutdown_time_out_not_hang() {
    struct Blocks;
    impl crate::export::Exporter for Blocks {
        fn export(&mut self, _: &crate::Snapshot) -> Result<(), crate::ExportError> {
            thread::sleep(Duration::from_secs(3600));
            Ok(())
        }
    }
    let _lock = engine_lock();
    let engine = Engine::builder()
        .export_interval(Duration::from_millis(10))
        .shutdown_timeout(Duration::from_millis(300))
        .exporter(Blocks)
        .install()
        .unwrap();
    thread::sleep(Duration::from_millis(50));
    let started = std::time::Instant::now();
    let outcome = engine.shutdown();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(outcome, Err(crate::ShutdownError::ExportTimedOut { .. })),
        "{outcome:?}"
    );
}
