//! The OTLP exporter itself: its state between exports and what it does
//! with an accepted request. Sending with retries is in `deliver.rs`,
//! building it in `builder.rs`.

use std::collections::HashSet;
use std::fmt;
use std::sync::Mutex;
use std::time::Instant;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;

use super::config::{redact_url, Config, Protocol, Temporality};
use super::delta::DeltaState;
#[cfg(feature = "otlp-grpc")]
use super::grpc;
use super::http;
use super::mapping::Mapper;
use super::retry::CircuitBreaker;
use super::transport::Transport;
use crate::error::{ConfigError, ExportError};
use crate::export::exporter::Exporter;
use crate::export::inbox::Inbox;
use crate::report::snapshot::Snapshot;
use crate::report::stats::CircuitState;

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
    pub(super) config: Config,
    pub(super) transport: Box<dyn Transport>,
    pub(super) breaker: CircuitBreaker,
    /// `Some` under delta temporality.
    pub(super) delta: Option<DeltaState>,
    /// The backend asked not to be called before this instant.
    pub(super) not_before: Option<Instant>,
    /// Last partial-success message logged, to log each one once.
    pub(super) last_partial: Option<String>,
    /// `endpoint` without credentials.
    pub(super) shown: String,
    /// Variance series already reported as left out for a taken name.
    warned: Mutex<HashSet<String>>,
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
            warned: Mutex::default(),
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
        let (request, left_out) = Mapper {
            config: &self.config,
            delta: self.delta.as_ref(),
        }
        .request(snapshot);
        if !left_out.is_empty() {
            self.warn_left_out(left_out);
        }
        request
    }

    /// Logs each variance series left out for a taken name, once.
    #[cold]
    fn warn_left_out(&self, names: Vec<String>) {
        let mut warned = self
            .warned
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for name in names {
            if warned.insert(name.clone()) {
                log::warn!(
                    target: "hotmetrics",
                    "variance series {name:?} left out of the OTLP export: the name is taken by another metric"
                );
            }
        }
    }

    /// Series held as delta baselines (0 under cumulative temporality).
    #[cfg(test)]
    pub(crate) fn retained_series(&self) -> usize {
        self.delta.as_ref().map_or(0, DeltaState::len)
    }

    pub(super) fn accepted(&mut self, snapshot: &Snapshot, rejected_points: i64, message: String) {
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
