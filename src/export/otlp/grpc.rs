//! OTLP/gRPC: `MetricsService/Export` through tonic, on a current-thread
//! tokio runtime that the exporter owns and drives only inside `export`
//! (users need no runtime of their own, and none of theirs is touched).
//!
//! Per the OTLP specification, `CANCELLED`, `DEADLINE_EXCEEDED`,
//! `ABORTED`, `OUT_OF_RANGE`, `UNAVAILABLE` and `DATA_LOSS` are retried;
//! `RESOURCE_EXHAUSTED` only when the server sent a `RetryInfo` (whose delay
//! is honoured); every other code is permanent.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;
use tokio::runtime::Runtime;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request, Status};

use super::config::{redact_url, Compression, Config};
use super::rpc::{excerpt, RpcStatus};
use super::transport::{Attempt, Transport};
use crate::error::ConfigError;

pub(crate) struct GrpcTransport {
    runtime: Runtime,
    client: MetricsServiceClient<Channel>,
    /// Values are credentials: never log them.
    metadata: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
    shown: String,
}

impl std::fmt::Debug for GrpcTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcTransport")
            .field("endpoint", &self.shown)
            .finish_non_exhaustive()
    }
}

impl GrpcTransport {
    pub(crate) fn new(config: &Config) -> Result<Self, ConfigError> {
        let shown = redact_url(&config.endpoint);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| {
                ConfigError::new(
                    "protocol",
                    "grpc",
                    &format!("a runtime for the gRPC client (it could not start: {error})"),
                )
            })?;
        let mut endpoint = Endpoint::from_shared(config.endpoint.clone())
            .map_err(|_| ConfigError::new("endpoint", &shown, "a valid gRPC URL"))?
            .connect_timeout(config.timeout)
            .user_agent(format!("hotmetrics/{}", env!("CARGO_PKG_VERSION")))
            .map_err(|_| ConfigError::new("endpoint", &shown, "a valid gRPC URL"))?;
        if config.endpoint.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_webpki_roots();
            if let Some(ca) = &config.tls.ca {
                tls = tls.ca_certificate(Certificate::from_pem(&ca.pem));
            }
            if let Some((cert, key)) = &config.tls.client {
                tls = tls.identity(Identity::from_pem(&cert.pem, &key.pem));
            }
            endpoint = endpoint.tls_config(tls).map_err(|error| {
                ConfigError::new(
                    "certificate",
                    &shown,
                    &format!("usable TLS settings ({error})"),
                )
            })?;
        }
        let channel = {
            // The lazy channel spawns its worker on the current runtime.
            let _context = runtime.enter();
            endpoint.connect_lazy()
        };
        let mut client = MetricsServiceClient::new(channel);
        if config.compression == Compression::Gzip {
            client = client
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip);
        }
        let mut metadata = Vec::with_capacity(config.headers.len());
        for (name, value) in &config.headers {
            let key = AsciiMetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| ConfigError::new("header name", name, "a valid gRPC metadata key"))?;
            let value = AsciiMetadataValue::try_from(value.as_str()).map_err(|_| {
                ConfigError::new(
                    &format!("header {name}"),
                    "<redacted>",
                    "visible ASCII characters",
                )
            })?;
            metadata.push((key, value));
        }
        Ok(Self {
            runtime,
            client,
            metadata,
            shown,
        })
    }

    fn classify(&self, status: &Status) -> Attempt {
        let retry_delay = RpcStatus::decode(status.details())
            .ok()
            .and_then(|details| details.retry_delay());
        let reason = format!(
            "{} answered {:?}: {}",
            self.shown,
            status.code(),
            excerpt(status.message())
        );
        match status.code() {
            Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::OutOfRange
            | Code::Unavailable
            | Code::DataLoss => Attempt::Retryable {
                reason,
                retry_after: retry_delay,
            },
            Code::ResourceExhausted if retry_delay.is_some() => Attempt::Retryable {
                reason,
                retry_after: retry_delay,
            },
            _ => Attempt::Permanent(reason),
        }
    }
}

impl Transport for GrpcTransport {
    fn send(&mut self, request: &ExportMetricsServiceRequest, timeout: Duration) -> Attempt {
        if request.encoded_len() > super::http::MAX_REQUEST_BYTES {
            return Attempt::Permanent(format!(
                "request of {} bytes is over the 64 MiB OTLP limit; lower the cardinality",
                request.encoded_len()
            ));
        }
        let mut call = Request::new(request.clone());
        call.set_timeout(timeout);
        for (key, value) in &self.metadata {
            call.metadata_mut().insert(key.clone(), value.clone());
        }
        let mut client = self.client.clone();
        let outcome = self
            .runtime
            .block_on(async { tokio::time::timeout(timeout, client.export(call)).await });
        match outcome {
            Err(_) => Attempt::Retryable {
                reason: format!("no answer from {} within {timeout:?}", self.shown),
                retry_after: None,
            },
            Ok(Err(status)) => self.classify(&status),
            Ok(Ok(response)) => match response.into_inner().partial_success {
                Some(partial)
                    if partial.rejected_data_points > 0 || !partial.error_message.is_empty() =>
                {
                    Attempt::Accepted {
                        rejected_points: partial.rejected_data_points,
                        message: excerpt(&partial.error_message),
                    }
                }
                _ => Attempt::Accepted {
                    rejected_points: 0,
                    message: String::new(),
                },
            },
        }
    }
}
