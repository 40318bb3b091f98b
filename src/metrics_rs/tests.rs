//! The facade recorder's promises: the same values as metrics-util's
//! debugging recorder at rate 1, honest estimates when sampled, one
//! snapshot with `record!`, exact `absolute` and gauges, `record_many` as
//! many calls, descriptions, counted refusals, per-thread `Arc`s.

use std::collections::HashMap;
use std::sync::Arc;

use metrics::Key;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

use super::recorder::Recorder;
use super::stats;
use crate::test_support::engine_lock;
use crate::{Engine, Kind};

/// An engine at one fixed rate for every sampled series.
fn engine(rate: f64) -> Engine {
    Engine::builder()
        .sample_rate(rate)
        .adaptive(false)
        .buffer_capacity(1 << 16)
        .install()
        .expect("engine installs")
}

/// Instrumentation that knows only the facade: every kind of call.
fn instrument(prefix: &str) {
    let name = |suffix: &str| format!("{prefix}.{suffix}");
    for i in 0..2_000u64 {
        let route = if i % 3 == 0 { "/a" } else { "/b" };
        metrics::counter!(name("requests"), "route" => route).increment(i % 4);
        metrics::histogram!(name("latency")).record((i % 250) as f64);
        metrics::gauge!(name("inflight")).increment(1.0);
        if i % 2 == 0 {
            metrics::gauge!(name("inflight")).decrement(1.0);
        }
    }
    metrics::histogram!(name("latency")).record_many(7.0, 500);
    metrics::counter!(name("mirrored")).absolute(40);
    metrics::counter!(name("mirrored")).absolute(90);
    metrics::counter!(name("mirrored")).absolute(60);
    metrics::gauge!(name("depth")).set(12.5);
}

/// Every value the debugging recorder saw, as (name, sorted labels) →
/// (counter or gauge value, or histogram count and sum).
/// A series' name and sorted labels.
type SeriesKey = (String, Vec<(String, String)>);

fn debugging_values(prefix: &str) -> HashMap<SeriesKey, (f64, f64)> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || instrument(prefix));
    let mut values = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let (_, key) = key.into_parts();
        let mut labels: Vec<(String, String)> = key
            .labels()
            .map(|label| (label.key().to_string(), label.value().to_string()))
            .collect();
        labels.sort();
        let value = match value {
            DebugValue::Counter(value) => (value as f64, 0.0),
            DebugValue::Gauge(value) => (value.into_inner(), 0.0),
            DebugValue::Histogram(values) => (
                values.len() as f64,
                values.iter().map(|value| value.into_inner()).sum(),
            ),
        };
        values.insert((key.name().to_string(), labels), value);
    }
    values
}

#[test]
fn the_same_values_as_the_debugging_recorder_at_rate_1() {
    let _lock = engine_lock();
    let prefix = "facade.same";
    let expected = debugging_values(prefix);
    assert_eq!(expected.len(), 6, "{expected:?}");

    let engine = engine(1.0);
    metrics::with_local_recorder(&Recorder::new(), || instrument(prefix));
    let snapshot = engine.snapshot();
    for ((name, labels), (value, sum)) in &expected {
        let labels: Vec<(&str, &str)> = labels
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect();
        let ours = if let Some(counter) = snapshot.counter(name, &labels) {
            (counter.value, 0.0)
        } else if let Some(gauge) = snapshot.gauge(name, &labels) {
            (gauge, 0.0)
        } else {
            let histogram = snapshot
                .histogram(name, &labels)
                .unwrap_or_else(|| panic!("{name} {labels:?} is in the snapshot"));
            (histogram.count.value, histogram.sum.value)
        };
        assert_eq!(ours, (*value, *sum), "{name} {labels:?}");
    }
    engine.shutdown().unwrap();
}

#[test]
fn sampled_at_five_percent_every_estimate_is_within_five_standard_errors() {
    let _lock = engine_lock();
    let engine = engine(0.05);
    let calls_per_thread = 200_000u64;
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                metrics::with_local_recorder(&Recorder::new(), || {
                    for i in 0..calls_per_thread {
                        metrics::counter!("facade.sampled.requests", "route" => "/api")
                            .increment(1 + i % 3);
                        metrics::histogram!("facade.sampled.latency").record((i % 500) as f64);
                    }
                })
            });
        }
    });
    let snapshot = engine.snapshot();
    let per_thread_sum: u64 = (0..calls_per_thread).map(|i| 1 + i % 3).sum();
    let latency_sum: u64 = (0..calls_per_thread).map(|i| i % 500).sum();
    let requests = snapshot
        .counter("facade.sampled.requests", &[("route", "/api")])
        .unwrap();
    let latency = snapshot.histogram("facade.sampled.latency", &[]).unwrap();
    for (what, estimate, truth) in [
        ("counter", requests, 2.0 * per_thread_sum as f64),
        (
            "histogram count",
            latency.count,
            2.0 * calls_per_thread as f64,
        ),
        ("histogram sum", latency.sum, 2.0 * latency_sum as f64),
    ] {
        assert!(
            !estimate.exact && estimate.std_error > 0.0,
            "{what} was sampled"
        );
        assert!(
            (estimate.value - truth).abs() <= 5.0 * estimate.std_error,
            "{what}: {} ± {} vs {truth}",
            estimate.value,
            estimate.std_error
        );
    }
    engine.shutdown().unwrap();
}

/// A crate that records with `record!`.
mod crate_a {
    pub(super) fn work() {
        for _ in 0..1_000 {
            crate::record!(counter: "facade.mixed.a_calls", 1);
        }
    }
}

/// A crate that only knows the facade.
mod crate_b {
    pub(super) fn work() {
        for _ in 0..1_000 {
            metrics::counter!("facade.mixed.b_calls").increment(2);
        }
    }
}

#[test]
fn record_and_the_facade_land_in_one_snapshot() {
    let _lock = engine_lock();
    let engine = engine(1.0);
    crate_a::work();
    metrics::with_local_recorder(&Recorder::new(), crate_b::work);
    let snapshot = engine.snapshot();
    assert_eq!(
        snapshot.counter("facade.mixed.a_calls", &[]).unwrap().value,
        1_000.0
    );
    assert_eq!(
        snapshot.counter("facade.mixed.b_calls", &[]).unwrap().value,
        2_000.0
    );
    engine.shutdown().unwrap();
}

#[test]
fn absolute_sets_the_cumulative_value_exactly_even_when_sampled() {
    let _lock = engine_lock();
    let engine = engine(0.01);
    metrics::with_local_recorder(&Recorder::new(), || {
        let counter = metrics::counter!("facade.absolute.mirrored");
        for value in [10, 250, 240, 1_000, 999] {
            counter.absolute(value);
        }
    });
    let value = engine
        .snapshot()
        .counter("facade.absolute.mirrored", &[])
        .unwrap();
    assert_eq!((value.value, value.std_error), (1_000.0, 0.0));
    engine.shutdown().unwrap();

    // A new engine starts from zero, absolute values too.
    let engine = self::engine(0.01);
    metrics::with_local_recorder(&Recorder::new(), || {
        metrics::counter!("facade.absolute.mirrored").absolute(300);
    });
    let value = engine
        .snapshot()
        .counter("facade.absolute.mirrored", &[])
        .unwrap();
    assert_eq!(value.value, 300.0);
    engine.shutdown().unwrap();
}

#[test]
fn gauges_are_exact_and_histograms_count_record_many_as_many_calls() {
    let _lock = engine_lock();
    let engine = engine(1.0);
    metrics::with_local_recorder(&Recorder::new(), || {
        let gauge = metrics::gauge!("facade.exact.level");
        gauge.increment(5.0);
        gauge.decrement(2.0);
        gauge.increment(0.5);
        metrics::gauge!("facade.exact.set").set(3.0);
        metrics::gauge!("facade.exact.set").set(-7.25);
        metrics::histogram!("facade.exact.sizes").record_many(4.0, 1_000);
        metrics::histogram!("facade.exact.sizes").record_many(9.0, 0);
    });
    let snapshot = engine.snapshot();
    assert_eq!(snapshot.gauge("facade.exact.level", &[]), Some(3.5));
    assert_eq!(snapshot.gauge("facade.exact.set", &[]), Some(-7.25));
    let sizes = snapshot.histogram("facade.exact.sizes", &[]).unwrap();
    assert_eq!((sizes.count.value, sizes.sum.value), (1_000.0, 4_000.0));
    engine.shutdown().unwrap();
}

#[test]
fn descriptions_carry_unit_and_text() {
    let _lock = engine_lock();
    let engine = engine(1.0);
    metrics::with_local_recorder(&Recorder::new(), || {
        metrics::describe_histogram!(
            "facade.described.wait",
            metrics::Unit::Seconds,
            "Time spent waiting"
        );
        metrics::describe_gauge!(
            "facade.described.ram",
            metrics::Unit::Bytes,
            "Memory in use"
        );
        metrics::histogram!("facade.described.wait").record(0.5);
        metrics::gauge!("facade.described.ram").set(1e6);
    });
    let snapshot = engine.snapshot();
    let wait = snapshot.series("facade.described.wait", &[]).unwrap();
    assert_eq!(wait.unit.as_deref(), Some("s"));
    assert_eq!(wait.description.as_deref(), Some("Time spent waiting"));
    let ram = snapshot.series("facade.described.ram", &[]).unwrap();
    assert_eq!(ram.unit.as_deref(), Some("By"));
    engine.shutdown().unwrap();
}

#[test]
fn refused_keys_are_counted_and_their_calls_do_nothing() {
    let _lock = engine_lock();
    let engine = engine(1.0);
    let before = stats();
    metrics::with_local_recorder(&Recorder::new(), || {
        for _ in 0..3 {
            metrics::counter!("facade refused:name").increment(1);
            metrics::counter!("facade.refused.label", "" => "x").increment(1);
            metrics::counter!("facade.refused.kind").increment(1);
            metrics::gauge!("facade.refused.kind").set(1.0);
            metrics::histogram!("9facade.refused").record(1.0);
        }
    });
    let after = stats();
    // Each refused key once: it is cached as refused.
    assert_eq!(after.refused_invalid - before.refused_invalid, 3);
    assert_eq!(
        after.refused_kind_conflict - before.refused_kind_conflict,
        1
    );
    let snapshot = engine.snapshot();
    assert_eq!(
        snapshot.counter("facade.refused.kind", &[]).unwrap().value,
        3.0
    );
    assert!(snapshot.gauge("facade.refused.kind", &[]).is_none());
    engine.shutdown().unwrap();
}

#[test]
fn with_no_engine_calls_do_nothing() {
    let _lock = engine_lock();
    metrics::with_local_recorder(&Recorder::new(), || {
        metrics::counter!("facade.idle.count").increment(1);
        metrics::counter!("facade.idle.count").absolute(5);
        metrics::gauge!("facade.idle.level").increment(1.0);
        metrics::histogram!("facade.idle.sizes").record_many(1.0, 10);
    });
    let engine = engine(1.0);
    let snapshot = engine.snapshot();
    assert_eq!(
        snapshot
            .counter("facade.idle.count", &[])
            .map_or(0.0, |c| c.value),
        0.0
    );
    assert!(snapshot.gauge("facade.idle.level", &[]).is_none());
    engine.shutdown().unwrap();
}

#[test]
fn each_thread_clones_its_own_arc() {
    use metrics::Recorder as _;
    let key = Key::from_static_parts("facade.arcs.count", &[]);
    let metadata = metrics::Metadata::new("test", metrics::Level::INFO, None);
    let mine = || {
        let counter = Recorder::new().register_counter(&key, &metadata);
        drop(counter);
        super::recorder::register_for_test(&key)
    };
    let first = mine();
    let second = mine();
    assert!(Arc::ptr_eq(&first, &second), "one Arc per thread");
    // The thread's table holds one reference, `first` and `second` two.
    assert_eq!(Arc::strong_count(&first), 3);
    let other = std::thread::scope(|scope| scope.spawn(mine).join().unwrap());
    assert!(!Arc::ptr_eq(&first, &other), "another thread's own Arc");
    // The other thread exited: its table let go of its reference.
    assert_eq!(Arc::strong_count(&other), 1);
    assert_eq!(
        first.cell().map(|cell| cell.id()),
        other.cell().map(|cell| cell.id()),
        "one series"
    );
}

/// A facade series counts as a holder of its cell only while a `Series`
/// of it lives: one the key cache could not keep (past its capacity) lets
/// its cell go when the facade's `Counter` is dropped, so an idle series
/// can be retired and its cell reused.
#[test]
fn a_series_holds_its_cell_only_while_it_lives() {
    use std::sync::atomic::Ordering;

    use super::series::Series;

    let key = Key::from_static_parts("facade.holders.count", &[]);
    let holders = |series: &Series| {
        series
            .cell()
            .expect("a valid key")
            .holders
            .load(Ordering::Relaxed)
    };
    let first = Series {
        cell: super::recorder::resolve_for_tests(Kind::Counter, &key),
    };
    let before = holders(&first);
    let second = Series {
        cell: super::recorder::resolve_for_tests(Kind::Counter, &key),
    };
    assert_eq!(holders(&first), before + 1, "each Series holds the cell");
    drop(second);
    assert_eq!(holders(&first), before, "a dropped Series lets it go");
}
