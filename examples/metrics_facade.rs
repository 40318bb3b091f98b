//! A program whose dependencies record through the `metrics` facade, and
//! whose own code uses `record!`: one engine, one snapshot.
//!
//! `cargo run --release --features metrics --example metrics_facade`
//!
//! The `payments` module stands for a dependency: it only knows the
//! `metrics` crate. `main` installs the engine and hotmetrics' facade
//! recorder, runs the dependency on two threads, records its own counter
//! with `record!`, and checks every estimate against the truth (within 5
//! standard errors; exits 1 otherwise).

use std::process::ExitCode;

use hotmetrics::record;

/// A crate-style module that knows nothing of hotmetrics.
mod payments {
    use metrics::{counter, describe_counter, describe_histogram, gauge, histogram, Unit};

    /// What a library does once, at start-up.
    pub(crate) fn describe() {
        describe_counter!("payments.processed", Unit::Count, "Payments processed");
        describe_histogram!(
            "payments.amount_cents",
            Unit::Count,
            "Amount of each payment"
        );
    }

    /// Processes `n` payments; returns the sum of the amounts.
    pub(crate) fn process(n: u64, worker: u64) -> u64 {
        let mut total = 0;
        for i in 0..n {
            let amount = 100 + (i * 7919 + worker) % 900;
            counter!("payments.processed", "method" => "card").increment(1);
            histogram!("payments.amount_cents").record(amount as f64);
            total += amount;
        }
        gauge!("payments.workers").increment(1.0);
        total
    }
}

fn main() -> ExitCode {
    let engine = hotmetrics::Engine::builder()
        .install()
        .expect("valid configuration");
    metrics::set_global_recorder(hotmetrics::metrics_rs::Recorder::default())
        .expect("the only metrics recorder");

    payments::describe();
    let per_worker = 1_000_000u64;
    let workers = 2u64;
    let started = std::time::Instant::now();
    let amounts: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|worker| scope.spawn(move || payments::process(per_worker, worker)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let elapsed = started.elapsed();
    // The program's own code, through hotmetrics directly.
    for _ in 0..100_000 {
        record!(counter: "app.loop_iterations", 1);
    }

    let snapshot = engine.snapshot();
    let calls = (per_worker * workers) as f64;
    let processed = snapshot
        .counter("payments.processed", &[("method", "card")])
        .expect("the facade's counter");
    let amount = snapshot
        .histogram("payments.amount_cents", &[])
        .expect("the facade's histogram");
    let own = snapshot
        .counter("app.loop_iterations", &[])
        .expect("record!'s counter");
    let described = snapshot
        .series("payments.processed", &[("method", "card")])
        .expect("the series");
    println!(
        "{} facade calls (a counter! and a histogram! each) on {workers} threads in {elapsed:.2?}",
        calls as u64
    );
    println!(
        "payments.processed    {:.0} ± {:.0}  (true {calls})  unit {:?}, {:?}",
        processed.value, processed.std_error, described.unit, described.description
    );
    println!(
        "payments.amount_cents count {:.0} ± {:.0}, sum {:.0} ± {:.0}  (true {calls}, {amounts})",
        amount.count.value, amount.count.std_error, amount.sum.value, amount.sum.std_error
    );
    println!(
        "payments.workers      {:?}",
        snapshot.gauge("payments.workers", &[])
    );
    println!(
        "app.loop_iterations   {:.0} ± {:.0}  (true 100000, through record!)",
        own.value, own.std_error
    );
    println!("facade recorder: {:?}", hotmetrics::metrics_rs::stats());

    let within = |estimate: &hotmetrics::Estimate, truth: f64| {
        (estimate.value - truth).abs() <= 5.0 * estimate.std_error.max(1e-9)
            || estimate.value == truth
    };
    let ok = within(&processed, calls)
        && within(&amount.count, calls)
        && within(&amount.sum, amounts as f64)
        && within(&own, 100_000.0)
        && snapshot.gauge("payments.workers", &[]) == Some(workers as f64)
        && described.unit.as_deref() == Some("{count}")
        && described.description.as_deref() == Some("Payments processed");
    engine.shutdown().expect("shutdown");
    if ok {
        println!("every estimate within 5 standard errors of the truth");
        ExitCode::SUCCESS
    } else {
        eprintln!("an estimate is off, or a description is missing");
        ExitCode::FAILURE
    }
}
