//! Faults: an exporter that panics on every export, one that blocks
//! forever, and a flusher starved by a spinning producer on every core.
//! In each case the hot path keeps its cost, memory stays bounded, the
//! fault shows in `stats()` and `health()`, and `shutdown()` returns within
//! its timeout with an error that says what went wrong.
//!
//! Per-call cost is measured, not benchmarked: the bound (a few times the
//! healthy engine's cost measured in the same test) only catches a hot path
//! that blocks or degrades by orders of magnitude; the figures are printed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::export::{Exporter, InMemory};
use crate::test_support::{engine_lock, in_own_process, rss_bytes};
use crate::{record, Engine, ExportError, Reason, ShutdownError, Snapshot};

/// CPU time this thread has run, in nanoseconds (Linux), so a thread
/// descheduled by a busy machine is not measured as a slow hot path. The
/// kernel updates it at scheduler ticks (a few ms): batches are long.
fn thread_cpu_ns() -> Option<u64> {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    schedstat.split_whitespace().next()?.parse().ok()
}

/// Runs `calls` `record!` pairs (counter + histogram) and returns the
/// nanoseconds per pair: thread CPU time where available, else wall time.
fn timed_pairs(calls: u32) -> f64 {
    let (started, cpu_started) = (Instant::now(), thread_cpu_ns());
    for i in 0..calls {
        record!(counter: "faults.calls", 1);
        record!(histogram: "faults.latency", f64::from(i % 1000));
    }
    let elapsed = match (cpu_started, thread_cpu_ns()) {
        (Some(from), Some(to)) => to.saturating_sub(from) as f64,
        _ => started.elapsed().as_nanos() as f64,
    };
    elapsed / f64::from(calls)
}

/// Nanoseconds per `record!` pair at the engine's rate: the best of five
/// batches, from a fresh thread.
fn per_call_ns() -> f64 {
    thread::spawn(|| {
        (0..5)
            .map(|_| timed_pairs(500_000))
            .fold(f64::INFINITY, f64::min)
    })
    .join()
    .expect("recording thread")
}

fn builder() -> crate::Builder {
    Engine::builder()
        .sample_rate(0.03)
        .adaptive(false)
        .controller_period(Duration::from_millis(50))
}

/// The healthy engine's per-call cost, measured now on this machine.
fn baseline_ns() -> f64 {
    let engine = builder()
        .export_interval(Duration::from_millis(10))
        .exporter(InMemory::keeping(1))
        .install()
        .unwrap();
    let cost = per_call_ns();
    engine.shutdown().unwrap();
    cost
}

fn wait_for(engine: &Engine, what: &str, test: impl Fn(&[Reason]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let health = engine.health();
        if test(health.reasons()) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: health is {health}");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn an_exporter_panicking_on_every_export_is_contained() {
    struct Panics;
    impl Exporter for Panics {
        fn export(&mut self, _: &Snapshot) -> Result<(), ExportError> {
            panic!("exporter bug (expected by this test)");
        }
    }
    if !in_own_process("tests::faults::an_exporter_panicking_on_every_export_is_contained") {
        return;
    }
    let _lock = engine_lock();
    let healthy = baseline_ns();
    let engine = builder()
        .export_interval(Duration::from_millis(25))
        .shutdown_timeout(Duration::from_secs(2))
        .exporter(Panics)
        .install()
        .unwrap();
    wait_for(&engine, "exporter fault reported", |reasons| {
        reasons
            .iter()
            .any(|reason| matches!(reason, Reason::ExporterFault { panics, .. } if *panics > 0))
    });
    // Measured from here: the first panic's report may load debug info to
    // print a backtrace, a one-time cost that is not the engine's.
    let rss_before = rss_bytes().unwrap_or(0);
    let panics_before = engine.stats().exporter_panics;
    let during = per_call_ns();
    let deadline = Instant::now() + Duration::from_secs(20);
    while engine.stats().exporter_panics < panics_before + 10 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    let stats = engine.stats();
    assert!(stats.exporter_panics >= panics_before + 10, "{stats:?}");
    assert!(stats
        .last_export_error
        .as_deref()
        .is_some_and(|error| error.contains("exporter bug")));
    let growth = rss_bytes().unwrap_or(0).saturating_sub(rss_before);
    println!(
        "panicking exporter: {during:.1} ns per call pair vs {healthy:.1} healthy, \
         {} panics, RSS +{} KiB",
        stats.exporter_panics,
        growth / 1024
    );
    assert!(
        during < 3.0 * healthy + 50.0,
        "hot path slowed: {during} vs {healthy}"
    );
    assert!(growth < 16 << 20, "RSS grew by {growth} bytes");
    let started = Instant::now();
    let outcome = engine.shutdown();
    assert!(started.elapsed() < Duration::from_secs(3));
    match outcome {
        Err(ShutdownError::ExportFailed { error, .. }) => {
            assert!(matches!(error, ExportError::Panicked(_)), "{error}");
            assert!(error.to_string().contains("exporter panicked"), "{error}");
        }
        other => panic!("expected ExportFailed, got {other:?}"),
    }
}

#[test]
fn an_exporter_blocked_forever_costs_the_hot_path_nothing() {
    /// Blocks in `export` until the test drops the sender.
    struct Blocks(Mutex<mpsc::Receiver<()>>);
    impl Exporter for Blocks {
        fn export(&mut self, _: &Snapshot) -> Result<(), ExportError> {
            let _ = self.0.lock().map(|receiver| receiver.recv());
            Ok(())
        }
    }
    if !in_own_process("tests::faults::an_exporter_blocked_forever_costs_the_hot_path_nothing") {
        return;
    }
    let _lock = engine_lock();
    let healthy = baseline_ns();
    let (release, blocked) = mpsc::channel::<()>();
    let timeout = Duration::from_millis(500);
    let engine = builder()
        .export_interval(Duration::from_millis(5))
        .shutdown_timeout(timeout)
        .exporter(Blocks(Mutex::new(blocked)))
        .install()
        .unwrap();
    thread::sleep(Duration::from_millis(50));
    let rss_before = rss_bytes().unwrap_or(0);
    let during = per_call_ns();
    // Snapshots keep coming every 5 ms; the exporter takes none of them.
    thread::sleep(Duration::from_millis(300));
    wait_for(&engine, "stalled exporter reported", |reasons| {
        reasons
            .iter()
            .any(|reason| matches!(reason, Reason::ExporterFault { skipped, .. } if *skipped > 0))
    });
    let stats = engine.stats();
    let growth = rss_bytes().unwrap_or(0).saturating_sub(rss_before);
    println!(
        "blocked exporter: {during:.1} ns per call pair vs {healthy:.1} healthy, \
         {} snapshots skipped, RSS +{} KiB",
        stats.exports_skipped,
        growth / 1024
    );
    assert!(stats.exports_skipped >= 10, "{stats:?}");
    assert!(
        during < 3.0 * healthy + 50.0,
        "hot path slowed: {during} vs {healthy}"
    );
    assert!(growth < 16 << 20, "RSS grew by {growth} bytes");
    record!(critical counter: "faults.after_block", 1);
    let started = Instant::now();
    let outcome = engine.shutdown();
    let took = started.elapsed();
    assert!(took < timeout + Duration::from_millis(500), "took {took:?}");
    match &outcome {
        Err(error @ ShutdownError::ExportTimedOut { exporter }) => {
            assert!(exporter.contains("Blocks"), "{exporter}");
            assert!(
                error
                    .to_string()
                    .contains("did not finish within the shutdown timeout"),
                "{error}"
            );
        }
        other => panic!("expected ExportTimedOut, got {other:?}"),
    }
    // The drain itself completed: the last snapshot holds everything.
    assert_eq!(
        engine
            .snapshot()
            .counter("faults.after_block", &[])
            .unwrap()
            .value,
        1.0
    );
    drop(release);
}

#[test]
fn a_flusher_starved_by_a_spinning_producer_per_core() {
    if !in_own_process("tests::faults::a_flusher_starved_by_a_spinning_producer_per_core") {
        return;
    }
    let _lock = engine_lock();
    let cores = thread::available_parallelism().map_or(2, usize::from);
    let solo = {
        let engine = builder().buffer_capacity(64).install().unwrap();
        let cost = per_call_ns();
        engine.shutdown().unwrap();
        cost
    };
    let engine = builder()
        .sample_rate(0.15)
        .rate_bounds(0.15, 0.15)
        .buffer_capacity(64)
        .drain_lag_threshold(Duration::from_millis(100))
        .shutdown_timeout(Duration::from_secs(2))
        .install()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let rss_before = rss_bytes().unwrap_or(0);
    let spinners: Vec<_> = (0..cores)
        .map(|_| {
            let (stop, calls) = (stop.clone(), calls.clone());
            thread::spawn(move || {
                let mut best = f64::INFINITY;
                while !stop.load(Ordering::Relaxed) {
                    best = best.min(timed_pairs(200_000));
                    calls.fetch_add(200_000, Ordering::Relaxed);
                }
                best
            })
        })
        .collect();
    wait_for(&engine, "drops reported", |reasons| {
        reasons
            .iter()
            .any(|reason| matches!(reason, Reason::Drops { .. }))
    });
    let stats = engine.stats();
    assert!(stats.samples_spilled > 0, "{stats:?}");
    // Shut down while every core still spins.
    let started = Instant::now();
    engine.shutdown().expect("no exporter: nothing to time out");
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let during = spinners
        .into_iter()
        .map(|spinner| spinner.join().unwrap())
        .fold(f64::INFINITY, f64::min);
    let growth = rss_bytes().unwrap_or(0).saturating_sub(rss_before);
    let last = engine.snapshot().stats;
    println!(
        "starved flusher, {cores} spinning producers: {during:.1} ns per call pair vs {solo:.1} \
         alone, {} of {} samples spilled, {} calls, shutdown {:?}, RSS +{} KiB",
        last.samples_spilled,
        last.samples_spilled + last.samples_recorded,
        calls.load(Ordering::Relaxed),
        took,
        growth / 1024
    );
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    assert!(during < 10.0 * solo + 100.0, "hot path: {during} vs {solo}");
    assert!(growth < 16 << 20, "RSS grew by {growth} bytes");
}
