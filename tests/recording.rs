//! Code that records, tested the way a user of the crate tests it: one
//! process-wide test engine (`hotmetrics::testing`), each test watching
//! the change of its own series, no lock between tests (they run on the
//! harness's parallel threads).
//!
//! This binary installs no engine of its own: the test engine is the only
//! one in the process.

use std::thread;

use hotmetrics::{record, testing, Engine, InstallError};

#[test]
fn two_threads_million_calls_are_exact() {
    let watch = testing::watch();
    let workers: Vec<_> = (0..2)
        .map(|_| {
            thread::spawn(|| {
                for i in 0..1_000_000u64 {
                    record!(counter: "exact.calls", 1);
                    record!(updown: "exact.level", if i % 2 == 0 { 3 } else { -1 });
                    record!(histogram: "exact.latency", (i % 1000) as f64);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    assert_eq!(watch.counter("exact.calls", &[]), 2_000_000.0);
    assert_eq!(
        watch.updown("exact.level", &[]),
        2.0 * (500_000.0 * 3.0 - 500_000.0)
    );
    let latency = watch.histogram("exact.latency", &[]);
    assert_eq!(latency.count, 2_000_000.0);
    assert_eq!(latency.sum, 2.0 * 1000.0 * (999.0 * 1000.0 / 2.0));
    let snapshot = testing::engine().snapshot();
    let calls = snapshot.counter("exact.calls", &[]).unwrap();
    assert!(calls.exact, "the test engine records every call");
    assert_eq!(calls.std_error, 0.0);
}

/// Eight tests' worth of work on parallel threads, each on its own label
/// value of one metric: every watch sees exactly its own calls.
#[test]
fn parallel_work_on_one_metric_is_told_apart_by_labels() {
    let workers: Vec<_> = (0..8u32)
        .map(|worker| {
            thread::spawn(move || {
                let label = format!("w{worker}");
                let watch = testing::watch();
                let handle =
                    hotmetrics::counter("parallel.jobs").with_labels(&[("worker", &label)]);
                for _ in 0..10_000 * (worker + 1) {
                    handle.add(1u32);
                }
                watch.counter("parallel.jobs", &[("worker", &label)])
            })
        })
        .collect();
    for (worker, result) in workers.into_iter().enumerate() {
        let expected = 10_000.0 * (worker as f64 + 1.0);
        assert_eq!(result.join().unwrap(), expected, "worker {worker}");
    }
}

#[test]
fn watching_twice_reports_the_change_not_the_total() {
    record!(counter: "twice.events", 3);
    let watch = testing::watch();
    record!(counter: "twice.events", 4);
    assert_eq!(watch.counter("twice.events", &[]), 4.0);
    let later = testing::watch();
    assert_eq!(later.counter("twice.events", &[]), 0.0);
    assert_eq!(watch.counter("twice.events", &[]), 4.0);
}

#[test]
fn gauges_and_series_never_recorded() {
    let watch = testing::watch();
    assert_eq!(watch.gauge("watch.temperature", &[("room", "a")]), None);
    assert_eq!(watch.counter("watch.never", &[]), 0.0);
    assert_eq!(watch.histogram("watch.never_hist", &[]).count, 0.0);
    record!(gauge: "watch.temperature", 21.5, "room" => "a");
    assert_eq!(
        watch.gauge("watch.temperature", &[("room", "a")]),
        Some(21.5)
    );
    let out = record!(timed: "watch.work_ns", { (0..100u64).sum::<u64>() });
    assert_eq!(out, 4950);
    let timed = watch.histogram("watch.work_ns", &[]);
    assert_eq!(timed.count, 1.0);
    assert!(timed.sum > 0.0);
}

#[test]
#[should_panic(expected = "is a Counter series, not a histogram")]
fn asking_for_the_wrong_kind_names_the_series() {
    record!(counter: "wrong.kind", 1);
    let watch = testing::watch();
    let _ = watch.histogram("wrong.kind", &[]);
}

#[test]
fn installing_another_engine_is_refused_while_the_test_engine_runs() {
    let _ = testing::engine();
    match Engine::builder().install() {
        Err(InstallError::AlreadyInstalled) => {}
        other => panic!("expected AlreadyInstalled, got {other:?}"),
    }
}
