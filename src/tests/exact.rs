//! Exact calls in per-thread cells (`hot/exact.rs`): totals exact from
//! many threads and from 10⁴ short-lived ones (memory flat), threads that
//! exit between snapshots and while `shutdown()` runs, the shared path past
//! the memory bound, and a reinstall starting from zero while threads that
//! counted for the old engine live on.

use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use crate::export::InMemory;
use crate::hot::cell::{Kind, SeriesCell};
use crate::hot::exact;
use crate::hot::exact_tables::{Amount, Slots, Tables, Totals, SLOTS_PER_PAGE};
use crate::hot::sample::MetricId;
use crate::test_support::{engine_lock, in_own_process, rss_bytes};
use crate::{record, Engine};

fn engine(store: &InMemory) -> Engine {
    Engine::builder()
        .sample_rate(0.03)
        .adaptive(false)
        .export_interval(Duration::from_secs(3600))
        .exporter(store.clone())
        .install()
        .expect("valid settings")
}

/// A [`Tables`] instance living as long as the process, as the shipping
/// one does (its pages are `'static`), kept reachable so a leak checker
/// sees it so.
fn instance(max_slots: usize) -> &'static Tables {
    static KEPT: Mutex<Vec<&'static Tables>> = Mutex::new(Vec::new());
    let tables = Box::leak(Box::new(Tables::new(max_slots)));
    KEPT.lock().unwrap().push(tables);
    tables
}

/// Series 0..count of a fresh index space, for tests on an instance
/// (leaked and kept, as the registry's cells are).
fn cells(count: u32, kind: Kind) -> Vec<&'static SeriesCell> {
    static KEPT: Mutex<Vec<&'static SeriesCell>> = Mutex::new(Vec::new());
    let cells: Vec<&'static SeriesCell> = (0..count)
        .map(|id| &*Box::leak(Box::new(SeriesCell::new(MetricId(id), kind))))
        .collect();
    KEPT.lock().unwrap().extend(&cells);
    cells
}

/// What a call does on an instance: the fast path, else the cold one.
fn add(tables: &Tables, slots: &Slots, table: &mut Option<usize>, cell: &'static SeriesCell) {
    if !tables.add_int(slots, cell, 1) {
        tables.add_slow(slots, Some(table), cell, Amount::Int(1));
    }
}

/// What a thread's exit does.
fn exit(tables: &Tables, slots: &Slots, table: Option<usize>) {
    slots.forget();
    if let Some(table) = table {
        tables.exit(table);
    }
}

#[test]
fn folds_racing_reads_count_every_call_once() {
    let tables = instance(64);
    let cells = cells(3, Kind::Counter);
    let (threads, calls) = (4, 20_000u64);
    thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let (slots, mut table) = (Slots::new(), None);
                for call in 0..calls {
                    add(tables, &slots, &mut table, cells[(call % 3) as usize]);
                }
                exit(tables, &slots, table);
            });
        }
        // Reads while threads add and fold: never more than was added, and
        // never less than an earlier read (a fold neither doubles nor drops).
        let mut last = 0;
        let mut out = Vec::new();
        for _ in 0..2_000 {
            tables.totals_by_id(cells.iter().copied(), &mut out);
            let seen: u64 = out.iter().map(|totals| totals.calls).sum();
            assert!(
                seen >= last && seen <= threads * calls,
                "{seen} after {last}"
            );
            last = seen;
        }
    });
    let all: u64 = cells.iter().map(|cell| tables.totals(cell).int).sum();
    assert_eq!(all, threads * calls);
    assert_eq!(tables.footprint().1, 0, "every table unregistered");
    assert_eq!(tables.shared_calls(), 0);
}

#[test]
fn past_the_bound_and_after_exit_calls_take_the_shared_path() {
    // Room for one page of slots: the series after it count in the base.
    let tables = instance(SLOTS_PER_PAGE);
    let cells = cells(SLOTS_PER_PAGE as u32 + 2, Kind::UpDown);
    let (slots, mut table) = (Slots::new(), None);
    for cell in &cells {
        add(tables, &slots, &mut table, cell);
        tables.add_slow(&slots, Some(&mut table), cell, Amount::Float(-0.5));
    }
    assert_eq!(tables.shared_calls(), 4, "two series past the bound");
    assert_eq!(tables.footprint(), (1, 1), "one page, one table");
    exit(tables, &slots, table);
    // A call after the thread's tables were folded (a thread-local
    // destructor's): the shared path.
    tables.add_slow(&slots, None, cells[0], Amount::Int(-3));
    let mut out = Vec::new();
    tables.totals_by_id(cells.iter().copied(), &mut out);
    assert_eq!(
        out[0],
        Totals {
            int: (-2i64) as u64,
            float: -0.5,
            calls: 3
        }
    );
    for totals in &out[1..] {
        assert_eq!((totals.value(Kind::UpDown), totals.calls), (0.5, 2));
    }
}

#[test]
fn restart_drops_what_an_earlier_epoch_counted() {
    let tables = instance(64);
    let cells = cells(1, Kind::Counter);
    let cell = cells[0];
    let (stays, mut stays_table) = (Slots::new(), None);
    let (leaves, mut leaves_table) = (Slots::new(), None);
    let (folded, mut folded_table) = (Slots::new(), None);
    for (slots, table) in [
        (&stays, &mut stays_table),
        (&leaves, &mut leaves_table),
        (&folded, &mut folded_table),
    ] {
        add(tables, slots, table, cell);
    }
    exit(tables, &folded, folded_table);
    assert_eq!(tables.totals(cell).calls, 3);
    tables.restart();
    assert_eq!(
        tables.totals(cell),
        Totals::default(),
        "a new epoch starts at 0"
    );
    // A stale table's fold is dropped; a live one counts again from zero.
    exit(tables, &leaves, leaves_table);
    add(tables, &stays, &mut stays_table, cell);
    assert_eq!(tables.totals(cell).calls, 1);
    exit(tables, &stays, stays_table);
    assert_eq!(tables.totals(cell).calls, 1);
    assert_eq!(tables.footprint(), (3, 0), "pages recycled, not freed");
}

#[test]
fn exact_totals_from_many_threads() {
    let _lock = engine_lock();
    let store = InMemory::keeping(1);
    let engine = engine(&store);
    let (threads, calls) = (4, 200_000u64);
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            thread::spawn(move || {
                for i in 0..calls {
                    record!(critical counter: "exact.many.calls", 1u64);
                    record!(updown: "exact.many.level", if i % 2 == 0 { 3 } else { -1 });
                    record!(critical updown: "exact.many.float", 0.25);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let snapshot = engine.snapshot();
    let value = |name| {
        let estimate = snapshot
            .counter(name, &[])
            .or_else(|| snapshot.updown(name, &[]))
            .unwrap();
        assert!(estimate.exact && estimate.std_error == 0.0, "{name}");
        estimate.value
    };
    let all = (threads * calls) as f64;
    assert_eq!(value("exact.many.calls"), all);
    assert_eq!(value("exact.many.level"), all);
    assert_eq!(value("exact.many.float"), all / 4.0);
    assert!(snapshot.stats.exact_calls >= 3 * threads * calls);
    engine.shutdown().unwrap();
}

#[test]
fn ten_thousand_short_lived_threads_are_exact_and_memory_stays_flat() {
    if !in_own_process(
        "tests::exact::ten_thousand_short_lived_threads_are_exact_and_memory_stays_flat",
    ) {
        return;
    }
    let store = InMemory::keeping(1);
    let engine = engine(&store);
    let wave = |threads: usize| {
        for _ in 0..threads / 8 {
            let batch: Vec<_> = (0..8)
                .map(|_| {
                    thread::spawn(|| {
                        for _ in 0..100 {
                            record!(critical counter: "exact.churn.calls", 1);
                            record!(updown: "exact.churn.level", -1);
                        }
                    })
                })
                .collect();
            for thread in batch {
                thread.join().unwrap();
            }
        }
    };
    wave(400);
    let rss_warm = rss_bytes().unwrap_or(0);
    wave(9_600);
    let (shared, (pages, live)) = exact::figures();
    let growth = rss_bytes().unwrap_or(0).saturating_sub(rss_warm);
    let snapshot = engine.snapshot();
    assert_eq!(
        snapshot.counter("exact.churn.calls", &[]).unwrap().value,
        1e6
    );
    assert_eq!(
        snapshot.updown("exact.churn.level", &[]).unwrap().value,
        -1e6
    );
    println!("{pages} pages, {live} live tables, RSS +{growth} bytes");
    // Both series are on the first page: at most one page per thread alive
    // at once (8), however many threads were started.
    assert!(pages <= 8, "{pages} pages for 10 000 threads");
    assert_eq!((live, shared), (0, 0));
    assert!(growth < 4 << 20, "RSS grew by {growth} bytes");
    engine.shutdown().unwrap();
}

#[test]
fn a_thread_exiting_between_snapshots_is_counted_once() {
    let _lock = engine_lock();
    let store = InMemory::keeping(1);
    let engine = engine(&store);
    let (go, wait) = mpsc::channel::<()>();
    let (added, added_rx) = mpsc::channel();
    let worker = thread::spawn(move || {
        for _ in 0..10 {
            record!(critical counter: "exact.between", 1);
        }
        added.send(()).unwrap();
        wait.recv().unwrap();
    });
    added_rx.recv().unwrap();
    let live = engine.snapshot();
    go.send(()).unwrap();
    worker.join().unwrap();
    let folded = engine.snapshot();
    record!(critical counter: "exact.between", 1);
    let more = engine.snapshot();
    let value = |snapshot: &crate::Snapshot| snapshot.counter("exact.between", &[]).unwrap().value;
    assert_eq!(
        [value(&live), value(&folded), value(&more)],
        [10.0, 10.0, 11.0]
    );
    engine.shutdown().unwrap();
}

#[test]
fn threads_exiting_while_shutdown_runs_are_in_the_final_export() {
    let _lock = engine_lock();
    let store = InMemory::keeping(1);
    let engine = engine(&store);
    let threads = 8;
    let release = Arc::new(Barrier::new(threads + 1));
    let (added, added_rx) = mpsc::channel();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (release, added) = (release.clone(), added.clone());
            thread::spawn(move || {
                for _ in 0..1_000 {
                    record!(critical counter: "exact.shutdown.calls", 1);
                    record!(updown: "exact.shutdown.level", 2);
                }
                added.send(()).unwrap();
                release.wait();
                // Exits (and folds) while the engine shuts down.
            })
        })
        .collect();
    for _ in 0..threads {
        added_rx.recv().unwrap();
    }
    release.wait();
    engine.shutdown().unwrap();
    for worker in workers {
        worker.join().unwrap();
    }
    let last = store.latest().expect("the final export");
    let value = |name| {
        last.counter(name, &[])
            .or_else(|| last.updown(name, &[]))
            .unwrap()
            .value
    };
    assert_eq!(value("exact.shutdown.calls"), 8_000.0);
    assert_eq!(value("exact.shutdown.level"), 16_000.0);
    let again = engine.snapshot();
    assert_eq!(
        again.counter("exact.shutdown.calls", &[]).unwrap().value,
        8_000.0
    );
}

#[test]
fn a_reinstall_starts_from_zero_while_old_threads_live_on() {
    let _lock = engine_lock();
    let store = InMemory::keeping(1);
    let first = engine(&store);
    let (step, steps) = mpsc::channel::<()>();
    let (done, done_rx) = mpsc::channel();
    let left_done = done.clone();
    // Counts for both engines, and exits under the second.
    let stays = thread::spawn(move || {
        record!(critical counter: "exact.reinstall.kept", 5);
        record!(critical updown: "exact.reinstall.stale", 3);
        done.send(()).unwrap();
        steps.recv().unwrap();
        record!(critical counter: "exact.reinstall.kept", 2);
        done.send(()).unwrap();
        steps.recv().unwrap();
    });
    // Counts for the first engine only, and exits under the second.
    let (leave, leave_rx) = mpsc::channel::<()>();
    let leaves = thread::spawn(move || {
        record!(critical counter: "exact.reinstall.kept", 7);
        left_done.send(()).unwrap();
        leave_rx.recv().unwrap();
    });
    done_rx.recv().unwrap();
    done_rx.recv().unwrap();
    let value = |engine: &Engine, name| {
        let snapshot = engine.snapshot();
        let estimate = snapshot
            .counter(name, &[])
            .or_else(|| snapshot.updown(name, &[]));
        estimate.unwrap().value
    };
    assert_eq!(value(&first, "exact.reinstall.kept"), 12.0);
    first.shutdown().unwrap();
    let second = engine(&store);
    assert_eq!(value(&second, "exact.reinstall.kept"), 0.0);
    step.send(()).unwrap();
    done_rx.recv().unwrap();
    leave.send(()).unwrap();
    leaves.join().unwrap();
    assert_eq!(value(&second, "exact.reinstall.kept"), 2.0);
    step.send(()).unwrap();
    stays.join().unwrap();
    assert_eq!(value(&second, "exact.reinstall.kept"), 2.0);
    assert_eq!(value(&second, "exact.reinstall.stale"), 0.0);
    second.shutdown().unwrap();
}
