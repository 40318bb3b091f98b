//! Shutdown against a failing collector: the final totals leave within the
//! engine's shutdown budget, with the default settings (5 s budget, 1 s
//! first backoff doubling, 30 s export timeout).

use std::time::{Duration, Instant};

use super::collector::{Collector, Received, Reply};
use super::*;
use crate::export::exporter::Exporter;
use crate::record;
use crate::test_support::engine_lock;

/// The engine's default `shutdown_timeout`.
const BUDGET: Duration = Duration::from_secs(5);

/// What a loaded machine may add to `shutdown()` past its budget: the
/// export thread's last attempt ends inside the budget, then it must be
/// scheduled to report and be joined (45 ms was seen with every core busy
/// with other builds).
const SCHEDULING_SLACK: Duration = Duration::from_millis(250);

/// Refuses the first three requests with 503, then accepts.
fn three_refusals() -> Collector {
    Collector::start(|n| {
        if n < 3 {
            Reply::status(503)
        } else {
            Reply::ok()
        }
    })
}

/// The OTLP exporter with every default (retry policy, timeouts, circuit
/// breaker), ignoring the environment.
fn default_exporter(collector: &Collector) -> Otlp {
    Otlp::builder()
        .env_vars(NO_ENV)
        .endpoint(collector.url())
        .build()
        .expect("valid settings")
}

fn total(received: &Received, name: &str) -> Option<f64> {
    has_metric(&received.request, name).then(|| value(&points(metric(&received.request, name))[0]))
}

/// Prints when each request arrived, relative to the `shutdown()` call.
fn timeline(received: &[Received], began: Instant, name: &str) -> String {
    received
        .iter()
        .map(|r| {
            let at = if r.at >= began {
                (r.at - began).as_secs_f64()
            } else {
                -(began - r.at).as_secs_f64()
            };
            format!("{at:+.3}s {} {:?}", r.status, total(r, name))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The final export itself meets three 503s: its retries (1 s, 2 s, 4 s
/// backoff with jitter) are fitted into the 5 s budget, the last wait cut
/// short, and the fourth attempt carries the final totals.
#[test]
fn the_final_export_fits_its_retries_into_the_budget() {
    let _engine_lock = engine_lock();
    let collector = three_refusals();
    // The default export interval (10 s): no periodic export happens, the
    // final export is the first request.
    let engine = crate::Engine::builder()
        .exporter(default_exporter(&collector))
        .install()
        .unwrap();
    for _ in 0..4321 {
        record!(critical counter: "final.orders", 1);
    }
    let began = Instant::now();
    let outcome = engine.shutdown();
    let took = began.elapsed();
    let received = collector.received();
    println!(
        "shutdown took {took:?}: {}",
        timeline(&received, began, "final.orders")
    );
    outcome.expect("the final totals are accepted within the shutdown budget");
    assert!(
        took < BUDGET + SCHEDULING_SLACK,
        "shutdown returned after {took:?}"
    );
    assert_eq!(received.len(), 4, "three refusals, then accepted");
    let last = &received[3];
    assert_eq!(last.status, 200);
    assert_eq!(total(last, "final.orders"), Some(4321.0));
    println!(
        "final request accepted {:?} after shutdown() was called",
        last.at - began
    );
}

/// Shutdown begins while a periodic export sleeps in its backoff after a
/// 503: the sleep is interrupted, the final snapshot goes at once, every
/// later attempt carries it, and it is accepted within the budget.
#[test]
fn shutdown_interrupts_the_backoff_and_sends_the_final_totals() {
    let _engine_lock = engine_lock();
    let collector = three_refusals();
    let engine = crate::Engine::builder()
        .export_interval(Duration::from_millis(50))
        .exporter(default_exporter(&collector))
        .install()
        .unwrap();
    for _ in 0..1000 {
        record!(critical counter: "backoff.orders", 1);
    }
    // A periodic export meets the first 503 and sleeps 0.5–1 s before its
    // retry.
    assert!(collector.wait_until(Duration::from_secs(5), |r| !r.is_empty()));
    for _ in 0..234 {
        record!(critical counter: "backoff.orders", 1);
    }
    let began = Instant::now();
    let outcome = engine.shutdown();
    let took = began.elapsed();
    let received = collector.received();
    println!(
        "shutdown took {took:?}: {}",
        timeline(&received, began, "backoff.orders")
    );
    outcome.expect("the final totals are accepted within the shutdown budget");
    assert!(
        took < BUDGET + SCHEDULING_SLACK,
        "shutdown returned after {took:?}"
    );

    let after: Vec<&Received> = received.iter().filter(|r| r.at >= began).collect();
    assert!(!after.is_empty(), "requests after shutdown() was called");
    let first = after[0].at - began;
    assert!(
        first < Duration::from_millis(250),
        "the sleeping retry woke at shutdown: first request after {first:?}"
    );
    for request in &after {
        assert_eq!(
            total(request, "backoff.orders"),
            Some(1234.0),
            "every attempt after shutdown began carries the final totals"
        );
    }
    let accepted = after.last().unwrap();
    assert_eq!(accepted.status, 200);
    assert_eq!(received.iter().filter(|r| r.status == 200).count(), 1);
    println!(
        "final request accepted {:?} after shutdown() was called",
        accepted.at - began
    );
}

/// Exports that take 300 ms each: a slow backend, no retries.
struct Slow;

impl Exporter for Slow {
    fn export(&mut self, _snapshot: &Snapshot) -> Result<(), crate::ExportError> {
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    }

    fn name(&self) -> &str {
        "slow"
    }
}

/// The final snapshot goes to every exporter at once: the OTLP exporter's
/// sleeping retry wakes at shutdown, not once the slow exporter before it
/// is done.
#[test]
fn every_exporter_gets_the_final_snapshot_at_once() {
    let _engine_lock = engine_lock();
    let collector = Collector::start(|n| {
        if n == 0 {
            Reply::status(503)
        } else {
            Reply::ok()
        }
    });
    let engine = crate::Engine::builder()
        .export_interval(Duration::from_millis(50))
        .exporter(Slow)
        .exporter(default_exporter(&collector))
        .install()
        .unwrap();
    for _ in 0..99 {
        record!(critical counter: "both.orders", 1);
    }
    assert!(collector.wait_until(Duration::from_secs(5), |r| !r.is_empty()));
    record!(critical counter: "both.orders", 1);
    let began = Instant::now();
    let outcome = engine.shutdown();
    let took = began.elapsed();
    let received = collector.received();
    println!(
        "shutdown took {took:?}: {}",
        timeline(&received, began, "both.orders")
    );
    outcome.expect("both final exports succeed");
    assert!(
        took < BUDGET + SCHEDULING_SLACK,
        "shutdown returned after {took:?}"
    );
    let after: Vec<&Received> = received.iter().filter(|r| r.at >= began).collect();
    let first = after.first().expect("a request after shutdown began");
    assert!(
        first.at - began < Duration::from_millis(250),
        "the OTLP exporter did not wait for the slow one: {:?}",
        first.at - began
    );
    assert_eq!(first.status, 200);
    assert_eq!(total(first, "both.orders"), Some(100.0));
}
