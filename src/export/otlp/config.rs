//! The OTLP exporter's settings once resolved, and the small types that
//! name them.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::export::env::Resource;

/// Transport protocol (`OTEL_EXPORTER_OTLP_PROTOCOL`).
///
/// ```
/// use hotmetrics::export::otlp::Protocol;
/// use hotmetrics::export::Otlp;
///
/// let exporter = Otlp::builder()
///     .env_vars([("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")])
///     .build()
///     .unwrap();
/// assert_eq!(exporter.protocol(), Protocol::HttpProtobuf);
/// assert_eq!(exporter.endpoint(), "http://localhost:4318/v1/metrics");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// `http/protobuf`: a POST of the binary request to `…/v1/metrics`.
    HttpProtobuf,
    /// `grpc`: the `MetricsService/Export` call (feature `otlp-grpc`).
    Grpc,
}

impl Protocol {
    /// The name used by `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::HttpProtobuf => "http/protobuf",
            Protocol::Grpc => "grpc",
        }
    }
}

/// Request compression (`OTEL_EXPORTER_OTLP_COMPRESSION`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// Uncompressed.
    None,
    /// gzip.
    Gzip,
}

/// Aggregation temporality preference
/// (`OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`).
///
/// Up-down counters stay cumulative under every preference, as the
/// specification says; gauges have no temporality.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Temporality {
    /// Totals since the engine started (default). A failed export loses
    /// nothing: the next one carries the totals.
    Cumulative,
    /// Counters and histograms as the change since the last *successful*
    /// export: data of a failed export is carried into the next one.
    Delta,
    /// `lowmemory`: delta for synchronous counters and histograms, which
    /// are the only ones hotmetrics has, so the same as [`Temporality::Delta`].
    LowMemory,
}

impl Temporality {
    pub(crate) fn is_delta(self) -> bool {
        !matches!(self, Temporality::Cumulative)
    }
}

/// How histograms are exported
/// (`OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HistogramAggregation {
    /// Explicit bucket boundaries (default): OpenTelemetry's default
    /// boundaries unless set per metric.
    ExplicitBucket,
    /// Base-2 exponential buckets, the scale chosen from the histogram's
    /// precision and reduced until the data fits the bucket limit.
    Base2Exponential,
}

/// Most buckets of an exponential histogram (OpenTelemetry's default
/// `max_size`).
pub const MAX_EXPONENTIAL_BUCKETS: usize = 160;

/// Backoff between attempts of one export.
///
/// Attempt `n` (from 0) waits a random time in `[d/2, d]` where
/// `d = min(initial · 2ⁿ, max)`, unless the backend said when to come back
/// (`Retry-After`, gRPC `RetryInfo`). Retries fit the export's deadline
/// (the export timeout; at shutdown, the engine's `shutdown_timeout` if
/// that ends first): a backoff that would pass it is cut short so that one
/// last attempt fits.
///
/// ```
/// use std::time::Duration;
/// use hotmetrics::export::otlp::RetryPolicy;
///
/// let exporter = hotmetrics::export::Otlp::builder()
///     .retry(RetryPolicy::new(Duration::from_millis(200), Duration::from_secs(5)))
///     .build()
///     .unwrap();
/// # drop(exporter);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// First delay (default 1 s).
    pub initial_backoff: Duration,
    /// Largest delay (default 30 s).
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// Backoff from `initial_backoff`, doubling up to `max_backoff`.
    pub fn new(initial_backoff: Duration, max_backoff: Duration) -> Self {
        Self {
            initial_backoff,
            max_backoff,
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// When the circuit breaker opens and how long it stays open.
///
/// Closed → open after `failure_threshold` consecutive failed attempts;
/// open → half-open once `open_for` has passed (doubled after each failed
/// probe, up to `max_open_for`); half-open → closed when the probe succeeds.
/// While open, `export` fails at once without touching the network.
///
/// ```
/// use std::time::Duration;
/// use hotmetrics::export::otlp::CircuitBreakerPolicy;
///
/// let exporter = hotmetrics::export::Otlp::builder()
///     .circuit_breaker(CircuitBreakerPolicy::new(
///         3,
///         Duration::from_secs(5),
///         Duration::from_secs(60),
///     ))
///     .build()
///     .unwrap();
/// assert_eq!(exporter.circuit_state(), hotmetrics::CircuitState::Closed);
/// # use hotmetrics::export::Exporter;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CircuitBreakerPolicy {
    /// Consecutive failed attempts that open the circuit (default 5).
    pub failure_threshold: u32,
    /// First open period (default 10 s).
    pub open_for: Duration,
    /// Longest open period (default 5 min).
    pub max_open_for: Duration,
}

impl CircuitBreakerPolicy {
    /// Opens after `failure_threshold` consecutive failed attempts, for
    /// `open_for` at first and at most `max_open_for`.
    pub fn new(failure_threshold: u32, open_for: Duration, max_open_for: Duration) -> Self {
        Self {
            failure_threshold,
            open_for,
            max_open_for,
        }
    }
}

impl Default for CircuitBreakerPolicy {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_secs(10),
            max_open_for: Duration::from_secs(300),
        }
    }
}

/// A PEM file named by a setting, read when the exporter is built.
#[derive(Clone)]
pub(crate) struct PemFile {
    /// The setting or variable that named it, for errors.
    pub(crate) setting: String,
    pub(crate) path: PathBuf,
    pub(crate) pem: Vec<u8>,
}

impl fmt::Debug for PemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PemFile")
            .field("setting", &self.setting)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// TLS material beyond the default web PKI roots.
#[derive(Clone, Debug, Default)]
pub(crate) struct TlsFiles {
    /// Trusted certificate(s) for the server.
    pub(crate) ca: Option<PemFile>,
    /// Client certificate chain and key, for mutual TLS.
    pub(crate) client: Option<(PemFile, PemFile)>,
}

/// Every setting of one OTLP exporter, validated.
#[derive(Clone)]
pub(crate) struct Config {
    /// Full URL: for HTTP including the `/v1/metrics` path.
    pub(crate) endpoint: String,
    pub(crate) protocol: Protocol,
    /// Header names and values; values are credentials: never log them.
    pub(crate) headers: Vec<(String, String)>,
    /// Per attempt.
    pub(crate) timeout: Duration,
    /// For a whole export, retries included.
    pub(crate) export_timeout: Duration,
    pub(crate) compression: Compression,
    pub(crate) temporality: Temporality,
    pub(crate) histogram: HistogramAggregation,
    pub(crate) boundaries: HashMap<String, Vec<f64>>,
    pub(crate) default_boundaries: Vec<f64>,
    pub(crate) max_exponential_buckets: usize,
    pub(crate) resource: Resource,
    /// Send each estimated series' variance (`export/variance.rs`).
    pub(crate) variance: bool,
    pub(crate) retry: RetryPolicy,
    pub(crate) circuit: CircuitBreakerPolicy,
    pub(crate) tls: TlsFiles,
    /// `OTEL_SDK_DISABLED=true`: exports do nothing.
    pub(crate) disabled: bool,
}

impl Config {
    /// The boundaries for metric `name`.
    pub(crate) fn boundaries_for(&self, name: &str) -> &[f64] {
        self.boundaries
            .get(name)
            .map_or(&self.default_boundaries[..], Vec::as_slice)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Config")
            .field("endpoint", &redact_url(&self.endpoint))
            .field("protocol", &self.protocol)
            .field("headers (values redacted)", &header_names)
            .field("timeout", &self.timeout)
            .field("export_timeout", &self.export_timeout)
            .field("compression", &self.compression)
            .field("temporality", &self.temporality)
            .field("histogram", &self.histogram)
            .field("resource", &self.resource)
            .field("variance", &self.variance)
            .field("retry", &self.retry)
            .field("circuit", &self.circuit)
            .field("tls", &self.tls)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// `url` without user information or query string, for logs and errors.
pub(crate) fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let path = path.split(['?', '#']).next().unwrap_or("");
    match scheme {
        Some(scheme) => format!("{scheme}://{host}{path}"),
        None => format!("{host}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials() {
        assert_eq!(
            redact_url("https://user:secret@collector:4318/v1/metrics?token=abc"),
            "https://collector:4318/v1/metrics"
        );
        assert_eq!(redact_url("http://localhost:4318"), "http://localhost:4318");
        assert_eq!(redact_url("collector:4317"), "collector:4317");
    }
}
