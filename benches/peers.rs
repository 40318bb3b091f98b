//! hotmetrics beside the libraries its users would otherwise pick, in one
//! run: per-call cost of one counter increment, and overhead on the
//! reference workload with one counter and one histogram record per
//! operation, at 1 thread and at all cores.
//!
//! Last results (summary table; AMD EPYC, 2 vCPU under KVM, load average
//! 2.3 → 1.4; per thread, median of 15 interleaved rounds; "× hotmetrics" =
//! the library's overhead / hotmetrics `record!`'s overhead):
//!
//! | library | overhead 1t | overhead 2t | ns/call 1t | ns/call 2t | × hotmetrics 1t | × hotmetrics 2t |
//! |---|---:|---:|---:|---:|---:|---:|
//! | none (plain) | +0.0 % | +0.0 % | 0.41 | 0.45 | | |
//! | countdown floor | +2.2 % | −1.9 % | 3.34 | 3.38 | | |
//! | hotmetrics `record!` | +7.4 % | +6.7 % | 4.25 | 4.47 | 1× | 1× |
//! | hotmetrics handle | +11.4 % | +8.4 % | 4.32 | 4.58 | 2× | 1× |
//! | shared AtomicU64 | +3.2 % | +56.3 % | 9.06 | 28.80 | 0.4× | 8× |
//! | metrics macro | +261.0 % | +504.9 % | 57.59 | 206.18 | 35× | 75× |
//! | metrics handle | +84.8 % | +225.0 % | 8.65 | 31.77 | 11× | 34× |
//! | opentelemetry_sdk, no attributes | +142.0 % | +263.1 % | 12.51 | 48.33 | 19× | 39× |
//! | opentelemetry_sdk, 2 attributes | +667.6 % | +948.1 % | 153.79 | 265.23 | 90× | 142× |
//! | opentelemetry_sdk, bound | +104.8 % | +331.6 % | 10.24 | 46.78 | 14× | 50× |
//! | prometheus handles | +52.0 % | +180.3 % | 9.05 | 31.32 | 7× | 27× |
//! | prometheus label vecs | +231.6 % | +554.7 % | 49.29 | 201.21 | 31× | 83× |
//! | prometheus local (thread-local) | +27.3 % | +27.0 % | 3.23 | 3.40 | 4× | 4× |
//! | prometheus-client | +60.3 % | +240.8 % | 9.07 | 28.56 | 8× | 36× |
//!
//! Two more runs the same hour put hotmetrics `record!` at +6.2 % / +11.8 %
//! and +4.9 % / +2.4 % (1 / 2 threads): the 2-thread figure moves most from
//! run to run here, the per-call columns hardly at all.
//!
//! The `metrics` facade rows (`counter!` with two static labels, each
//! recorder a thread's local recorder) came later, from a 2-core Xeon VM,
//! load average 2.1 at start, 2-thread batches kept only when their
//! threads ran together (90 % overlap; 256 batches run again, 31 kept
//! after five tries): ns/call 1t / 2t, hotmetrics recorder 17.94 / 17.05
//! (2t / 1t 0.95×, the plain loop's 1.02×), metrics-exporter-prometheus
//! 78.96 / 549.06 (4.4× / 32.2× ours), an `Arc` clone and drop alone
//! 13.07 / 13.22, hotmetrics handle 3.42 / 1.95. Before that check, runs
//! gave 38.8×, 9.0× and 9.1× at 2 threads: in the last two the threads of
//! most batches ran one after the other (the shared `AtomicU64` row read
//! 4.9 ns at 2 threads), hiding contention. The summary prints these
//! figures after its table.
//!
//! Run: `CARGO_TARGET_DIR=target/bench cargo bench --features peers --bench peers`.
//! Figures are ratios from a noisy shared machine.

mod common;

use std::cell::RefCell;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use common::{countdown_check, op_count, op_value, opaque, paired, percent, workload_with, Case};
use hotmetrics::{record, Engine};

// ---------------------------------------------------------------------------
// metrics: a real recorder (metrics-util's atomic registry, the storage the
// metrics exporters use), with an upkeep thread that drains histogram
// buckets as an exporter's scrape would.

mod metrics_peer {
    use super::*;
    use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};
    use metrics_util::registry::{AtomicStorage, Registry};

    pub(crate) struct Recorder {
        pub(crate) registry: Registry<Key, AtomicStorage>,
    }

    impl metrics::Recorder for Recorder {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            self.registry
                .get_or_create_counter(key, |counter| Counter::from_arc(counter.clone()))
        }

        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            self.registry
                .get_or_create_gauge(key, |gauge| Gauge::from_arc(gauge.clone()))
        }

        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            self.registry
                .get_or_create_histogram(key, |histogram| Histogram::from_arc(histogram.clone()))
        }
    }

    static RECORDER: LazyLock<&'static Recorder> = LazyLock::new(|| {
        let recorder: &'static Recorder = Box::leak(Box::new(Recorder {
            registry: Registry::atomic(),
        }));
        metrics::set_global_recorder(recorder).expect("the only metrics recorder");
        std::thread::spawn(|| loop {
            std::thread::sleep(Duration::from_millis(100));
            RECORDER.registry.visit_histograms(|_, histogram| {
                histogram.clear_with(|values| {
                    std::hint::black_box(values.len());
                });
            });
        });
        recorder
    });

    /// Installs the recorder (once per process).
    pub(crate) fn install() {
        LazyLock::force(&RECORDER);
    }

    pub(crate) struct Handles {
        pub(crate) counter: Counter,
        pub(crate) histogram: Histogram,
    }

    pub(crate) static HANDLES: LazyLock<Handles> = LazyLock::new(|| {
        install();
        Handles {
            counter: metrics::counter!("peers.metrics.handle_ops"),
            histogram: metrics::histogram!("peers.metrics.handle_value"),
        }
    });
}

// ---------------------------------------------------------------------------
// The `metrics` facade's macros through two recorders, each a thread's local
// recorder (the global slot holds `metrics_peer`'s): hotmetrics' own
// (`hotmetrics::metrics_rs::Recorder`) and metrics-exporter-prometheus's,
// the recorder most `metrics` users install. The same `counter!` with two
// static labels through each: the facade registers the key on every call.

mod facade_peer {
    use super::*;
    use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

    pub(crate) static PROMETHEUS: LazyLock<PrometheusRecorder> =
        LazyLock::new(|| PrometheusBuilder::new().build_recorder());

    /// `iters` facade `counter!` calls with static labels.
    #[inline(always)]
    pub(crate) fn counter_calls(iters: u64) {
        for _ in 0..iters {
            metrics::counter!("peers.facade.ops", "route" => "/api", "status" => "200")
                .increment(1);
        }
    }

    /// The workload with a facade `counter!` (static labels) and a
    /// `histogram!` per operation.
    #[inline(always)]
    pub(crate) fn workload(iters: u64) {
        workload_with(iters, |hash| {
            metrics::counter!("peers.facade.ops", "route" => "/api", "status" => "200")
                .increment(op_count(hash));
            metrics::histogram!("peers.facade.value").record(op_value(hash));
        })
    }

    pub(crate) fn ours(body: fn(u64), iters: u64) {
        static OURS: hotmetrics::metrics_rs::Recorder = hotmetrics::metrics_rs::Recorder::new();
        metrics::with_local_recorder(&OURS, || body(iters));
    }

    pub(crate) fn prometheus(body: fn(u64), iters: u64) {
        metrics::with_local_recorder(&*PROMETHEUS, || body(iters));
    }
}

// ---------------------------------------------------------------------------
// opentelemetry_sdk: a meter provider with the SDK's periodic reader and its
// in-memory exporter (a 60 s interval: nothing is exported during a bench),
// instruments created once.

mod otel_peer {
    use super::*;
    use opentelemetry::metrics::{
        BoundCounter, BoundHistogram, Counter, Histogram, MeterProvider as _,
    };
    use opentelemetry::KeyValue;
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, SdkMeterProvider};

    pub(crate) struct Otel {
        _provider: SdkMeterProvider,
        pub(crate) counter: Counter<u64>,
        pub(crate) histogram: Histogram<f64>,
        pub(crate) bound_counter: BoundCounter<u64>,
        pub(crate) bound_histogram: BoundHistogram<f64>,
    }

    pub(crate) fn attributes() -> [KeyValue; 2] {
        [
            KeyValue::new("route", "/api"),
            KeyValue::new("status", "200"),
        ]
    }

    pub(crate) static OTEL: LazyLock<Otel> = LazyLock::new(|| {
        let provider = SdkMeterProvider::builder()
            .with_periodic_exporter(InMemoryMetricExporter::default())
            .build();
        let meter = provider.meter("peers");
        let counter = meter.u64_counter("peers.otel.ops").build();
        let histogram = meter.f64_histogram("peers.otel.value").build();
        let bound_counter = counter.bind(&attributes());
        let bound_histogram = histogram.bind(&attributes());
        Otel {
            _provider: provider,
            counter,
            histogram,
            bound_counter,
            bound_histogram,
        }
    });
}

// ---------------------------------------------------------------------------
// prometheus (tikv): handles, label vecs, thread-local `local` handles.

mod prometheus_peer {
    use super::*;
    use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts};

    pub(crate) struct Prom {
        pub(crate) counter: IntCounter,
        pub(crate) histogram: Histogram,
        pub(crate) counter_vec: IntCounterVec,
        pub(crate) histogram_vec: HistogramVec,
    }

    pub(crate) static PROM: LazyLock<Prom> = LazyLock::new(|| Prom {
        counter: IntCounter::new("peers_prom_ops", "ops").expect("valid"),
        histogram: Histogram::with_opts(HistogramOpts::new("peers_prom_value", "value"))
            .expect("valid"),
        counter_vec: IntCounterVec::new(
            Opts::new("peers_prom_vec_ops", "ops"),
            &["route", "status"],
        )
        .expect("valid"),
        histogram_vec: HistogramVec::new(
            HistogramOpts::new("peers_prom_vec_value", "value"),
            &["route", "status"],
        )
        .expect("valid"),
    });
}

// ---------------------------------------------------------------------------
// prometheus-client: counter and histogram handles.

mod prometheus_client_peer {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

    pub(crate) struct PromClient {
        pub(crate) counter: Counter<u64>,
        pub(crate) histogram: Histogram,
    }

    pub(crate) static PROM_CLIENT: LazyLock<PromClient> = LazyLock::new(|| PromClient {
        counter: Counter::default(),
        histogram: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
    });
}

// ---------------------------------------------------------------------------
// Shared atomics: the bare cost of one shared write per record.

#[repr(align(128))]
struct Padded(AtomicU64);

static SHARED_COUNT: Padded = Padded(AtomicU64::new(0));
static SHARED_SUM: Padded = Padded(AtomicU64::new(0));

// ---------------------------------------------------------------------------
// The peers: what one counter increment (`per_call`) and one counter + one
// histogram record (`record`) look like with each.

/// One library's way of recording.
struct Peer {
    name: &'static str,
    /// Needs the hotmetrics engine installed around its batches.
    engine: bool,
    /// `iters` counter increments.
    per_call: fn(u64),
    /// `iters` operations of the workload, recording a counter and a histogram.
    workload: fn(u64),
}

fn hotmetrics_handles() -> &'static (hotmetrics::Counter, hotmetrics::Histogram) {
    static HANDLES: LazyLock<(hotmetrics::Counter, hotmetrics::Histogram)> = LazyLock::new(|| {
        (
            hotmetrics::counter("peers.hotmetrics.handle_ops"),
            hotmetrics::histogram("peers.hotmetrics.handle_value"),
        )
    });
    &HANDLES
}

thread_local! {
    static PROM_LOCAL: RefCell<Option<(prometheus::local::LocalIntCounter, prometheus::local::LocalHistogram)>> =
        const { RefCell::new(None) };
}

/// Runs `f` with this thread's prometheus `local` handles, created on first
/// use, and flushes them at the end (a batch is the flush interval).
fn with_prom_local(
    f: impl FnOnce(&prometheus::local::LocalIntCounter, &prometheus::local::LocalHistogram),
) {
    PROM_LOCAL.with(|local| {
        let mut local = local.borrow_mut();
        let (counter, histogram) = local.get_or_insert_with(|| {
            let prom = &*prometheus_peer::PROM;
            (prom.counter.local(), prom.histogram.local())
        });
        f(counter, histogram);
        counter.flush();
        histogram.flush();
    });
}

/// The facade rows the summary compares.
const FACADE_OURS: &str = "metrics facade → hotmetrics recorder";
const FACADE_PROMETHEUS: &str = "metrics facade → metrics-exporter-prometheus";
/// What every facade macro call pays whatever the recorder: its `Counter`
/// wraps an `Arc`, cloned from the recorder's and dropped after the call.
const FACADE_FLOOR: &str = "Arc clone + drop (the facade's floor)";

std::thread_local! {
    /// Each thread's own `Arc`, as the hotmetrics recorder hands out.
    static OWN_ARC: std::sync::Arc<AtomicU64> = std::sync::Arc::new(AtomicU64::new(0));
}

/// `iters` clones and drops of the thread's own `Arc`, each seen by the
/// optimiser as used.
#[inline(always)]
fn arc_clone_drop(iters: u64) {
    OWN_ARC.with(|own| {
        for _ in 0..iters {
            drop(black_box(own.clone()));
        }
    })
}

fn peers() -> Vec<Peer> {
    vec![
        Peer {
            name: "none (plain)",
            engine: false,
            per_call: |iters| {
                for _ in 0..iters {
                    opaque();
                }
            },
            workload: common::workload_plain,
        },
        Peer {
            name: "countdown floor",
            engine: false,
            per_call: |iters| {
                for _ in 0..iters {
                    countdown_check(1.0);
                }
            },
            workload: |iters| {
                workload_with(iters, |hash| {
                    countdown_check(op_count(hash) as f64);
                    countdown_check(op_value(hash));
                })
            },
        },
        Peer {
            name: "hotmetrics record!",
            engine: true,
            per_call: |iters| {
                for _ in 0..iters {
                    record!(counter: "peers.hotmetrics.ops", 1u64);
                }
            },
            workload: |iters| {
                workload_with(iters, |hash| {
                    record!(counter: "peers.hotmetrics.ops", op_count(hash));
                    record!(histogram: "peers.hotmetrics.value", op_value(hash));
                })
            },
        },
        Peer {
            name: "hotmetrics handle",
            engine: true,
            per_call: |iters| {
                let (counter, _) = hotmetrics_handles();
                for _ in 0..iters {
                    counter.add(1u64);
                }
            },
            workload: |iters| {
                let (counter, histogram) = hotmetrics_handles();
                workload_with(iters, |hash| {
                    counter.add(op_count(hash));
                    histogram.record(op_value(hash));
                })
            },
        },
        Peer {
            name: "shared AtomicU64",
            engine: false,
            per_call: |iters| {
                for _ in 0..iters {
                    SHARED_COUNT.0.fetch_add(1, Ordering::Relaxed);
                }
            },
            workload: |iters| {
                workload_with(iters, |hash| {
                    SHARED_COUNT.0.fetch_add(op_count(hash), Ordering::Relaxed);
                    SHARED_SUM.0.fetch_add(hash & 1023, Ordering::Relaxed);
                })
            },
        },
        Peer {
            name: "metrics macro",
            engine: false,
            per_call: |iters| {
                metrics_peer::install();
                for _ in 0..iters {
                    metrics::counter!("peers.metrics.ops").increment(1);
                }
            },
            workload: |iters| {
                metrics_peer::install();
                workload_with(iters, |hash| {
                    metrics::counter!("peers.metrics.ops").increment(op_count(hash));
                    metrics::histogram!("peers.metrics.value").record(op_value(hash));
                })
            },
        },
        Peer {
            name: FACADE_OURS,
            engine: true,
            per_call: |iters| facade_peer::ours(facade_peer::counter_calls, iters),
            workload: |iters| facade_peer::ours(facade_peer::workload, iters),
        },
        Peer {
            name: FACADE_FLOOR,
            engine: false,
            per_call: arc_clone_drop,
            workload: |iters| {
                OWN_ARC.with(|own| {
                    workload_with(iters, |hash| {
                        drop(black_box(own.clone()));
                        drop(black_box(own.clone()));
                        black_box(hash);
                    })
                })
            },
        },
        Peer {
            name: FACADE_PROMETHEUS,
            engine: false,
            per_call: |iters| facade_peer::prometheus(facade_peer::counter_calls, iters),
            workload: |iters| facade_peer::prometheus(facade_peer::workload, iters),
        },
        Peer {
            name: "metrics handle",
            engine: false,
            per_call: |iters| {
                let handles = &*metrics_peer::HANDLES;
                for _ in 0..iters {
                    handles.counter.increment(1);
                }
            },
            workload: |iters| {
                let handles = &*metrics_peer::HANDLES;
                workload_with(iters, |hash| {
                    handles.counter.increment(op_count(hash));
                    handles.histogram.record(op_value(hash));
                })
            },
        },
        Peer {
            name: "opentelemetry_sdk, no attributes",
            engine: false,
            per_call: |iters| {
                let otel = &*otel_peer::OTEL;
                for _ in 0..iters {
                    otel.counter.add(1, &[]);
                }
            },
            workload: |iters| {
                let otel = &*otel_peer::OTEL;
                workload_with(iters, |hash| {
                    otel.counter.add(op_count(hash), &[]);
                    otel.histogram.record(op_value(hash), &[]);
                })
            },
        },
        Peer {
            name: "opentelemetry_sdk, 2 attributes",
            engine: false,
            per_call: |iters| {
                let otel = &*otel_peer::OTEL;
                for _ in 0..iters {
                    otel.counter.add(1, &otel_peer::attributes());
                }
            },
            workload: |iters| {
                let otel = &*otel_peer::OTEL;
                workload_with(iters, |hash| {
                    otel.counter.add(op_count(hash), &otel_peer::attributes());
                    otel.histogram
                        .record(op_value(hash), &otel_peer::attributes());
                })
            },
        },
        Peer {
            name: "opentelemetry_sdk, bound",
            engine: false,
            per_call: |iters| {
                let otel = &*otel_peer::OTEL;
                for _ in 0..iters {
                    otel.bound_counter.add(1);
                }
            },
            workload: |iters| {
                let otel = &*otel_peer::OTEL;
                workload_with(iters, |hash| {
                    otel.bound_counter.add(op_count(hash));
                    otel.bound_histogram.record(op_value(hash));
                })
            },
        },
        Peer {
            name: "prometheus handles",
            engine: false,
            per_call: |iters| {
                let prom = &*prometheus_peer::PROM;
                for _ in 0..iters {
                    prom.counter.inc_by(1);
                }
            },
            workload: |iters| {
                let prom = &*prometheus_peer::PROM;
                workload_with(iters, |hash| {
                    prom.counter.inc_by(op_count(hash));
                    prom.histogram.observe(op_value(hash));
                })
            },
        },
        Peer {
            name: "prometheus label vecs",
            engine: false,
            per_call: |iters| {
                let prom = &*prometheus_peer::PROM;
                for _ in 0..iters {
                    prom.counter_vec
                        .with_label_values(&["/api", "200"])
                        .inc_by(1);
                }
            },
            workload: |iters| {
                let prom = &*prometheus_peer::PROM;
                workload_with(iters, |hash| {
                    prom.counter_vec
                        .with_label_values(&["/api", "200"])
                        .inc_by(op_count(hash));
                    prom.histogram_vec
                        .with_label_values(&["/api", "200"])
                        .observe(op_value(hash));
                })
            },
        },
        Peer {
            name: "prometheus local (thread-local)",
            engine: false,
            per_call: |iters| {
                with_prom_local(|counter, _| {
                    // `black_box`: a non-atomic local add of a constant would
                    // fold into one add for the whole loop.
                    for _ in 0..iters {
                        counter.inc_by(black_box(1));
                    }
                })
            },
            workload: |iters| {
                with_prom_local(|counter, histogram| {
                    workload_with(iters, |hash| {
                        counter.inc_by(op_count(hash));
                        histogram.observe(op_value(hash));
                    })
                })
            },
        },
        Peer {
            name: "prometheus-client",
            engine: false,
            per_call: |iters| {
                let prom = &*prometheus_client_peer::PROM_CLIENT;
                for _ in 0..iters {
                    prom.counter.inc_by(1);
                }
            },
            workload: |iters| {
                let prom = &*prometheus_client_peer::PROM_CLIENT;
                workload_with(iters, |hash| {
                    prom.counter.inc_by(op_count(hash));
                    prom.histogram.observe(op_value(hash));
                })
            },
        },
    ]
}

/// Installs the hotmetrics engine (every default) for the life of the
/// value when `needed`.
fn engine_if(needed: bool) -> Option<Engine> {
    needed.then(|| {
        Engine::builder()
            .install()
            .expect("no other engine is installed")
    })
}

fn slug(name: &str) -> String {
    let mut slug = String::new();
    for ch in name.chars() {
        if ch.is_ascii_alphanumeric() {
            slug.push(ch.to_ascii_lowercase());
        } else if !slug.ends_with('_') {
            slug.push('_');
        }
    }
    slug.trim_matches('_').to_string()
}

fn criterion_groups(c: &mut criterion::Criterion, peers: &[Peer]) {
    let mut thread_counts = vec![1];
    if common::cores() > 1 {
        thread_counts.push(common::cores());
    }
    for (kind, pick) in [
        (
            "per_call",
            (|peer: &Peer| peer.per_call) as fn(&Peer) -> fn(u64),
        ),
        ("workload", |peer: &Peer| peer.workload),
    ] {
        for &threads in &thread_counts {
            let mut group = c.benchmark_group(format!("peers/{kind}/{threads}t"));
            for peer in peers {
                let body = pick(peer);
                let engine = engine_if(peer.engine);
                group.bench_function(slug(peer.name), |b| {
                    b.iter_custom(|iters| common::run_threads(threads, iters, &body))
                });
                if let Some(engine) = engine {
                    engine.shutdown().expect("shutdown");
                }
            }
            group.finish();
        }
    }
}

fn cases(peers: &[Peer], pick: fn(&Peer) -> fn(u64)) -> Vec<Case<'static>> {
    peers
        .iter()
        .map(|peer| {
            let body = pick(peer);
            let engine = peer.engine;
            // The hotmetrics rows run against the one engine `summary`
            // keeps installed (and warmed up) for every round.
            let _ = engine;
            Case {
                name: peer.name.to_string(),
                run: Box::new(move |threads, iters| common::run_threads(threads, iters, &body)),
            }
        })
        .collect()
}

fn summary(peers: &[Peer]) {
    let mut thread_counts = vec![1];
    if common::cores() > 1 {
        thread_counts.push(common::cores());
    }
    let per_call_cases = cases(peers, |peer| peer.per_call);
    let workload_cases = cases(peers, |peer| peer.workload);
    // One default engine for every round, warmed up on the hotmetrics
    // workload first: error targeting sets each series' sampling after a
    // first period of one second, refined at the next (5 s).
    let engine = engine_if(true).expect("engine");
    if !common::quick_mode() {
        let ours = peers
            .iter()
            .find(|peer| peer.name == "hotmetrics record!")
            .expect("hotmetrics row");
        let until = std::time::Instant::now() + Duration::from_secs(7);
        while std::time::Instant::now() < until {
            common::run_threads(common::cores(), 1 << 20, &ours.workload);
            common::run_threads(common::cores(), 1 << 20, &ours.per_call);
        }
    }
    let per_call: Vec<_> = thread_counts
        .iter()
        .map(|&threads| paired(&per_call_cases, threads, Duration::from_millis(20)))
        .collect();
    let workload: Vec<_> = thread_counts
        .iter()
        .map(|&threads| paired(&workload_cases, threads, Duration::from_millis(30)))
        .collect();
    let ours = peers
        .iter()
        .position(|peer| peer.name == "hotmetrics record!")
        .expect("hotmetrics row");
    println!("\npeers summary (median of interleaved rounds; per thread)");
    print!("| library ");
    for result in &workload {
        print!("| overhead {}t ", result.threads);
    }
    for result in &per_call {
        print!("| ns/call {}t ", result.threads);
    }
    for result in &workload {
        print!("| × hotmetrics {}t ", result.threads);
    }
    println!("|");
    print!("|---");
    for _ in 0..workload.len() * 2 + per_call.len() {
        print!("|---:");
    }
    println!("|");
    for (index, peer) in peers.iter().enumerate() {
        print!("| {} ", peer.name);
        for result in &workload {
            print!("| {} ", percent(result.ratio[index]));
        }
        for result in &per_call {
            print!("| {:.2} ", result.ns[index]);
        }
        for result in &workload {
            let ours = (result.ratio[ours] - 1.0).max(1e-4);
            print!("| {:.0}× ", (result.ratio[index] - 1.0) / ours);
        }
        println!("|");
    }
    facade_summary(peers, &per_call);
    println!(
        "hotmetrics engine over the rounds: base rate {:.2e}, {} samples",
        engine.sample_rate(),
        engine.stats().samples_recorded
    );
    engine.shutdown().expect("shutdown");
}

/// The facade's targets, from the per-call rounds above: flat from 1 to 2
/// threads, and far below metrics-exporter-prometheus's recorder.
fn facade_summary(peers: &[Peer], per_call: &[common::Paired]) {
    let index = |name: &str| {
        peers
            .iter()
            .position(|peer| peer.name == name)
            .expect("facade row")
    };
    let (ours, prometheus, handle, floor) = (
        index(FACADE_OURS),
        index(FACADE_PROMETHEUS),
        index("hotmetrics handle"),
        index(FACADE_FLOOR),
    );
    println!("\nmetrics facade, per call (counter! with 2 static labels):");
    for result in per_call {
        println!(
            "  {}t: hotmetrics recorder {:.2} ns, {:.1}× a hotmetrics handle ({:.2} ns), \
             of which the facade's Arc clone and drop {:.2} ns; \
             metrics-exporter-prometheus {:.2} ns, {:.1}× ours",
            result.threads,
            result.ns[ours],
            result.ns[ours] / result.ns[handle],
            result.ns[handle],
            result.ns[floor],
            result.ns[prometheus],
            result.ns[prometheus] / result.ns[ours],
        );
    }
    if let [one, .., many] = per_call {
        // Row 0 is the plain loop: on a loaded machine it slows down with
        // threads too, and the recorder's own scaling is the quotient.
        let plain = many.ns[0] / one.ns[0];
        let scaling = many.ns[ours] / one.ns[ours];
        println!(
            "  hotmetrics recorder {}t / 1t: {scaling:.2}× (the plain loop's: {plain:.2}×; \
             recorder / plain: {:.2}×)",
            many.threads,
            scaling / plain
        );
    }
}

fn main() {
    common::print_machine("peers");
    let peers = peers();
    let mut c = common::criterion();
    criterion_groups(&mut c, &peers);
    if common::summary_wanted() {
        summary(&peers);
    }
    c.final_summary();
}
