//! A small web service's metrics, sent to an OpenTelemetry collector.
//!
//! ```text
//! # a collector listening on localhost:4318 (see the README), then:
//! cargo run --release --example otlp
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 cargo run --release --example otlp -- --seconds 60
//! ```
//!
//! Four worker threads serve simulated requests: a counter per route and
//! status, a latency histogram, the open connections as an up-down counter,
//! the queue depth as a gauge, and failures as a critical (never sampled)
//! counter. Every export's outcome is printed as it happens: the exporter
//! is wrapped in one that reports, which is all an `Exporter` needs.
//!
//! Every `OTEL_*` variable of the OTLP exporter applies
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`, `…_HEADERS`, `…_PROTOCOL`,
//! `…_METRICS_TEMPORALITY_PREFERENCE`, …); `OTEL_METRIC_EXPORT_INTERVAL`
//! sets the export interval (default here 2 s; `from_env()` reads it too,
//! and `HOTMETRICS_EXPORT_INTERVAL_MS` wins over both). This program adds
//! its exporter in code: `OTEL_METRICS_EXPORTER` would add more beside it,
//! so leave it unset here. With no collector running
//! the exports fail, the circuit opens, and recording goes on at full
//! speed: the example still ends normally.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use hotmetrics::export::{Exporter, Otlp};
use hotmetrics::{record, ExportError, Snapshot};

/// Prints the outcome of every export, then hands it back to the engine.
struct Reporting {
    inner: Otlp,
    exports: u64,
}

impl Exporter for Reporting {
    fn export(&mut self, snapshot: &Snapshot) -> Result<(), ExportError> {
        self.exports += 1;
        let started = Instant::now();
        let outcome = self.inner.export(snapshot);
        let took = started.elapsed();
        let requests: f64 = snapshot
            .find("http.server.requests", &[])
            .filter_map(|series| match &series.value {
                hotmetrics::MetricValue::Counter(estimate) => Some(estimate.value),
                _ => None,
            })
            .sum();
        match &outcome {
            Ok(()) => println!(
                "export #{:<3} ok      in {:>7.1} ms  ({} series, ≈{requests:.0} requests so far)",
                self.exports,
                took.as_secs_f64() * 1e3,
                snapshot.series.len(),
            ),
            Err(error) => println!(
                "export #{:<3} failed  in {:>7.1} ms  circuit {}: {error}",
                self.exports,
                took.as_secs_f64() * 1e3,
                self.inner.circuit_state().as_str(),
            ),
        }
        outcome
    }

    fn name(&self) -> &str {
        "otlp (reporting)"
    }

    fn circuit_state(&self) -> hotmetrics::CircuitState {
        self.inner.circuit_state()
    }
}

/// A request's work: hash a 64-byte message a few times.
fn handle(message: &[u8; 64], rounds: u32) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for _ in 0..rounds {
        for byte in message {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

fn worker(id: u64, stop: &AtomicBool) {
    let mut rng = fastrand::Rng::with_seed(id);
    let mut message = [0u8; 64];
    while !stop.load(Ordering::Relaxed) {
        rng.fill(&mut message);
        record!(updown: "http.server.active_requests", 1);
        let route = rng.u8(..10);
        let rounds = if route == 0 {
            400
        } else {
            20 + u32::from(route) * 5
        };
        let started = Instant::now();
        black_box(handle(&message, rounds));
        let latency_us = started.elapsed().as_secs_f64() * 1e6;
        match (route, rng.u16(..1000)) {
            (0, _) => {
                record!(counter: "http.server.requests", 1, "route" => "/search", "status" => "200");
                record!(histogram: "http.server.duration_us", latency_us, "route" => "/search");
            }
            (_, 0) => {
                record!(critical counter: "http.server.failures", 1, "route" => "/api/orders");
                record!(counter: "http.server.requests", 1, "route" => "/api/orders", "status" => "500");
            }
            _ => {
                record!(counter: "http.server.requests", 1, "route" => "/api/orders", "status" => "200");
                record!(histogram: "http.server.duration_us", latency_us, "route" => "/api/orders");
            }
        }
        record!(updown: "http.server.active_requests", -1);
        if rng.u16(..4096) == 0 {
            record!(gauge: "http.server.queue_depth", f64::from(rng.u8(..64)));
            thread::sleep(Duration::from_micros(200));
        }
    }
}

fn seconds_from_args() -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|arg| arg == "--seconds")
        .and_then(|index| args.get(index + 1))
        .and_then(|value| value.parse().ok())
        .unwrap_or(20)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds = seconds_from_args();
    let interval = std::env::var("OTEL_METRIC_EXPORT_INTERVAL")
        .ok()
        .and_then(|millis| millis.parse().ok())
        .map_or(Duration::from_secs(2), Duration::from_millis);
    let mut exporter = Otlp::builder();
    if std::env::var_os("OTEL_METRIC_EXPORT_TIMEOUT").is_none() {
        // Values are cumulative: retrying past the next export is pointless,
        // so give each export at most one interval (the default is 30 s).
        exporter = exporter.export_timeout(interval);
    }
    let exporter = exporter.build()?;
    println!(
        "sending to {} over {} ({:?} temporality) for {seconds} s",
        exporter.endpoint(),
        exporter.protocol().as_str(),
        exporter.temporality()
    );
    let engine = hotmetrics::Engine::builder()
        .export_interval(interval)
        .exporter(Reporting {
            inner: exporter,
            exports: 0,
        })
        .from_env()?
        .install()?;

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|id| {
            let stop = stop.clone();
            thread::spawn(move || worker(id, &stop))
        })
        .collect();
    thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.join();
    }

    let stats = engine.stats();
    println!(
        "recorded {} samples ({} spilled, still counted), rate {:.3}; exports ok {} failed {}; circuit {}",
        stats.samples_recorded,
        stats.samples_spilled,
        stats.sample_rate,
        stats.exports_ok,
        stats.exports_failed,
        stats.circuit.as_str()
    );
    if let Err(error) = engine.shutdown() {
        println!("final export: {error}");
        if stats.exports_ok == 0 {
            println!(
                "nothing reached a collector: start one (see the README) or set OTEL_EXPORTER_OTLP_ENDPOINT"
            );
        }
    }
    Ok(())
}
