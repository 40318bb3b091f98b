//! Code instrumented with the OpenTelemetry metrics API, recorded through
//! hotmetrics by switching the global meter provider: one line.
//!
//! Run: `cargo run --example otel_api --features otel-api`.

use std::time::Instant;

use opentelemetry::metrics::{Counter, Histogram};
use opentelemetry::{global, KeyValue};

/// Instrumentation as it already exists in a library: plain OpenTelemetry
/// API, no mention of hotmetrics.
struct Handler {
    requests: Counter<u64>,
    failures: Counter<u64>,
    latency: Histogram<f64>,
}

impl Handler {
    fn new() -> Self {
        let meter = global::meter("checkout");
        Self {
            requests: meter
                .u64_counter("checkout.requests")
                .with_unit("{request}")
                .with_description("Checkout requests handled")
                .build(),
            // The description marker makes this counter exact under
            // hotmetrics (and means nothing to other SDKs).
            failures: meter
                .u64_counter("checkout.failures")
                .with_unit("{request}")
                .with_description("[critical] Checkout requests that failed")
                .build(),
            latency: meter
                .f64_histogram("checkout.latency")
                .with_unit("us")
                .with_description("Time to handle one request")
                .build(),
        }
    }

    fn handle(&self, order: u64) {
        let started = Instant::now();
        let route = if order.is_multiple_of(4) {
            "/pay"
        } else {
            "/cart"
        };
        let failed = order % 1_000 == 7;
        let attributes = [
            KeyValue::new("http.route", route),
            KeyValue::new("http.response.status_code", if failed { 500 } else { 200 }),
            KeyValue::new("http.request.method", "POST"),
        ];
        std::hint::black_box(order.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        self.requests.add(1, &attributes);
        if failed {
            self.failures.add(1, &attributes);
        }
        let latency_us = started.elapsed().as_secs_f64() * 1e6 + (order % 50) as f64;
        self.latency.record(latency_us, &attributes);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = hotmetrics::Engine::builder().install()?;
    // The switch: every meter from `global` now records through hotmetrics.
    global::set_meter_provider(hotmetrics::otel::MeterProvider::new(&engine));

    let handler = Handler::new();
    let orders = 2_000_000u64;
    for order in 0..orders {
        handler.handle(order);
    }

    let snapshot = engine.snapshot();
    println!("{orders} requests handled");
    let mut estimated = 0.0;
    for series in snapshot.find("checkout.requests", &[]) {
        if let hotmetrics::MetricValue::Counter(total) = series.value {
            println!(
                "  checkout.requests {:?}: {:.0} ± {:.0}",
                series.labels, total.value, total.std_error
            );
            estimated += total.value;
        }
    }
    println!("  checkout.requests in all: {estimated:.0} (true: {orders})");
    let failures: f64 = snapshot
        .find("checkout.failures", &[])
        .filter_map(|series| match series.value {
            hotmetrics::MetricValue::Counter(total) => Some(total.value),
            _ => None,
        })
        .sum();
    println!(
        "  checkout.failures (exact): {failures} (true: {})",
        orders / 1_000
    );
    if let Some(series) = snapshot.find("checkout.latency", &[]).next() {
        println!(
            "  checkout.latency unit {:?}, description {:?}",
            series.unit, series.description
        );
    }
    println!(
        "  sample rate {:.3}, samples {}",
        snapshot.stats.sample_rate, snapshot.stats.samples_recorded
    );
    engine.shutdown()?;
    Ok(())
}
