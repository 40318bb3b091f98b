//! A `metrics::counter!` through hotmetrics' facade recorder allocates
//! nothing once its key is cached and the thread has its own `Arc` of the
//! series: registration is a lock-free lookup, the handle an `Arc` clone,
//! an unsampled call a countdown step.
//!
//! A global allocator counts the allocations of the calling thread only
//! (the engine's flusher allocates on its own thread as it likes).
#![cfg(feature = "metrics")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct CountingAllocator;

std::thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: no count during the thread-local's own teardown.
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are this allocator's; counting
// touches only a const-initialised thread-local `Cell`, which never
// allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// The calls the test measures: the facade's macros with static labels.
fn calls(n: u64) {
    for i in 0..n {
        metrics::counter!("alloc.facade.requests", "route" => "/api", "status" => "200")
            .increment(1);
        metrics::histogram!("alloc.facade.latency").record((i % 100) as f64);
    }
}

/// Allocations made by `n` calls on this thread, after a warm-up.
fn measured(n: u64) -> u64 {
    calls(10_000);
    let before = allocations();
    calls(n);
    allocations() - before
}

#[test]
fn a_cached_facade_call_allocates_nothing() {
    let recorder = hotmetrics::metrics_rs::Recorder::default();
    metrics::with_local_recorder(&recorder, || {
        // The count is live: a key's first call caches it and makes the
        // thread's own `Arc`.
        let before = allocations();
        metrics::counter!("alloc.facade.first").increment(1);
        assert!(allocations() > before, "a first call allocates");

        // No engine installed: every call a no-op.
        assert_eq!(measured(100_000), 0, "with no engine");

        // A fixed 1 % rate: 99 % of the calls are unsampled, the rest
        // pushed to the thread's ring.
        let engine = hotmetrics::Engine::builder()
            .sample_rate(0.01)
            .adaptive(false)
            .install()
            .expect("engine installs");
        assert_eq!(measured(1_000_000), 0, "at a 1 % rate");
        let requests = engine
            .snapshot()
            .counter(
                "alloc.facade.requests",
                &[("route", "/api"), ("status", "200")],
            )
            .expect("the series");
        assert!(requests.samples > 0, "some calls were sampled");
        engine.shutdown().expect("shutdown");
    });
}
