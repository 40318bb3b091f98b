//! The scrape endpoint: a minimal HTTP/1.1 server on one thread.
//!
//! Scrapes are rare (every few seconds) and small, so one thread answers
//! them one at a time, each connection closed after its response. Reads and
//! writes have timeouts and the request head is capped at 8 KiB, so a slow
//! or hostile client delays the next scrape by at most a few seconds and
//! costs no memory. `GET` and `HEAD` of `/metrics` are answered; the format
//! follows `Accept` (OpenMetrics when it names
//! `application/openmetrics-text`). Nothing here touches the engine: the
//! response is rendered from the last snapshot the exporter received.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::render::PrometheusFormat;

const MAX_HEAD_BYTES: u64 = 8 << 10;
const READ_TIMEOUT: Duration = Duration::from_secs(2);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Renders the body for one scrape.
pub(crate) type Renderer = dyn Fn(PrometheusFormat) -> String + Send + Sync;

/// A running scrape server; stopped on drop.
#[derive(Debug)]
pub(crate) struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub(crate) fn spawn(listener: TcpListener, render: Arc<Renderer>) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = thread::Builder::new()
            .name("hotmetrics-prometheus".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::Acquire) {
                        break;
                    }
                    match stream {
                        Ok(stream) => {
                            if let Err(error) = answer(stream, &*render) {
                                log::debug!(target: "hotmetrics", "scrape connection: {error}");
                            }
                        }
                        Err(error) => {
                            log::debug!(target: "hotmetrics", "scrape accept failed: {error}");
                            thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
            })?;
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the thread and frees the port.
    pub(crate) fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        // Release: pairs with the Acquire in the accept loop.
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept with a connection of our own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
            });
        }
        let woken = TcpStream::connect_timeout(&wake, Duration::from_secs(1)).is_ok();
        // The last handle may be dropped by a scrape on the server thread
        // itself: it must not wait for itself.
        if woken && thread.thread().id() != thread::current().id() {
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads one request head and writes the response.
fn answer(stream: TcpStream, render: &Renderer) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let mut reader = BufReader::new((&stream).take(MAX_HEAD_BYTES));
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut accept = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("accept") {
                accept.push_str(value.trim());
                accept.push(',');
            }
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let mut stream = &stream;
    let (status, content_type, body, extra) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            let format = if accept.contains("application/openmetrics-text") {
                PrometheusFormat::OpenMetrics
            } else {
                PrometheusFormat::Text
            };
            ("200 OK", format.content_type(), render(format), "")
        }
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "metrics are served at /metrics\n".to_string(),
            "",
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET and HEAD\n".to_string(),
            "Allow: GET, HEAD\r\n",
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if method != "HEAD" {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}
