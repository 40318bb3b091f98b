//! Overhead on the reference workload: what one `counter` and one
//! `histogram` record per operation cost a ~55 ns operation.
//!
//! Last results (summary table; AMD EPYC, 2 vCPU under KVM, load average
//! 2.3 → 1.4; overhead = instrumented / plain − 1 per thread, median of 15
//! interleaved rounds):
//!
//! | case | 1t ns/op | 1t overhead | 2t ns/op | 2t overhead |
//! |---|---:|---:|---:|---:|
//! | plain | 50.7 | +0.0 % | 52.3 | +0.0 % |
//! | countdown floor | 52.3 | +3.0 % | 53.1 | +2.2 % |
//! | hotmetrics, no engine | 51.2 | +1.0 % | 52.2 | +0.4 % |
//! | hotmetrics, default engine | 54.2 | +4.8 % | 57.5 | +9.7 % |
//!
//! Two more runs the same hour: 1 thread +6.8 % and +5.0 % (floor +3.1 %),
//! 2 threads +10.8 % and +11.9 % (floor +2.7 %, +3.2 %). At one thread the
//! gap to the floor is the sampled call (about 70 instructions, one skip
//! taken from a batch drawn eight at a time, one plain store into the
//! thread's owned ring): 0.06 sampled calls per operation. At two threads
//! on two cores the flusher's own work (25 ns per sample, 2.2 M samples/s:
//! 5.5 % of a core, see `drain.rs`) lands on the cores the workload uses.
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

/// The engine as a user installs it: every default (3 % initial rate,
/// adaptive controller), no exporter.
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

/// The cases of the paired summary; the first is the plain reference.
fn cases() -> Vec<Case<'static>> {
    vec![
        Case::new("plain", workload_plain),
        Case::new("countdown floor", workload_floor),
        Case::new("hotmetrics, no engine", workload_hotmetrics),
        Case {
            name: "hotmetrics, default engine".into(),
            run: Box::new(|threads, iters| {
                let engine = install();
                let took = common::run_threads(threads, iters, &workload_hotmetrics);
                engine.shutdown().expect("shutdown");
                took
            }),
        },
    ]
}

fn summary() {
    let cases = cases();
    let mut results = Vec::new();
    for threads in [1, common::cores()] {
        results.push(paired(&cases, threads, Duration::from_millis(40)));
        if common::cores() == 1 {
            break;
        }
    }
    println!("\noverhead summary (median of interleaved rounds; per-thread ns per operation)");
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
        let floor = result.ratio[1];
        let ours = result.ratio[3];
        println!(
            "{}t: hotmetrics {} vs floor {}: {:+.2} percentage points",
            result.threads,
            percent(ours),
            percent(floor),
            (ours - floor) * 100.0
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
