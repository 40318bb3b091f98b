//! A loopback OTLP/HTTP collector for the tests: a real HTTP/1.1 server on
//! `127.0.0.1` (std only), one thread per connection, keep-alive, that
//! decodes every request with `opentelemetry-proto` and answers as its
//! script says (status, headers, body, delay).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use flate2::read::GzDecoder;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;

/// How the collector answers one request.
#[derive(Clone, Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// Wait this long before answering.
    pub(crate) delay: Duration,
}

impl Reply {
    pub(crate) fn ok() -> Self {
        Self::status(200)
    }

    pub(crate) fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub(crate) fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    pub(crate) fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// Answers request number `n` (from 0).
pub(crate) type Script = dyn Fn(usize) -> Reply + Send + Sync;

/// One request as the collector saw it.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) request: ExportMetricsServiceRequest,
    pub(crate) at: Instant,
    /// The status it was answered with.
    pub(crate) status: u16,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    /// Requests seen, kept or not.
    count: usize,
    /// False: count requests but keep none (memory measurements).
    forget: bool,
}

pub(crate) struct Collector {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Collector {
    /// A collector on a free loopback port.
    pub(crate) fn start(script: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        Self::serve(listener, Arc::new(script))
    }

    /// A collector on `addr` (to bring a "down" backend up).
    pub(crate) fn start_on(
        addr: SocketAddr,
        script: impl Fn(usize) -> Reply + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        Ok(Self::serve(TcpListener::bind(addr)?, Arc::new(script)))
    }

    /// A collector behind TLS (`https://`), with `config`'s certificate and
    /// client authentication.
    pub(crate) fn start_tls(
        config: rustls::ServerConfig,
        script: impl Fn(usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        Self::serve_with(listener, Arc::new(script), Some(Arc::new(config)))
    }

    fn serve(listener: TcpListener, script: Arc<Script>) -> Self {
        Self::serve_with(listener, script, None)
    }

    fn serve_with(
        listener: TcpListener,
        script: Arc<Script>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let addr = listener.local_addr().expect("bound");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (state2, stop2) = (state.clone(), stop.clone());
        let thread = thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::Acquire) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let (state, script, stop) = (state2.clone(), script.clone(), stop2.clone());
                let tls = tls.clone();
                thread::spawn(move || match tls {
                    None => connection(stream, &state, &*script, &stop),
                    Some(config) => {
                        let Ok(session) = rustls::ServerConnection::new(config) else {
                            return;
                        };
                        let stream = rustls::StreamOwned::new(session, stream);
                        connection(stream, &state, &*script, &stop);
                    }
                });
            }
        });
        Self {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:port` (the exporter appends `/v1/metrics`).
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `https://127.0.0.1:port`.
    pub(crate) fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Every request received so far.
    pub(crate) fn received(&self) -> Vec<Received> {
        lock(&self.state).received.clone()
    }

    pub(crate) fn request_count(&self) -> usize {
        lock(&self.state).count
    }

    /// Counts requests without keeping them.
    pub(crate) fn forgetting(self) -> Self {
        lock(&self.state).forget = true;
        self
    }

    /// Requests answered with a 2xx status.
    pub(crate) fn accepted(&self) -> Vec<ExportMetricsServiceRequest> {
        lock(&self.state)
            .received
            .iter()
            .filter(|r| (200..300).contains(&r.status))
            .map(|r| r.request.clone())
            .collect()
    }

    /// Waits until `enough` holds for the received requests.
    pub(crate) fn wait_until(
        &self,
        timeout: Duration,
        enough: impl Fn(&[Received]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if enough(&lock(&self.state).received) {
                return true;
            }
            thread::sleep(Duration::from_millis(5));
        }
        enough(&lock(&self.state).received)
    }

    /// Stops accepting; the port is free once this returns.
    pub(crate) fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.store(true, Ordering::Release);
            let _ = TcpStream::connect(self.addr);
            let _ = thread.join();
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves requests on one keep-alive connection until it closes.
fn connection(stream: impl Read + Write, state: &Mutex<State>, script: &Script, stop: &AtomicBool) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        match reader.read_line(&mut request_line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(key, _): &&(String, String)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.clone())
        };
        let length: usize = header("content-length")
            .and_then(|value| value.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if header("content-encoding").as_deref() == Some("gzip") {
            let mut plain = Vec::new();
            if GzDecoder::new(body.as_slice())
                .read_to_end(&mut plain)
                .is_err()
            {
                return;
            }
            body = plain;
        }
        let request = ExportMetricsServiceRequest::decode(body.as_slice())
            .expect("the exporter sends a valid ExportMetricsServiceRequest");
        let index = {
            let mut state = lock(state);
            state.count += 1;
            if state.forget {
                drop(state);
                let reply = script(0);
                let head = format!(
                    "HTTP/1.1 {} Test\r\nContent-Length: 0\r\n\r\n",
                    reply.status
                );
                if reader.get_mut().write_all(head.as_bytes()).is_err() {
                    return;
                }
                continue;
            }
            state.received.push(Received {
                path,
                headers: headers.clone(),
                request,
                at: Instant::now(),
                status: 0,
            });
            state.received.len() - 1
        };
        let reply = script(index);
        lock(state).received[index].status = reply.status;
        if !reply.delay.is_zero() {
            thread::sleep(reply.delay);
        }
        if stop.load(Ordering::Acquire) {
            return;
        }
        let mut head = format!(
            "HTTP/1.1 {} Test\r\nContent-Length: {}\r\n",
            reply.status,
            reply.body.len()
        );
        for (name, value) in &reply.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let writer = reader.get_mut();
        if writer.write_all(head.as_bytes()).is_err()
            || writer.write_all(&reply.body).is_err()
            || writer.flush().is_err()
        {
            return;
        }
    }
}

/// A free loopback address with nothing listening on it (yet).
pub(crate) fn unused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    listener.local_addr().expect("bound")
}
