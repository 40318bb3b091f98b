//! Memory does not grow with the number of calls.
//!
//! Records 10⁶ calls, then 10⁹ more, through the default engine (a counter
//! and a histogram, alternating), and prints the process's peak resident set
//! (`VmHWM` from `/proc/self/status`) after each. Sampled calls go to a
//! fixed-size ring, the flusher folds them into fixed-size aggregates, and a
//! full ring spills into fixed-size accumulators: nothing is kept per call.
//!
//! Run: `cargo run --release --example memory` (a few seconds; pass a
//! smaller second count, e.g. `-- 10000000`, for a quick check).

use std::time::Instant;

use hotmetrics::{record, Engine};

/// Peak resident set of this process in KiB (Linux), if readable.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[inline(never)]
fn record_calls(from: u64, calls: u64) {
    for i in from..from + calls {
        if i & 1 == 0 {
            record!(counter: "memory.calls", 1u64);
        } else {
            record!(histogram: "memory.value", (i & 1023) as f64);
        }
    }
}

fn main() {
    let second: u64 = std::env::args()
        .nth(1)
        .and_then(|raw| raw.parse().ok())
        .unwrap_or(1_000_000_000);
    let engine = Engine::builder().install().expect("install the engine");

    let started = Instant::now();
    record_calls(0, 1_000_000);
    let after_first = peak_rss_kib();
    println!(
        "after 10^6 calls: peak RSS {} KiB ({:.2} s)",
        after_first.map_or("unknown".into(), |kib| kib.to_string()),
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    record_calls(1_000_000, second);
    let after_second = peak_rss_kib();
    println!(
        "after {} more calls: peak RSS {} KiB ({:.2} s)",
        second,
        after_second.map_or("unknown".into(), |kib| kib.to_string()),
        started.elapsed().as_secs_f64()
    );

    let snapshot = engine.snapshot();
    let stats = snapshot.stats.clone();
    engine.shutdown().expect("shutdown");
    if let (Some(first), Some(second)) = (after_first, after_second) {
        println!(
            "growth: {} KiB; {} samples aggregated, {} spilled, rate now {:.4}",
            second.saturating_sub(first),
            stats.samples_recorded,
            stats.samples_spilled,
            stats.sample_rate
        );
    }
}
