//! A scrape is answered at once while a hundred clients trickle a request
//! head a byte at a time and a hundred more connect and send nothing; every
//! such connection is closed by its total deadline (not a per-read timeout),
//! connections past the limit are closed as they come, and the server's
//! threads and memory stay bounded.
//!
//! The first test runs in a process of its own so that the thread and
//! memory figures are its alone.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use super::super::connection::HEAD_TIMEOUT;
use super::super::server::{Server, MAX_CONNECTIONS};
use super::*;
use crate::test_support::in_own_process;

const TRICKLERS: usize = 100;
const IDLERS: usize = 100;
/// How often each trickling client sends its next byte: well inside a
/// per-read timeout, so only a deadline for the whole head ends it.
const TRICKLE_EVERY: Duration = Duration::from_millis(1000);
/// The scrape starts after the first round of trickled bytes.
const SCRAPE_AFTER: Duration = Duration::from_millis(1200);
/// Connecting all the clients takes a few milliseconds; this leaves room
/// for two SYNs resent on a loaded machine.
const CONNECT_BUDGET: Duration = Duration::from_secs(3);
/// A scrape must be answered within this.
const SCRAPE_BUDGET: Duration = Duration::from_secs(1);

/// Threads of this process.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

/// Resident memory of this process from `/proc/self/status`, in bytes:
/// all of it (`VmRSS`, with the pages of the test binary's code as it is
/// run), and the anonymous part (`RssAnon`: heaps and stacks).
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| -> u64 {
        let line = status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} in /proc/self/status"));
        let kib: u64 = line.trim().trim_end_matches("kB").trim().parse().unwrap();
        kib << 10
    };
    (field("VmRSS:"), field("RssAnon:"))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// Whether the server has closed `client` (non-blocking: a connection still
/// open has nothing to read).
fn closed_by_server(client: &mut TcpStream) -> bool {
    match client.read(&mut [0; 64]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => error.kind() != ErrorKind::WouldBlock,
    }
}

fn count_closed(clients: &mut [(TcpStream, bool)]) -> usize {
    clients
        .iter_mut()
        .filter_map(|(client, _)| closed_by_server(client).then_some(()))
        .count()
}

/// A normal scrape: the time to the full response, and the response.
fn scrape(addr: SocketAddr) -> (Duration, Result<String, String>) {
    let started = Instant::now();
    let response = (|| {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
            .map_err(|error| format!("connect: {error}"))?;
        stream
            .set_read_timeout(Some(SCRAPE_BUDGET * 3))
            .map_err(|error| error.to_string())?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: prometheus\r\nAccept: text/plain\r\n\r\n")
            .map_err(|error| format!("send: {error}"))?;
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .map_err(|error| format!("no full response: {error}"))?;
        Ok(response)
    })();
    (started.elapsed(), response)
}

#[test]
fn scrape_answered_past_trickling_and_idle_clients() {
    if !in_own_process(
        "export::prometheus::tests::slow_clients::scrape_answered_past_trickling_and_idle_clients",
    ) {
        return;
    }
    let threads_before = threads();
    let memory_before = memory();
    let prometheus = Prometheus::builder()
        .env_vars(NO_ENV)
        .address("127.0.0.1:0")
        .build()
        .unwrap();
    prometheus.clone().export(&sample_snapshot()).unwrap();
    let addr = prometheus.local_addr().unwrap();

    // Tricklers and idlers interleaved: the oldest connection trickles.
    // All connected within CONNECT_BUDGET, or the server is not accepting.
    let connect_deadline = Instant::now() + CONNECT_BUDGET;
    let mut clients: Vec<(TcpStream, bool)> = (0..TRICKLERS + IDLERS)
        .map(|i| {
            // Paced a little: a loopback connect completes in the client's
            // own call, faster than a busy machine may run the accept
            // thread, and a full listen queue (std's 128) drops the SYN,
            // which is resent a second later.
            if i % 16 == 15 {
                thread::sleep(Duration::from_millis(2));
            }
            let left = connect_deadline.saturating_duration_since(Instant::now());
            let mut client = TcpStream::connect_timeout(&addr, left.max(Duration::from_millis(1)))
                .unwrap_or_else(|error| {
                    panic!("client {i} not connected within {CONNECT_BUDGET:?}: {error}")
                });
            let trickles = i % 2 == 0;
            if trickles {
                client
                    .write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
                    .unwrap();
            }
            client.set_nonblocking(true).unwrap();
            (client, trickles)
        })
        .collect();
    let attack_start = Instant::now();

    let (mut max_threads, mut max_memory) = (threads(), memory());
    let mut excess_closed = 0;
    let (latency, response) = thread::scope(|scope| {
        let scraper = thread::Builder::new()
            .name("test-scraper".into())
            .spawn_scoped(scope, || {
                thread::sleep(SCRAPE_AFTER);
                scrape(addr)
            })
            .unwrap();
        // Trickle until every attacking connection is past its head
        // deadline; a bounded loop.
        let end = attack_start + HEAD_TIMEOUT + Duration::from_millis(800);
        let mut next_byte = attack_start + TRICKLE_EVERY;
        loop {
            let now = Instant::now();
            if now >= end {
                break;
            }
            thread::sleep((next_byte.min(end) - now).min(Duration::from_millis(100)));
            if Instant::now() >= next_byte {
                next_byte += TRICKLE_EVERY;
                for (client, trickles) in &mut clients {
                    if *trickles {
                        // The server may have closed it already.
                        let _ = client.write(b"x");
                    }
                }
            }
            if excess_closed == 0 && attack_start.elapsed() >= Duration::from_millis(500) {
                // Before any deadline: only connections past the limit.
                excess_closed = count_closed(&mut clients);
            }
            max_threads = max_threads.max(threads());
            let now = memory();
            max_memory = (max_memory.0.max(now.0), max_memory.1.max(now.1));
        }
        scraper.join().unwrap()
    });
    let still_open = clients.len() - count_closed(&mut clients);
    drop(clients);

    println!(
        "scrape past {TRICKLERS} trickling and {IDLERS} idle clients: {:.1} ms; \
         threads {threads_before} before, at most {max_threads} during; \
         RSS {:.1} MiB before, at most {:.1} MiB during \
         (anonymous: {:.1} MiB, at most {:.1} MiB); \
         {excess_closed} connections closed at once (limit {MAX_CONNECTIONS}); \
         {still_open} open after {:?}",
        latency.as_secs_f64() * 1e3,
        mib(memory_before.0),
        mib(max_memory.0),
        mib(memory_before.1),
        mib(max_memory.1),
        attack_start.elapsed(),
    );
    let response = response.unwrap_or_else(|error| {
        panic!("scrape not answered within {latency:?} past slow clients: {error}")
    });
    assert!(
        response.starts_with("HTTP/1.1 200 OK\r\n") && response.contains("http_requests_total"),
        "{response}"
    );
    assert!(
        latency < SCRAPE_BUDGET,
        "scrape answered in {latency:?}, over {SCRAPE_BUDGET:?}"
    );
    // The server's two threads, and the test's scraper.
    assert!(
        max_threads <= threads_before + 3,
        "threads: {threads_before} before, {max_threads} during"
    );
    // Heaps and stacks: two server threads, at most 64 heads of 8 KiB, one
    // body, and the test's own clients.
    let growth = max_memory.1.saturating_sub(memory_before.1);
    assert!(growth < 2 << 20, "anonymous RSS grew by {growth} bytes");
    assert!(
        excess_closed >= (TRICKLERS + IDLERS).saturating_sub(MAX_CONNECTIONS),
        "{excess_closed} connections closed past the limit of {MAX_CONNECTIONS}"
    );
    assert_eq!(still_open, 0, "connections left open past their deadline");

    // The clients are gone: scrapes go on, and dropping the exporter frees
    // the port.
    let (_, response) = scrape(addr);
    assert!(response.unwrap().starts_with("HTTP/1.1 200 OK\r\n"));
    drop(prometheus);
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err());
}

/// A client that asks for a body larger than the socket buffers and does
/// not read it holds its own connection only: a scrape beside it is
/// answered, and the body arrives whole once the client reads.
#[test]
fn slow_reader_blocks_no_one() {
    let body: Arc<str> = "x".repeat(32 << 20).into();
    let large = body.clone();
    let render = move |format| match format {
        PrometheusFormat::Text => large.clone(),
        _ => Arc::from("# EOF\n"),
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = Server::spawn(listener, Arc::new(render)).unwrap();
    let addr = server.addr();

    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    // Time for the server to fill the socket buffers and find them full.
    thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let (status, _, small) = http(
        addr,
        "GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text\r\n\r\n",
    );
    let latency = started.elapsed();
    assert_eq!(
        (status.as_str(), small.as_str()),
        ("HTTP/1.1 200 OK", "# EOF\n")
    );
    assert!(
        latency < SCRAPE_BUDGET,
        "scrape answered in {latency:?} beside a slow reader"
    );

    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut response = Vec::new();
    slow.read_to_end(&mut response).unwrap();
    let head = format!("Content-Length: {}\r\n", body.len());
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(String::from_utf8_lossy(&response[..split]).contains(&head));
    assert!(&response[split..] == body.as_bytes(), "the body, whole");
}
