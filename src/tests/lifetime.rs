//! Thread churn and engine lifetime: 10⁵ short-lived threads, threads
//! recording while `shutdown()` runs, `record!` from a thread-local
//! destructor, and engines installed, shut down and installed again while
//! long-lived threads keep recording. No leak, no panic, no lost
//! accounting.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::export::InMemory;
use crate::test_support::{engine_lock, in_own_process, rss_bytes};
use crate::{record, Engine};

fn exact_engine(store: &InMemory) -> Engine {
    Engine::builder()
        .sample_rate(1.0)
        .adaptive(false)
        .buffer_capacity(4096)
        .export_interval(Duration::from_secs(3600))
        .exporter(store.clone())
        .install()
        .expect("valid settings")
}

#[test]
fn a_hundred_thousand_short_lived_threads() {
    if !in_own_process("tests::lifetime::a_hundred_thousand_short_lived_threads") {
        return;
    }
    let _lock = engine_lock();
    let store = InMemory::keeping(1);
    let engine = exact_engine(&store);
    let threads = 100_000u64;
    let wave = 8u64;
    let started = Instant::now();
    let mut rss_after_warmup = 0;
    for first in (0..threads).step_by(wave as usize) {
        let workers: Vec<_> = (first..first + wave)
            .map(|index| {
                thread::spawn(move || {
                    record!(counter: "churn100k.calls", 1);
                    record!(counter: "churn100k.calls", 2);
                    record!(histogram: "churn100k.index", (index % 1000) as f64);
                    record!(critical counter: "churn100k.critical", 1);
                    crate::updown("churn100k.alive").add(1);
                    crate::updown("churn100k.alive").add(-1);
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("recording thread");
        }
        if first + wave == 10_000 {
            rss_after_warmup = rss_bytes().unwrap_or(0);
        }
    }
    let elapsed = started.elapsed();
    let growth = rss_bytes().unwrap_or(0).saturating_sub(rss_after_warmup);
    engine.shutdown().expect("clean shutdown");
    let last = store.latest().expect("final export");
    println!(
        "{threads} threads in {:.1} s; RSS +{} KiB over the last 90 000",
        elapsed.as_secs_f64(),
        growth / 1024
    );
    assert_eq!(
        last.counter("churn100k.calls", &[]).unwrap().value,
        3.0 * threads as f64
    );
    assert_eq!(
        last.counter("churn100k.critical", &[]).unwrap().value,
        threads as f64
    );
    assert_eq!(last.updown("churn100k.alive", &[]).unwrap().value, 0.0);
    let index = last.histogram("churn100k.index", &[]).unwrap();
    assert_eq!(index.count.value, threads as f64);
    assert_eq!(index.max, Some(999.0));
    let stats = &last.stats;
    // Rate 1: every sampled call is a sample, drained or spilled (the
    // up-down level's two calls per thread are exact, not samples).
    assert_eq!(stats.samples_recorded + stats.samples_spilled, 3 * threads);
    assert!(
        growth < 8 << 20,
        "RSS grew by {growth} bytes over 90 000 threads"
    );
}

#[test]
fn threads_recording_while_shutdown_runs() {
    let _lock = engine_lock();
    let store = InMemory::keeping(1);
    let engine = Engine::builder()
        .sample_rate(1.0)
        .adaptive(false)
        .buffer_capacity(16)
        .ring_shards(2)
        .export_interval(Duration::from_secs(3600))
        .exporter(store.clone())
        .install()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (stop, made) = (stop.clone(), made.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    record!(counter: "during_shutdown.sampled", 1);
                    record!(critical counter: "during_shutdown.exact", 1);
                    made.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(100));
    let before = made.load(Ordering::SeqCst);
    let started = Instant::now();
    engine.shutdown().expect("shutdown with producers running");
    let took = started.elapsed();
    // The producers go on after shutdown: their calls are no-ops.
    thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().expect("no panic in a producer");
    }
    let total = made.load(Ordering::SeqCst);
    let last = store.latest().expect("final export");
    let sampled = last.counter("during_shutdown.sampled", &[]).unwrap().value as u64;
    let exact = last.counter("during_shutdown.exact", &[]).unwrap().value as u64;
    println!(
        "shutdown under load took {took:?}: {before} calls before it began, {total} in all, \
         {sampled} sampled and {exact} exact calls in the final export"
    );
    assert!(took < Duration::from_secs(5));
    for value in [sampled, exact] {
        assert!(
            (before..=total).contains(&value),
            "{value} outside {before}..={total}"
        );
    }
    // Every sample of the final export was drained or spilled, exactly once.
    let stats = &last.stats;
    assert_eq!(stats.samples_recorded + stats.samples_spilled, sampled);
    // Recording after shutdown changes nothing.
    assert_eq!(
        engine
            .snapshot()
            .counter("during_shutdown.sampled", &[])
            .unwrap()
            .value as u64,
        sampled
    );
}

/// Records from its destructor, which runs while the thread's other
/// thread-locals (the cached pipeline handle among them) may already be
/// gone. Holds the thread's class (its index modulo 4: which of the
/// thread's other thread-locals were made before this one).
struct RecordsOnDrop(std::cell::Cell<u32>);

impl Drop for RecordsOnDrop {
    fn drop(&mut self) {
        record!(counter: "tls_drop.calls", 1);
        record!(critical counter: "tls_drop.critical", 1);
        record!(histogram: "tls_drop.value", 7.0);
        // Label expressions: through the thread's series cache, or
        // uncached once that cache is gone.
        record!(counter: "tls_drop.dynamic", 1, "class" => self.0.get().to_string());
        crate::counter("tls_drop.handle").add(1u8);
    }
}

thread_local! {
    static RECORDS_ON_DROP: RecordsOnDrop = const { RecordsOnDrop(std::cell::Cell::new(0)) };
}

#[test]
fn record_from_a_thread_local_destructor() {
    let _lock = engine_lock();
    let store = InMemory::keeping(1);
    let engine = exact_engine(&store);
    let threads = 200;
    for index in 0..threads {
        thread::spawn(move || {
            // Half the threads record before exiting, so the cached handle
            // exists and is torn down in some order with this one.
            if index % 2 == 0 {
                record!(counter: "tls_drop.before", 1);
            }
            // The series cache of label expressions registered before this
            // thread-local (torn down after it) or after (torn down first).
            if index % 4 < 2 {
                record!(counter: "tls_drop.before", 1, "form" => index % 3);
            }
            RECORDS_ON_DROP.with(|records| records.0.set(index % 4));
            if index % 4 >= 2 {
                record!(counter: "tls_drop.before", 1, "form" => index % 3);
            }
        })
        .join()
        .expect("no panic at thread exit");
    }
    let snapshot = engine.snapshot();
    // Per class, so a loss tells which thread-locals were gone.
    let per_class: Vec<f64> = (0..4)
        .map(|class| {
            let class = class.to_string();
            snapshot
                .counter("tls_drop.dynamic", &[("class", class.as_str())])
                .map_or(0.0, |estimate| estimate.value)
        })
        .collect();
    let mut totals: Vec<(&str, f64)> = ["tls_drop.calls", "tls_drop.critical", "tls_drop.handle"]
        .into_iter()
        .map(|name| (name, snapshot.counter(name, &[]).map_or(0.0, |c| c.value)))
        .collect();
    let histogram = snapshot.histogram("tls_drop.value", &[]);
    totals.push(("tls_drop.value", histogram.map_or(0.0, |h| h.count.value)));
    let expected = f64::from(threads);
    assert!(
        per_class == [expected / 4.0; 4] && totals.iter().all(|&(_, total)| total == expected),
        "label expression per class {per_class:?}, others {totals:?}, {:?}",
        snapshot.stats
    );
    engine.shutdown().expect("clean shutdown");
}

#[test]
fn install_shutdown_install_again_with_long_lived_threads() {
    if !in_own_process("tests::lifetime::install_shutdown_install_again_with_long_lived_threads") {
        return;
    }
    let _lock = engine_lock();
    // Long-lived workers record on demand across every engine; each keeps
    // a cached handle on the pipeline it last used.
    let workers: Vec<(mpsc::Sender<u64>, mpsc::Receiver<()>)> = (0..3)
        .map(|_| {
            let (order, orders) = mpsc::channel::<u64>();
            let (done, finished) = mpsc::channel();
            thread::spawn(move || {
                for calls in orders {
                    for i in 0..calls {
                        record!(counter: "reinstall_live.calls", 1);
                        record!(histogram: "reinstall_live.value", (i % 100) as f64);
                    }
                    let _ = done.send(());
                }
            });
            (order, finished)
        })
        .collect();
    let cycles = 20;
    let calls = 20_000u64;
    let mut rss = Vec::new();
    for cycle in 0..cycles {
        let store = InMemory::keeping(1);
        // Large rings (2 MiB per engine): a pipeline kept alive by a stale
        // handle would show in the resident size.
        let engine = Engine::builder()
            .sample_rate(1.0)
            .adaptive(false)
            .ring_shards(2)
            .buffer_capacity(1 << 16)
            .export_interval(Duration::from_secs(3600))
            .exporter(store.clone())
            .install()
            .unwrap_or_else(|error| panic!("cycle {cycle}: {error}"));
        for (order, _) in &workers {
            order.send(calls).unwrap();
        }
        for (_, finished) in &workers {
            finished.recv().unwrap();
        }
        engine.shutdown().expect("clean shutdown");
        let last = store.latest().expect("final export");
        let expected = (calls * workers.len() as u64) as f64;
        assert_eq!(
            last.counter("reinstall_live.calls", &[]).unwrap().value,
            expected,
            "cycle {cycle}"
        );
        assert_eq!(
            last.histogram("reinstall_live.value", &[])
                .unwrap()
                .count
                .value,
            expected,
            "cycle {cycle}"
        );
        rss.push(rss_bytes().unwrap_or(0));
    }
    drop(workers);
    let growth = rss[cycles - 1].saturating_sub(rss[4]);
    println!(
        "{cycles} install/shutdown cycles: RSS {} → {} KiB after the 5th",
        rss[4] / 1024,
        rss[cycles - 1] / 1024
    );
    assert!(
        growth < 8 << 20,
        "RSS grew by {growth} bytes over 15 cycles"
    );
}
