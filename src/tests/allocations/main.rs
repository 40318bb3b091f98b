//! An unsampled `record!` with label expressions allocates nothing, even
//! when a value would (`format!`): the values are not evaluated. Checked
//! with a counting global allocator, in a test binary of its own so the
//! allocator counts this program only: `cargo test --test allocations`.
//!
//! The same counter sees the allocations of a sampled call's `format!`
//! (the control: the counter can fail the check), and the sampled calls'
//! values land in their series.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use hotmetrics::{record, Engine};

/// Counts the allocations made by the calling thread while it counts.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to `System` unchanged; the bookkeeping
// touches only const-initialised thread-locals, which do not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `alloc_zeroed`, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `realloc`, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn count() {
    // `try_with`: the thread-locals may be gone during thread exit.
    let counting = COUNTING.try_with(Cell::get).unwrap_or(false);
    if counting {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations `body` makes on this thread.
fn allocations(body: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|count| count.set(0));
    COUNTING.with(|counting| counting.set(true));
    body();
    COUNTING.with(|counting| counting.set(false));
    ALLOCATIONS.with(Cell::get)
}

const CALLS: u64 = 1_000_000;

fn dynamic(i: u64) {
    record!(counter: "alloc.requests", 1, "route" => format!("/user/{}", i % 4), "status" => 200);
}

fn dynamic_histogram(i: u64) {
    record!(histogram: "alloc.latency", 1.0, "route" => format!("/user/{}", i % 4));
}

fn literal() {
    record!(counter: "alloc.literal", 1, "route" => "/user", "status" => "200");
}

#[test]
fn unsampled_calls_with_allocating_label_expressions_allocate_nothing() {
    // A rate at which a million calls are almost surely all unsampled
    // (the chance of one sample is about 1e-6).
    let engine = Engine::builder()
        .sample_rate(1e-12)
        .adaptive(false)
        .install()
        .unwrap();
    // First calls resolve the callsites (a registry lookup, cold).
    for i in 0..10 {
        dynamic(i);
        dynamic_histogram(i);
        literal();
    }
    let unsampled = allocations(|| {
        for i in 0..CALLS {
            dynamic(i);
            dynamic_histogram(i);
            literal();
        }
    });
    assert_eq!(unsampled, 0, "allocations in {CALLS} unsampled rounds");
    engine.shutdown().unwrap();

    // Every call sampled: the values are evaluated (the control: the
    // counter sees `format!`), and land in their series.
    let engine = Engine::builder()
        .sample_rate(1.0)
        .adaptive(false)
        .install()
        .unwrap();
    // On a thread of its own: this one's countdown was drawn at 1e-12.
    let sampled = std::thread::spawn(|| {
        let sampled = allocations(|| {
            for i in 0..100 {
                dynamic(i);
            }
        });
        for i in 0..100 {
            dynamic_histogram(i);
        }
        sampled
    })
    .join()
    .unwrap();
    assert!(sampled >= 100, "{sampled} allocations in 100 sampled calls");
    let snapshot = engine.snapshot();
    for user in 0..4 {
        let route = format!("/user/{user}");
        let labels = [("route", route.as_str()), ("status", "200")];
        assert_eq!(
            snapshot.counter("alloc.requests", &labels).unwrap().value,
            25.0
        );
        let latency = snapshot
            .histogram("alloc.latency", &[("route", &route)])
            .unwrap();
        assert_eq!(latency.count.value, 25.0);
    }
    engine.shutdown().unwrap();
}
