//! The provider's own promises: attributes are looked at only on sampled
//! calls, order does not matter, critical and `never_sample` instruments are
//! exact, the cardinality limit holds, observable callbacks run at snapshot
//! time and survive panics, metadata reaches the snapshot.

#[cfg(feature = "peers")]
mod sdk;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use opentelemetry::metrics::{Counter, Histogram, MeterProvider as _, SyncInstrument};
use opentelemetry::KeyValue;

use super::instruments::Instrument;
use super::MeterProvider;
use crate::hot::cell::Kind;
use crate::hot::registry::OVERFLOW_KEY;
use crate::test_support::engine_lock;
use crate::Engine;

fn engine(rate: f64) -> Engine {
    Engine::builder()
        .sample_rate(rate)
        .adaptive(false)
        .never_sample(["otel.exact."])
        .install()
        .expect("engine installs")
}

fn three(route: &'static str) -> [KeyValue; 3] {
    [
        KeyValue::new("route", route),
        KeyValue::new("status", 200),
        KeyValue::new("method", "GET"),
    ]
}

#[test]
fn unsampled_calls_never_resolve_attributes() {
    let _lock = engine_lock();
    let engine = engine(0.02);
    let instrument = Arc::new(Instrument::new(
        Arc::from("otel.lazy.latency"),
        Kind::Histogram,
        false,
    ));
    let histogram = Histogram::<f64>::new(instrument.clone());
    let calls = 100_000u64;
    let attributes = three("/api");
    for i in 0..calls {
        histogram.record((i % 100) as f64, &attributes);
    }
    let snapshot = engine.snapshot();
    let recorded = snapshot
        .histogram(
            "otel.lazy.latency",
            &[("method", "GET"), ("route", "/api"), ("status", "200")],
        )
        .expect("the series");
    let resolutions = instrument.series().resolutions.load(Ordering::Relaxed);
    // Every sampled call resolved once; at most one more resolution, for the
    // first trial of this thread, ended unsampled.
    assert!(
        resolutions >= recorded.samples && resolutions <= recorded.samples + 1,
        "{resolutions} resolutions for {} samples",
        recorded.samples
    );
    assert!(
        resolutions < calls / 20,
        "{resolutions} resolutions for {calls} calls"
    );
    let truth = calls as f64;
    assert!((recorded.count.value - truth).abs() <= 5.0 * recorded.count.std_error);
    engine.shutdown().expect("clean shutdown");
}

#[test]
fn attribute_order_does_not_split_series() {
    let _lock = engine_lock();
    let engine = engine(1.0);
    let meter = MeterProvider::new(&engine).meter("order");
    let counter = meter.u64_counter("otel.order.requests").build();
    let [a, b, c] = three("/");
    counter.add(1, &[a.clone(), b.clone(), c.clone()]);
    counter.add(2, &[c.clone(), a.clone(), b.clone()]);
    counter.add(4, &[b.clone(), c.clone(), a.clone()]);
    // A repeated key counts once, first occurrence first.
    counter.add(
        8,
        &[b.clone(), a.clone(), c, KeyValue::new("route", "/other")],
    );
    let snapshot = engine.snapshot();
    let series: Vec<_> = snapshot.find("otel.order.requests", &[]).collect();
    assert_eq!(series.len(), 1, "{series:?}");
    let keys: Vec<&str> = series[0].labels.iter().map(|(key, _)| &**key).collect();
    assert_eq!(keys, ["method", "route", "status"]);
    assert_eq!(series[0].label("status"), Some("200"));
    let total = snapshot
        .counter(
            "otel.order.requests",
            &[("method", "GET"), ("route", "/"), ("status", "200")],
        )
        .expect("the series");
    assert_eq!(total.value, 15.0);
    engine.shutdown().expect("clean shutdown");
}

#[test]
fn critical_marker_and_never_sample_make_instruments_exact() {
    let _lock = engine_lock();
    let engine = engine(0.01);
    let meter = MeterProvider::new(&engine).meter("exact");
    let failed = meter
        .u64_counter("otel.critical.failed")
        .with_description("[critical] Messages that could not be delivered")
        .build();
    let pinned = meter.f64_histogram("otel.exact.latency").build();
    let critical_histogram = meter
        .u64_histogram("otel.critical.size")
        .with_description("  [critical] sizes")
        .build();
    let sampled = meter.u64_counter("otel.sampled.requests").build();
    for i in 0..5_000u64 {
        failed.add(1, &three("/pay"));
        pinned.record((i % 10) as f64, &[]);
        critical_histogram.record(i, &[]);
        sampled.add(1, &[]);
    }
    let snapshot = engine.snapshot();
    let failed = snapshot
        .counter(
            "otel.critical.failed",
            &[("method", "GET"), ("route", "/pay"), ("status", "200")],
        )
        .unwrap();
    assert_eq!((failed.value, failed.exact), (5_000.0, true));
    let pinned = snapshot.histogram("otel.exact.latency", &[]).unwrap();
    assert_eq!(pinned.count.value, 5_000.0);
    assert_eq!(pinned.sum.value, 22_500.0);
    assert!(pinned.min_max_exact);
    let sizes = snapshot.histogram("otel.critical.size", &[]).unwrap();
    assert_eq!((sizes.min, sizes.max), (Some(0.0), Some(4_999.0)));
    assert!(sizes.min_max_exact);
    assert!(
        !snapshot
            .counter("otel.sampled.requests", &[])
            .unwrap()
            .exact
    );
    // The marker is an instruction to the engine: it is stripped from the
    // description every snapshot and exporter carries.
    let series = snapshot.find("otel.critical.failed", &[]).next().unwrap();
    assert_eq!(
        series.description.as_deref(),
        Some("Messages that could not be delivered")
    );
    let sizes = snapshot.find("otel.critical.size", &[]).next().unwrap();
    assert_eq!(sizes.description.as_deref(), Some("sizes"));
    engine.shutdown().expect("clean shutdown");
}

#[test]
fn exported_description_strips_only_a_leading_marker() {
    use super::exported_description as exported;
    assert_eq!(exported(Some("[critical] Failed")), Some("Failed"));
    assert_eq!(exported(Some("  [critical]Failed")), Some("Failed"));
    assert_eq!(exported(Some("[critical]")), None);
    assert_eq!(exported(Some("[critical]   ")), None);
    assert_eq!(
        exported(Some("Failed [critical]")),
        Some("Failed [critical]")
    );
    assert_eq!(exported(Some("Failed")), Some("Failed"));
    assert_eq!(exported(Some("")), None);
    assert_eq!(exported(None), None);
}

#[cfg(feature = "prometheus")]
#[test]
fn critical_marker_does_not_reach_prometheus_help() {
    use crate::export::{Exporter as _, Prometheus};

    let _lock = engine_lock();
    let engine = engine(0.01);
    let meter = MeterProvider::new(&engine).meter("exact");
    let refused = meter
        .u64_counter("otel.help.refused")
        .with_description("[critical] Payments the processor refused")
        .build();
    refused.add(2, &[]);
    let snapshot = engine.snapshot();
    let mut prometheus = Prometheus::builder().without_server().build().unwrap();
    prometheus.export(&snapshot).unwrap();
    let text = prometheus.render();
    let help: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("# HELP otel_help_refused"))
        .collect();
    assert!(!help.is_empty(), "{text}");
    for line in help {
        assert!(line.ends_with(" Payments the processor refused"), "{line}");
        assert!(!line.contains("[critical]"), "{line}");
    }
    engine.shutdown().expect("clean shutdown");
}

#[test]
fn cardinality_limit_routes_excess_sets_to_overflow() {
    let _lock = engine_lock();
    let engine = Engine::builder()
        .sample_rate(1.0)
        .adaptive(false)
        .cardinality_limit(3)
        .install()
        .expect("engine installs");
    let counter = MeterProvider::new(&engine)
        .meter("limit")
        .u64_counter("otel.limit.requests")
        .build();
    for i in 0..10u64 {
        for _ in 0..2 {
            counter.add(1, &[KeyValue::new("user", i as i64)]);
        }
    }
    let snapshot = engine.snapshot();
    let series: Vec<_> = snapshot.find("otel.limit.requests", &[]).collect();
    assert_eq!(series.len(), 4, "three sets and the overflow series");
    let overflow = snapshot
        .counter("otel.limit.requests", &[(OVERFLOW_KEY, "true")])
        .expect("the overflow series");
    assert_eq!(overflow.value, 14.0);
    let total: f64 = snapshot
        .find("otel.limit.requests", &[])
        .map(|series| match series.value {
            crate::MetricValue::Counter(estimate) => estimate.value,
            _ => 0.0,
        })
        .sum();
    assert_eq!(total, 20.0);
    engine.shutdown().expect("clean shutdown");
}

#[test]
fn observable_callbacks_run_at_snapshot_time_and_survive_panics() {
    let _lock = engine_lock();
    let engine = engine(0.03);
    let provider = MeterProvider::new(&engine);
    let meter = provider.meter("observe");
    let runs = Arc::new(AtomicU64::new(0));
    let seen = runs.clone();
    let _uptime = meter
        .u64_observable_counter("otel.observe.ticks")
        .with_unit("{tick}")
        .with_callback(move |observer| {
            let run = seen.fetch_add(1, Ordering::Relaxed) + 1;
            observer.observe(run * 10, &[KeyValue::new("clock", "main")]);
        })
        .build();
    let _broken = meter
        .f64_observable_gauge("otel.observe.broken")
        .with_callback(|_| panic!("a broken callback"))
        .build();
    let _depth = meter
        .i64_observable_gauge("otel.observe.depth")
        .with_callback(|observer| observer.observe(-4, &[]))
        .build();
    assert_eq!(
        runs.load(Ordering::Relaxed),
        0,
        "nothing runs before a snapshot"
    );

    let first = engine.snapshot();
    assert_eq!(
        first.counter("otel.observe.ticks", &[("clock", "main")]),
        Some(crate::Estimate::exact(10.0))
    );
    assert_eq!(first.gauge("otel.observe.depth", &[]), Some(-4.0));
    let second = engine.snapshot();
    assert_eq!(
        second
            .counter("otel.observe.ticks", &[("clock", "main")])
            .map(|total| total.value),
        Some(20.0)
    );
    assert_eq!(provider.callback_panics(), 2);
    assert_eq!(
        second
            .find("otel.observe.ticks", &[])
            .next()
            .and_then(|series| series.unit.clone())
            .as_deref(),
        Some("{tick}")
    );

    // Dropping the provider and its meter unregisters the callbacks.
    drop(meter);
    drop(provider);
    let _ = engine.snapshot();
    assert_eq!(runs.load(Ordering::Relaxed), 2);
    engine.shutdown().expect("clean shutdown");
}

#[test]
fn bad_names_and_values_are_ignored_without_panics() {
    let _lock = engine_lock();
    let engine = engine(1.0);
    let meter = MeterProvider::new(&engine).meter("bad");
    let refused = meter.u64_counter("1starts.with.a.digit").build();
    refused.add(1, &[]);
    let bytes = meter.f64_counter("otel.bad.bytes").build();
    bytes.add(f64::NAN, &[]);
    bytes.add(-1.0, &[]);
    bytes.add(f64::INFINITY, &[KeyValue::new("a", "b")]);
    bytes.add(2.0, &[]);
    let latency = meter.f64_histogram("otel.bad.latency").build();
    latency.record(-3.0, &[]);
    // An empty key is refused by the registry; the thread keeps sampling.
    let requests = meter.u64_counter("otel.bad.requests").build();
    requests.add(1, &[KeyValue::new("", "empty key")]);
    for _ in 0..10 {
        requests.add(1, &[]);
    }
    let snapshot = engine.snapshot();
    assert!(snapshot.find("1starts.with.a.digit", &[]).next().is_none());
    assert_eq!(snapshot.counter("otel.bad.bytes", &[]).unwrap().value, 2.0);
    assert_eq!(
        snapshot.counter("otel.bad.requests", &[]).unwrap().value,
        10.0
    );
    assert!(snapshot.stats.values_rejected >= 4);
    engine.shutdown().expect("clean shutdown");
}

#[test]
fn the_global_provider_routes_through_the_engine() {
    let _lock = engine_lock();
    let engine = engine(1.0);
    opentelemetry::global::set_meter_provider(MeterProvider::new(&engine));
    let counter: Counter<u64> = opentelemetry::global::meter("global")
        .u64_counter("otel.global.requests")
        .with_unit("{request}")
        .with_description("Requests, through the global provider")
        .build();
    for _ in 0..100 {
        counter.add(1, &[KeyValue::new("route", "/")]);
    }
    let snapshot = engine.snapshot();
    assert_eq!(
        snapshot
            .counter("otel.global.requests", &[("route", "/")])
            .unwrap()
            .value,
        100.0
    );
    let series = snapshot.find("otel.global.requests", &[]).next().unwrap();
    assert_eq!(series.unit.as_deref(), Some("{request}"));
    assert_eq!(
        series.description.as_deref(),
        Some("Requests, through the global provider")
    );
    opentelemetry::global::set_meter_provider(opentelemetry::metrics::NoopMeterProvider::new());
    engine.shutdown().expect("clean shutdown");
}

#[test]
fn every_sync_instrument_kind_records() {
    let _lock = engine_lock();
    let engine = engine(1.0);
    let meter = MeterProvider::new(&engine).meter("kinds");
    meter
        .f64_counter("otel.kinds.f64_counter")
        .build()
        .add(1.5, &[]);
    meter
        .i64_up_down_counter("otel.kinds.i64_updown")
        .build()
        .add(-3, &[]);
    meter
        .f64_up_down_counter("otel.kinds.f64_updown")
        .build()
        .add(-0.5, &[]);
    meter
        .u64_gauge("otel.kinds.u64_gauge")
        .build()
        .record(7, &[]);
    meter
        .i64_gauge("otel.kinds.i64_gauge")
        .build()
        .record(-7, &[]);
    meter
        .f64_gauge("otel.kinds.f64_gauge")
        .build()
        .record(0.5, &[]);
    meter
        .u64_histogram("otel.kinds.u64_histogram")
        .build()
        .record(9, &[]);
    let snapshot = engine.snapshot();
    assert_eq!(
        snapshot
            .counter("otel.kinds.f64_counter", &[])
            .unwrap()
            .value,
        1.5
    );
    assert_eq!(
        snapshot.updown("otel.kinds.i64_updown", &[]).unwrap().value,
        -3.0
    );
    assert_eq!(
        snapshot.updown("otel.kinds.f64_updown", &[]).unwrap().value,
        -0.5
    );
    assert_eq!(snapshot.gauge("otel.kinds.u64_gauge", &[]), Some(7.0));
    assert_eq!(snapshot.gauge("otel.kinds.i64_gauge", &[]), Some(-7.0));
    assert_eq!(snapshot.gauge("otel.kinds.f64_gauge", &[]), Some(0.5));
    let histogram = snapshot.histogram("otel.kinds.u64_histogram", &[]).unwrap();
    assert_eq!((histogram.count.value, histogram.sum.value), (1.0, 9.0));
    engine.shutdown().expect("clean shutdown");
}

#[test]
fn instruments_are_exact_only_when_asked() {
    let _lock = engine_lock();
    let engine = engine(0.03);
    let sampled = Instrument::new(Arc::from("otel.mode.a"), Kind::Counter, false);
    let gauge = Instrument::new(Arc::from("otel.mode.b"), Kind::Gauge, false);
    assert!(!sampled.is_exact());
    assert!(gauge.is_exact(), "gauges are never sampled");
    SyncInstrument::<u64>::measure(&sampled, 1, &[]);
    engine.shutdown().expect("clean shutdown");
}

#[cfg(feature = "otel-api-bound")]
#[test]
fn bound_instruments_skip_the_attributes() {
    let _lock = engine_lock();
    let engine = engine(0.02);
    let meter = MeterProvider::new(&engine).meter("bound");
    let requests = meter.u64_counter("otel.bound.requests").build();
    let bound = requests.bind(&three("/api"));
    let failed = meter
        .u64_counter("otel.bound.failed")
        .with_description("[critical] failures")
        .build()
        .bind(&[KeyValue::new("route", "/api")]);
    let depth = meter.i64_gauge("otel.bound.depth").build().bind(&[]);
    let calls = 100_000u64;
    for _ in 0..calls {
        bound.add(1);
        failed.add(1);
    }
    depth.record(-2);
    let snapshot = engine.snapshot();
    let total = snapshot
        .counter(
            "otel.bound.requests",
            &[("method", "GET"), ("route", "/api"), ("status", "200")],
        )
        .unwrap();
    assert!(!total.exact);
    assert!((total.value - calls as f64).abs() <= 5.0 * total.std_error);
    let failed = snapshot
        .counter("otel.bound.failed", &[("route", "/api")])
        .unwrap();
    assert_eq!((failed.value, failed.exact), (calls as f64, true));
    assert_eq!(snapshot.gauge("otel.bound.depth", &[]), Some(-2.0));
    engine.shutdown().expect("clean shutdown");
}
