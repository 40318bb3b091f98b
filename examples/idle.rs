//! What an installed engine costs while nothing records: the CPU time of
//! the whole process and of the flusher thread over an idle spell, from
//! the kernel's own per-thread accounting (`/proc/self/task/*/schedstat`,
//! nanoseconds on the CPU).
//!
//! `cargo run --release --example idle [-- --seconds N] [--check]`
//!
//! The flusher drains every millisecond while samples arrive; once a drain
//! finds nothing it sleeps twice as long each time, up to 100 ms (never past
//! the next export or control period), and a producer that finds a ring
//! half full wakes it at once. `--check` exits with an error if the idle
//! engine used more than 0.05 % of a core.

use std::time::{Duration, Instant};

use hotmetrics::record;

/// The idle budget: 0.05 % of one core.
const BUDGET: f64 = 0.0005;

/// Nanoseconds on the CPU of every thread of this process, of the flusher
/// thread alone, and the flusher's wake-ups so far (Linux).
fn cpu_ns() -> Option<(u64, u64, u64)> {
    let mut total = 0;
    let mut flusher = 0;
    let mut wakeups = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path();
        let schedstat = std::fs::read_to_string(path.join("schedstat")).ok()?;
        let fields: Vec<u64> = schedstat
            .split_whitespace()
            .filter_map(|field| field.parse().ok())
            .collect();
        let on_cpu = *fields.first()?;
        total += on_cpu;
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim().starts_with("hotmetrics-flus") {
            flusher += on_cpu;
            // The third field: times the thread was scheduled in.
            wakeups += fields.get(2).copied().unwrap_or(0);
        }
    }
    Some((total, flusher, wakeups))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut seconds = 10u64;
    let mut check = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args.next().ok_or("--seconds needs a value")?.parse()?;
            }
            "--check" => check = true,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let engine = hotmetrics::Engine::builder().install()?;
    // Some traffic first, then nothing.
    for i in 0..1_000_000u64 {
        record!(counter: "idle.requests", 1);
        record!(histogram: "idle.latency_us", (i % 500) as f64);
    }
    std::thread::sleep(Duration::from_millis(300));
    let (total_before, flusher_before, wakeups_before) =
        cpu_ns().ok_or("no /proc/self/task (Linux only)")?;
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let wall = started.elapsed().as_nanos() as f64;
    let (total_after, flusher_after, wakeups_after) = cpu_ns().ok_or("no /proc/self/task")?;
    let process = (total_after - total_before) as f64 / wall;
    let flusher = (flusher_after - flusher_before) as f64 / wall;
    println!(
        "idle for {seconds} s: process {:.4} % of a core, flusher thread {:.4} % \
         ({:.0} µs of CPU, {:.1} wake-ups a second)",
        process * 100.0,
        flusher * 100.0,
        (flusher_after - flusher_before) as f64 / 1e3,
        (wakeups_after - wakeups_before) as f64 / seconds as f64
    );
    let requests = engine
        .snapshot()
        .counter("idle.requests", &[])
        .unwrap_or_default();
    println!(
        "idle.requests {:.0} ± {:.0}",
        requests.value, requests.std_error
    );
    engine.shutdown()?;
    if check && process > BUDGET {
        return Err(format!(
            "the idle engine used {:.4} % of a core, over the {:.2} % budget",
            process * 100.0,
            BUDGET * 100.0
        )
        .into());
    }
    Ok(())
}
