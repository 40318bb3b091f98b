//! Per-call cost of the OpenTelemetry metrics API: the same `Counter::add`
//! and `Histogram::record` calls through hotmetrics' provider
//! (`hotmetrics::otel::MeterProvider`, rate pinned at the default 3 %) and
//! through `opentelemetry_sdk`'s (`SdkMeterProvider` with a periodic reader
//! and the in-memory exporter), in the same run, at 1 and 2 threads.
//!
//! RESULTS (criterion's estimate, ns per call per thread; ratio = SDK / hotmetrics)
//!
//! | scenario                           | hotmetrics |   SDK | ratio |
//! |------------------------------------|-----------:|------:|------:|
//! | counter_0_attrs                    |        6.2 |  12.8 |   2.1 |
//! | counter_3_attrs                    |       10.9 | 171.3 |  15.7 |
//! | histogram_3_attrs                  |       12.3 | 225.5 |  18.3 |
//! | counter_3_attrs, bound handle      |        5.9 |     – |     – |
//! | counter_0_attrs_2threads           |        7.4 |  37.5 |   5.1 |
//! | counter_3_attrs_2threads           |       14.9 | 402.4 |  27.0 |
//! | histogram_3_attrs_2threads         |       15.9 | 571.1 |  35.9 |
//! | counter_3_attrs_2threads, bound    |        7.5 |     – |     – |
//!
//! Machine: AMD EPYC (lscpu model name), 2 vCPUs, one thread per core,
//! shared and noisy: absolute times moved by up to 1.5× between runs, the
//! ratios less (an earlier run, before the hot path took the callsite step
//! and the owned rings: 3 attributes 16.8× at one thread and 14.6× at two;
//! histograms 18.3× and 16.9×; no attributes 2.0× and 2.0×). Built with
//! `--no-default-features --features otel-api-bound` (exporters off; the
//! hot path is the same).
//!
//! With no attributes the SDK has a fast path (one atomic add on a
//! pre-built tracker) and hotmetrics wins by the sampling alone; with
//! attributes the SDK hashes, sorts and looks up on every call while
//! hotmetrics does so on 3 % of them.
//!
//! Run: `cargo bench --features otel-api,peers --bench otel_api -- --warm-up-time 1
//! --measurement-time 3` (`--features otel-api-bound` adds the bound-handle
//! rows, `hotmetrics_bound`). Each call picks one of four pre-built attribute
//! sets (the caller's cost of building `KeyValue`s is the same for both and
//! is left out). At 2 threads both threads run the same loop at once; the
//! time reported is the slower thread's time per call.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, SdkMeterProvider};

/// Four attribute sets of three pairs, as a request handler would record.
fn attribute_sets() -> [[KeyValue; 3]; 4] {
    let set = |route: &'static str, status: i64| {
        [
            KeyValue::new("http.route", route),
            KeyValue::new("http.response.status_code", status),
            KeyValue::new("http.request.method", "GET"),
        ]
    };
    [
        set("/", 200),
        set("/api/orders", 200),
        set("/api/orders", 404),
        set("/api/pay", 500),
    ]
}

/// The instruments of one provider.
struct Instruments {
    counter: Counter<u64>,
    histogram: Histogram<f64>,
}

impl Instruments {
    fn new(meter: &Meter) -> Self {
        Self {
            counter: meter.u64_counter("bench.otel.requests").build(),
            histogram: meter
                .f64_histogram("bench.otel.latency")
                .with_unit("ms")
                .build(),
        }
    }
}

/// One scenario: `calls` calls from the current thread; returns their time.
type Scenario = dyn Fn(&Instruments, &[[KeyValue; 3]; 4], u64) -> Duration + Sync;

fn counter_0_attrs(instruments: &Instruments, _: &[[KeyValue; 3]; 4], calls: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..calls {
        instruments.counter.add(black_box(1), black_box(&[]));
    }
    start.elapsed()
}

fn counter_3_attrs(instruments: &Instruments, sets: &[[KeyValue; 3]; 4], calls: u64) -> Duration {
    let start = Instant::now();
    for i in 0..calls {
        instruments
            .counter
            .add(black_box(1), black_box(&sets[(i & 3) as usize]));
    }
    start.elapsed()
}

fn histogram_3_attrs(instruments: &Instruments, sets: &[[KeyValue; 3]; 4], calls: u64) -> Duration {
    let start = Instant::now();
    for i in 0..calls {
        let latency_ms = (i % 97) as f64 * 1.25;
        instruments
            .histogram
            .record(black_box(latency_ms), black_box(&sets[(i & 3) as usize]));
    }
    start.elapsed()
}

/// Runs `calls` calls of `run` on each of `threads` threads started
/// together; returns the slowest thread's time.
fn on_threads(threads: usize, calls: u64, run: &(dyn Fn(u64) -> Duration + Sync)) -> Duration {
    if threads == 1 {
        return run(calls);
    }
    let barrier = Barrier::new(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    run(calls)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("bench thread"))
            .max()
            .unwrap_or_default()
    })
}

/// Bound counters (`otel-api-bound`): the attribute set resolved once.
#[cfg(feature = "otel-api-bound")]
fn bound_counter_3_attrs(
    bound: &[opentelemetry::metrics::BoundCounter<u64>],
    calls: u64,
) -> Duration {
    let start = Instant::now();
    for i in 0..calls {
        bound[(i & 3) as usize].add(black_box(1));
    }
    start.elapsed()
}

fn otel_api(c: &mut Criterion) {
    let engine = hotmetrics::Engine::builder()
        .sample_rate(0.03)
        .adaptive(false)
        .install()
        .expect("no other engine is installed");
    let hotmetrics_provider = hotmetrics::otel::MeterProvider::new(&engine);
    let sdk_provider = SdkMeterProvider::builder()
        .with_periodic_exporter(InMemoryMetricExporter::default())
        .build();
    let mut providers: Vec<(&str, Instruments)> = vec![
        (
            "hotmetrics",
            Instruments::new(&hotmetrics_provider.meter("bench")),
        ),
        ("sdk", Instruments::new(&sdk_provider.meter("bench"))),
    ];
    let sets = attribute_sets();
    let scenarios: [(&str, &Scenario); 3] = [
        ("counter_0_attrs", &counter_0_attrs),
        ("counter_3_attrs", &counter_3_attrs),
        ("histogram_3_attrs", &histogram_3_attrs),
    ];
    let mut group = c.benchmark_group("otel_api");
    for threads in [1, 2] {
        let suffix = if threads == 1 { "" } else { "_2threads" };
        for (scenario_name, scenario) in scenarios {
            for (provider_name, instruments) in &providers {
                group.bench_function(format!("{scenario_name}{suffix}/{provider_name}"), |b| {
                    b.iter_custom(|calls| {
                        on_threads(threads, calls, &|calls| scenario(instruments, &sets, calls))
                    })
                });
            }
        }
        #[cfg(feature = "otel-api-bound")]
        {
            let bound: Vec<_> = sets
                .iter()
                .map(|set| providers[0].1.counter.bind(set))
                .collect();
            group.bench_function(format!("counter_3_attrs{suffix}/hotmetrics_bound"), |b| {
                b.iter_custom(|calls| {
                    on_threads(threads, calls, &|calls| {
                        bound_counter_3_attrs(&bound, calls)
                    })
                })
            });
        }
    }
    group.finish();
    providers.clear();
    sdk_provider.shutdown().expect("SDK shutdown");
    engine.shutdown().expect("engine shutdown");
}

criterion_group!(benches, otel_api);
criterion_main!(benches);
