//! The smallest real use: install, record, read, shut down.
//!
//! `cargo run --release --example quickstart`

use hotmetrics::record;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The default engine: each series sampled for a 1 % relative error.
    let engine = hotmetrics::Engine::builder().from_env()?.install()?;

    for request in 0..1_000_000u64 {
        record!(counter: "http.requests", 1, "route" => "/api");
        record!(histogram: "http.latency_us", 50.0 + (request % 200) as f64);
        if request % 10_000 == 0 {
            record!(critical counter: "http.errors", 1);
        }
    }
    record!(gauge: "queue.depth", 17.0);

    let snapshot = engine.snapshot();
    let requests = snapshot
        .counter("http.requests", &[("route", "/api")])
        .unwrap();
    let latency = snapshot.histogram("http.latency_us", &[]).unwrap();
    println!(
        "http.requests   {:.0} ± {:.0}  (true: 1000000)",
        requests.value, requests.std_error
    );
    println!(
        "http.latency_us p50 {:.1}  p99 {:.1}  (true: 149.5, 247.0)",
        latency.quantile(0.5).unwrap_or(f64::NAN),
        latency.quantile(0.99).unwrap_or(f64::NAN)
    );
    println!(
        "http.errors     {}  (exact: critical)",
        snapshot.counter("http.errors", &[]).unwrap().value
    );
    println!(
        "samples recorded: {}  exact calls: {}  (new series are exact until their rate is known)",
        snapshot.stats.samples_recorded, snapshot.stats.exact_calls
    );
    engine.shutdown()?;
    Ok(())
}
