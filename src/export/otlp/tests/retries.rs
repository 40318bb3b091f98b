//! Retries seen through an [`Inbox`]: each attempt sends the newest
//! snapshot (cumulative totals, or under delta the change since the last
//! accepted one), waits and request timeouts fit the deadline, and the
//! final snapshot is tried even with the circuit open.

use std::fmt;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::time::Instant;

use super::*;
use crate::export::exporter::Exporter;
use crate::export::inbox::{Inbox, Job};
use crate::export::otlp::Temporality;
use crate::report::stats::CircuitState;
use crate::ExportError;

/// One attempt as the transport saw it.
#[derive(Clone, Debug)]
struct Sent {
    request: ExportMetricsServiceRequest,
    timeout: Duration,
    at: Instant,
}

type Script = Box<dyn FnMut(usize) -> Attempt + Send>;

/// Answers from a script (which may inbox the exporter's queue) and keeps
/// each request with its timeout and time.
struct Clocked {
    sent: Arc<Mutex<Vec<Sent>>>,
    script: Script,
}

impl fmt::Debug for Clocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clocked").finish_non_exhaustive()
    }
}

impl Transport for Clocked {
    fn send(&mut self, request: &ExportMetricsServiceRequest, timeout: Duration) -> Attempt {
        let n = {
            let mut sent = self.sent.lock().unwrap();
            sent.push(Sent {
                request: request.clone(),
                timeout,
                at: Instant::now(),
            });
            sent.len() - 1
        };
        (self.script)(n)
    }
}

fn clocked(builder: OtlpBuilder, script: Script) -> (Otlp, Arc<Mutex<Vec<Sent>>>) {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let transport = Clocked {
        sent: sent.clone(),
        script,
    };
    let config = builder.resolve().expect("valid settings");
    (Otlp::with_transport(config, Box::new(transport)), sent)
}

fn retryable() -> Attempt {
    Attempt::Retryable {
        reason: "HTTP 503".into(),
        retry_after: None,
    }
}

fn orders(value: f64, seconds: u64) -> Arc<Snapshot> {
    Arc::new(snapshot_at(
        vec![series("orders", &[], MetricValue::Counter(exact(value)))],
        seconds,
    ))
}

fn orders_in(request: &ExportMetricsServiceRequest) -> f64 {
    value(&points(metric(request, "orders"))[0])
}

/// A queue like an exporter thread's, and its sending side.
fn queue() -> (SyncSender<Job>, Receiver<Job>) {
    mpsc::sync_channel(1)
}

/// Refuses the first attempt, during which `newer` reaches the queue;
/// accepts the rest.
fn refuse_once_while(queue: SyncSender<Job>, newer: Arc<Snapshot>) -> Script {
    let mut newer = Some(newer);
    Box::new(move |n| {
        if let Some(snapshot) = newer.take() {
            queue.send(Job::Export(snapshot)).unwrap();
        }
        if n == 0 {
            retryable()
        } else {
            accepted()
        }
    })
}

#[test]
fn a_retry_sends_the_snapshot_that_arrived_meanwhile() {
    let (sender, jobs) = queue();
    let script = refuse_once_while(sender, orders(25.0, 2));
    let (mut otlp, sent) = clocked(quick("http://127.0.0.1:9"), script);
    let mut inbox = Inbox::queued(Job::Export(orders(10.0, 1)), &jobs);
    otlp.export_from(&mut inbox).unwrap();
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 2);
    assert_eq!(orders_in(&sent[0].request), 10.0);
    assert_eq!(
        orders_in(&sent[1].request),
        25.0,
        "the retry carries the newest totals"
    );
    assert_eq!(
        inbox.superseded(),
        1,
        "the older snapshot counts as skipped"
    );
}

#[test]
fn under_delta_a_retry_carries_the_failed_data_into_the_newest() {
    let (sender, jobs) = queue();
    let script = refuse_once_while(sender, orders(40.0, 3));
    let builder = quick("http://127.0.0.1:9").temporality(Temporality::Delta);
    let (mut otlp, sent) = clocked(builder, script);
    // Attempt 0 (refused) carries 10 - 0; the retry 40 - 0.
    let mut inbox = Inbox::queued(Job::Export(orders(10.0, 1)), &jobs);
    otlp.export_from(&mut inbox).unwrap();
    // Accepted at 40: the next export carries only what came after.
    otlp.export(&orders(45.0, 4)).unwrap();
    let sent = sent.lock().unwrap();
    let deltas: Vec<f64> = sent.iter().map(|s| orders_in(&s.request)).collect();
    assert_eq!(deltas, [10.0, 40.0, 5.0]);
    let point = &points(metric(&sent[1].request, "orders"))[0];
    assert_eq!(
        point.start_time_unix_nano,
        nanos(orders(0.0, 0).start_time),
        "nothing accepted before: the delta covers everything since the start"
    );
    assert_eq!(point.time_unix_nano, nanos(orders(40.0, 3).time));
}

/// An inbox whose final snapshot (`orders` = `total`) is due `budget` from
/// now; the sender must outlive the export.
fn final_inbox(
    jobs: &Receiver<Job>,
    total: f64,
    budget: Duration,
) -> (Inbox<'_>, mpsc::Receiver<Result<(), ExportError>>) {
    let (done, outcome) = mpsc::channel();
    let job = Job::Final {
        snapshot: orders(total, 9),
        deadline: Instant::now() + budget,
        done,
    };
    (Inbox::queued(job, jobs), outcome)
}

#[test]
fn the_last_backoff_is_cut_so_one_attempt_fits_the_deadline() {
    let (_sender, jobs) = queue();
    // Default retry policy: the first backoff is 0.5–1 s, more than the
    // 600 ms left.
    let builder = Otlp::builder()
        .env_vars(NO_ENV)
        .endpoint("http://127.0.0.1:9");
    let (mut otlp, sent) = clocked(
        builder,
        Box::new(|n| if n == 0 { retryable() } else { accepted() }),
    );
    let started = Instant::now();
    let budget = Duration::from_millis(600);
    let (mut inbox, _outcome) = final_inbox(&jobs, 7.0, budget);
    otlp.export_from(&mut inbox).unwrap();
    let took = started.elapsed();
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 2);
    assert!(
        sent[0].timeout <= budget,
        "capped by the time left: {:?}",
        sent[0].timeout
    );
    let second = sent[1].at - started;
    assert!(
        second < budget - Duration::from_millis(200),
        "the wait was cut to leave the last attempt its time: at {second:?}"
    );
    assert!(
        sent[1].timeout <= Duration::from_millis(250) + Duration::from_millis(1)
            && sent[1].timeout >= Duration::from_millis(200),
        "{:?}",
        sent[1].timeout
    );
    assert!(took < budget, "{took:?}");
    assert_eq!(orders_in(&sent[1].request), 7.0);
}

#[test]
fn after_the_last_attempt_it_gives_up_before_the_deadline() {
    let (_sender, jobs) = queue();
    let builder = Otlp::builder()
        .env_vars(NO_ENV)
        .endpoint("http://127.0.0.1:9");
    let (mut otlp, sent) = clocked(builder, Box::new(|_| retryable()));
    let started = Instant::now();
    let budget = Duration::from_millis(600);
    let (mut inbox, _outcome) = final_inbox(&jobs, 7.0, budget);
    let error = otlp.export_from(&mut inbox).unwrap_err();
    let took = started.elapsed();
    assert!(took < budget, "{took:?}");
    assert_eq!(
        sent.lock().unwrap().len(),
        2,
        "no burst of attempts at the end"
    );
    assert!(
        error.to_string().contains("before the shutdown deadline"),
        "{error}"
    );
}

#[test]
fn an_open_circuit_still_gets_one_attempt_with_the_final_snapshot() {
    let (mut otlp, sent) = clocked(
        quick("http://127.0.0.1:9"),
        Box::new(|n| if n < 5 { retryable() } else { accepted() }),
    );
    assert!(otlp.export(&orders(1.0, 1)).is_err());
    assert_eq!(otlp.circuit_state(), CircuitState::Open);
    let error = otlp.export(&orders(2.0, 2)).unwrap_err();
    assert!(error.to_string().contains("circuit open"), "{error}");
    assert_eq!(sent.lock().unwrap().len(), 5, "open: nothing sent");

    let (_sender, jobs) = queue();
    let (mut inbox, _outcome) = final_inbox(&jobs, 3.0, Duration::from_secs(2));
    otlp.export_from(&mut inbox).unwrap();
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 6, "one attempt");
    assert_eq!(orders_in(&sent[5].request), 3.0);
    assert_eq!(otlp.circuit_state(), CircuitState::Closed);
}

#[test]
fn a_retry_after_too_long_for_the_clock_ends_the_export_without_a_panic() {
    let (mut otlp, sent) = clocked(
        quick("http://127.0.0.1:9"),
        Box::new(|_| Attempt::Retryable {
            reason: "HTTP 503".into(),
            retry_after: Some(Duration::MAX),
        }),
    );
    let error = otlp.export(&orders(1.0, 1)).unwrap_err();
    assert!(
        error.to_string().contains("gave up after 1 attempts"),
        "{error}"
    );
    assert_eq!(sent.lock().unwrap().len(), 1);
}
