//! OTLP/gRPC against a loopback collector: an HTTP/2 server (h2, which
//! tonic's client already builds) that speaks just enough gRPC to answer
//! `MetricsService/Export` as its script says.

use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use flate2::read::GzDecoder;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message;
use tonic::codegen::{http, Bytes};

use super::collector::unused_addr;
use super::*;
use crate::export::exporter::Exporter;
use crate::export::otlp::rpc::RpcStatus;
use crate::export::otlp::{Compression, Protocol};
use crate::report::stats::CircuitState;
use crate::ExportError;

/// How the collector answers one call: a gRPC status code (0 = OK).
#[derive(Clone, Debug, Default)]
struct GrpcReply {
    code: i32,
    message: String,
    details: Option<Vec<u8>>,
    delay: Duration,
}

fn ok() -> GrpcReply {
    GrpcReply::default()
}

fn status(code: i32, message: &str) -> GrpcReply {
    GrpcReply {
        code,
        message: message.into(),
        ..Default::default()
    }
}

#[derive(Clone, Debug)]
struct Call {
    metadata: Vec<(String, String)>,
    request: ExportMetricsServiceRequest,
    at: Instant,
    compressed: bool,
}

type Calls = Arc<Mutex<Vec<Call>>>;

struct GrpcCollector {
    addr: SocketAddr,
    calls: Calls,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl GrpcCollector {
    fn start(script: fn(usize) -> GrpcReply) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), script)
    }

    fn start_on(addr: SocketAddr, script: fn(usize) -> GrpcReply) -> Self {
        Self::serve(addr, script, None)
    }

    /// Behind TLS, offering HTTP/2 by ALPN.
    fn start_tls(mut config: rustls::ServerConfig, script: fn(usize) -> GrpcReply) -> Self {
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        Self::serve("127.0.0.1:0".parse().unwrap(), script, Some(acceptor))
    }

    fn serve(
        addr: SocketAddr,
        script: fn(usize) -> GrpcReply,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Self {
        let listener = std::net::TcpListener::bind(addr).expect("a loopback port");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Calls::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (calls2, stop2) = (calls.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((socket, _)) = listener.accept().await else {
                        continue;
                    };
                    if stop2.load(Ordering::Acquire) {
                        break;
                    }
                    let calls = calls2.clone();
                    match &tls {
                        None => {
                            tokio::spawn(connection(socket, calls, script));
                        }
                        Some(acceptor) => {
                            let accept = acceptor.accept(socket);
                            tokio::spawn(async move {
                                if let Ok(stream) = accept.await {
                                    connection(stream, calls, script).await;
                                }
                            });
                        }
                    }
                }
            });
        });
        Self {
            addr,
            calls,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

impl Drop for GrpcCollector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn connection<S>(socket: S, calls: Calls, script: fn(usize) -> GrpcReply)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Ok(mut connection) = h2::server::handshake(socket).await else {
        return;
    };
    while let Some(Ok((request, respond))) = connection.accept().await {
        tokio::spawn(answer(request, respond, calls.clone(), script));
    }
}

async fn answer(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    calls: Calls,
    script: fn(usize) -> GrpcReply,
) {
    let metadata: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let mut body = request.into_body();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else { return };
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    // One length-prefixed message: compressed flag, u32 length, bytes.
    let compressed = data.first() == Some(&1);
    let length = u32::from_be_bytes(data[1..5].try_into().unwrap()) as usize;
    let mut message = data[5..5 + length].to_vec();
    if compressed {
        let mut plain = Vec::new();
        GzDecoder::new(message.as_slice())
            .read_to_end(&mut plain)
            .unwrap();
        message = plain;
    }
    let request = ExportMetricsServiceRequest::decode(message.as_slice()).unwrap();
    let index = {
        let mut calls = calls.lock().unwrap();
        calls.push(Call {
            metadata,
            request,
            at: Instant::now(),
            compressed,
        });
        calls.len() - 1
    };
    let reply = script(index);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let head = http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc");
    if reply.code == 0 {
        let Ok(mut stream) = respond.send_response(head.body(()).unwrap(), false) else {
            return;
        };
        let payload = ExportMetricsServiceResponse::default().encode_to_vec();
        let mut frame = vec![0u8];
        frame.extend((payload.len() as u32).to_be_bytes());
        frame.extend(payload);
        let _ = stream.send_data(Bytes::from(frame), false);
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let _ = stream.send_trailers(trailers);
    } else {
        // A trailers-only response.
        let mut head = head
            .header("grpc-status", reply.code.to_string())
            .header("grpc-message", reply.message.replace(' ', "%20"));
        if let Some(details) = &reply.details {
            head = head.header("grpc-status-details-bin", base64(details));
        }
        let _ = respond.send_response(head.body(()).unwrap(), true);
    }
}

/// Standard base64 without padding, as gRPC binary metadata is sent.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn grpc(url: &str) -> OtlpBuilder {
    quick(url).protocol(Protocol::Grpc)
}

fn orders(value: f64) -> Snapshot {
    snapshot_at(
        vec![
            series(
                "orders",
                &[("shop", "eu")],
                MetricValue::Counter(exact(value)),
            ),
            series("depth", &[], MetricValue::Gauge(3.5)),
        ],
        1,
    )
}

#[test]
fn base64_matches_the_standard() {
    assert_eq!(base64(b"Man"), "TWFu");
    assert_eq!(base64(b"Ma"), "TWE");
    assert_eq!(base64(b"M"), "TQ");
}

#[test]
fn export_over_grpc_with_gzip_and_metadata() {
    let collector = GrpcCollector::start(|_| ok());
    let mut otlp = grpc(&collector.url())
        .compression(Compression::Gzip)
        .header("X-Api-Key", "k-456")
        .build()
        .unwrap();
    otlp.export(&orders(12.0)).unwrap();
    let calls = collector.calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert!(call.compressed);
    assert!(call
        .metadata
        .iter()
        .any(|(k, v)| k == "x-api-key" && v == "k-456"));
    let point = &points(metric(&call.request, "orders"))[0];
    assert_eq!(value(point), 12.0);
    assert_eq!(
        string_attribute(&point.attributes, "shop").as_deref(),
        Some("eu")
    );
    assert_eq!(value(&points(metric(&call.request, "depth"))[0]), 3.5);
}

#[test]
fn unavailable_is_retried() {
    let collector = GrpcCollector::start(|n| {
        if n < 2 {
            status(14, "warming up")
        } else {
            ok()
        }
    });
    let mut otlp = grpc(&collector.url()).build().unwrap();
    otlp.export(&orders(1.0)).unwrap();
    assert_eq!(collector.calls().len(), 3);
}

#[test]
fn resource_exhausted_needs_retry_info() {
    let collector = GrpcCollector::start(|n| match n {
        0 => GrpcReply {
            details: Some(
                RpcStatus::with_retry_delay(8, "slow down", Duration::from_millis(300))
                    .encode_to_vec(),
            ),
            ..status(8, "slow down")
        },
        1 => ok(),
        _ => status(8, "quota exhausted"),
    });
    let mut otlp = grpc(&collector.url()).build().unwrap();
    otlp.export(&orders(1.0)).unwrap();
    let calls = collector.calls();
    assert_eq!(calls.len(), 2);
    assert!(
        calls[1].at - calls[0].at >= Duration::from_millis(280),
        "RetryInfo honoured"
    );
    // Without RetryInfo, RESOURCE_EXHAUSTED is final.
    let error = otlp.export(&orders(2.0)).unwrap_err();
    assert!(matches!(error, ExportError::Permanent(_)), "{error}");
    assert_eq!(collector.calls().len(), 3);
}

#[test]
fn invalid_argument_is_permanent_with_its_message() {
    let collector = GrpcCollector::start(|_| status(3, "bad metric name"));
    let mut otlp = grpc(&collector.url())
        .header("authorization", "Bearer grpc-secret")
        .build()
        .unwrap();
    let error = otlp.export(&orders(1.0)).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, ExportError::Permanent(_)));
    assert!(text.contains("bad metric name"), "{text}");
    assert!(!text.contains("grpc-secret"));
    assert_eq!(collector.calls().len(), 1);
}

#[test]
fn slow_collector_times_out() {
    let collector = GrpcCollector::start(|_| GrpcReply {
        delay: Duration::from_secs(2),
        ..ok()
    });
    let mut otlp = grpc(&collector.url())
        .timeout(Duration::from_millis(200))
        .export_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let started = Instant::now();
    assert!(otlp.export(&orders(1.0)).is_err());
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn collector_down_at_start_then_up() {
    let addr = unused_addr();
    let mut otlp = grpc(&format!("http://{addr}"))
        .circuit_breaker(CircuitBreakerPolicy {
            failure_threshold: 2,
            open_for: Duration::from_millis(200),
            max_open_for: Duration::from_secs(1),
        })
        .build()
        .unwrap();
    assert!(otlp.export(&orders(1.0)).is_err());
    assert_eq!(otlp.circuit_state(), CircuitState::Open);
    let collector = GrpcCollector::start_on(addr, |_| ok());
    thread::sleep(Duration::from_millis(250));
    otlp.export(&orders(2.0)).unwrap();
    assert_eq!(otlp.circuit_state(), CircuitState::Closed);
    let calls = collector.calls();
    assert_eq!(value(&points(metric(&calls[0].request, "orders"))[0]), 2.0);
}

#[test]
fn grpc_over_tls_with_a_private_ca_and_a_client_certificate() {
    use super::tls::{server_config, Pki};
    let collector = GrpcCollector::start_tls(server_config(true), |_| ok());
    let pki = Pki::write("grpc");
    let mut otlp = Otlp::builder()
        .env_vars([
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_string()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.https_url()),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", pki.path("ca.pem")),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                pki.path("client.pem"),
            ),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", pki.path("client.key")),
        ])
        .timeout(Duration::from_secs(2))
        .export_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    otlp.export(&orders(9.0)).unwrap();
    let calls = collector.calls();
    assert_eq!(value(&points(metric(&calls[0].request, "orders"))[0]), 9.0);
}
