//! Overhead on the reference workload: what one `counter` and one
//! `histogram` record per operation cost a ~55 ns operation.
//!
//! Last results (summary; Intel Xeon, 2 vCPU under KVM, load average 0.8
//! at start; overhead = instrumented / plain − 1 per thread, median of 15
//! interleaved rounds, each engine installed once for its phase; 2-thread
//! batches kept only when their threads ran together for 90 % of them):
//!
//! | engine | 1t overhead | 2t overhead | floor 1t / 2t | samples/s | flusher CPU |
//! |---|---:|---:|---:|---:|---:|
//! | default (error targeting, warmed up) | +0.9 % | +2.0 % | +2.0 % / +2.3 % | 573 | 0.73 % |
//! | fixed 3 % | +6.6 % | +12.0 % | +0.6 % / +2.8 % | 901 539 | — |
//! | pressure controller at 3 % | +8.6 % | +10.5 % | +2.7 % / +0.8 % | 975 553 | — |
//!
//! Error targeting samples the hot series for its 1 % target (about 10⁴
//! samples per window), 1 600 times fewer samples than 3 %, and sits at the
//! bare countdown (−1.1 / −0.3 percentage points). With no engine the
//! workload took 28.8 / 29.3 ns per operation.
//!
//! Run: `CARGO_TARGET_DIR=target/bench cargo bench --bench overhead`.
//! Figures are ratios from a noisy shared machine.

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{
    countdown_check, fnv1a, op_count, op_value, paired, percent, workload_plain, workload_with,
    Case, MESSAGE,
};
use hotmetrics::{record, Engine};

/// The engine as a user installs it: every default (error targeting), no
/// exporter.
fn install() -> Engine {
    Engine::builder()
        .install()
        .expect("no other engine is installed")
}

/// The workload with the bare countdown floor per record.
fn workload_floor(iters: u64) {
    workload_with(iters, |hash| {
        countdown_check(op_count(hash) as f64);
        countdown_check(op_value(hash));
    });
}

/// The workload with one `counter` and one `histogram` record per operation.
fn workload_hotmetrics(iters: u64) {
    workload_with(iters, |hash| {
        record!(counter: "bench.overhead.ops", op_count(hash));
        record!(histogram: "bench.overhead.value", op_value(hash));
    });
}

fn criterion_groups(c: &mut criterion::Criterion) {
    for threads in [1, common::cores()] {
        let mut group = c.benchmark_group(format!("overhead/{threads}t"));
        let mut bench = |name: &str, body: &(dyn Fn(u64) + Sync)| {
            group.bench_function(name, |b| {
                b.iter_custom(|iters| common::run_threads(threads, iters, body))
            });
        };
        bench("plain", &workload_plain);
        bench("countdown_floor", &workload_floor);
        bench("hotmetrics_no_engine", &workload_hotmetrics);
        let engine = install();
        bench("hotmetrics_default", &workload_hotmetrics);
        engine.shutdown().expect("shutdown");
        group.finish();
        if common::cores() == 1 {
            break;
        }
    }
}

/// An engine configuration the summary measures, installed once for all
/// of its rounds (error targeting needs whole control periods to settle).
struct Phase {
    name: &'static str,
    install: fn() -> Engine,
    /// Run the workload this long before measuring, so the allocator has
    /// seen whole periods (`0` for the one-rate modes).
    warm_up: Duration,
}

const PHASES: [Phase; 3] = [
    Phase {
        name: "default engine (error targeting)",
        install,
        // The first control period (1 s), the next (5 s), and a margin.
        warm_up: Duration::from_secs(7),
    },
    Phase {
        name: "fixed rate 3 % (Fixed(0.03))",
        install: || {
            Engine::builder()
                .sample_rate(0.03)
                .adaptive(false)
                .install()
                .expect("no other engine is installed")
        },
        warm_up: Duration::ZERO,
    },
    Phase {
        name: "pressure controller at 3 % (sample_rate(0.03), the earlier default)",
        install: || {
            Engine::builder()
                .sample_rate(0.03)
                .install()
                .expect("no other engine is installed")
        },
        warm_up: Duration::ZERO,
    },
];

/// The cases of each phase; the first is the plain reference.
fn cases() -> Vec<Case<'static>> {
    vec![
        Case::new("plain", workload_plain),
        Case::new("countdown floor", workload_floor),
        Case::new("hotmetrics", workload_hotmetrics),
    ]
}

/// CPU seconds the flusher thread has used so far, from its own
/// `/proc/self/task/<tid>/stat` (Linux; `None` elsewhere).
fn flusher_cpu_secs() -> Option<f64> {
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path();
        let comm = std::fs::read_to_string(path.join("comm")).ok()?;
        if comm.trim() != "hotmetrics-flus" && !comm.trim().starts_with("hotmetrics-flus") {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).ok()?;
        // Fields after the command name (which is in parentheses).
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        return Some((utime + stime) / ticks_per_sec);
    }
    None
}

fn summary() {
    let cases = cases();
    let no_engine = vec![Case::new("hotmetrics, no engine", workload_hotmetrics)];
    let mut thread_counts = vec![1];
    if common::cores() > 1 {
        thread_counts.push(common::cores());
    }
    println!("\noverhead summary (median of interleaved rounds; per-thread ns per operation)");
    for &threads in &thread_counts {
        let idle = paired(&no_engine, threads, Duration::from_millis(40));
        println!(
            "\n{threads} thread(s): hotmetrics with no engine installed: {:.1} ns/op",
            idle.ns[0]
        );
    }
    for phase in &PHASES {
        let engine = (phase.install)();
        if !common::quick_mode() && !phase.warm_up.is_zero() {
            let until = std::time::Instant::now() + phase.warm_up;
            while std::time::Instant::now() < until {
                common::run_threads(common::cores(), 1 << 20, &workload_hotmetrics);
            }
        }
        let samples_before = engine.stats().samples_recorded;
        let spilled_before = engine.stats().samples_spilled;
        let cpu_before = flusher_cpu_secs();
        let started = std::time::Instant::now();
        let mut results = Vec::new();
        for &threads in &thread_counts {
            results.push(paired(&cases, threads, Duration::from_millis(40)));
        }
        let wall = started.elapsed().as_secs_f64();
        let stats = engine.stats();
        let samples = stats.samples_recorded - samples_before;
        let spilled = stats.samples_spilled - spilled_before;
        let max_gap = stats.max_drain_gap;
        let flusher = flusher_cpu_secs()
            .zip(cpu_before)
            .map(|(after, before)| (after - before) / wall);
        let base_rate = engine.sample_rate();
        engine.shutdown().expect("shutdown");
        println!("\n{} (base rate at the end {base_rate:.2e})", phase.name);
        print!("| case ");
        for result in &results {
            print!(
                "| {}t ns/op | {}t overhead ",
                result.threads, result.threads
            );
        }
        println!("|");
        print!("|---");
        for _ in &results {
            print!("|---:|---:");
        }
        println!("|");
        for (index, case) in cases.iter().enumerate() {
            print!("| {} ", case.name);
            for result in &results {
                print!(
                    "| {:.1} | {} ",
                    result.ns[index],
                    percent(result.ratio[index])
                );
            }
            println!("|");
        }
        for result in &results {
            let (floor, ours) = (result.ratio[1], result.ratio[2]);
            println!(
                "{}t: hotmetrics {} vs floor {}: {:+.2} percentage points",
                result.threads,
                percent(ours),
                percent(floor),
                (ours - floor) * 100.0
            );
        }
        let flusher = flusher.map_or("n/a".into(), |share| {
            format!("{:.2} % of a core", share * 100.0)
        });
        println!(
            "samples drained while measuring: {:.0} per second, {spilled} spilled; \
             flusher thread CPU: {flusher}; longest drain gap {:.1} ms",
            samples as f64 / wall,
            max_gap.as_secs_f64() * 1e3
        );
    }
}

fn main() {
    common::print_machine("overhead");
    // Sanity: the workload is what the tables say it is.
    black_box(fnv1a(&MESSAGE, 0));
    let mut c = common::criterion();
    criterion_groups(&mut c);
    if common::summary_wanted() {
        summary();
    }
    c.final_summary();
}
