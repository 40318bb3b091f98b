//! Idle series: a label set not recorded for the idle timeout leaves the
//! exports and frees its place under the cardinality limit; a later call
//! brings it back from zero with a new start time; memory stays flat under
//! endless churn of label values.

use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::export::Prometheus;
use crate::hot::cell::Kind;
use crate::hot::registry;
use crate::sync::statics::Ordering;
use crate::sync::Arc;
use crate::test_support::{engine_lock, in_own_process, rss_bytes};
use crate::{record, Builder, Engine, Snapshot, OVERFLOW_KEY};

const TIMEOUT: Duration = Duration::from_millis(100);

/// An exact engine (every call recorded) with a short idle timeout.
fn builder(limit: usize) -> Builder {
    Engine::builder()
        .sample_rate(1.0)
        .adaptive(false)
        .buffer_capacity(1 << 14)
        .export_interval(TIMEOUT / 2)
        .idle_timeout(TIMEOUT)
        .cardinality_limit(limit)
}

/// Polls snapshots until `done` holds (at most 10 s).
fn wait_for(engine: &Engine, what: &str, mut done: impl FnMut(&Snapshot) -> bool) -> Snapshot {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let snapshot = engine.snapshot();
        if done(&snapshot) {
            return snapshot;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn an_idle_label_set_leaves_and_frees_its_place() {
    let _lock = engine_lock();
    let _retiring = crate::test_support::retiring_engine();
    // The label set of `requests` itself (no labels) takes one place.
    let engine = builder(2).install().unwrap();
    let requests = crate::counter("idle.requests");
    let a = requests.with_labels(&[("route", "/a")]);
    a.add(3u64);
    let snapshot = engine.snapshot();
    assert_eq!(
        snapshot
            .counter("idle.requests", &[("route", "/a")])
            .unwrap()
            .value,
        3.0
    );
    drop(a);
    let snapshot = wait_for(&engine, "/a is retired", |snapshot| {
        snapshot
            .counter("idle.requests", &[("route", "/a")])
            .is_none()
    });
    assert!(snapshot.stats.series_retired >= 1);
    // Its place is free: a new label set gets a series of its own.
    requests.with_labels(&[("route", "/c")]).add(2u64);
    let snapshot = engine.snapshot();
    assert_eq!(
        snapshot
            .counter("idle.requests", &[("route", "/c")])
            .unwrap()
            .value,
        2.0
    );
    assert!(snapshot
        .counter("idle.requests", &[(OVERFLOW_KEY, "true")])
        .is_none());
    assert_eq!(snapshot.stats.retired_values, 0);
    engine.shutdown().unwrap();
}

#[test]
fn a_later_call_brings_it_back_from_zero_with_a_new_start() {
    let _lock = engine_lock();
    let _retiring = crate::test_support::retiring_engine();
    let engine = builder(10).install().unwrap();
    let handle = crate::counter("idle.revived").with_labels(&[("tenant", "t1")]);
    let gauge = crate::gauge("idle.level").with_labels(&[("tenant", "t1")]);
    handle.add(7u64);
    gauge.set(4.0);
    record!(counter: "idle.callsite", 5, "kind" => "literal");
    let first = engine.snapshot();
    assert_eq!(
        first
            .counter("idle.revived", &[("tenant", "t1")])
            .unwrap()
            .value,
        7.0
    );
    assert_eq!(
        first
            .series("idle.revived", &[("tenant", "t1")])
            .unwrap()
            .start_time,
        None
    );
    wait_for(&engine, "all three are retired", |snapshot| {
        snapshot
            .counter("idle.revived", &[("tenant", "t1")])
            .is_none()
            && snapshot.gauge("idle.level", &[("tenant", "t1")]).is_none()
            && snapshot
                .counter("idle.callsite", &[("kind", "literal")])
                .is_none()
    });
    let retired_at = SystemTime::now();
    // The same handles and callsite, recorded again.
    handle.add(2u64);
    gauge.set(1.5);
    record!(counter: "idle.callsite", 5, "kind" => "literal");
    let snapshot = engine.snapshot();
    let series = snapshot
        .series("idle.revived", &[("tenant", "t1")])
        .unwrap();
    assert_eq!(
        snapshot
            .counter("idle.revived", &[("tenant", "t1")])
            .unwrap()
            .value,
        2.0
    );
    let started = series
        .start_time
        .expect("a revived series has its own start");
    assert!(started >= retired_at && started > snapshot.start_time);
    assert_eq!(snapshot.gauge("idle.level", &[("tenant", "t1")]), Some(1.5));
    assert_eq!(
        snapshot
            .counter("idle.callsite", &[("kind", "literal")])
            .unwrap()
            .value,
        5.0
    );
    assert_eq!(snapshot.stats.retired_values, 0);
    engine.shutdown().unwrap();
}

#[test]
fn a_live_series_is_not_retired() {
    let _lock = engine_lock();
    let _retiring = crate::test_support::retiring_engine();
    let engine = builder(10).install().unwrap();
    let live = crate::counter("idle.live").with_labels(&[("route", "/live")]);
    let level = crate::updown("idle.live_level");
    let idle = crate::counter("idle.live").with_labels(&[("route", "/idle")]);
    idle.add(1u64);
    let started = Instant::now();
    let mut calls = 0.0;
    while started.elapsed() < TIMEOUT * 6 {
        live.add(1u64);
        level.add(1);
        calls += 1.0;
        let snapshot = engine.snapshot();
        assert_eq!(
            snapshot
                .counter("idle.live", &[("route", "/live")])
                .unwrap()
                .value,
            calls
        );
        assert_eq!(
            snapshot.updown("idle.live_level", &[]).unwrap().value,
            calls
        );
        thread::sleep(TIMEOUT / 10);
    }
    let snapshot = engine.snapshot();
    assert!(snapshot
        .counter("idle.live", &[("route", "/idle")])
        .is_none());
    assert!(snapshot.stats.series_retired >= 1);
    assert_eq!(snapshot.stats.retired_values, 0);
    engine.shutdown().unwrap();
}

#[test]
fn exporters_follow_the_snapshot() {
    let _lock = engine_lock();
    let _retiring = crate::test_support::retiring_engine();
    let prometheus = Prometheus::builder()
        .without_server()
        .without_target_info()
        .build()
        .unwrap();
    let engine = builder(10).exporter(prometheus.clone()).install().unwrap();
    let handle = crate::counter("idle.exported").with_labels(&[("peer", "gone")]);
    handle.add(1u64);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !prometheus.render().contains("peer=\"gone\"") {
        assert!(Instant::now() < deadline, "{}", prometheus.render());
        thread::sleep(Duration::from_millis(5));
    }
    while prometheus.render().contains("peer=\"gone\"") {
        assert!(Instant::now() < deadline, "{}", prometheus.render());
        thread::sleep(Duration::from_millis(5));
    }
    engine.shutdown().unwrap();
}

/// Per-thread exact slots across retirement and revival: what a live
/// thread's slot held for the retired series never reaches the new one,
/// before or after that thread exits and folds its slots.
#[test]
fn exact_counts_do_not_leak_across_retire_and_revive() {
    let _lock = engine_lock();
    let _retiring = crate::test_support::retiring_engine();
    let engine = builder(10).install().unwrap();
    let handle = crate::counter("idle.exact")
        .with_labels(&[("k", "v")])
        .critical();
    let (to_worker, work) = std::sync::mpsc::channel::<u64>();
    let (done, from_worker) = std::sync::mpsc::channel::<()>();
    let worker = {
        let handle = handle.clone();
        thread::spawn(move || {
            for amount in work {
                handle.add(amount);
                record!(critical counter: "idle.exact_site", amount);
                done.send(()).unwrap();
            }
        })
    };
    let add = |amount: u64| {
        to_worker.send(amount).unwrap();
        from_worker.recv().unwrap();
    };
    add(10);
    handle.add(1u64);
    let snapshot = engine.snapshot();
    assert_eq!(
        snapshot.counter("idle.exact", &[("k", "v")]).unwrap().value,
        11.0
    );
    wait_for(&engine, "both are retired", |snapshot| {
        snapshot.counter("idle.exact", &[("k", "v")]).is_none()
            && snapshot.counter("idle.exact_site", &[]).is_none()
    });
    add(3);
    let snapshot = engine.snapshot();
    assert_eq!(
        snapshot.counter("idle.exact", &[("k", "v")]).unwrap().value,
        3.0
    );
    assert_eq!(snapshot.counter("idle.exact_site", &[]).unwrap().value, 3.0);
    handle.add(2u64);
    drop(to_worker);
    worker.join().unwrap();
    // The worker folded its slots (10 of the old series, 3 of the new).
    let snapshot = engine.snapshot();
    assert_eq!(
        snapshot.counter("idle.exact", &[("k", "v")]).unwrap().value,
        5.0
    );
    assert_eq!(snapshot.counter("idle.exact_site", &[]).unwrap().value, 3.0);
    assert_eq!(snapshot.stats.retired_values, 0);
    engine.shutdown().unwrap();
}

/// Endless churn: a million label values through handles, a small limit
/// and a short timeout; live label sets stay under the limit, cells are
/// recycled, and memory stays flat.
/// Retirements an endless-churn test waits for: more than the 20 × limit
/// cells it allows, so code that made a new cell for every new label set
/// (no recycling) fails it.
const RETIRED_AT_LEAST: u64 = 5_000;

/// The label values of an endless-churn test: at least `values` of them,
/// and on until [`RETIRED_AT_LEAST`] series were retired (a release build
/// makes its 10⁶ calls in a fraction of a second, before as many idle
/// checks have run), within a minute.
struct Churn {
    next: u64,
    retired: u64,
    started: std::time::Instant,
}

impl Churn {
    fn new() -> Self {
        Self {
            next: 0,
            retired: 0,
            started: std::time::Instant::now(),
        }
    }

    fn next(&mut self, engine: &Engine, values: u64) -> Option<u64> {
        if self.next.is_multiple_of(1000) {
            self.retired = engine.stats().series_retired;
            assert!(
                self.started.elapsed() < Duration::from_secs(60),
                "{} series retired after {} values in a minute",
                self.retired,
                self.next
            );
        }
        if self.next >= values && self.retired >= RETIRED_AT_LEAST {
            return None;
        }
        self.next += 1;
        Some(self.next - 1)
    }
}

/// Runs an endless-churn test in its own process: the closure
/// `make_record` builds (once the engine is installed) makes one call with
/// label value `value` of metric `name` (a counter), under a
/// cardinality limit of 100 and an idle timeout of 20 ms. Asserts that at
/// most the limit is live at any time, that recycling happened (more
/// series retired than the cells allowed), that cells stay within 20× the
/// limit and that resident memory stays flat over the second half.
fn churn_keeps_memory_flat<R: FnMut(u64)>(
    test: &str,
    name: &str,
    make_record: impl FnOnce(&Engine) -> R,
) {
    if !in_own_process(test) {
        return;
    }
    let _lock = engine_lock();
    let _retiring = crate::test_support::retiring_engine();
    let limit = 100;
    let engine = Engine::builder()
        .sample_rate(1.0)
        .adaptive(false)
        .export_interval(Duration::from_millis(20))
        .idle_timeout(Duration::from_millis(20))
        .cardinality_limit(limit)
        .install()
        .unwrap();
    let mut record = make_record(&engine);
    let values: u64 = 1_000_000;
    let mut rss_half = 0;
    let mut most_cells = 0;
    let mut churn = Churn::new();
    while let Some(value) = churn.next(&engine, values) {
        record(value);
        if value % 1000 == 0 {
            let (cells, live) = registry::footprint();
            assert!(live <= limit, "{live} live label sets");
            most_cells = most_cells.max(cells);
        }
        if value == values / 2 {
            rss_half = rss_bytes().unwrap_or(0);
        }
    }
    let rss_end = rss_bytes().unwrap_or(0);
    let snapshot = engine.snapshot();
    let stats = snapshot.stats.clone();
    let (cells, _) = registry::footprint();
    let most_cells = most_cells.max(cells);
    println!(
        "churn of {name}: {} label values, {} retired, {cells} cells \
         (at most {most_cells} seen), RSS {} -> {} KiB",
        churn.next,
        stats.series_retired,
        rss_half / 1024,
        rss_end / 1024
    );
    let exported = snapshot
        .series
        .iter()
        .filter(|series| &*series.name == name)
        .count();
    assert!(exported <= limit + 1, "{exported} series exported");
    assert!(stats.series_retired >= RETIRED_AT_LEAST, "{stats:?}");
    assert!(
        most_cells <= 20 * limit,
        "{most_cells} cells for a limit of {limit}"
    );
    let growth = rss_end.saturating_sub(rss_half);
    assert!(
        growth < 4 << 20,
        "RSS grew by {growth} bytes over the second half"
    );
    engine.shutdown().unwrap();
}

/// Endless churn through handles made per label value and dropped.
#[test]
fn endless_churn_keeps_memory_flat() {
    churn_keeps_memory_flat(
        "tests::idle::endless_churn_keeps_memory_flat",
        "churn.requests",
        |_| {
            let requests = crate::counter("churn.requests");
            move |value| {
                let route = format!("/r/{value}");
                requests.with_labels(&[("route", &route)]).add(1u64);
            }
        },
    );
}

/// Endless churn through `record!` label expressions: each thread's
/// cache holds the series it recorded last and lets go of them as new
/// values evict them, so cells are recycled as with handles.
#[test]
fn endless_churn_through_label_expressions_keeps_memory_flat() {
    churn_keeps_memory_flat(
        "tests::idle::endless_churn_through_label_expressions_keeps_memory_flat",
        "churn.dynamic",
        |_| |value| record!(counter: "churn.dynamic", 1u64, "route" => value),
    );
}

/// Endless churn through an OpenTelemetry counter's attributes: the
/// instrument's cache lets go of its oldest sets past its capacity, so
/// their cells are recycled too.
#[cfg(feature = "otel-api")]
#[test]
fn endless_churn_through_opentelemetry_attributes_keeps_memory_flat() {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry::KeyValue;

    churn_keeps_memory_flat(
        "tests::idle::endless_churn_through_opentelemetry_attributes_keeps_memory_flat",
        "churn.otel",
        |engine| {
            let counter = crate::otel::MeterProvider::new(engine)
                .meter("churn")
                .u64_counter("churn.otel")
                .build();
            move |value| counter.add(1, &[KeyValue::new("route", value as i64)])
        },
    );
}

/// An OpenTelemetry attribute set routed to the overflow series gets a
/// series of its own once an idle set frees a place: the instrument does
/// not keep the overflow series under that set.
#[cfg(feature = "otel-api")]
#[test]
fn an_overflowed_attribute_set_gets_its_own_series_once_a_place_frees_up() {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry::KeyValue;

    let _lock = engine_lock();
    let _retiring = crate::test_support::retiring_engine();
    let engine = builder(1).install().unwrap();
    let counter = crate::otel::MeterProvider::new(&engine)
        .meter("idle")
        .u64_counter("idle.otel.requests")
        .build();
    counter.add(1, &[KeyValue::new("route", "/a")]);
    counter.add(5, &[KeyValue::new("route", "/b")]);
    let snapshot = engine.snapshot();
    assert_eq!(
        snapshot
            .counter("idle.otel.requests", &[(OVERFLOW_KEY, "true")])
            .unwrap()
            .value,
        5.0
    );
    wait_for(&engine, "/a is retired", |snapshot| {
        snapshot
            .counter("idle.otel.requests", &[("route", "/a")])
            .is_none()
    });
    counter.add(7, &[KeyValue::new("route", "/b")]);
    let snapshot = engine.snapshot();
    assert_eq!(
        snapshot
            .counter("idle.otel.requests", &[("route", "/b")])
            .map(|estimate| estimate.value),
        Some(7.0)
    );
    engine.shutdown().unwrap();
}

/// A thread's cache holds the series it recorded through label
/// expressions until the thread exits: retired meanwhile, the cell is
/// recycled only after.
#[test]
fn a_threads_cache_releases_its_series_at_thread_exit() {
    let _lock = engine_lock();
    let _retiring = crate::test_support::retiring_engine();
    let engine = builder(10).install().unwrap();
    let (recorded, wait) = std::sync::mpsc::channel();
    let (finish, finished) = std::sync::mpsc::channel::<()>();
    let worker = thread::spawn(move || {
        let tenant = String::from("t-exit");
        record!(counter: "idle.thread_exit", 1u64, "tenant" => &tenant);
        recorded.send(()).unwrap();
        let _ = finished.recv();
    });
    wait.recv().unwrap();
    let labels = [(Arc::from("tenant"), Arc::from("t-exit"))];
    let cell = registry::resolve("idle.thread_exit", Kind::Counter, &labels)
        .unwrap()
        .cell();
    assert_eq!(cell.holders.load(Ordering::Relaxed), 1, "held by the cache");
    wait_for(&engine, "the series is retired", |snapshot| {
        snapshot
            .counter("idle.thread_exit", &[("tenant", "t-exit")])
            .is_none()
    });
    thread::sleep(TIMEOUT * 2);
    assert!(!registry::is_recycled(cell), "recycled while cached");
    finish.send(()).unwrap();
    worker.join().unwrap();
    assert_eq!(cell.holders.load(Ordering::Relaxed), 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !registry::is_recycled(cell) {
        assert!(Instant::now() < deadline, "not recycled after thread exit");
        thread::sleep(Duration::from_millis(5));
    }
    engine.shutdown().unwrap();
}

#[test]
fn the_timeout_is_validated_and_read_from_the_environment() {
    let error = builder(10)
        .idle_timeout(Duration::from_millis(10))
        .install()
        .unwrap_err();
    assert!(error.to_string().contains("idle_timeout"), "{error}");
    let error = Engine::builder()
        .from_vars([("HOTMETRICS_IDLE_TIMEOUT_MS", "soon")])
        .unwrap_err();
    assert_eq!(error.setting, "HOTMETRICS_IDLE_TIMEOUT_MS");
    let error = Engine::builder()
        .export_interval(Duration::from_secs(10))
        .from_vars([("HOTMETRICS_IDLE_TIMEOUT_MS", "5000")])
        .unwrap()
        .install()
        .unwrap_err();
    assert!(error.to_string().contains("idle_timeout"), "{error}");
    // Zero turns it off, whatever the setter said.
    let _lock = engine_lock();
    let _retiring = crate::test_support::retiring_engine();
    let engine = Engine::builder()
        .idle_timeout(Duration::from_secs(60))
        .from_vars([("HOTMETRICS_IDLE_TIMEOUT_MS", "0")])
        .unwrap()
        .install()
        .unwrap();
    engine.shutdown().unwrap();
}
