//! Error targeting on a mixed workload: a hot counter, counters hit once
//! per 10³, 10⁴ and 10⁵ iterations, an up-down level and a latency
//! histogram, recorded from two threads; then every series beside the
//! truth the threads kept.
//!
//! `cargo run --release --example mixed [-- --seconds N]`
//!
//! The engine is the default one (error targeting at 1 %) with a short
//! accuracy window (2 s) and control period (250 ms), so a run of a few
//! seconds spans several windows. Each row shows the estimate, the actual
//! error, the relative standard error the engine reports, the samples
//! behind it and the probability its calls are sampled with now: the hot
//! series far below 1 %, the rare ones exact.

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use hotmetrics::{record, Estimate, MetricValue, Snapshot};

#[derive(Clone, Copy, Debug, Default)]
struct Truth {
    iterations: u64,
    rare: [u64; 3],
    latency_sum: f64,
}

fn work(seconds: f64, seed: u64) -> Truth {
    let started = Instant::now();
    let mut truth = Truth::default();
    let mut state = seed | 1;
    while started.elapsed().as_secs_f64() < seconds {
        for _ in 0..4096 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let i = truth.iterations;
            let latency = 20.0 + (state % 980) as f64;
            record!(counter: "mixed.requests", 1);
            record!(histogram: "mixed.latency_us", latency);
            truth.latency_sum += latency;
            for (k, every) in [1_000u64, 10_000, 100_000].into_iter().enumerate() {
                if i % every == 0 {
                    match k {
                        0 => record!(counter: "mixed.errors_1e3", 1),
                        1 => record!(counter: "mixed.errors_1e4", 1),
                        _ => record!(counter: "mixed.errors_1e5", 1),
                    }
                    truth.rare[k] += 1;
                }
            }
            record!(updown: "mixed.in_flight", 1);
            record!(updown: "mixed.in_flight", -1);
            truth.iterations += 1;
        }
        black_box(state);
    }
    record!(updown: "mixed.in_flight", 37);
    truth
}

fn seconds_from_args() -> Result<f64, String> {
    let mut args = std::env::args().skip(1);
    let mut seconds = 6.0;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = args.next().ok_or("--seconds needs a value")?;
                seconds = value
                    .parse()
                    .map_err(|_| format!("--seconds expects a number, got {value:?}"))?;
            }
            other => return Err(format!("unknown argument {other:?} (try --seconds N)")),
        }
    }
    Ok(seconds)
}

fn row(name: &str, estimate: &Estimate, truth: f64, prob: Option<f64>) {
    let error = (estimate.value - truth) / truth * 100.0;
    let shown = if estimate.exact {
        format!("{:.0} (exact)", estimate.value)
    } else {
        format!("{:.0} ± {:.0}", estimate.value, estimate.std_error)
    };
    println!(
        "{name:<22} {shown:>26} {truth:>12.0} {error:>+7.2}% {:>7.2}% {:>8} {:>9}",
        estimate.relative_error() * 100.0,
        estimate.samples,
        prob.map_or("exact".to_string(), |prob| format!("{prob:.2e}"))
    );
}

fn prob_of(snapshot: &Snapshot, name: &str) -> Option<f64> {
    snapshot
        .find(name, &[])
        .next()
        .and_then(|series| series.inclusion_prob)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds = seconds_from_args()?;
    let engine = hotmetrics::Engine::builder()
        .accuracy_window(Duration::from_secs(2))
        .controller_period(Duration::from_millis(250))
        .install()?;
    println!("two threads for {seconds} s; target: 1 % relative error per 2 s window");
    let threads: Vec<_> = (0..2u64)
        .map(|seed| thread::spawn(move || work(seconds, 0x9e37_79b9 + seed)))
        .collect();
    let mut truth = Truth::default();
    for handle in threads {
        let part = handle.join().map_err(|_| "a worker panicked")?;
        truth.iterations += part.iterations;
        truth.latency_sum += part.latency_sum;
        for k in 0..3 {
            truth.rare[k] += part.rare[k];
        }
    }
    let snapshot = engine.snapshot();
    println!(
        "\n{:<22} {:>26} {:>12} {:>8} {:>8} {:>8} {:>9}",
        "series", "estimate ± std error", "truth", "error", "rel. se", "samples", "π"
    );
    let counters = [
        ("mixed.requests", truth.iterations),
        ("mixed.errors_1e3", truth.rare[0]),
        ("mixed.errors_1e4", truth.rare[1]),
        ("mixed.errors_1e5", truth.rare[2]),
        ("mixed.in_flight", 74),
    ];
    for (name, value) in counters {
        let estimate = snapshot
            .counter(name, &[])
            .or_else(|| snapshot.updown(name, &[]))
            .ok_or("series missing")?;
        row(name, &estimate, value as f64, prob_of(&snapshot, name));
    }
    if let Some(MetricValue::Histogram(latency)) = snapshot
        .find("mixed.latency_us", &[])
        .next()
        .map(|series| &series.value)
    {
        let prob = prob_of(&snapshot, "mixed.latency_us");
        row(
            "latency_us count",
            &latency.count,
            truth.iterations as f64,
            prob,
        );
        row("latency_us sum", &latency.sum, truth.latency_sum, prob);
    }
    let stats = &snapshot.stats;
    println!(
        "\n{} iterations; {} samples in all ({:.4} per iteration), {} exact calls; base rate {:.2e}",
        truth.iterations,
        stats.samples_recorded,
        stats.samples_recorded as f64 / truth.iterations as f64,
        stats.exact_calls,
        stats.sample_rate
    );
    engine.shutdown()?;
    Ok(())
}
