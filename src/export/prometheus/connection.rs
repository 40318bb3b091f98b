//! One scrape connection, driven without ever blocking.
//!
//! A connection first reads its request head, at most [`MAX_HEAD_BYTES`],
//! then writes its response, each time taking what the socket has or
//! accepts right now. The server's loop calls [`Connection::advance`] on
//! every open connection each tick, so a client that sends or reads slowly
//! costs its own connection time and no one else's. Two deadlines run from
//! the accept, whatever the client does in between: [`HEAD_TIMEOUT`] for
//! the whole head, [`REQUEST_TIMEOUT`] for the whole exchange. The body is
//! shared with the renderer's cache, so a connection holds at most its head
//! of its own.

use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::render::PrometheusFormat;

/// The request head is read up to this many bytes; a longer one is
/// answered from what came.
pub(super) const MAX_HEAD_BYTES: usize = 8 << 10;
/// The whole request head must arrive within this of the accept (a
/// scraper sends it at once).
pub(super) const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// The whole exchange must end within this of the accept: Prometheus'
/// default scrape timeout, after which the scraper has given up anyway.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Renders the body for one scrape (shared by the responses that send it).
pub(crate) type Renderer = dyn Fn(PrometheusFormat) -> Arc<str> + Send + Sync;

/// What one call to [`Connection::advance`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Progress {
    /// Nothing to read or room to write: try again next tick.
    Waiting,
    /// Bytes moved, and there is more to do.
    Moved,
    /// Answered, or closed by the client before it asked anything: drop it.
    Done,
}

/// An accepted connection in non-blocking mode.
#[derive(Debug)]
pub(super) struct Connection {
    stream: TcpStream,
    accepted: Instant,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Reading the head; never longer than [`MAX_HEAD_BYTES`].
    Head(Vec<u8>),
    /// Writing `head` then `body`; `sent` counts the bytes of both written,
    /// in `0..=head.len() + body.len()`.
    Response {
        head: Vec<u8>,
        body: Option<Arc<str>>,
        sent: usize,
    },
}

impl Connection {
    /// Puts `stream` in non-blocking mode; its deadlines run from `now`.
    pub(super) fn new(stream: TcpStream, now: Instant) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(Self {
            stream,
            accepted: now,
            state: State::Head(Vec::new()),
        })
    }

    /// Whether the request head is still coming in.
    pub(super) fn is_reading_head(&self) -> bool {
        matches!(self.state, State::Head(_))
    }

    /// Reads and writes what can be without waiting, and renders the body
    /// once the head is complete.
    ///
    /// # Errors
    ///
    /// The socket's errors, and `TimedOut` past a deadline: either way the
    /// caller drops the connection.
    pub(super) fn advance(&mut self, now: Instant, render: &Renderer) -> io::Result<Progress> {
        let mut moved = false;
        if let State::Head(head) = &mut self.state {
            match read_head(&mut self.stream, head)? {
                HeadRead::Closed => return Ok(Progress::Done),
                // However much trickles in: the deadline is for the head.
                HeadRead::Partial { .. } if now >= self.accepted + HEAD_TIMEOUT => {
                    return Err(timed_out("request head", HEAD_TIMEOUT));
                }
                HeadRead::Partial { moved } => {
                    return Ok(if moved {
                        Progress::Moved
                    } else {
                        Progress::Waiting
                    })
                }
                HeadRead::Complete => {
                    let response = respond(head, render);
                    self.state = response;
                    moved = true;
                }
            }
        }
        let State::Response { head, body, sent } = &mut self.state else {
            unreachable!("the head was complete");
        };
        loop {
            let rest = match head.get(*sent..) {
                Some(rest) if !rest.is_empty() => rest,
                _ => body
                    .as_deref()
                    .map_or(&[][..], |body| &body.as_bytes()[*sent - head.len()..]),
            };
            if rest.is_empty() {
                return Ok(Progress::Done);
            }
            match self.stream.write(rest) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(written) => {
                    *sent += written;
                    moved = true;
                }
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                Err(error) => return Err(error),
            }
        }
        if now >= self.accepted + REQUEST_TIMEOUT {
            return Err(timed_out("response", REQUEST_TIMEOUT));
        }
        Ok(if moved {
            Progress::Moved
        } else {
            Progress::Waiting
        })
    }
}

fn timed_out(what: &str, timeout: Duration) -> io::Error {
    io::Error::new(
        ErrorKind::TimedOut,
        format!("{what} not done within {timeout:?} of the accept"),
    )
}

enum HeadRead {
    /// A blank line ended it, the client stopped sending, or it reached
    /// the cap.
    Complete,
    /// More may come; `moved` if this call read anything.
    Partial { moved: bool },
    /// The client closed without sending anything.
    Closed,
}

fn read_head(stream: &mut TcpStream, head: &mut Vec<u8>) -> io::Result<HeadRead> {
    let mut chunk = [0; 1024];
    let mut moved = false;
    loop {
        let room = (MAX_HEAD_BYTES - head.len()).min(chunk.len());
        if room == 0 {
            return Ok(HeadRead::Complete);
        }
        match stream.read(&mut chunk[..room]) {
            Ok(0) if head.is_empty() => return Ok(HeadRead::Closed),
            Ok(0) => return Ok(HeadRead::Complete),
            Ok(read) => {
                moved = true;
                // A blank line may straddle the previous read.
                let from = head.len().saturating_sub(2);
                head.extend_from_slice(&chunk[..read]);
                let tail = &head[from..];
                if tail.windows(2).any(|w| w == b"\n\n") || tail.windows(3).any(|w| w == b"\n\r\n")
                {
                    return Ok(HeadRead::Complete);
                }
            }
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                return Ok(HeadRead::Partial { moved })
            }
            Err(error) => return Err(error),
        }
    }
}

/// The response to a complete request head: `GET`/`HEAD` of `/metrics` in
/// the format `Accept` asks for, 404 elsewhere, 405 for other methods.
fn respond(head: &[u8], render: &Renderer) -> State {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or("");
    let mut accept = String::new();
    for line in lines {
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
    let (status, content_type, body, extra): (_, _, Arc<str>, _) = match (method, path) {
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
            "metrics are served at /metrics\n".into(),
            "",
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET and HEAD\n".into(),
            "Allow: GET, HEAD\r\n",
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    State::Response {
        head: head.into_bytes(),
        body: (method != "HEAD").then_some(body),
        sent: 0,
    }
}
