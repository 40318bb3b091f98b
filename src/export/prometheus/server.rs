//! The scrape endpoint: a minimal HTTP/1.1 server on two threads that no
//! client can hold.
//!
//! Scrapes are rare (every few seconds) and small, but anything that can
//! reach the port can connect, so one slow or silent client must not delay
//! the next scrape. A thread per connection, or a pool of them, lets N slow
//! clients hold N threads. Here no thread ever waits on a client:
//!
//! - **The accept thread** only accepts, blocking in `accept`, and hands
//!   each connection over a bounded channel. It drains the listen queue
//!   (128 in std) as fast as it is scheduled: a full queue drops new SYNs,
//!   which costs a scraper a second to resend.
//! - **The connection thread** takes new connections as they come and
//!   reads each at once (a scraper's request is usually there already).
//!   Every tick it walks all open connections in non-blocking mode, taking
//!   what each has ready (see `connection.rs`), so a client that sends a
//!   byte a second delays no one but itself. (std has no readiness API
//!   such as `poll`, and this feature adds no dependency: hence ticks.)
//!   Ticks come [`MIN_PAUSE`] after one that moved bytes, backing off to
//!   [`MAX_PAUSE`]: the longest a request already accepted waits to be
//!   looked at.
//! - **Deadlines per request, not per read**: the head must be complete
//!   within `HEAD_TIMEOUT` of the accept and the response written within
//!   `REQUEST_TIMEOUT`, however the bytes trickle.
//! - **Bounded**: two threads; at most [`MAX_CONNECTIONS`] open and as many
//!   in the channel, each holding at most its 8 KiB head (bodies are shared,
//!   see `served.rs`). Past the limit the oldest connection still sending
//!   its head is closed for the new one, so a flood of idle connections
//!   pushes out its own members while a scraper, answered as soon as its
//!   request is in, gets through.
//! - **Idle costs nothing**: with no connection open both threads block,
//!   one in `accept` and one on the channel.
//!
//! `GET` and `HEAD` of `/metrics` are answered; the format follows `Accept`
//! (OpenMetrics when it names `application/openmetrics-text`). Every
//! connection is closed after its response. Nothing here touches the
//! engine: the response is rendered from the last snapshot the exporter
//! received. Failures are logged at debug level: they are the client's.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::connection::{Connection, Progress, Renderer};

/// Connections open at once; past it the oldest still sending its head is
/// closed. Also the capacity of the channel from the accept thread.
pub(super) const MAX_CONNECTIONS: usize = 64;
/// The pause after a tick that moved bytes.
const MIN_PAUSE: Duration = Duration::from_millis(1);
/// The longest pause between ticks while connections are open.
const MAX_PAUSE: Duration = Duration::from_millis(20);

/// A running scrape server; stopped on drop.
#[derive(Debug)]
pub(crate) struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// The accept thread, then the connection thread; empty once stopped.
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    pub(crate) fn spawn(listener: TcpListener, render: Arc<Renderer>) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (hand_over, accepted) = mpsc::sync_channel(MAX_CONNECTIONS);
        // Started first: if the accept thread cannot start, its dropped
        // sender ends this one.
        let connections = thread::Builder::new()
            .name("hotmetrics-prometheus-connections".into())
            .spawn(move || serve(&accepted, &*render))?;
        let stopping = stop.clone();
        let accept = thread::Builder::new()
            .name("hotmetrics-prometheus".into())
            .spawn(move || accept_all(&listener, &stopping, &hand_over))?;
        Ok(Self {
            addr,
            stop,
            threads: vec![accept, connections],
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the threads and frees the port.
    pub(crate) fn stop(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        // Release: pairs with the Acquire in `accept_all`.
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept with a connection of our own; the accept
        // thread then ends, and its dropped sender ends the other.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
            });
        }
        let woken = TcpStream::connect_timeout(&wake, Duration::from_secs(1)).is_ok();
        // The last handle may be dropped by a scrape on the connection
        // thread itself: it must wait neither for itself nor for the accept
        // thread, which may be waiting for it to take a connection.
        let here = thread::current().id();
        let ours = self
            .threads
            .iter()
            .any(|thread| thread.thread().id() == here);
        for thread in self.threads.drain(..) {
            if woken && !ours {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The accept thread: hands every connection to the connection thread
/// until `stop`. The listener, and so the port, goes with it.
fn accept_all(listener: &TcpListener, stop: &AtomicBool, hand_over: &SyncSender<TcpStream>) {
    for stream in listener.incoming() {
        // Acquire: pairs with the Release in `Server::stop`.
        if stop.load(Ordering::Acquire) {
            break;
        }
        match stream {
            // Blocks while the connection thread is behind; the listen
            // queue holds the next ones meanwhile.
            Ok(stream) => {
                if hand_over.send(stream).is_err() {
                    break;
                }
            }
            Err(error) => {
                log::debug!(target: "hotmetrics", "scrape accept failed: {error}");
                thread::sleep(MAX_PAUSE);
            }
        }
    }
}

/// The connection thread: admits new connections as they come, and
/// advances every open one each tick, until the accept thread is gone.
fn serve(accepted: &Receiver<TcpStream>, render: &Renderer) {
    let mut open: Vec<Connection> = Vec::with_capacity(MAX_CONNECTIONS);
    let mut pause = MIN_PAUSE;
    let mut next_tick = Instant::now();
    loop {
        // Nothing open: wait for a connection, with no wake-ups.
        let new = if open.is_empty() {
            accepted
                .recv()
                .map_err(|mpsc::RecvError| RecvTimeoutError::Disconnected)
        } else {
            accepted.recv_timeout(next_tick.saturating_duration_since(Instant::now()))
        };
        match new {
            Ok(stream) => {
                admit(stream, &mut open, render);
                // The rest of those waiting, at most a channel's worth.
                for _ in 0..MAX_CONNECTIONS {
                    match accepted.try_recv() {
                        Ok(stream) => admit(stream, &mut open, render),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => return,
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        // New connections wake this loop at once, ticks only on time: a
        // flood of connections does not make it walk the open ones faster.
        let now = Instant::now();
        if now < next_tick {
            continue;
        }
        let mut moved = false;
        open.retain_mut(|connection| match connection.advance(now, render) {
            Ok(Progress::Waiting) => true,
            Ok(Progress::Moved) => {
                moved = true;
                true
            }
            Ok(Progress::Done) => false,
            Err(error) => {
                log::debug!(target: "hotmetrics", "scrape connection closed: {error}");
                false
            }
        });
        pause = if moved {
            MIN_PAUSE
        } else {
            (pause * 2).min(MAX_PAUSE)
        };
        next_tick = now + pause;
    }
}

/// Answers `stream` at once if its request is there, else adds it to
/// `open`, closing the oldest connection still sending its head if `open`
/// is full.
fn admit(stream: TcpStream, open: &mut Vec<Connection>, render: &Renderer) {
    let now = Instant::now();
    let mut connection = match Connection::new(stream, now) {
        Ok(connection) => connection,
        Err(error) => {
            log::debug!(target: "hotmetrics", "scrape connection: {error}");
            return;
        }
    };
    match connection.advance(now, render) {
        Ok(Progress::Done) => return,
        Ok(Progress::Waiting | Progress::Moved) => {}
        Err(error) => {
            log::debug!(target: "hotmetrics", "scrape connection closed: {error}");
            return;
        }
    }
    if open.len() >= MAX_CONNECTIONS {
        let oldest = open
            .iter()
            .position(Connection::is_reading_head)
            .unwrap_or(0);
        open.remove(oldest);
        log::debug!(
            target: "hotmetrics",
            "scrape connection closed: {MAX_CONNECTIONS} open, it was the oldest still sending its head"
        );
    }
    open.push(connection);
}
