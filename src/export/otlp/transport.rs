//! One request to the backend, whatever the protocol.

use std::fmt;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;

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
