//! A simulated WebSocket-style message pump on every core, instrumented the
//! way a real one would be, then the engine's estimates beside the exact
//! counts the pump kept itself.
//!
//! `cargo run --release --example demo [-- --seconds N]`
//!
//! Each worker thread loops over "messages": it hashes a 96-byte payload
//! (the send), records it, and now and then connects or disconnects a
//! client, fails a send, retries, or trips a circuit breaker. Progress is
//! printed once a second.
//!
//! `OTEL_METRICS_EXPORTER=otlp` sends the metrics to an OpenTelemetry
//! Collector (`OTEL_EXPORTER_OTLP_ENDPOINT`, default `http://localhost:4318`);
//! `OTEL_METRICS_EXPORTER=prometheus` serves them for scraping on
//! `localhost:9464/metrics`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use hotmetrics::{record, MetricValue};

/// What one worker saw, counted exactly, to compare with the estimates.
#[derive(Default, Clone, Copy)]
struct Truth {
    sent: u64,
    queued: u64,
    failed: u64,
    retries: u64,
    connects: u64,
    disconnects: u64,
    breaker_opened: u64,
    breaker_closed: u64,
}

impl Truth {
    fn add(&mut self, other: &Truth) {
        self.sent += other.sent;
        self.queued += other.queued;
        self.failed += other.failed;
        self.retries += other.retries;
        self.connects += other.connects;
        self.disconnects += other.disconnects;
        self.breaker_opened += other.breaker_opened;
        self.breaker_closed += other.breaker_closed;
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn pump(worker: u64, stop: &AtomicBool, ops: &AtomicU64) -> Truth {
    let mut truth = Truth::default();
    let mut payload = [0u8; 96];
    payload[..8].copy_from_slice(&worker.to_le_bytes());
    let mut breaker_open = false;
    let mut local_ops = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..1024 {
            payload[8..16].copy_from_slice(&local_ops.to_le_bytes());
            let hash =
                record!(timed: "ws.send_latency_ns", { fnv1a(std::hint::black_box(&payload)) });
            local_ops += 1;
            record!(counter: "ws.messages_sent", 1);
            truth.sent += 1;
            let roll = hash % 10_000;
            if roll < 300 {
                record!(counter: "ws.messages_queued", 1, "reason" => "backpressure");
                truth.queued += 1;
            }
            if roll < 20 {
                record!(critical counter: "ws.message_failed", 1);
                truth.failed += 1;
                record!(counter: "ws.retries", 1);
                truth.retries += 1;
            }
            if roll == 42 || roll == 4242 {
                record!(counter: "ws.connections", 1);
                record!(updown: "ws.active_connections", 1);
                truth.connects += 1;
            } else if roll == 43 {
                record!(counter: "ws.disconnections", 1);
                record!(updown: "ws.active_connections", -1);
                truth.disconnects += 1;
            }
            if roll == 7 && !breaker_open {
                record!(critical counter: "ws.circuit_breaker_opened", 1);
                truth.breaker_opened += 1;
                breaker_open = true;
            } else if roll == 8 && breaker_open {
                record!(critical counter: "ws.circuit_breaker_closed", 1);
                truth.breaker_closed += 1;
                breaker_open = false;
            }
        }
        ops.fetch_add(1024, Ordering::Relaxed);
    }
    truth
}

fn seconds_from_args() -> Result<u64, String> {
    let mut args = std::env::args().skip(1);
    let mut seconds = 10;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = args.next().ok_or("--seconds needs a value")?;
                seconds = value
                    .parse()
                    .map_err(|_| format!("--seconds expects a whole number, got {value:?}"))?;
            }
            other => return Err(format!("unknown argument {other:?} (try --seconds N)")),
        }
    }
    Ok(seconds)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds = seconds_from_args()?;
    let threads = thread::available_parallelism().map_or(1, usize::from);
    // The default engine: every series sampled just enough for a 1 %
    // relative error per export interval (error targeting).
    // from_env: HOTMETRICS_* and OTEL_* variables win over these settings.
    // OTEL_METRICS_EXPORTER=otlp sends the metrics to a collector,
    // =prometheus serves them on :9464/metrics; unset, no exporter is
    // added and the demo prints its own summary below.
    let engine = hotmetrics::Engine::builder()
        .controller_period(Duration::from_secs(1))
        .export_interval(Duration::from_secs(1))
        .from_env()?
        .install()?;
    println!(
        "message pump on {threads} threads for {seconds} s (error targeting: 1 % per 1 s window)"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..threads as u64)
        .map(|worker| {
            let (stop, ops) = (stop.clone(), ops.clone());
            thread::spawn(move || pump(worker, &stop, &ops))
        })
        .collect();

    let started = Instant::now();
    let mut last_ops = 0;
    let mut last_samples = 0;
    for second in 1..=seconds {
        thread::sleep(Duration::from_secs(1));
        let now_ops = ops.load(Ordering::Relaxed);
        let stats = engine.stats();
        println!(
            "[{second:>3}s] {:>6.2} M ops/s  {:>8} samples/s  base rate {:.2e}  ring use {:>5.1}%  spilled {}",
            (now_ops - last_ops) as f64 / 1e6,
            stats.samples_recorded - last_samples,
            stats.sample_rate,
            stats.ring_utilisation * 100.0,
            stats.samples_spilled
        );
        last_ops = now_ops;
        last_samples = stats.samples_recorded;
    }
    stop.store(true, Ordering::Relaxed);
    let mut truth = Truth::default();
    for worker in workers {
        truth.add(&worker.join().map_err(|_| "a worker panicked")?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let snapshot = engine.snapshot();
    print_table(&snapshot, &truth);

    let stats = &snapshot.stats;
    println!();
    println!(
        "{:.2} M ops/s over {elapsed:.1} s",
        truth.sent as f64 / elapsed / 1e6
    );
    println!(
        "samples recorded {}, spilled on a full ring (still counted) {}, exact calls {}",
        stats.samples_recorded, stats.samples_spilled, stats.exact_calls
    );
    println!(
        "values rejected {}, base-rate changes {}, drain time {:.1} ms in {} batches",
        stats.values_rejected,
        stats.rate_changes,
        stats.drain_time.as_secs_f64() * 1e3,
        stats.drain_batches
    );
    engine.shutdown()?;
    Ok(())
}

/// Each series beside the truth the pump kept: the estimate, the actual
/// error, the reported relative standard error, the samples behind it and
/// the probability it is sampled with now (`exact` when every call is
/// recorded).
fn print_table(snapshot: &hotmetrics::Snapshot, truth: &Truth) {
    println!();
    println!(
        "{:<27} {:>24} {:>11} {:>8} {:>8} {:>8} {:>9}",
        "series", "estimate ± std error", "truth", "error", "rel. se", "samples", "π"
    );
    let rows = [
        ("ws.messages_sent", &[][..], truth.sent as i64),
        (
            "ws.messages_queued",
            &[("reason", "backpressure")][..],
            truth.queued as i64,
        ),
        ("ws.message_failed", &[][..], truth.failed as i64),
        ("ws.retries", &[][..], truth.retries as i64),
        ("ws.connections", &[][..], truth.connects as i64),
        ("ws.disconnections", &[][..], truth.disconnects as i64),
        (
            "ws.active_connections",
            &[][..],
            truth.connects as i64 - truth.disconnects as i64,
        ),
        (
            "ws.circuit_breaker_opened",
            &[][..],
            truth.breaker_opened as i64,
        ),
        (
            "ws.circuit_breaker_closed",
            &[][..],
            truth.breaker_closed as i64,
        ),
    ];
    for (name, labels, exact) in rows {
        let series = snapshot.find(name, labels).next();
        let estimate = snapshot
            .counter(name, labels)
            .or_else(|| snapshot.updown(name, labels))
            .unwrap_or_default();
        row(
            name,
            &estimate,
            exact,
            series.and_then(|s| s.inclusion_prob),
        );
    }
    if let Some(series) = snapshot.find("ws.send_latency_ns", &[]).next() {
        if let MetricValue::Histogram(latency) = &series.value {
            row(
                "ws.send_latency_ns (count)",
                &latency.count,
                truth.sent as i64,
                series.inclusion_prob,
            );
            println!(
                "{:<27} p50 {:.0} ns, p99 {:.0} ns (the hash and the clock reads around it)",
                "",
                latency.quantile(0.5).unwrap_or(f64::NAN),
                latency.quantile(0.99).unwrap_or(f64::NAN)
            );
        }
    }
}

fn row(name: &str, estimate: &hotmetrics::Estimate, truth: i64, prob: Option<f64>) {
    let error = if truth != 0 {
        format!(
            "{:+.2}%",
            (estimate.value - truth as f64) / truth as f64 * 100.0
        )
    } else {
        String::from("-")
    };
    let value = if estimate.exact {
        format!("{:.0} (exact)", estimate.value)
    } else {
        format!("{:.0} ± {:.0}", estimate.value, estimate.std_error)
    };
    let relative = if estimate.exact {
        String::from("0")
    } else {
        format!("{:.2}%", estimate.relative_error() * 100.0)
    };
    let prob = prob.map_or(String::from("exact"), |prob| format!("{prob:.2e}"));
    println!(
        "{name:<27} {value:>24} {truth:>11} {error:>8} {relative:>8} {:>8} {prob:>9}",
        estimate.samples
    );
}
