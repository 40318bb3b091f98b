//! Memory does not grow with the number of calls, and a histogram series
//! costs about a kilobyte or two, whoever holds a copy.
//!
//! First, records 10⁶ calls, then 10⁹ more, through the default engine (a
//! counter and a histogram, alternating), and prints the process's peak
//! resident set (`VmHWM` from `/proc/self/status`) after each. Sampled
//! calls go to a fixed-size ring, the flusher folds them into fixed-size
//! aggregates, and a full ring spills into fixed-size accumulators: nothing
//! is kept per call.
//!
//! Then, per series: 200 and 2 000 histogram series, each given about 10⁴
//! samples of values log-uniform over 1 … 10⁹ (3.3·10⁵ calls at a fixed
//! 3 %), and 2 000 counter series the same way. It prints the bytes per
//! histogram series of every copy (the live buckets, the last snapshot,
//! which the Prometheus exporter serves, and the snapshot before it, which
//! the OTLP delta baseline holds while an export is in flight), and the
//! time one snapshot takes with every series touched since the previous
//! one (median of five).
//!
//! Run: `cargo run --release --example memory` (about a minute; pass a
//! smaller second count, e.g. `-- 10000000`, for a quick check, and a
//! second argument for the calls per series, e.g. `-- 10000000 10000`).

use std::time::{Duration, Instant};

use hotmetrics::{record, Engine, MetricValue};

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

/// 4096 values log-uniform over 1 … 10⁹ (seeded).
fn log_uniform_values() -> Vec<f64> {
    let mut rng = fastrand::Rng::with_seed(0x10_9e9);
    (0..4096).map(|_| (rng.f64() * 1e9f64.ln()).exp()).collect()
}

/// What one kind of series costs: bytes per histogram series over every
/// copy, and the median time of a snapshot with every series touched.
struct PerSeries {
    bytes: Option<f64>,
    live_and_last: Option<f64>,
    snapshot: Duration,
}

/// Installs an engine at a fixed 3 %, gives `series` series of `kind`
/// (`"histogram"` or `"counter"`) `calls` calls each, then times five
/// snapshots, every series touched before each.
fn per_series(kind: &str, series: usize, calls: u64) -> PerSeries {
    let engine = Engine::builder()
        .sample_rate(0.03)
        .adaptive(false)
        .buffer_capacity(1 << 16)
        .export_interval(Duration::from_secs(3600))
        .install()
        .expect("install the engine");
    let values = log_uniform_values();
    let name = format!("memory.per_series.{kind}");
    let labels: Vec<String> = (0..series).map(|index| index.to_string()).collect();
    let mut record_all: Box<dyn FnMut(u64, u64)> = if kind == "histogram" {
        let handles: Vec<_> = labels
            .iter()
            .map(|label| hotmetrics::histogram(&name).with_labels(&[("series", label)]))
            .collect();
        Box::new(move |from, calls| {
            for handle in &handles {
                for i in from..from + calls {
                    handle.record(values[(i & 4095) as usize]);
                }
            }
        })
    } else {
        let handles: Vec<_> = labels
            .iter()
            .map(|label| hotmetrics::counter(&name).with_labels(&[("series", label)]))
            .collect();
        Box::new(move |from, calls| {
            for handle in &handles {
                for i in from..from + calls {
                    handle.add(1 + (i & 1));
                }
            }
        })
    };
    record_all(0, calls);
    let mut last = engine.snapshot();
    let mut before_last = last.clone();
    let mut times = Vec::new();
    for round in 0..5u64 {
        // 300 calls at 3 %: every series sampled at least once but for
        // about one in 10⁴.
        record_all(calls + round * 300, 300);
        // The flusher drains them (and copies the series the last
        // snapshots still hold) before the snapshot is timed.
        std::thread::sleep(Duration::from_millis(100));
        let started = Instant::now();
        let snapshot = engine.snapshot();
        times.push(started.elapsed());
        before_last = std::mem::replace(&mut last, snapshot);
    }
    // More samples for every series, drained by the flusher: the live
    // buckets are a copy again, beside the last two snapshots'.
    record_all(calls + 1500, 300);
    std::thread::sleep(Duration::from_millis(600));
    let (mut bytes, mut live_and_last) = (None, None);
    if kind == "histogram" {
        let arc_header = 2 * std::mem::size_of::<usize>();
        let baseline: usize = before_last
            .series
            .iter()
            .filter(|one| *one.name == *name)
            .filter_map(|one| match &one.value {
                MetricValue::Histogram(histogram) => {
                    Some(histogram.distribution_bytes() + arc_header)
                }
                _ => None,
            })
            .sum();
        let engine_held = engine.stats().histogram_bytes as f64;
        live_and_last = Some(engine_held / series as f64);
        bytes = Some((engine_held + baseline as f64) / series as f64);
    }
    drop((last, before_last));
    engine.shutdown().expect("shutdown");
    times.sort();
    PerSeries {
        bytes,
        live_and_last,
        snapshot: times[times.len() / 2],
    }
}

fn main() {
    let second: u64 = std::env::args()
        .nth(1)
        .and_then(|raw| raw.parse().ok())
        .unwrap_or(1_000_000_000);
    let calls_per_series: u64 = std::env::args()
        .nth(2)
        .and_then(|raw| raw.parse().ok())
        .unwrap_or(333_334);
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

    println!(
        "\nper series ({calls_per_series} calls each at a fixed 3 %, histogram values log-uniform over 1 … 10^9):"
    );
    println!("| series | bytes per series, every copy | of which live + last snapshot | snapshot, every series touched (median of 5) |");
    println!("|---|---:|---:|---:|");
    // Counters first: the registry keeps series across engines, and a
    // later engine's snapshots list the earlier ones' series too.
    let counters = per_series("counter", 2000, calls_per_series);
    let mut rows = vec![("2 000 counters", counters)];
    rows.push((
        "200 histograms",
        per_series("histogram", 200, calls_per_series),
    ));
    rows.push((
        "2 000 histograms",
        per_series("histogram", 2000, calls_per_series),
    ));
    for (label, row) in &rows {
        let show = |bytes: Option<f64>| bytes.map_or("—".to_string(), |b| format!("{b:.0} B"));
        println!(
            "| {label} | {} | {} | {:.3} ms |",
            show(row.bytes),
            show(row.live_and_last),
            row.snapshot.as_secs_f64() * 1e3
        );
    }
    let counter_time = rows[0].1.snapshot.as_secs_f64();
    println!(
        "snapshot of 2 000 histogram series ÷ 2 000 counter series: {:.1}×",
        rows[2].1.snapshot.as_secs_f64() / counter_time
    );
}
