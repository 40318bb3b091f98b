//! OpenTelemetry export over OTLP: HTTP/protobuf by default, gRPC with the
//! `otlp-grpc` feature.
//!
//! The OpenTelemetry Rust SDK cannot be handed data that is already
//! aggregated, so this exporter builds the `ExportMetricsServiceRequest`
//! itself from the official generated types (`opentelemetry-proto`) and
//! sends it with its own small transport. See [`Otlp`] for the settings
//! and `mapping.rs` for how series become metrics.
//!
//! ## A dead or slow backend
//!
//! The exporter runs on its own thread (see [`crate::export`]), so nothing
//! here can slow `record!` or the flusher's drain. Within that thread:
//!
//! * one export makes attempts until one succeeds, a permanent error comes
//!   back, or no further attempt fits before the export timeout
//!   (`OTEL_METRIC_EXPORT_TIMEOUT`, 30 s); each attempt has its own timeout
//!   (`OTEL_EXPORTER_OTLP_TIMEOUT`, 10 s), capped by the time left; between
//!   attempts it waits an exponential backoff with jitter, cut short when
//!   it would pass the deadline, or what the backend asked for
//!   (`Retry-After`, gRPC `RetryInfo`);
//! * every attempt sends the newest snapshot that reached the exporter
//!   thread, not the request the export started with;
//! * at shutdown the final snapshot wakes a backoff sleep and goes at once;
//!   its retries fit into what is left of the engine's `shutdown_timeout`
//!   (5 s), which ends before the export timeout would. See `deliver.rs`;
//! * a circuit breaker opens after repeated failed attempts; while it is
//!   open an export fails at once, without network I/O, until a single
//!   probe is due; its state shows in `engine.stats().circuit`;
//! * nothing is queued: values are cumulative, so the next export after an
//!   outage carries the right totals. Under delta temporality the exporter
//!   keeps one accepted baseline per series and sends the difference from
//!   it, so the data of failed exports is carried, not lost. Memory does
//!   not depend on how long an outage lasts;
//! * permanent refusals (HTTP 400, 401, 413…, gRPC `INVALID_ARGUMENT`…)
//!   are not retried; the error carries the backend's message. Header
//!   values, which often hold credentials, never appear in an error or a
//!   log line, nor do credentials in the endpoint URL.

mod builder;
mod config;
mod deliver;
mod delta;
mod exponential;
#[cfg(feature = "otlp-grpc")]
mod grpc;
mod histogram;
mod http;
mod mapping;
mod retry;
mod rpc;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;

pub use builder::OtlpBuilder;
pub use config::{
    CircuitBreakerPolicy, Compression, HistogramAggregation, Protocol, RetryPolicy, Temporality,
    MAX_EXPONENTIAL_BUCKETS,
};

use crate::error::{ConfigError, ExportError};
use crate::export::exporter::Exporter;
use crate::export::inbox::Inbox;
use crate::report::snapshot::Snapshot;
use crate::report::stats::CircuitState;
use config::{redact_url, Config};
use delta::DeltaState;
use mapping::Mapper;
use retry::CircuitBreaker;

/// What one attempt came to.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// The backend took the request; it may have rejected some points.
    Accepted {
        rejected_points: i64,
        message: String,
    },
    /// Worth another try, after `retry_after` if the backend said so.
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Trying the same request again will not help.
    Permanent(String),
}

/// Sends one request.
pub(crate) trait Transport: Send + fmt::Debug {
    /// One attempt, allowed `timeout`.
    fn send(&mut self, request: &ExportMetricsServiceRequest, timeout: Duration) -> Attempt;
}

/// Sends snapshots to an OpenTelemetry collector (or any OTLP backend).
///
/// Configured by the OpenTelemetry environment variables with the
/// specification's defaults ([`Otlp::from_env`]), each of which the
/// [`builder`](Otlp::builder) can also set. Counters become monotonic
/// sums, up-down counters non-monotonic sums, gauges gauges, histograms
/// explicit-bucket (or base-2 exponential) histograms; labels become
/// attributes; the resource carries `service.name`.
///
/// ```no_run
/// use hotmetrics::export::Otlp;
///
/// // OTEL_EXPORTER_OTLP_ENDPOINT, default http://localhost:4318
/// let exporter = Otlp::from_env().expect("valid OTEL_* settings");
/// let engine = hotmetrics::Engine::builder()
///     .exporter(exporter)
///     .install()
///     .unwrap();
/// hotmetrics::record!(counter: "requests", 1);
/// engine.shutdown().unwrap();
/// ```
pub struct Otlp {
    config: Config,
    transport: Box<dyn Transport>,
    breaker: CircuitBreaker,
    /// `Some` under delta temporality.
    delta: Option<DeltaState>,
    /// The backend asked not to be called before this instant.
    not_before: Option<Instant>,
    /// Last partial-success message logged, to log each one once.
    last_partial: Option<String>,
    /// `endpoint` without credentials.
    shown: String,
}

impl fmt::Debug for Otlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Otlp")
            .field("config", &self.config)
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

impl Otlp {
    /// A builder; settings it leaves unset come from the environment, then
    /// from the specification's defaults.
    pub fn builder() -> OtlpBuilder {
        OtlpBuilder::default()
    }

    /// An exporter configured by the `OTEL_*` environment variables alone.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the variable whose value is refused.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::builder().build()
    }

    pub(crate) fn with_config(config: Config) -> Result<Self, ConfigError> {
        let transport: Box<dyn Transport> = match config.protocol {
            Protocol::HttpProtobuf => Box::new(http::HttpTransport::new(&config)?),
            #[cfg(feature = "otlp-grpc")]
            Protocol::Grpc => Box::new(grpc::GrpcTransport::new(&config)?),
            #[cfg(not(feature = "otlp-grpc"))]
            Protocol::Grpc => {
                return Err(ConfigError::new(
                    "protocol",
                    "grpc",
                    "http/protobuf (gRPC needs the `otlp-grpc` feature)",
                ))
            }
        };
        Ok(Self::with_transport(config, transport))
    }

    pub(crate) fn with_transport(config: Config, transport: Box<dyn Transport>) -> Self {
        Self {
            breaker: CircuitBreaker::new(config.circuit),
            delta: config.temporality.is_delta().then(DeltaState::default),
            not_before: None,
            last_partial: None,
            shown: redact_url(&config.endpoint),
            transport,
            config,
        }
    }

    /// The endpoint requests go to, without any credentials it holds.
    pub fn endpoint(&self) -> &str {
        &self.shown
    }

    /// The protocol in use.
    pub fn protocol(&self) -> Protocol {
        self.config.protocol
    }

    /// The temporality in use.
    pub fn temporality(&self) -> Temporality {
        self.config.temporality
    }

    /// The request this exporter would send for `snapshot` now.
    pub(crate) fn request(&self, snapshot: &Snapshot) -> ExportMetricsServiceRequest {
        Mapper {
            config: &self.config,
            delta: self.delta.as_ref(),
        }
        .request(snapshot)
    }

    /// Series held as delta baselines (0 under cumulative temporality).
    #[cfg(test)]
    pub(crate) fn retained_series(&self) -> usize {
        self.delta.as_ref().map_or(0, DeltaState::len)
    }

    fn accepted(&mut self, snapshot: &Snapshot, rejected_points: i64, message: String) {
        self.breaker.on_success();
        if let Some(delta) = &mut self.delta {
            delta.accept(snapshot);
        }
        if rejected_points > 0 || !message.is_empty() {
            if self.last_partial.as_deref() != Some(message.as_str()) {
                log::warn!(
                    target: "hotmetrics",
                    "{} accepted the export partly: {rejected_points} data points rejected: {message}",
                    self.shown
                );
            }
            self.last_partial = Some(message);
        }
    }
}

impl Exporter for Otlp {
    fn export(&mut self, snapshot: &Snapshot) -> Result<(), ExportError> {
        self.export_from(&mut Inbox::fixed(snapshot))
    }

    /// Every attempt sends the newest snapshot the inbox holds, and the
    /// start of shutdown ends a backoff sleep: see `deliver.rs`.
    fn export_from(&mut self, inbox: &mut Inbox<'_>) -> Result<(), ExportError> {
        if self.config.disabled {
            return Ok(());
        }
        self.deliver(inbox)
    }

    fn name(&self) -> &str {
        "otlp"
    }

    fn circuit_state(&self) -> CircuitState {
        self.breaker.state(Instant::now())
    }
}
