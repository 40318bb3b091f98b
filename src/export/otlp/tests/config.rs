//! Settings: the OpenTelemetry variables, their defaults, the builder's
//! precedence, and what is refused.

use std::time::Duration;

use super::*;
use crate::export::exporter::Exporter;
use crate::export::otlp::config::Config;
use crate::export::otlp::{Compression, HistogramAggregation, Protocol, Temporality};

/// A throwaway self-signed certificate and its key, for TLS settings only.
const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBizCCATGgAwIBAgIUIo/VkC0WG6GtatRBsZOuqDBc+bYwCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPaG90bWV0cmljcy10ZXN0MCAXDTI2MTEyNDIzMjg1NVoYDzIx
MjYxMDMxMjMyODU1WjAaMRgwFgYDVQQDDA9ob3RtZXRyaWNzLXRlc3QwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAATSwsrC2iRetL27/mC95cIznkgpqnBK+1AgfFcr
xpuNkyttNF+Ef2Hzesmlr0deaTL/ANlVyGG9/mlSQCyy1S/Ao1MwUTAdBgNVHQ4E
FgQUR2qs0HOm+WUJgEyDroIhJ/zTlrAwHwYDVR0jBBgwFoAUR2qs0HOm+WUJgEyD
roIhJ/zTlrAwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiAbCIl5
JKdJcGx9HIQHZpaVuvKI/xsorkJJhR2Rfv05NgIhAP18kWBjbTnglW3+7upk6hF+
rBrkTdF4WbMB7KnpqjDX
-----END CERTIFICATE-----
";
const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgHNGMhSu7qNt73C53
SFlfjV1BvMloqDpWhBj9DkDxL7KhRANCAATSwsrC2iRetL27/mC95cIznkgpqnBK
+1AgfFcrxpuNkyttNF+Ef2Hzesmlr0deaTL/ANlVyGG9/mlSQCyy1S/A
-----END PRIVATE KEY-----
";

fn resolve(vars: &[(&str, &str)]) -> Result<Config, crate::ConfigError> {
    Otlp::builder().env_vars(vars.iter().copied()).resolve()
}

#[test]
fn specification_defaults() {
    let config = resolve(&[]).unwrap();
    assert_eq!(config.endpoint, "http://localhost:4318/v1/metrics");
    assert_eq!(config.protocol, Protocol::HttpProtobuf);
    assert_eq!(config.timeout, Duration::from_secs(10));
    assert_eq!(config.export_timeout, Duration::from_secs(30));
    assert_eq!(config.compression, Compression::None);
    assert_eq!(config.temporality, Temporality::Cumulative);
    assert_eq!(config.histogram, HistogramAggregation::ExplicitBucket);
    assert!(config.headers.is_empty());
    assert!(!config.disabled);
    assert!(config
        .resource
        .get("service.name")
        .unwrap()
        .starts_with("unknown_service"));
}

#[test]
fn endpoints() {
    let generic = resolve(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318/")]).unwrap();
    assert_eq!(generic.endpoint, "https://collector:4318/v1/metrics");
    let specific = resolve(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "http://other:9000/custom",
        ),
    ])
    .unwrap();
    assert_eq!(specific.endpoint, "http://other:9000/custom", "used as is");
    let explicit = Otlp::builder()
        .env_vars([("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://env:1")])
        .endpoint("http://code:2")
        .resolve()
        .unwrap();
    assert_eq!(
        explicit.endpoint, "http://code:2/v1/metrics",
        "the builder wins"
    );
    let error = resolve(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]).unwrap_err();
    assert_eq!(error.setting, "OTEL_EXPORTER_OTLP_ENDPOINT");
}

#[test]
fn headers_merge_and_never_leak() {
    let config = resolve(&[
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "api-key=generic,x-tenant=blue",
        ),
        ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "API-Key=s%3Dcret%2C1"),
    ])
    .unwrap();
    assert_eq!(
        config.headers,
        vec![
            ("x-tenant".to_string(), "blue".to_string()),
            ("API-Key".to_string(), "s=cret,1".to_string())
        ]
    );
    let shown = format!("{config:?}");
    assert!(
        shown.contains("API-Key") && !shown.contains("s=cret"),
        "{shown}"
    );
    let error = resolve(&[("OTEL_EXPORTER_OTLP_HEADERS", "api-key=topsecret,broken")]).unwrap_err();
    assert!(!error.to_string().contains("topsecret"), "{error}");
    assert!(error.to_string().contains("member 2"), "{error}");
    let error = Otlp::builder()
        .env_vars(NO_ENV)
        .header("x-key", "line\nbreak-secret")
        .build()
        .unwrap_err();
    assert!(!error.to_string().contains("secret"), "{error}");
}

#[test]
fn timeouts_compression_temporality_histograms() {
    let config = resolve(&[
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "5000"),
        ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "1500"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "4000"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "GZIP"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
            "LowMemory",
        ),
        (
            "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
            "base2_exponential_bucket_histogram",
        ),
    ])
    .unwrap();
    assert_eq!(config.timeout, Duration::from_millis(1500));
    assert_eq!(config.export_timeout, Duration::from_secs(4));
    assert_eq!(config.compression, Compression::Gzip);
    assert_eq!(config.temporality, Temporality::LowMemory);
    assert_eq!(config.histogram, HistogramAggregation::Base2Exponential);
    for (key, value) in [
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "0"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
            "sometimes",
        ),
        (
            "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
            "summary",
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_SDK_DISABLED", "perhaps"),
    ] {
        let error = resolve(&[(key, value)]).expect_err(key);
        assert_eq!(error.setting, key, "{error}");
    }
    let error = Otlp::builder()
        .env_vars(NO_ENV)
        .bucket_boundaries("lat", [5.0, 1.0])
        .build()
        .unwrap_err();
    assert_eq!(error.setting, "bucket_boundaries(lat)");
}

#[test]
fn grpc_protocol() {
    let result = resolve(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
    if cfg!(feature = "otlp-grpc") {
        let config = result.unwrap();
        assert_eq!(config.protocol, Protocol::Grpc);
        assert_eq!(config.endpoint, "http://localhost:4317", "no path for gRPC");
        let insecure = resolve(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
            ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
        ])
        .unwrap();
        assert_eq!(insecure.endpoint, "http://collector:4317");
    } else {
        let error = result.unwrap_err();
        assert!(error.expected.contains("otlp-grpc"), "{error}");
    }
}

#[test]
fn sdk_disabled_sends_nothing() {
    let (mut otlp, sent) = scripted(
        Otlp::builder().env_vars([("OTEL_SDK_DISABLED", "true")]),
        |_| accepted(),
    );
    otlp.export(&snapshot_at(Vec::new(), 1)).unwrap();
    assert!(sent.lock().unwrap().is_empty());
}

#[test]
fn tls_files() {
    let dir = std::env::temp_dir().join(format!("hotmetrics-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let junk = dir.join("junk.pem");
    std::fs::write(&cert, TEST_CERT).unwrap();
    std::fs::write(&key, TEST_KEY).unwrap();
    std::fs::write(&junk, "not a certificate").unwrap();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();

    // A private CA and a client pair, from the environment.
    let vars = [
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://collector:4318".to_string(),
        ),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", path(&cert)),
        ("OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE", path(&cert)),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", path(&key)),
    ];
    let otlp = Otlp::builder().env_vars(vars.clone()).build().unwrap();
    assert_eq!(otlp.endpoint(), "https://collector:4318/v1/metrics");

    let missing = Otlp::builder()
        .env_vars([("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem")])
        .build()
        .unwrap_err();
    assert_eq!(missing.setting, "OTEL_EXPORTER_OTLP_CERTIFICATE");
    let not_pem = Otlp::builder()
        .env_vars(NO_ENV)
        .certificate(&junk)
        .build()
        .unwrap_err();
    assert_eq!(not_pem.setting, "certificate");
    let half_pair = Otlp::builder()
        .env_vars(NO_ENV)
        .client_certificate(&cert)
        .build()
        .unwrap_err();
    assert_eq!(half_pair.setting, "client_certificate");
    let bad_key = Otlp::builder()
        .env_vars(NO_ENV)
        .client_certificate(&cert)
        .client_key(&junk)
        .build()
        .unwrap_err();
    assert_eq!(bad_key.setting, "client_key");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn credentials_in_the_url_are_not_shown() {
    let otlp = Otlp::builder()
        .env_vars(NO_ENV)
        .endpoint("https://user:hunter2@collector:4318?token=abc")
        .build()
        .unwrap();
    assert_eq!(otlp.endpoint(), "https://collector:4318/v1/metrics");
    assert!(!format!("{otlp:?}").contains("hunter2"));
}
