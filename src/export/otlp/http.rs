//! OTLP/HTTP with binary protobuf: one blocking POST per attempt, on the
//! exporter's own thread (no async runtime is forced on users).
//!
//! Per the OTLP specification: 2xx is success (a partial success is
//! reported, not retried); 429, 502, 503 and 504 are retried, honouring
//! `Retry-After` on 429 and 503 (or a `RetryInfo` in the body); any other status is permanent and its
//! message (a `google.rpc.Status` body, or text) is reported. Network
//! errors and timeouts are retried; TLS and URL errors are not. Redirects
//! are not followed, so headers (credentials) only go to the configured
//! endpoint. Requests above 64 MiB are refused, responses are read up to
//! 4 MiB.

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;
use ureq::tls::{parse_pem, Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};
use ureq::Agent;

use super::config::{redact_url, Compression, Config, PemFile, TlsFiles};
use super::retry::parse_retry_after;
use super::rpc::{error_message, RpcStatus};
use super::transport::{Attempt, Transport};
use crate::error::ConfigError;

/// Largest request the specification lets a collector accept.
pub(crate) const MAX_REQUEST_BYTES: usize = 64 << 20;
/// Largest response the specification lets a client read.
const MAX_RESPONSE_BYTES: u64 = 4 << 20;

pub(crate) struct HttpTransport {
    agent: Agent,
    endpoint: String,
    /// `endpoint` without credentials, for messages.
    shown: String,
    /// Values are credentials: never log them.
    headers: Vec<(String, String)>,
    gzip: bool,
    https: bool,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("endpoint", &self.shown)
            .field("gzip", &self.gzip)
            .finish_non_exhaustive()
    }
}

fn certificates(file: &PemFile) -> Result<Vec<Certificate<'static>>, ConfigError> {
    let mut certs = Vec::new();
    for item in parse_pem(&file.pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    if certs.is_empty() {
        return Err(ConfigError::new(
            &file.setting,
            file.path.display(),
            "a PEM file holding at least one certificate",
        ));
    }
    Ok(certs)
}

pub(crate) fn tls_config(files: &TlsFiles) -> Result<TlsConfig, ConfigError> {
    let mut builder = TlsConfig::builder();
    if let Some(ca) = &files.ca {
        builder = builder.root_certs(RootCerts::new_with_certs(&certificates(ca)?));
    }
    if let Some((cert, key)) = &files.client {
        let chain = certificates(cert)?;
        let key_der = PrivateKey::from_pem(&key.pem).map_err(|_| {
            ConfigError::new(
                &key.setting,
                key.path.display(),
                "a PEM file holding a private key",
            )
        })?;
        builder = builder.client_cert(Some(ClientCert::new_with_certs(&chain, key_der)));
    }
    Ok(builder.build())
}

impl HttpTransport {
    pub(crate) fn new(config: &Config) -> Result<Self, ConfigError> {
        let agent = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .tls_config(tls_config(&config.tls)?)
            .user_agent(format!("hotmetrics/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Self {
            agent,
            endpoint: config.endpoint.clone(),
            shown: redact_url(&config.endpoint),
            headers: config.headers.clone(),
            gzip: config.compression == Compression::Gzip,
            https: config.endpoint.starts_with("https://"),
        })
    }

    fn body(&self, request: &ExportMetricsServiceRequest) -> Result<Vec<u8>, String> {
        let encoded = request.encode_to_vec();
        if encoded.len() > MAX_REQUEST_BYTES {
            return Err(format!(
                "request of {} bytes is over the 64 MiB OTLP limit; lower the cardinality",
                encoded.len()
            ));
        }
        if !self.gzip {
            return Ok(encoded);
        }
        let mut encoder = GzEncoder::new(
            Vec::with_capacity(encoded.len() / 4),
            flate2::Compression::fast(),
        );
        encoder
            .write_all(&encoded)
            .and_then(|()| encoder.finish())
            .map_err(|error| format!("gzip failed: {error}"))
    }

    fn classify_error(&self, error: ureq::Error, timeout: Duration) -> Attempt {
        let shown = &self.shown;
        match error {
            ureq::Error::Timeout(_) => Attempt::Retryable {
                reason: format!("no answer from {shown} within {timeout:?}"),
                retry_after: None,
            },
            ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => {
                Attempt::Permanent(format!("TLS with {shown} failed: {error}"))
            }
            // rustls reports a refused certificate through the stream as
            // invalid data: retrying will not change the certificate.
            ureq::Error::Io(io) if self.https && io.kind() == std::io::ErrorKind::InvalidData => {
                Attempt::Permanent(format!("TLS with {shown} failed: {io}"))
            }
            // These messages could echo the URL or a header: keep them out.
            ureq::Error::BadUri(_) | ureq::Error::Http(_) => Attempt::Permanent(format!(
                "request to {shown} could not be built (check the endpoint URL and header names)"
            )),
            ureq::Error::RequireHttpsOnly(_) => {
                Attempt::Permanent(format!("{shown} is not an https URL"))
            }
            other => Attempt::Retryable {
                reason: format!("sending to {shown} failed: {other}"),
                retry_after: None,
            },
        }
    }
}

impl Transport for HttpTransport {
    fn send(&mut self, request: &ExportMetricsServiceRequest, timeout: Duration) -> Attempt {
        let body = match self.body(request) {
            Ok(body) => body,
            Err(message) => return Attempt::Permanent(message),
        };
        let mut builder = self
            .agent
            .post(&self.endpoint)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .header("Content-Type", "application/x-protobuf");
        if self.gzip {
            builder = builder.header("Content-Encoding", "gzip");
        }
        for (name, value) in &self.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let mut response = match builder.send(&body[..]) {
            Ok(response) => response,
            Err(error) => return self.classify_error(error, timeout),
        };
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string)
        };
        let protobuf =
            header("content-type").is_some_and(|kind| kind.starts_with("application/x-protobuf"));
        let retry_after = header("retry-after");
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .unwrap_or_default();
        let shown = &self.shown;
        match status {
            200..=299 => {
                let partial = ExportMetricsServiceResponse::decode(body.as_slice())
                    .ok()
                    .and_then(|response| response.partial_success);
                match partial {
                    Some(partial)
                        if partial.rejected_data_points > 0
                            || !partial.error_message.is_empty() =>
                    {
                        Attempt::Accepted {
                            rejected_points: partial.rejected_data_points,
                            message: super::rpc::excerpt(&partial.error_message),
                        }
                    }
                    _ => Attempt::Accepted {
                        rejected_points: 0,
                        message: String::new(),
                    },
                }
            }
            429 | 502 | 503 | 504 => {
                // `Retry-After`, else a `RetryInfo` in the `Status` body.
                let retry_after = match status {
                    429 | 503 => retry_after
                        .as_deref()
                        .and_then(|value| parse_retry_after(value, SystemTime::now()))
                        .or_else(|| {
                            protobuf
                                .then(|| RpcStatus::decode(body.as_slice()).ok())
                                .flatten()
                                .and_then(|status| status.retry_delay())
                        }),
                    _ => None,
                };
                let message = error_message(&body, protobuf);
                Attempt::Retryable {
                    reason: format!("{shown} answered HTTP {status}: {message}"),
                    retry_after,
                }
            }
            _ => Attempt::Permanent(format!(
                "{shown} refused the export with HTTP {status}: {}",
                error_message(&body, protobuf)
            )),
        }
    }
}
