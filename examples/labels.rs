//! Label values known only at run time, descriptions, and label sets that
//! come and go: a service whose tenants arrive, send requests for a while
//! and leave.
//!
//! `record!` takes the tenant, status and route as expressions (a
//! `String`, a number, a `&str`): they are looked at only on the calls that
//! are recorded. `describe!` gives the metrics a unit and help text, which
//! reach Prometheus `# HELP`/`# UNIT` and OTLP. An idle timeout lets the
//! series of a tenant that left go: it leaves the exports, frees its place
//! under the cardinality limit, and its cell is reused for a tenant that
//! comes; a tenant that comes back starts a new series from zero.
//!
//! `cargo run --release --example labels -- --seconds 3`
//!
//! Exits with an error unless: every live tenant's request count is within
//! 5 standard errors of what it sent (exact ones equal it), the tenants
//! that sent within the timeout are exported and none that left more than
//! three timeouts ago is, the returning tenant's count is only what it sent
//! since it came back, and the Prometheus text carries the descriptions.

use std::collections::HashMap;
use std::error::Error;
use std::time::{Duration, Instant};

use hotmetrics::export::Prometheus;
use hotmetrics::{describe, record, Engine};

/// How long a tenant may stay silent before its series go.
const IDLE_TIMEOUT: Duration = Duration::from_millis(200);
/// How long each group of tenants sends requests.
const PHASE: Duration = Duration::from_millis(100);
/// Tenants per phase; each phase brings new ones.
const TENANTS: u32 = 6;
const ROUTES: [&str; 3] = ["/orders", "/search", "/users/:id"];

fn main() -> Result<(), Box<dyn Error>> {
    let seconds = seconds_from_args()?;
    let prometheus = Prometheus::builder().without_server().build()?;
    let engine = Engine::builder()
        .idle_timeout(IDLE_TIMEOUT)
        .export_interval(PHASE)
        .cardinality_limit(100)
        .exporter(prometheus.clone())
        .install()?;
    describe!(counter: "app.requests", unit: "{request}", "Requests served, by tenant and status");
    describe!(histogram: "app.latency_us", unit: "us", "Time to serve a request, by route");

    // What each (tenant, status) was sent in its current life, and when
    // each tenant last sent.
    let mut sent: HashMap<(String, u16), u64> = HashMap::new();
    let mut last_sent: HashMap<String, Instant> = HashMap::new();
    let phases = (seconds * 1000.0 / PHASE.as_millis() as f64).max(8.0) as u32;
    let mut request: u64 = 0;
    for phase in 0..phases {
        // The returning tenant sends in the first and the last phase only.
        let returning = phase == 0 || phase + 1 == phases;
        if phase + 1 == phases {
            sent.retain(|(tenant, _), _| tenant != "returning");
        }
        let until = Instant::now() + PHASE;
        while Instant::now() < until {
            for _ in 0..1000 {
                request += 1;
                let slot = (request % u64::from(TENANTS + 1)) as u32;
                let tenant = if slot == TENANTS {
                    if !returning {
                        continue;
                    }
                    String::from("returning")
                } else {
                    format!("t{}", phase * TENANTS + slot)
                };
                let status: u16 = if request.is_multiple_of(97) { 500 } else { 200 };
                let route = ROUTES[(request % 3) as usize];
                let latency_us = 80.0 + (request % 400) as f64;
                record!(counter: "app.requests", 1, "tenant" => &tenant, "status" => status);
                record!(histogram: "app.latency_us", latency_us, "route" => route);
                *sent.entry((tenant, status)).or_default() += 1;
            }
            let now = Instant::now();
            for slot in 0..TENANTS {
                last_sent.insert(format!("t{}", phase * TENANTS + slot), now);
            }
            if returning {
                last_sent.insert(String::from("returning"), now);
            }
        }
    }
    // One more export interval (shorter than the idle timeout), so the
    // Prometheus text is of this moment and the last tenants are live.
    std::thread::sleep(PHASE);
    let snapshot = engine.snapshot();
    let mut failures = Vec::new();

    println!("tenant      status  estimate                 sent  rel. error");
    let mut live = 0;
    let mut gone = 0;
    for ((tenant, status), &truth) in &sent {
        let status = status.to_string();
        let found = snapshot.counter("app.requests", &[("tenant", tenant), ("status", &status)]);
        let idle_for = last_sent[tenant].elapsed();
        match found {
            Some(estimate) => {
                live += 1;
                let off = (estimate.value - truth as f64).abs();
                let allowed = 5.0 * estimate.std_error;
                if off > allowed {
                    failures.push(format!(
                        "{tenant}/{status}: {:.0} ± {:.0} for {truth} sent",
                        estimate.value, estimate.std_error
                    ));
                }
                if tenant == "returning" || live <= 4 {
                    println!(
                        "{tenant:<11} {status:<7} {:<24} {truth:<5} {:.2}%",
                        format!("{:.0} ± {:.0}", estimate.value, estimate.std_error),
                        estimate.relative_error() * 100.0
                    );
                }
                if idle_for > IDLE_TIMEOUT * 3 {
                    failures.push(format!(
                        "{tenant}/{status} still exported {idle_for:?} after its last request"
                    ));
                }
            }
            None => {
                gone += 1;
                // Not idle for a whole timeout, so not retired; a set of a
                // thousand calls or more has been sampled.
                if idle_for < IDLE_TIMEOUT && truth >= 1000 {
                    failures.push(format!(
                        "{tenant}/{status}: {truth} sent, the last {idle_for:?} ago, \
                         but it is not exported"
                    ));
                }
            }
        }
    }
    let stats = &snapshot.stats;
    println!(
        "{live} label sets live, {gone} gone; {} series retired, {} values arrived after \
         their series was retired, {} label sets overflowed",
        stats.series_retired, stats.retired_values, stats.series_overflowed
    );
    if stats.series_retired == 0 {
        failures.push("no series was retired".to_string());
    }

    let text = prometheus.render();
    let described: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("# HELP app_") || line.starts_with("# UNIT app_"))
        .collect();
    println!("Prometheus text, descriptions:");
    for line in &described {
        println!("  {line}");
    }
    if !text.contains("# HELP app_requests_total Requests served, by tenant and status") {
        failures.push("the counter's description is missing from the Prometheus text".into());
    }
    if !text.contains("# HELP app_latency_us Time to serve a request, by route") {
        failures.push("the histogram's description is missing from the Prometheus text".into());
    }
    engine.shutdown()?;
    if failures.is_empty() {
        println!("every check passed");
        Ok(())
    } else {
        Err(failures.join("\n").into())
    }
}

fn seconds_from_args() -> Result<f64, String> {
    let mut seconds = 3.0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = args.next().unwrap_or_default();
                seconds = value
                    .parse()
                    .map_err(|_| format!("--seconds expects a number, got {value:?}"))?;
            }
            other => return Err(format!("unknown argument {other:?} (try --seconds N)")),
        }
    }
    Ok(seconds)
}
