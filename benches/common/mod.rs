//! What every bench file shares: the reference workload, the bare
//! thread-local countdown (the floor of a sampled design), the threaded
//! runner, the machine description and the paired-rounds summary.
//!
//! Criterion measures each case on its own, one after the other. On a shared
//! machine the load drifts between cases, so each bench file also ends with
//! a *paired* summary: short batches of every case, interleaved round after
//! round, each ratio taken within its round and the median over rounds
//! reported. That table is the one quoted at the top of each file.

#![allow(dead_code)]

use std::cell::Cell;
use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::Criterion;

// ---------------------------------------------------------------------------
// The reference workload.

/// The message one operation hashes.
pub(crate) const MESSAGE: [u8; 96] = {
    let mut bytes = [0u8; 96];
    let mut i = 0;
    while i < 96 {
        bytes[i] = (i as u8).wrapping_mul(37).wrapping_add(11);
        i += 1;
    }
    bytes
};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// One operation of the reference workload: FNV-1a (64-bit) over the 96-byte
/// message, salted with the operation's index so no two operations are the
/// same and nothing can be computed ahead. The bytes are hashed in three
/// interleaved lanes (byte `i` goes to lane `i % 3`), folded at the end:
/// three serial chains of 32 xor-multiply steps, about 60 ns on one core of
/// the machines we use (a single lane, a 96-step chain, takes about 190 ns;
/// four lanes about 45 ns).
#[inline(always)]
pub(crate) fn fnv1a(message: &[u8; 96], salt: u64) -> u64 {
    let mut lanes = [FNV_OFFSET ^ salt; 3];
    for (lane, hash) in lanes.iter_mut().enumerate() {
        *hash ^= lane as u64;
    }
    for chunk in message.chunks_exact(3) {
        for (hash, &byte) in lanes.iter_mut().zip(chunk) {
            *hash ^= u64::from(byte);
            *hash = hash.wrapping_mul(FNV_PRIME);
        }
    }
    lanes[0] ^ lanes[1].rotate_left(21) ^ lanes[2].rotate_left(42)
}

/// The counter increment an operation records: 1 or 2, from its own hash.
#[inline(always)]
pub(crate) fn op_count(hash: u64) -> u64 {
    1 + (hash >> 63)
}

/// The histogram value an operation records: 0–1023, from its own hash.
#[inline(always)]
pub(crate) fn op_value(hash: u64) -> f64 {
    (hash & 1023) as f64
}

/// `iters` operations of the plain workload.
#[inline(never)]
pub(crate) fn workload_plain(iters: u64) {
    let message = black_box(&MESSAGE);
    let mut acc = 0u64;
    for i in 0..iters {
        acc = acc.wrapping_add(fnv1a(message, i));
    }
    black_box(acc);
}

/// `iters` operations of the workload, each followed by `record(hash)`.
#[inline(always)]
pub(crate) fn workload_with(iters: u64, mut record: impl FnMut(u64)) {
    let message = black_box(&MESSAGE);
    let mut acc = 0u64;
    for i in 0..iters {
        let hash = fnv1a(message, i);
        record(hash);
        acc = acc.wrapping_add(hash);
    }
    black_box(acc);
}

// ---------------------------------------------------------------------------
// The floor: a bare thread-local countdown.

std::thread_local! {
    static COUNTDOWN: Cell<u64> = const { Cell::new(0) };
    static COUNTDOWN_RNG: Cell<u64> = const { Cell::new(0x9e37_79b9_7f4a_7c15) };
}

/// The sampled design reduced to its floor: decrement a `const`
/// thread-local and branch; when it reaches zero, a cold call redraws it
/// with mean ≈ 32 (a 3 % rate) from a cheap random stream, so the branch
/// mispredicts as often as a real 3 % sampler's. `value` is consumed only
/// there, as a real sampler would.
#[inline(always)]
pub(crate) fn countdown_check(value: f64) {
    COUNTDOWN.with(|countdown| {
        let left = countdown.get();
        countdown.set(left.wrapping_sub(1));
        if left == 0 {
            countdown_redraw(countdown, value);
        }
    });
}

#[cold]
#[inline(never)]
fn countdown_redraw(countdown: &Cell<u64>, value: f64) {
    black_box(value);
    let next = COUNTDOWN_RNG.with(|rng| {
        // xorshift64
        let mut x = rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        rng.set(x);
        x
    });
    countdown.set(next % 65);
}

std::thread_local! {
    static RARE_COUNTDOWN: Cell<u64> = const { Cell::new(1 << 40) };
}

/// The floor of the *unsampled* call: the same decrement and branch on a
/// countdown that never runs out within a bench.
#[inline(always)]
pub(crate) fn countdown_check_unsampled(value: f64) {
    RARE_COUNTDOWN.with(|countdown| {
        let left = countdown.get();
        countdown.set(left.wrapping_sub(1));
        if left == 0 {
            countdown_redraw(countdown, value);
        }
    });
}

/// A loop body that costs nothing but cannot be removed: the empty loop of
/// the per-call tables.
#[inline(always)]
pub(crate) fn opaque() {
    // SAFETY: an empty asm block reads and writes nothing; it only keeps the
    // compiler from deleting the loop around it.
    unsafe { std::arch::asm!("", options(nomem, nostack, preserves_flags)) }
}

// ---------------------------------------------------------------------------
// Threads.

/// Number of cores this process may use.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// 1, 2, 4, … up to the cores (the cores themselves included).
pub(crate) fn thread_counts() -> Vec<usize> {
    let cores = cores();
    let mut counts = Vec::new();
    let mut threads = 1;
    while threads < cores {
        counts.push(threads);
        threads *= 2;
    }
    counts.push(cores);
    counts
}

/// Runs `body(iters)` on `threads` fresh threads at once (released together
/// by a barrier) and returns the longest of their times: every thread did
/// `iters` operations, so the result divided by `iters` is the per-thread
/// time of one operation.
///
/// Fresh threads, even for one: a thread's sampler keeps the skip it drew
/// under the previous engine (a skip drawn at a tiny rate would hide the
/// next engine's rate for millions of calls), so every measurement starts
/// from a thread whose first call draws at the rate now in force, as a
/// thread of a real program does when it starts.
pub(crate) fn run_threads(threads: usize, iters: u64, body: &(dyn Fn(u64) + Sync)) -> Duration {
    let threads = threads.max(1);
    let barrier = Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    let started = Instant::now();
                    body(iters);
                    (started, Instant::now())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("bench thread panicked"))
            .collect()
    });
    let longest = spans
        .iter()
        .map(|(started, ended)| *ended - *started)
        .max()
        .unwrap_or_default();
    // The time every thread was running at once, as a share of the longest
    // thread's: on a shared virtual machine the threads of a round may run
    // one after the other (a vCPU taken away meanwhile), and then a
    // contended case shows no contention.
    let last_start = spans.iter().map(|span| span.0).max();
    let first_end = spans.iter().map(|span| span.1).min();
    let together = match (last_start, first_end) {
        (Some(start), Some(end)) => end.saturating_duration_since(start),
        _ => Duration::ZERO,
    };
    let overlap = if longest.is_zero() {
        1.0
    } else {
        together.as_secs_f64() / longest.as_secs_f64()
    };
    LAST_OVERLAP.with(|last| last.set(overlap));
    longest
}

std::thread_local! {
    /// The overlap of this thread's last [`run_threads`] (1 for a single
    /// thread), which [`paired`] reads after each batch.
    static LAST_OVERLAP: Cell<f64> = const { Cell::new(1.0) };
}

/// The least share of a round's time all its threads must run at once for
/// [`paired`] to keep it.
pub(crate) const MIN_OVERLAP: f64 = 0.9;

// ---------------------------------------------------------------------------
// Criterion set-up and run mode.

/// Short defaults (overridable from the command line): a 2-core machine
/// runs many cases.
pub(crate) fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args()
}

/// True when the bench binary runs as a test (`cargo test --benches`,
/// `cargo bench -- --test`) or only lists: every case runs once, quickly.
pub(crate) fn quick_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|arg| arg == flag);
    has("--test") || has("--list") || !has("--bench")
}

/// The criterion name filter given on the command line, if any.
pub(crate) fn name_filter() -> Option<String> {
    let mut args = std::env::args().skip(1).peekable();
    let mut filter = None;
    while let Some(arg) = args.next() {
        if arg.starts_with("--") {
            // Options taking a value.
            if matches!(
                arg.as_str(),
                "--warm-up-time"
                    | "--measurement-time"
                    | "--sample-size"
                    | "--save-baseline"
                    | "--baseline"
                    | "--load-baseline"
                    | "--color"
                    | "--output-format"
                    | "--format"
                    | "--profile-time"
                    | "--noise-threshold"
                    | "--confidence-level"
                    | "--significance-level"
                    | "--nresamples"
                    | "--plotting-backend"
            ) {
                args.next();
            }
            continue;
        }
        filter = Some(arg);
    }
    filter
}

/// Whether the paired summary should run: not when a name filter selects
/// something else (`cargo bench --bench peers -- summary` runs only it).
pub(crate) fn summary_wanted() -> bool {
    if std::env::args().any(|arg| arg == "--list") {
        return false;
    }
    match name_filter() {
        None => true,
        Some(filter) => "summary".contains(filter.as_str()) || filter.contains("summary"),
    }
}

// ---------------------------------------------------------------------------
// The machine.

/// CPU model, cores and load average, for the header of every table.
pub(crate) fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split(':').nth(1))
        .map_or("unknown CPU".to_string(), |model| model.trim().to_string());
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = loadavg.split_whitespace().take(3).collect();
    format!(
        "{model}, {} cores, load average {} at start",
        cores(),
        load.join(" ")
    )
}

/// Prints the machine line once at the start of a bench binary.
pub(crate) fn print_machine(bench: &str) {
    println!("\n== {bench}: {}\n", machine());
}

// ---------------------------------------------------------------------------
// The paired summary.

/// One case of a paired summary: `run(threads, iters)` returns the
/// per-thread nanoseconds of one operation.
pub(crate) struct Case<'a> {
    /// Row label.
    pub(crate) name: String,
    /// Runs `iters` operations per thread on `threads` threads; returns the
    /// wall time.
    pub(crate) run: Box<dyn Fn(usize, u64) -> Duration + 'a>,
}

impl<'a> Case<'a> {
    /// A case from a per-thread body.
    pub(crate) fn new(name: impl Into<String>, body: impl Fn(u64) + Sync + 'a) -> Self {
        Self {
            name: name.into(),
            run: Box::new(move |threads, iters| run_threads(threads, iters, &body)),
        }
    }
}

/// Median of a slice (sorted copy).
pub(crate) fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// Per-case results of a paired run at one thread count.
pub(crate) struct Paired {
    /// Thread count.
    pub(crate) threads: usize,
    /// Median ns per operation per thread, per case.
    pub(crate) ns: Vec<f64>,
    /// Median over rounds of case / first case, per case.
    pub(crate) ratio: Vec<f64>,
    /// ns per operation per thread, per case, per round.
    pub(crate) per_round: Vec<Vec<f64>>,
    /// Batches kept although their threads did not run together (after
    /// five tries).
    pub(crate) batches_apart: u64,
}

impl Paired {
    /// Median over rounds of case `index` / case `reference` in the same round.
    pub(crate) fn ratio_to(&self, index: usize, reference: usize) -> f64 {
        let ratios: Vec<f64> = self.per_round[index]
            .iter()
            .zip(&self.per_round[reference])
            .map(|(ns, reference)| ns / reference)
            .collect();
        median(&ratios)
    }
}

/// Rounds of the paired summary (`HOTMETRICS_BENCH_ROUNDS`, default 15; 2
/// in quick mode).
pub(crate) fn rounds() -> usize {
    if quick_mode() {
        return 2;
    }
    std::env::var("HOTMETRICS_BENCH_ROUNDS")
        .ok()
        .and_then(|raw| raw.parse().ok())
        .filter(|rounds| *rounds > 0)
        .unwrap_or(15)
}

/// Runs every case for about `batch` per round, `rounds()` rounds, the order
/// rotated each round; the first case is the reference of the ratios.
/// `ops_per_sec_hint` sizes the batches (calibrated on the first case).
pub(crate) fn paired(cases: &[Case<'_>], threads: usize, batch: Duration) -> Paired {
    let rounds = rounds();
    let batch = if quick_mode() {
        Duration::from_millis(1)
    } else {
        batch
    };
    // Calibrate each case's batch size once so every batch takes about the
    // same time.
    let iters: Vec<u64> = cases
        .iter()
        .map(|case| {
            let mut iters = 1_000u64;
            loop {
                let took = (case.run)(threads, iters);
                if took >= batch / 4 || iters >= 1 << 34 {
                    let per_iter = took.as_secs_f64() / iters as f64;
                    return ((batch.as_secs_f64() / per_iter.max(1e-12)) as u64).max(1);
                }
                iters *= 4;
            }
        })
        .collect();
    let mut per_case: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let (mut rerun, mut apart) = (0, 0);
    for round in 0..rounds {
        let mut this_round = vec![0.0; cases.len()];
        for offset in 0..cases.len() {
            let index = (round + offset) % cases.len();
            // A batch whose threads did not run together is run again (up
            // to 4 times), so a multi-threaded figure measures threads
            // running at once.
            let mut took = Duration::ZERO;
            for attempt in 0..5 {
                LAST_OVERLAP.with(|last| last.set(1.0));
                took = (cases[index].run)(threads, iters[index]);
                if threads < 2 || LAST_OVERLAP.with(Cell::get) >= MIN_OVERLAP {
                    break;
                }
                if attempt == 4 {
                    apart += 1;
                } else {
                    rerun += 1;
                }
            }
            this_round[index] = took.as_nanos() as f64 / iters[index] as f64;
        }
        for (index, ns) in this_round.iter().enumerate() {
            per_case[index].push(*ns);
            ratios[index].push(ns / this_round[0]);
        }
    }
    if threads > 1 {
        println!(
            "{threads} threads: {rerun} batches run again because their threads did not run \
             together ({:.0} % overlap at least), {apart} kept apart after 5 tries",
            MIN_OVERLAP * 100.0
        );
    }
    Paired {
        threads,
        ns: per_case.iter().map(|values| median(values)).collect(),
        ratio: ratios.iter().map(|values| median(values)).collect(),
        per_round: per_case,
        batches_apart: apart,
    }
}

/// Formats an overhead ratio as a signed percentage.
pub(crate) fn percent(ratio: f64) -> String {
    format!("{:+.1} %", (ratio - 1.0) * 100.0)
}
