//! Tests of the OTLP exporter: mapping on hand-built snapshots, settings
//! from the environment, the whole path through a loopback collector, and
//! the collector misbehaving (errors, throttling, slowness, absence).

mod buckets;
mod collector;
mod config;
mod faults;
#[cfg(feature = "otlp-grpc")]
mod grpc;
mod http;
mod mapping;
mod measure;
mod retries;
mod shutdown;
mod tls;
mod variance;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, Metric, NumberDataPoint,
};

use super::{Attempt, CircuitBreakerPolicy, Otlp, OtlpBuilder, RetryPolicy, Transport};
use crate::hot::registry::Labels;
use crate::report::snapshot::{Estimate, MetricValue, SeriesSnapshot, Snapshot};
use crate::report::stats::Stats;

/// No `OTEL_*` variable at all.
pub(crate) const NO_ENV: [(&str, &str); 0] = [];

pub(crate) fn labels(pairs: &[(&str, &str)]) -> Labels {
    let mut pairs: Vec<(Arc<str>, Arc<str>)> = pairs
        .iter()
        .map(|(k, v)| (Arc::from(*k), Arc::from(*v)))
        .collect();
    pairs.sort();
    pairs.into()
}

pub(crate) fn series(name: &str, pairs: &[(&str, &str)], value: MetricValue) -> SeriesSnapshot {
    SeriesSnapshot {
        name: Arc::from(name),
        labels: labels(pairs),
        value,
        unit: None,
        description: None,
        inclusion_prob: None,
        target_met: None,
        start_time: None,
    }
}

pub(crate) fn exact(value: f64) -> Estimate {
    Estimate::exact(value)
}

pub(crate) fn sampled(value: f64, std_error: f64) -> Estimate {
    Estimate::new(value, std_error, false, 100)
}

/// The engine started at t = 1000 s; this snapshot is `seconds` later.
pub(crate) fn snapshot_at(series: Vec<SeriesSnapshot>, seconds: u64) -> Snapshot {
    let start_time = UNIX_EPOCH + Duration::from_secs(1000);
    Snapshot {
        series,
        stats: Stats::default(),
        start_time,
        time: start_time + Duration::from_secs(seconds),
    }
}

pub(crate) fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// A builder that ignores the environment, with short timeouts and
/// backoff so the fault tests run in milliseconds.
pub(crate) fn quick(url: &str) -> OtlpBuilder {
    Otlp::builder()
        .env_vars(NO_ENV)
        .endpoint(url)
        .timeout(Duration::from_millis(500))
        .export_timeout(Duration::from_secs(3))
        .retry(RetryPolicy {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
        })
        .circuit_breaker(CircuitBreakerPolicy {
            failure_threshold: 5,
            open_for: Duration::from_millis(300),
            max_open_for: Duration::from_secs(2),
        })
}

pub(crate) fn metric<'a>(request: &'a ExportMetricsServiceRequest, name: &str) -> &'a Metric {
    request.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .find(|metric| metric.name == name)
        .unwrap_or_else(|| panic!("metric {name} in the request"))
}

pub(crate) fn has_metric(request: &ExportMetricsServiceRequest, name: &str) -> bool {
    request.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .any(|metric| metric.name == name)
}

/// The number points of a sum or gauge.
pub(crate) fn points(metric: &Metric) -> &[NumberDataPoint] {
    match metric.data.as_ref().expect("data") {
        Data::Sum(sum) => &sum.data_points,
        Data::Gauge(gauge) => &gauge.data_points,
        other => panic!("{} is not a number metric: {other:?}", metric.name),
    }
}

pub(crate) fn value(point: &NumberDataPoint) -> f64 {
    match point.value.expect("a value") {
        number_data_point::Value::AsDouble(v) => v,
        number_data_point::Value::AsInt(v) => v as f64,
    }
}

pub(crate) fn attribute(attributes: &[KeyValue], key: &str) -> Option<any_value::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
        .and_then(|v| v.value)
}

pub(crate) fn string_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attribute(attributes, key)? {
        any_value::Value::StringValue(s) => Some(s),
        _ => None,
    }
}

/// A transport that answers from a script and keeps what it was sent.
#[derive(Debug)]
pub(crate) struct Scripted {
    pub(crate) sent: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
    script: fn(usize) -> Attempt,
}

impl Scripted {
    pub(crate) fn new(
        script: fn(usize) -> Attempt,
    ) -> (Self, Arc<Mutex<Vec<ExportMetricsServiceRequest>>>) {
        let sent = Arc::new(Mutex::new(Vec::new()));
        (
            Self {
                sent: sent.clone(),
                script,
            },
            sent,
        )
    }
}

impl Transport for Scripted {
    fn send(&mut self, request: &ExportMetricsServiceRequest, _timeout: Duration) -> Attempt {
        let mut sent = self.sent.lock().unwrap();
        sent.push(request.clone());
        (self.script)(sent.len() - 1)
    }
}

pub(crate) fn accepted() -> Attempt {
    Attempt::Accepted {
        rejected_points: 0,
        message: String::new(),
    }
}

/// An exporter with a scripted transport.
pub(crate) fn scripted(
    builder: OtlpBuilder,
    script: fn(usize) -> Attempt,
) -> (Otlp, Arc<Mutex<Vec<ExportMetricsServiceRequest>>>) {
    let (transport, sent) = Scripted::new(script);
    let config = builder.resolve().expect("valid settings");
    (Otlp::with_transport(config, Box::new(transport)), sent)
}
