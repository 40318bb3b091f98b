//! Measurements, not assertions (speed is asserted in benches): the cost
//! of recording while the collector is healthy, stalled or failing, and
//! the memory of a long outage. Run with
//!
//! ```text
//! CARGO_TARGET_DIR=target/exporters cargo test --release --lib \
//!     export::otlp::tests::measure -- --ignored --nocapture --test-threads=1
//! ```

use std::hint::black_box;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::collector::{Collector, Reply};
use super::*;
use crate::export::exporter::Exporter;
use crate::export::otlp::Temporality;
use crate::record;
use crate::test_support::{engine_lock, rss_bytes};

const HEALTHY: u8 = 0;
const STALLED: u8 = 1;
const FAILING: u8 = 2;

/// The reference job: hash a 64-byte message (about 60 ns).
fn job(message: &[u8; 64]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in message {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Median ns per operation over `reps` runs of `ops`.
fn median_ns(reps: usize, ops: u64, instrumented: bool) -> f64 {
    let mut runs: Vec<f64> = (0..reps)
        .map(|rep| {
            let mut message = [rep as u8; 64];
            let started = Instant::now();
            for i in 0..ops {
                message[0] = i as u8;
                let hash = black_box(job(black_box(&message)));
                if instrumented {
                    record!(counter: "measure.ops", 1);
                    record!(histogram: "measure.hash_low", (hash & 1023) as f64);
                }
            }
            started.elapsed().as_nanos() as f64 / ops as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

#[test]
#[ignore = "measurement; run in release with --ignored --nocapture"]
fn hot_path_during_outages() {
    let _engine_lock = engine_lock();
    let mode = Arc::new(AtomicU8::new(HEALTHY));
    let shared = mode.clone();
    let collector = Collector::start(move |_| match shared.load(Ordering::Relaxed) {
        HEALTHY => Reply::ok(),
        STALLED => Reply::ok().delay(Duration::from_secs(3)),
        _ => Reply::status(503),
    });
    let exporter = quick(&collector.url())
        .timeout(Duration::from_secs(2))
        .export_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let engine = crate::Engine::builder()
        .export_interval(Duration::from_millis(100))
        .exporter(exporter)
        .install()
        .unwrap();
    let (reps, ops) = (5, 1_000_000);
    median_ns(2, ops, true); // warm up
    println!("phase      ns/op plain  ns/op recorded  overhead  dropped  exports ok/failed/skipped  circuit");
    for (name, phase) in [
        ("healthy", HEALTHY),
        ("stalled", STALLED),
        ("failing", FAILING),
        ("healthy", HEALTHY),
    ] {
        mode.store(phase, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(300));
        let before = engine.stats();
        let mut plain = Vec::new();
        let mut recorded = Vec::new();
        for _ in 0..3 {
            plain.push(median_ns(reps, ops, false));
            recorded.push(median_ns(reps, ops, true));
        }
        plain.sort_by(f64::total_cmp);
        recorded.sort_by(f64::total_cmp);
        let after = engine.stats();
        println!(
            "{name:<9}  {:>11.2}  {:>14.2}  {:>7.1} %  {:>7}  {:>8}/{}/{}  {:>14}",
            plain[1],
            recorded[1],
            (recorded[1] - plain[1]) / plain[1] * 100.0,
            after.samples_spilled - before.samples_spilled,
            after.exports_ok - before.exports_ok,
            after.exports_failed - before.exports_failed,
            after.exports_skipped - before.exports_skipped,
            after.circuit.as_str(),
        );
    }
    mode.store(HEALTHY, Ordering::Relaxed);
    engine.shutdown().unwrap();
}

#[test]
#[ignore = "measurement; run in release with --ignored --nocapture"]
fn memory_during_a_long_outage() {
    // A collector that answers 503 and keeps nothing, so what grows is the
    // exporter's.
    let collector = Collector::start(|_| Reply::status(503)).forgetting();
    let mut otlp = quick(&collector.url())
        .temporality(Temporality::Delta)
        .circuit_breaker(CircuitBreakerPolicy {
            failure_threshold: 3,
            open_for: Duration::from_millis(2),
            max_open_for: Duration::from_millis(5),
        })
        .build()
        .unwrap();
    let snapshot = |round: u64| {
        let list = (0..2000)
            .map(|i| {
                let labels = [("shard", format!("{}", i % 50))];
                let labels: Vec<(&str, &str)> =
                    labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                series(
                    &format!("series.{}", i / 50),
                    &labels,
                    MetricValue::Counter(sampled((round * (i + 1)) as f64, 3.0)),
                )
            })
            .collect();
        snapshot_at(list, round)
    };
    let rss = || rss_bytes().unwrap_or(0) as f64 / (1 << 20) as f64;
    println!("failed exports  rss MiB  requests sent  baselines held");
    let started = Instant::now();
    let mut last = 0;
    for round in 1..=10_000u64 {
        assert!(otlp.export(&snapshot(round)).is_err());
        if round == 100 || round % 2000 == 0 {
            println!(
                "{round:>14}  {:>7.1}  {:>13}  {:>14}",
                rss(),
                collector.request_count(),
                otlp.retained_series()
            );
        }
        last = round;
    }
    println!(
        "{last} failed exports of 2000 series in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
