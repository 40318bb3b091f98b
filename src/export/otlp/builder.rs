//! `Otlp::builder()`: the settings a program can make in code. Anything
//! left unset comes from the OpenTelemetry environment variables, then from
//! the specification's defaults (`builder/resolve.rs`).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::config::{
    CircuitBreakerPolicy, Compression, HistogramAggregation, Protocol, RetryPolicy, Temporality,
};
use super::exporter::Otlp;
use crate::error::ConfigError;
use crate::export::env::EnvSource;

mod resolve;

/// Builds an [`Otlp`] exporter.
///
/// ```
/// use std::time::Duration;
/// use hotmetrics::export::otlp::{Compression, Temporality};
/// use hotmetrics::export::Otlp;
///
/// let exporter = Otlp::builder()
///     .endpoint("http://localhost:4318")
///     .header("x-tenant", "blue")
///     .compression(Compression::Gzip)
///     .temporality(Temporality::Delta)
///     .bucket_boundaries("http.latency_ms", [1.0, 5.0, 25.0, 100.0])
///     .timeout(Duration::from_secs(5))
///     .build()
///     .expect("valid settings");
/// # drop(exporter);
/// ```
#[derive(Default)]
pub struct OtlpBuilder {
    endpoint: Option<String>,
    metrics_endpoint: Option<String>,
    protocol: Option<Protocol>,
    headers: Vec<(String, String)>,
    timeout: Option<Duration>,
    export_timeout: Option<Duration>,
    compression: Option<Compression>,
    temporality: Option<Temporality>,
    histogram: Option<HistogramAggregation>,
    boundaries: HashMap<String, Vec<f64>>,
    default_boundaries: Option<Vec<f64>>,
    max_exponential_buckets: Option<usize>,
    service_name: Option<String>,
    resource: Vec<(String, String)>,
    variance: Option<bool>,
    retry: Option<RetryPolicy>,
    circuit: Option<CircuitBreakerPolicy>,
    certificate: Option<PathBuf>,
    client_certificate: Option<PathBuf>,
    client_key: Option<PathBuf>,
    env: EnvSource,
}

impl fmt::Debug for OtlpBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("OtlpBuilder")
            .field("protocol", &self.protocol)
            .field("headers (values redacted)", &header_names)
            .field("temporality", &self.temporality)
            .field("histogram", &self.histogram)
            .finish_non_exhaustive()
    }
}

impl Otlp {
    /// A builder; settings it leaves unset come from the environment, then
    /// from the specification's defaults.
    pub fn builder() -> OtlpBuilder {
        OtlpBuilder::default()
    }

    /// An exporter configured by the environment alone: the `OTEL_*`
    /// variables and `HOTMETRICS_EXPORT_VARIANCE`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the variable whose value is refused.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::builder().build()
    }
}

impl OtlpBuilder {
    /// Base URL of the collector; HTTP appends `/v1/metrics` (as with
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`). Default `http://localhost:4318` for
    /// HTTP, `http://localhost:4317` for gRPC. `https://` uses TLS.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Full URL used as is (as with `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`).
    pub fn metrics_endpoint(mut self, url: impl Into<String>) -> Self {
        self.metrics_endpoint = Some(url.into());
        self
    }

    /// `http/protobuf` (default) or `grpc` (feature `otlp-grpc`).
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// Adds a request header (gRPC: metadata), for example an API key. The
    /// value is never logged nor put in an error.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Time allowed for one request (default 10 s), capped by what is left
    /// of the export's deadline. A request in flight when shutdown begins
    /// is not interrupted: against a backend that may hang, keep this below
    /// the engine's `shutdown_timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Time allowed for one export, retries included (default 30 s, as
    /// `OTEL_METRIC_EXPORT_TIMEOUT`).
    ///
    /// The final export at shutdown is bounded by the engine's
    /// `shutdown_timeout` (default 5 s) as well, whichever ends first: its
    /// attempts and the waits between them are fitted into what is left.
    /// The defaults differ on purpose: a periodic export runs on its own
    /// thread and may take its time, while `shutdown()` holds up its caller
    /// (often within a process manager's grace period).
    pub fn export_timeout(mut self, timeout: Duration) -> Self {
        self.export_timeout = Some(timeout);
        self
    }

    /// Request compression (default none).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = Some(compression);
        self
    }

    /// Cumulative (default) or delta.
    pub fn temporality(mut self, temporality: Temporality) -> Self {
        self.temporality = Some(temporality);
        self
    }

    /// Explicit buckets (default) or base-2 exponential.
    pub fn histogram_aggregation(mut self, aggregation: HistogramAggregation) -> Self {
        self.histogram = Some(aggregation);
        self
    }

    /// Explicit bucket boundaries for the histogram `metric` (finite,
    /// strictly increasing).
    pub fn bucket_boundaries(
        mut self,
        metric: impl Into<String>,
        boundaries: impl IntoIterator<Item = f64>,
    ) -> Self {
        self.boundaries
            .insert(metric.into(), boundaries.into_iter().collect());
        self
    }

    /// Explicit bucket boundaries for histograms without their own
    /// (default: [`DEFAULT_BOUNDARIES`](crate::export::DEFAULT_BOUNDARIES)).
    pub fn default_bucket_boundaries(mut self, boundaries: impl IntoIterator<Item = f64>) -> Self {
        self.default_boundaries = Some(boundaries.into_iter().collect());
        self
    }

    /// Most buckets of an exponential histogram, 2–160 (default 160).
    pub fn max_exponential_buckets(mut self, buckets: usize) -> Self {
        self.max_exponential_buckets = Some(buckets);
        self
    }

    /// `service.name` (wins over `OTEL_SERVICE_NAME`).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// A resource attribute (wins over `OTEL_RESOURCE_ATTRIBUTES`).
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.resource.push((key.into(), value.into()));
        self
    }

    /// Whether each estimated (sampled) series goes out with its
    /// cumulative variance estimate, a monotonic double `Sum` named
    /// `<name>.variance` (histograms: `<name>.count.variance` and
    /// `<name>.sum.variance`) with the series' attributes, temporality and
    /// squared unit. On by default; unset, `HOTMETRICS_EXPORT_VARIANCE`
    /// (`true`/`false`) decides.
    ///
    /// Variances add across instances and over time, so a backend gets
    /// the standard error of any sum or increase it computes as the square
    /// root of the same sum or increase of the variance series. Exact
    /// series have none.
    ///
    /// ```
    /// use hotmetrics::export::Otlp;
    ///
    /// let exporter = Otlp::builder().export_variance(false).build().unwrap();
    /// # drop(exporter);
    /// ```
    pub fn export_variance(mut self, on: bool) -> Self {
        self.variance = Some(on);
        self
    }

    /// The standard-error gauges this setting turned on are gone: the
    /// variance, which backends can sum and take over windows, replaced
    /// them. Now the same as [`export_variance`](Self::export_variance).
    #[deprecated(
        note = "standard-error gauges are replaced by variance series, on by default: use `export_variance`"
    )]
    pub fn std_error_gauges(self, on: bool) -> Self {
        self.export_variance(on)
    }

    /// Backoff between attempts.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Circuit breaker thresholds.
    pub fn circuit_breaker(mut self, policy: CircuitBreakerPolicy) -> Self {
        self.circuit = Some(policy);
        self
    }

    /// PEM file of the certificate(s) that sign the collector's certificate
    /// (`OTEL_EXPORTER_OTLP_CERTIFICATE`); the web PKI roots otherwise.
    pub fn certificate(mut self, path: impl Into<PathBuf>) -> Self {
        self.certificate = Some(path.into());
        self
    }

    /// PEM file of the client certificate chain for mutual TLS
    /// (`OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`).
    pub fn client_certificate(mut self, path: impl Into<PathBuf>) -> Self {
        self.client_certificate = Some(path.into());
        self
    }

    /// PEM file of the client's private key for mutual TLS
    /// (`OTEL_EXPORTER_OTLP_CLIENT_KEY`).
    pub fn client_key(mut self, path: impl Into<PathBuf>) -> Self {
        self.client_key = Some(path.into());
        self
    }

    /// Reads `OTEL_*` (and `HOTMETRICS_EXPORT_VARIANCE`) from `vars`
    /// instead of the process environment (for tests and embedding). An
    /// empty list ignores the environment.
    pub fn env_vars<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.env = EnvSource::from_vars(vars);
        self
    }

    pub(crate) fn env_source(mut self, env: EnvSource) -> Self {
        self.env = env;
        self
    }

    /// Resolves every setting and builds the exporter (for gRPC, its
    /// runtime and channel; nothing connects yet).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the setting or variable: an unknown protocol
    /// or compression, `grpc` without the `otlp-grpc` feature, a URL
    /// without `http://` or `https://`, a malformed header list (the value
    /// is not repeated), a certificate file that cannot be read or parsed,
    /// boundaries that are not finite and increasing, a
    /// `HOTMETRICS_EXPORT_VARIANCE` that is not a boolean.
    pub fn build(self) -> Result<Otlp, ConfigError> {
        let config = self.resolve()?;
        Otlp::with_config(config)
    }
}
