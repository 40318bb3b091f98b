//! Per-call cost of every `record!` form, in every engine state, beside an
//! empty loop, a shared `AtomicU64::fetch_add` and the bare thread-local
//! countdown (the floor of a sampled design).
//!
//! Last results (summary table; AMD EPYC, 2 vCPU under KVM, load average
//! 2.3 → 1.4; one thread):
//!
//! | case | ns/call | × floor (same rate) | × fetch_add |
//! |---|---:|---:|---:|
//! | empty loop | 0.42 | 0.15 | 0.047 |
//! | shared AtomicU64::fetch_add | 9.00 | 3.21 | 1.000 |
//! | countdown floor, unsampled | 2.80 | 1.00 | 0.311 |
//! | countdown floor, 3 % | 3.31 | 1.00 | 0.368 |
//! | counter, no engine | 2.82 | 1.01 | 0.313 |
//! | counter, unsampled | 2.80 | 1.00 | 0.311 |
//! | counter, default 3 % | 3.97 | 1.20 | 0.442 |
//! | counter, 3 % + flusher draining | 4.02 | 1.21 | 0.447 |
//! | counter, rate 1.0 | 28.87 | 10.25 | 3.199 |
//! | critical counter | 18.39 | 6.55 | 2.044 |
//! | counter + 2 labels, 3 % | 3.79 | 1.15 | 0.421 |
//! | updown, 3 % | 3.83 | 1.16 | 0.425 |
//! | histogram, no engine | 2.83 | 1.01 | 0.314 |
//! | histogram, unsampled | 2.80 | 1.00 | 0.312 |
//! | histogram, default 3 % | 4.04 | 1.22 | 0.449 |
//! | histogram, rate 1.0 | 31.49 | 11.22 | 3.541 |
//! | critical histogram | 35.09 | 12.56 | 3.907 |
//! | gauge, installed | 4.66 | 1.66 | 0.517 |
//! | timed, default 3 % | 7.30 | 2.20 | 0.809 |
//!
//! Exact counters in the thread's own cell (`hot/exact.rs`), measured
//! after the table above, beside the same commit without them (Intel Xeon,
//! 2 vCPU, load average 3–4; `cargo bench --bench record --
//! 'record/(counter|updown)/(unsampled|critical)'`, two rounds):
//!
//! | case | ns/call | × counter, unsampled | before (shared `fetch_add`) |
//! |---|---:|---:|---:|
//! | counter, unsampled | 1.88–2.09 | 1.00 | 2.21–2.30 |
//! | critical counter | 1.98–2.23 | 1.05–1.07 | 10.03–10.41 |
//! | critical updown | 2.13–2.28 | 1.02–1.21 | 10.13–10.31 |
//! | updown (exact in every state) | 1.98–2.11 | 1.01–1.05 | (sampled) |
//!
//! The unsampled call is the floor's own shape: the callsite's step taken
//! off the thread-local countdown and a branch on the borrow (one load more
//! than the floor, for the step). In a tight loop both are bound by the
//! countdown's store-to-load round trip (~2.8 ns), which is why neither
//! reaches 0.25× of an uncontended `fetch_add`.
//!
//! Label values given as expressions (`"route" => route`), beside the
//! same call with literal labels, same run (Intel Xeon, 2 vCPU, load
//! average 1.5–2.3; `cargo bench --bench record -- summary`; ratio = median
//! of per-round ratios; two runs), with the series found through each
//! thread's cache:
//!
//! | case | ns/call | × literal labels, same state |
//! |---|---:|---:|
//! | counter + 2 labels, unsampled | 1.86 | 1.00 |
//! | counter + 2 dynamic labels, unsampled | 1.80–1.86 | 0.97–0.99 |
//! | counter + format! label, unsampled | 1.91–1.94 | 1.03–1.04 |
//! | counter + 2 labels, 3 % | 2.64–2.66 | 1.00 |
//! | counter + 2 dynamic labels, 3 % | 3.94–4.00 | 1.50 |
//! | counter + format! label, 3 % | 4.07–4.12 | 1.54–1.55 |
//!
//! (The per-callsite cache it replaced gave, on the same machine in
//! between: 0.95–0.97, 1.03–1.04, 1.58, 1.61.)
//!
//! Run: `CARGO_TARGET_DIR=target/bench cargo bench --bench record`.
//! Figures are ratios from a noisy shared machine.

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::{countdown_check, countdown_check_unsampled, opaque, paired, Case};
use hotmetrics::{record, Engine};

/// Engine states a form is measured in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Nothing installed: what a library pays when its user installs no engine.
    NoEngine,
    /// Installed at a rate so low no call is sampled within a bench: the
    /// unsampled path alone.
    Unsampled,
    /// Installed with the default 3 % rate (held fixed for the bench).
    Default,
    /// Installed at rate 1.0: every call sampled and pushed.
    Rate1,
    /// Default rate while another thread keeps the flusher draining.
    Draining,
}

impl State {
    fn id(self) -> &'static str {
        match self {
            State::NoEngine => "no_engine",
            State::Unsampled => "unsampled",
            State::Default => "default_3pct",
            State::Rate1 => "rate_1",
            State::Draining => "default_3pct_flusher_draining",
        }
    }

    fn install(self) -> Option<Installed> {
        let rate = match self {
            State::NoEngine => return None,
            State::Unsampled => 1e-7,
            State::Default | State::Draining => 0.03,
            State::Rate1 => 1.0,
        };
        let engine = Engine::builder()
            .sample_rate(rate)
            .adaptive(false)
            .install()
            .expect("no other engine is installed");
        let background = (self == State::Draining).then(Background::start);
        Some(Installed { engine, background })
    }
}

/// An installed engine and, for [`State::Draining`], the thread feeding it.
struct Installed {
    engine: Engine,
    background: Option<Background>,
}

impl Drop for Installed {
    fn drop(&mut self) {
        if let Some(background) = self.background.take() {
            background.stop();
        }
        self.engine.shutdown().expect("shutdown");
    }
}

/// A thread that pushes bursts of exact histogram samples (p = 1, straight
/// to the ring), 500 every millisecond: the flusher drains about 500 000
/// samples a second while the bench thread records.
struct Background {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl Background {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut value = 0u64;
            while !flag.load(Ordering::Relaxed) {
                for _ in 0..500 {
                    value = value.wrapping_add(7) & 1023;
                    record!(critical histogram: "bench.record.background", value as f64);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        Self { stop, handle }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("background thread");
    }
}

static SHARED: AtomicU64 = AtomicU64::new(0);

/// Label values the dynamic forms pick from.
const ROUTES: [&str; 4] = ["/api", "/users", "/login", "/health"];

/// One loop per form; each `record!` site is its own static callsite.
mod forms {
    use super::*;

    pub(crate) fn empty(iters: u64) {
        for _ in 0..iters {
            opaque();
        }
    }

    pub(crate) fn fetch_add(iters: u64) {
        for _ in 0..iters {
            SHARED.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn floor_3pct(iters: u64) {
        for _ in 0..iters {
            countdown_check(1.0);
        }
    }

    pub(crate) fn floor_unsampled(iters: u64) {
        for _ in 0..iters {
            countdown_check_unsampled(1.0);
        }
    }

    pub(crate) fn counter(iters: u64) {
        for _ in 0..iters {
            record!(counter: "bench.record.counter", 1u64);
        }
    }

    pub(crate) fn counter_labels(iters: u64) {
        for _ in 0..iters {
            record!(counter: "bench.record.requests", 1u64, "route" => "/api", "status" => "200");
        }
    }

    /// Label values from expressions: a `&str` picked per call and a number.
    pub(crate) fn counter_dynamic(iters: u64) {
        for i in 0..iters {
            let route = ROUTES[(i & 3) as usize];
            let status = 200 + (i & 1) as u16;
            record!(counter: "bench.record.requests_dynamic", 1u64, "route" => route, "status" => status);
        }
    }

    /// A label value that allocates when it is evaluated (`format!`): an
    /// unsampled call does not evaluate it.
    pub(crate) fn counter_format(iters: u64) {
        for i in 0..iters {
            record!(counter: "bench.record.requests_format", 1u64, "user" => format!("user-{}", i & 3));
        }
    }

    /// A level is never sampled: exact in every state, like `critical_updown`.
    pub(crate) fn updown(iters: u64) {
        for _ in 0..iters {
            record!(updown: "bench.record.updown", -1i64);
        }
    }

    pub(crate) fn histogram(iters: u64) {
        let mut value = 0.0;
        for _ in 0..iters {
            value += 1.0;
            record!(histogram: "bench.record.histogram", value);
        }
        black_box(value);
    }

    pub(crate) fn gauge(iters: u64) {
        let mut value = 0.0;
        for _ in 0..iters {
            value += 1.0;
            record!(gauge: "bench.record.gauge", value);
        }
        black_box(value);
    }

    pub(crate) fn timed(iters: u64) {
        let mut acc = 0u64;
        for i in 0..iters {
            acc = acc.wrapping_add(record!(timed: "bench.record.timed_ns", { i ^ 1 }));
        }
        black_box(acc);
    }

    pub(crate) fn critical_counter(iters: u64) {
        for _ in 0..iters {
            record!(critical counter: "bench.record.critical_counter", 1u64);
        }
    }

    pub(crate) fn critical_updown(iters: u64) {
        for _ in 0..iters {
            record!(critical updown: "bench.record.critical_updown", -1i64);
        }
    }

    pub(crate) fn critical_histogram(iters: u64) {
        let mut value = 0.0;
        for _ in 0..iters {
            value += 1.0;
            record!(critical histogram: "bench.record.critical_histogram", value);
        }
        black_box(value);
    }
}

type Body = fn(u64);

/// The forms measured in every state, with their group names.
const FORMS: [(&str, Body); 8] = [
    ("counter", forms::counter),
    ("counter_labels", forms::counter_labels),
    ("counter_dynamic_labels", forms::counter_dynamic),
    ("counter_format_label", forms::counter_format),
    ("updown", forms::updown),
    ("histogram", forms::histogram),
    ("gauge", forms::gauge),
    ("timed", forms::timed),
];

/// The critical forms, measured with the default engine installed.
const CRITICAL: [(&str, Body); 3] = [
    ("counter", forms::critical_counter),
    ("updown", forms::critical_updown),
    ("histogram", forms::critical_histogram),
];

fn one_thread(body: Body) -> impl FnMut(&mut criterion::Bencher<'_>) {
    move |b| b.iter_custom(|iters| common::run_threads(1, iters, &body))
}

fn criterion_groups(c: &mut criterion::Criterion) {
    // Baselines, in every form's group so the ratios read within a group.
    for (form, _) in FORMS {
        let mut group = c.benchmark_group(format!("record/{form}"));
        group.bench_function("empty_loop", one_thread(forms::empty));
        group.bench_function("atomic_fetch_add", one_thread(forms::fetch_add));
        group.bench_function("countdown_floor_3pct", one_thread(forms::floor_3pct));
        group.bench_function(
            "countdown_floor_unsampled",
            one_thread(forms::floor_unsampled),
        );
        group.finish();
    }
    for state in [
        State::NoEngine,
        State::Unsampled,
        State::Default,
        State::Rate1,
        State::Draining,
    ] {
        let installed = state.install();
        for (form, body) in FORMS {
            let mut group = c.benchmark_group(format!("record/{form}"));
            group.bench_function(state.id(), one_thread(body));
            group.finish();
        }
        if state == State::Default {
            for (form, body) in CRITICAL {
                let mut group = c.benchmark_group(format!("record/{form}"));
                group.bench_function("critical", one_thread(body));
                group.finish();
            }
        }
        drop(installed);
    }
}

/// A paired case whose batches run with the engine in `state`.
fn case(name: &str, state: State, body: Body) -> Case<'static> {
    Case {
        name: name.to_string(),
        run: Box::new(move |threads, iters| {
            let installed = state.install();
            let took = common::run_threads(threads, iters, &body);
            drop(installed);
            took
        }),
    }
}

fn summary() {
    let cases = vec![
        case("empty loop", State::NoEngine, forms::empty),
        case(
            "shared AtomicU64::fetch_add",
            State::NoEngine,
            forms::fetch_add,
        ),
        case(
            "countdown floor, unsampled",
            State::NoEngine,
            forms::floor_unsampled,
        ),
        case("countdown floor, 3 %", State::NoEngine, forms::floor_3pct),
        case("counter, no engine", State::NoEngine, forms::counter),
        case("counter, unsampled", State::Unsampled, forms::counter),
        case("counter, default 3 %", State::Default, forms::counter),
        case("counter, 3 % + draining", State::Draining, forms::counter),
        case("counter, rate 1.0", State::Rate1, forms::counter),
        case("critical counter", State::Default, forms::critical_counter),
        case(
            "counter + 2 labels, unsampled",
            State::Unsampled,
            forms::counter_labels,
        ),
        case(
            "counter + 2 dynamic labels, unsampled",
            State::Unsampled,
            forms::counter_dynamic,
        ),
        case(
            "counter + format! label, unsampled",
            State::Unsampled,
            forms::counter_format,
        ),
        case(
            "counter + 2 labels, 3 %",
            State::Default,
            forms::counter_labels,
        ),
        case(
            "counter + 2 dynamic labels, 3 %",
            State::Default,
            forms::counter_dynamic,
        ),
        case(
            "counter + format! label, 3 %",
            State::Default,
            forms::counter_format,
        ),
        case("updown (exact)", State::Default, forms::updown),
        case("critical updown", State::Default, forms::critical_updown),
        case("histogram, no engine", State::NoEngine, forms::histogram),
        case("histogram, unsampled", State::Unsampled, forms::histogram),
        case("histogram, default 3 %", State::Default, forms::histogram),
        case("histogram, rate 1.0", State::Rate1, forms::histogram),
        case(
            "critical histogram",
            State::Default,
            forms::critical_histogram,
        ),
        case("gauge, installed", State::Default, forms::gauge),
        case("timed, default 3 %", State::Default, forms::timed),
    ];
    let result = paired(&cases, 1, Duration::from_millis(30));
    let index_of = |name: &str| {
        cases
            .iter()
            .position(|case| case.name == name)
            .expect("case exists")
    };
    let floor = index_of("countdown floor, unsampled");
    let floor_3pct = index_of("countdown floor, 3 %");
    let fetch_add = index_of("shared AtomicU64::fetch_add");
    let literal_unsampled = index_of("counter + 2 labels, unsampled");
    let literal_3pct = index_of("counter + 2 labels, 3 %");
    println!("\nrecord summary, 1 thread (median of interleaved rounds)");
    println!("| case | ns/call | × floor (same rate) | × fetch_add |");
    println!("|---|---:|---:|---:|");
    for (index, case) in cases.iter().enumerate() {
        let reference = if case.name.contains("3 %") {
            floor_3pct
        } else {
            floor
        };
        println!(
            "| {} | {:.2} | {:.2} | {:.3} |",
            case.name,
            result.ns[index],
            result.ratio_to(index, reference),
            result.ratio_to(index, fetch_add)
        );
    }
    println!("\nlabel expressions against literal labels, same run");
    println!("| case | × literal labels (same state) |");
    println!("|---|---:|");
    for name in [
        "counter + 2 dynamic labels, unsampled",
        "counter + format! label, unsampled",
        "counter + 2 dynamic labels, 3 %",
        "counter + format! label, 3 %",
    ] {
        let reference = if name.contains("3 %") {
            literal_3pct
        } else {
            literal_unsampled
        };
        println!(
            "| {name} | {:.3} |",
            result.ratio_to(index_of(name), reference)
        );
    }
}

fn main() {
    common::print_machine("record");
    let mut c = common::criterion();
    criterion_groups(&mut c);
    if common::summary_wanted() {
        summary();
    }
    c.final_summary();
}
