//! Resolving an [`OtlpBuilder`]: explicit settings first, then the
//! metrics-specific variable (`OTEL_EXPORTER_OTLP_METRICS_*`), then the
//! generic one (`OTEL_EXPORTER_OTLP_*`), then the specification's default.
//! The variance switch is hotmetrics' own: the builder, then
//! `HOTMETRICS_EXPORT_VARIANCE`, then on.

use std::path::PathBuf;
use std::time::Duration;

use super::super::config::{
    redact_url, Compression, Config, HistogramAggregation, PemFile, Protocol, Temporality,
    TlsFiles, MAX_EXPONENTIAL_BUCKETS,
};
use super::OtlpBuilder;
use crate::error::ConfigError;
use crate::export::env::{parse_pairs, EnvSource, Resource};
use crate::export::rebucket::DEFAULT_BOUNDARIES;
use crate::export::variance;

const ENDPOINT: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

impl OtlpBuilder {
    pub(crate) fn resolve(self) -> Result<Config, ConfigError> {
        let env = &self.env;
        let protocol = match self.protocol {
            Some(protocol) => protocol,
            None => match env.first(&[
                "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ]) {
                None => Protocol::HttpProtobuf,
                Some((key, raw)) => parse_protocol(key, &raw)?,
            },
        };
        if protocol == Protocol::Grpc && !cfg!(feature = "otlp-grpc") {
            return Err(ConfigError::new(
                "protocol",
                "grpc",
                "http/protobuf (gRPC needs hotmetrics built with the `otlp-grpc` feature)",
            ));
        }
        let endpoint = resolve_endpoint(
            env,
            protocol,
            self.metrics_endpoint.as_deref(),
            self.endpoint.as_deref(),
        )?;
        let mut headers = Vec::new();
        for key in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        ] {
            if let Some(raw) = env.get(key) {
                let pairs = parse_pairs(&raw).map_err(|position| {
                    ConfigError::new(
                        key,
                        "<redacted>",
                        &format!("comma-separated name=value pairs (member {position} is not one)"),
                    )
                })?;
                merge_headers(&mut headers, pairs);
            }
        }
        merge_headers(&mut headers, self.headers);
        for (name, value) in &headers {
            check_header(name, value)?;
        }
        // A positive duration: set in code, else from the first variable set.
        let millis =
            |explicit: Option<Duration>, setting: &str, keys: &[&'static str], default: u64| {
                let (source, duration) = match explicit {
                    Some(duration) => (setting, duration),
                    None => env
                        .millis(keys)?
                        .unwrap_or((setting, Duration::from_millis(default))),
                };
                if duration.is_zero() {
                    return Err(ConfigError::new(
                        source,
                        "0",
                        "a positive number of milliseconds",
                    ));
                }
                Ok(duration)
            };
        let timeout = millis(
            self.timeout,
            "timeout",
            &[
                "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
                "OTEL_EXPORTER_OTLP_TIMEOUT",
            ],
            10_000,
        )?;
        let export_timeout = millis(
            self.export_timeout,
            "export_timeout",
            &["OTEL_METRIC_EXPORT_TIMEOUT"],
            30_000,
        )?;
        let compression = match self.compression {
            Some(compression) => compression,
            None => match env.first(&[
                "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
                "OTEL_EXPORTER_OTLP_COMPRESSION",
            ]) {
                None => Compression::None,
                Some((key, raw)) => match raw.to_ascii_lowercase().as_str() {
                    "gzip" => Compression::Gzip,
                    "none" => Compression::None,
                    _ => return Err(ConfigError::new(key, raw, "gzip or none")),
                },
            },
        };
        let temporality = match self.temporality {
            Some(temporality) => temporality,
            None => match env.get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE") {
                None => Temporality::Cumulative,
                Some(raw) => match raw.to_ascii_lowercase().as_str() {
                    "cumulative" => Temporality::Cumulative,
                    "delta" => Temporality::Delta,
                    "lowmemory" => Temporality::LowMemory,
                    _ => {
                        return Err(ConfigError::new(
                            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
                            raw,
                            "cumulative, delta or lowmemory",
                        ))
                    }
                },
            },
        };
        let histogram = match self.histogram {
            Some(histogram) => histogram,
            None => match env.get("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION") {
                None => HistogramAggregation::ExplicitBucket,
                Some(raw) => match raw.to_ascii_lowercase().as_str() {
                    "explicit_bucket_histogram" => HistogramAggregation::ExplicitBucket,
                    "base2_exponential_bucket_histogram" => HistogramAggregation::Base2Exponential,
                    _ => {
                        return Err(ConfigError::new(
                            "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
                            raw,
                            "explicit_bucket_histogram or base2_exponential_bucket_histogram",
                        ))
                    }
                },
            },
        };
        let default_boundaries = self
            .default_boundaries
            .unwrap_or_else(|| DEFAULT_BOUNDARIES.to_vec());
        check_boundaries("default_bucket_boundaries", &default_boundaries)?;
        for (metric, boundaries) in &self.boundaries {
            check_boundaries(&format!("bucket_boundaries({metric})"), boundaries)?;
        }
        let max_exponential_buckets = self
            .max_exponential_buckets
            .unwrap_or(MAX_EXPONENTIAL_BUCKETS);
        if !(2..=MAX_EXPONENTIAL_BUCKETS).contains(&max_exponential_buckets) {
            return Err(ConfigError::new(
                "max_exponential_buckets",
                max_exponential_buckets,
                "2 to 160 buckets",
            ));
        }
        let retry = self.retry.unwrap_or_default();
        if retry.initial_backoff.is_zero() || retry.max_backoff < retry.initial_backoff {
            return Err(ConfigError::new(
                "retry",
                format!("{retry:?}"),
                "0 < initial_backoff <= max_backoff",
            ));
        }
        let circuit = self.circuit.unwrap_or_default();
        if circuit.failure_threshold == 0
            || circuit.open_for.is_zero()
            || circuit.max_open_for < circuit.open_for
        {
            return Err(ConfigError::new(
                "circuit_breaker",
                format!("{circuit:?}"),
                "failure_threshold >= 1 and 0 < open_for <= max_open_for",
            ));
        }
        let tls = resolve_tls(
            env,
            self.certificate,
            self.client_certificate,
            self.client_key,
        )?;
        let resource = Resource::resolve(env, self.service_name.as_deref(), &self.resource);
        let disabled = env.bool("OTEL_SDK_DISABLED")?.unwrap_or(false);
        let variance = variance::enabled(self.variance, env)?;
        Ok(Config {
            endpoint,
            protocol,
            headers,
            timeout,
            export_timeout,
            compression,
            temporality,
            histogram,
            boundaries: self.boundaries,
            default_boundaries,
            max_exponential_buckets,
            resource,
            variance,
            retry,
            circuit,
            tls,
            disabled,
        })
    }
}

fn parse_protocol(key: &str, raw: &str) -> Result<Protocol, ConfigError> {
    match raw.to_ascii_lowercase().as_str() {
        "http/protobuf" => Ok(Protocol::HttpProtobuf),
        "grpc" => Ok(Protocol::Grpc),
        "http/json" => Err(ConfigError::new(
            key,
            raw,
            "http/protobuf or grpc (http/json is not supported)",
        )),
        _ => Err(ConfigError::new(key, raw, "http/protobuf or grpc")),
    }
}

/// Later pairs replace earlier ones with the same (case-insensitive) name.
fn merge_headers(headers: &mut Vec<(String, String)>, pairs: Vec<(String, String)>) {
    for (name, value) in pairs {
        headers.retain(|(existing, _)| !existing.eq_ignore_ascii_case(&name));
        headers.push((name, value));
    }
}

fn check_header(name: &str, value: &str) -> Result<(), ConfigError> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(ConfigError::new(
            "header name",
            name,
            "an HTTP token (letters, digits, and !#$%&'*+-.^_`|~)",
        ));
    }
    if !value.chars().all(|c| c == '\t' || (' '..='~').contains(&c)) {
        return Err(ConfigError::new(
            &format!("header {name}"),
            "<redacted>",
            "visible ASCII characters and spaces",
        ));
    }
    Ok(())
}

fn check_boundaries(setting: &str, boundaries: &[f64]) -> Result<(), ConfigError> {
    let finite = boundaries.iter().all(|b| b.is_finite());
    let increasing = boundaries.windows(2).all(|pair| pair[0] < pair[1]);
    if finite && increasing {
        Ok(())
    } else {
        Err(ConfigError::new(
            setting,
            format!("{boundaries:?}"),
            "finite, strictly increasing boundaries",
        ))
    }
}

fn has_scheme(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

fn resolve_endpoint(
    env: &EnvSource,
    protocol: Protocol,
    explicit_full: Option<&str>,
    explicit_base: Option<&str>,
) -> Result<String, ConfigError> {
    let base_default = match protocol {
        Protocol::HttpProtobuf => "http://localhost:4318",
        Protocol::Grpc => "http://localhost:4317",
    };
    // (setting name, url, whether `/v1/metrics` is appended for HTTP)
    let (setting, url, append) = match (explicit_full, explicit_base) {
        (Some(url), _) => (
            "metrics_endpoint".to_string(),
            url.trim().to_string(),
            false,
        ),
        (None, Some(url)) => ("endpoint".to_string(), url.trim().to_string(), true),
        (None, None) => match (env.get(ENDPOINT[0]), env.get(ENDPOINT[1])) {
            (Some(url), _) => (ENDPOINT[0].to_string(), url, false),
            (None, Some(url)) => (ENDPOINT[1].to_string(), url, true),
            (None, None) => ("endpoint".to_string(), base_default.to_string(), true),
        },
    };
    let url = if has_scheme(&url) {
        url
    } else if protocol == Protocol::Grpc && !url.contains("://") && !url.is_empty() {
        // gRPC endpoints may omit the scheme; OTEL_EXPORTER_OTLP_INSECURE
        // picks plain text.
        let insecure = env
            .first(&[
                "OTEL_EXPORTER_OTLP_METRICS_INSECURE",
                "OTEL_EXPORTER_OTLP_INSECURE",
            ])
            .is_some_and(|(_, raw)| raw.eq_ignore_ascii_case("true"));
        format!("{}://{url}", if insecure { "http" } else { "https" })
    } else {
        return Err(ConfigError::new(
            &setting,
            redact_url(&url),
            "a URL starting with http:// or https://",
        ));
    };
    if append && protocol == Protocol::HttpProtobuf {
        // The path goes before any query string.
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (url.as_str(), String::new()),
        };
        Ok(format!("{}/v1/metrics{query}", base.trim_end_matches('/')))
    } else {
        Ok(url)
    }
}

fn read_pem(
    env: &EnvSource,
    explicit: Option<PathBuf>,
    explicit_setting: &str,
    keys: [&'static str; 2],
) -> Result<Option<PemFile>, ConfigError> {
    let (setting, path) = match explicit {
        Some(path) => (explicit_setting.to_string(), path),
        None => match env.first(&keys) {
            Some((key, raw)) => (key.to_string(), PathBuf::from(raw)),
            None => return Ok(None),
        },
    };
    let pem = std::fs::read(&path).map_err(|error| {
        ConfigError::new(
            &setting,
            path.display(),
            &format!("a readable PEM file ({error})"),
        )
    })?;
    Ok(Some(PemFile { setting, path, pem }))
}

fn resolve_tls(
    env: &EnvSource,
    certificate: Option<PathBuf>,
    client_certificate: Option<PathBuf>,
    client_key: Option<PathBuf>,
) -> Result<TlsFiles, ConfigError> {
    let ca = read_pem(
        env,
        certificate,
        "certificate",
        [
            "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
        ],
    )?;
    let cert = read_pem(
        env,
        client_certificate,
        "client_certificate",
        [
            "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        ],
    )?;
    let key = read_pem(
        env,
        client_key,
        "client_key",
        [
            "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY",
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        ],
    )?;
    let client = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(only), None) | (None, Some(only)) => {
            return Err(ConfigError::new(
                &only.setting,
                only.path.display(),
                "both OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY (mutual TLS needs the pair)",
            ))
        }
    };
    Ok(TlsFiles { ca, client })
}
