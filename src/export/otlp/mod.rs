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
mod exporter;
#[cfg(feature = "otlp-grpc")]
mod grpc;
mod histogram;
mod http;
mod mapping;
mod retry;
mod rpc;
#[cfg(test)]
mod tests;
mod transport;

pub use builder::OtlpBuilder;
pub use config::{
    CircuitBreakerPolicy, Compression, HistogramAggregation, Protocol, RetryPolicy, Temporality,
    MAX_EXPONENTIAL_BUCKETS,
};
pub use exporter::Otlp;
#[cfg(test)]
pub(crate) use transport::{Attempt, Transport};
