//! `https://` endpoints: a private CA from `OTEL_EXPORTER_OTLP_CERTIFICATE`,
//! mutual TLS from `…_CLIENT_CERTIFICATE` and `…_CLIENT_KEY`, against a
//! loopback collector behind rustls.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::collector::{Collector, Reply};
use super::*;
use crate::export::exporter::Exporter;
use crate::ExportError;

// A throwaway test PKI (P-256, valid for a century): a CA, a server
// certificate for 127.0.0.1 and localhost, and a client certificate.
pub(super) const CA: &str = "-----BEGIN CERTIFICATE-----
MIIBfzCCASagAwIBAgIUB4UfpIhlhu1KXVe591S2dwqXGeswCgYIKoZIzj0EAwIw
HTEbMBkGA1UEAwwSaG90bWV0cmljcyB0ZXN0IENBMCAXDTI2MTEyNTAwMzYxNFoY
DzIxMjYxMTAxMDAzNjE0WjAdMRswGQYDVQQDDBJob3RtZXRyaWNzIHRlc3QgQ0Ew
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATiD2cWFSdL8/vpzkx0eJ7PinUgrCbD
yFL/7zw8E+ofj1MuKoWekOgiGU/chqBW8UdUDgO7Fu7D5BmXs6SO+skvo0IwQDAP
BgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIBBjAdBgNVHQ4EFgQUJGVlvgn9
4U6JybMLDyt2ZhncCqYwCgYIKoZIzj0EAwIDRwAwRAIgUFMcGMCe9Jq1JUHZb1eG
80j28GpZqh0NTEKhzRTIFaECIB+hRd5Y2dlDc5sW0lfiqJfrvcmk8dZhtWs365i7
E0Tk
-----END CERTIFICATE-----
";
const SERVER: &str = "-----BEGIN CERTIFICATE-----
MIIB1jCCAXugAwIBAgIUJxuLc/DvExKiw6Ze1eh6gUYxJhkwCgYIKoZIzj0EAwIw
HTEbMBkGA1UEAwwSaG90bWV0cmljcyB0ZXN0IENBMCAXDTI2MTEyNTAwMzYxNVoY
DzIxMjYxMTAxMDAzNjE1WjAhMR8wHQYDVQQDDBZob3RtZXRyaWNzIHRlc3Qgc2Vy
dmVyMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEKENkhvTCz1HC271FE9KmCoB2
4ojLuwGcnmieB7XFU7GxvciCluRl3P6G5iz81nXEngCgbhId7wIGtvauPLUzNKOB
kjCBjzAMBgNVHRMBAf8EAjAAMA4GA1UdDwEB/wQEAwIHgDATBgNVHSUEDDAKBggr
BgEFBQcDATAaBgNVHREEEzARhwR/AAABgglsb2NhbGhvc3QwHQYDVR0OBBYEFL+7
gWUKDH87jHoFpRs7NMsu5dPCMB8GA1UdIwQYMBaAFCRlZb4J/eFOicmzCw8rdmYZ
3AqmMAoGCCqGSM49BAMCA0kAMEYCIQD3ikzch5OmappFBjVWCefBE9sdIBmdmgXE
ydDF8Wxd2AIhALNnLoR9JVp9zXWxPITfgQOLgMKYpIIp8jLZjMGfK+Fj
-----END CERTIFICATE-----
";
const SERVER_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgUhMpLQQZJhI3tFpJ
YtVueYIQPwWAj/1l0gSFLeOxqWChRANCAAQoQ2SG9MLPUcLbvUUT0qYKgHbiiMu7
AZyeaJ4HtcVTsbG9yIKW5GXc/obmLPzWdcSeAKBuEh3vAga29q48tTM0
-----END PRIVATE KEY-----
";
const CLIENT: &str = "-----BEGIN CERTIFICATE-----
MIIBuDCCAV2gAwIBAgIUJxuLc/DvExKiw6Ze1eh6gUYxJhowCgYIKoZIzj0EAwIw
HTEbMBkGA1UEAwwSaG90bWV0cmljcyB0ZXN0IENBMCAXDTI2MTEyNTAwMzYxNVoY
DzIxMjYxMTAxMDAzNjE1WjAhMR8wHQYDVQQDDBZob3RtZXRyaWNzIHRlc3QgY2xp
ZW50MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEIq0XZfLuaXvFmQIDJNOGV8KA
hPmloeS64rJeoOth2IbzYJq7+xTZ44zz8YOtU5FeNEipzwXhgxXRnqra0i4MZqN1
MHMwDAYDVR0TAQH/BAIwADAOBgNVHQ8BAf8EBAMCB4AwEwYDVR0lBAwwCgYIKwYB
BQUHAwIwHQYDVR0OBBYEFP6YU5wlaWqhWoMX3zGJXkPQlFcNMB8GA1UdIwQYMBaA
FCRlZb4J/eFOicmzCw8rdmYZ3AqmMAoGCCqGSM49BAMCA0kAMEYCIQDBu4EvcwHB
QSHX5riyIqCLl120Yl0vZmVDXTSVSnItIAIhAJ8o8vw5qoB84wmZHajxQ84kE2EQ
OQUZy22D4EbqBXF+
-----END CERTIFICATE-----
";
const CLIENT_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg4c/HKnF615DGuoRg
kTvN/SpwnDhQQYfZ+dbgeluesZqhRANCAAQirRdl8u5pe8WZAgMk04ZXwoCE+aWh
5Lrisl6g62HYhvNgmrv7FNnjjPPxg61TkV40SKnPBeGDFdGeqtrSLgxm
-----END PRIVATE KEY-----
";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("test certificates parse")
}

/// The collector's TLS settings; with `client_auth`, it requires a client
/// certificate signed by the test CA.
pub(super) fn server_config(client_auth: bool) -> rustls::ServerConfig {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("TLS versions");
    let builder = if client_auth {
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs(CA) {
            roots.add(cert).expect("the CA certificate");
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .expect("a client verifier");
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let key = PrivateKeyDer::from_pem_slice(SERVER_KEY.as_bytes()).expect("the server key");
    builder
        .with_single_cert(certs(SERVER), key)
        .expect("the server certificate")
}

/// The test PKI as files, in a directory of its own.
pub(super) struct Pki {
    dir: PathBuf,
}

impl Pki {
    pub(super) fn write(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("hotmetrics-pki-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, pem) in [
            ("ca.pem", CA),
            ("client.pem", CLIENT),
            ("client.key", CLIENT_KEY),
        ] {
            std::fs::write(dir.join(name), pem).unwrap();
        }
        Self { dir }
    }

    pub(super) fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn orders(value: f64) -> Snapshot {
    snapshot_at(
        vec![series("orders", &[], MetricValue::Counter(exact(value)))],
        1,
    )
}

#[test]
fn https_with_a_private_ca_from_the_environment() {
    let collector = Collector::start_tls(server_config(false), |_| Reply::ok());
    let pki = Pki::write("ca");
    let mut otlp = quick("http://unused")
        .env_vars([
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.https_url()),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", pki.path("ca.pem")),
        ])
        .metrics_endpoint(format!("{}/v1/metrics", collector.https_url()))
        .build()
        .unwrap();
    otlp.export(&orders(7.0)).unwrap();
    let accepted = collector.accepted();
    assert_eq!(value(&points(metric(&accepted[0], "orders"))[0]), 7.0);
}

#[test]
fn an_untrusted_server_is_a_permanent_error() {
    let collector = Collector::start_tls(server_config(false), |_| Reply::ok());
    // The web PKI roots do not know the test CA.
    let mut otlp = quick(&collector.https_url()).build().unwrap();
    let error = otlp.export(&orders(1.0)).unwrap_err();
    assert!(matches!(error, ExportError::Permanent(_)), "{error}");
    assert!(error.to_string().contains("TLS"), "{error}");
    assert_eq!(collector.request_count(), 0);
}

#[test]
fn mutual_tls() {
    let collector = Collector::start_tls(server_config(true), |_| Reply::ok());
    let pki = Pki::write("mtls");
    let mut with_identity = quick(&collector.https_url())
        .certificate(pki.path("ca.pem"))
        .client_certificate(pki.path("client.pem"))
        .client_key(pki.path("client.key"))
        .build()
        .unwrap();
    with_identity.export(&orders(3.0)).unwrap();
    assert_eq!(collector.accepted().len(), 1);

    let mut without = quick(&collector.https_url())
        .certificate(pki.path("ca.pem"))
        .build()
        .unwrap();
    assert!(
        without.export(&orders(4.0)).is_err(),
        "the collector wants a client certificate"
    );
    assert_eq!(collector.request_count(), 1);
}
