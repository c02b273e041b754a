//! The one load generator of the tests: keep-alive clients and
//! fresh-connection probers sending `GET /` to 127.0.0.1, each failure
//! kept with its kind and time, the longest stretch without an answer,
//! the longest request, every pid that answered (from the app's JSON
//! `pid`, or the last word of a text body such as Go's `hello from PID`).
//! The reload, resize and chaos tests all measure with it.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::wait::wait_for;

/// The longest any load runs, whatever happens (a test bug cannot hang).
pub const LOAD_LIMIT: Duration = Duration::from_secs(120);

/// How long a client waits for a response before it counts a timeout.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fail {
    /// `connect()` got ECONNREFUSED: nothing listened on the port.
    Refused,
    /// `connect()` failed otherwise (timed out...).
    Connect,
    /// The connection was reset (ECONNRESET, EPIPE) before a whole
    /// response.
    Reset,
    /// The server closed the connection (EOF) before a whole response.
    Closed,
    /// No response within [`READ_TIMEOUT`].
    Timeout,
    /// A response that is not `200` with the app's JSON.
    Bad,
}

/// One failed request.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Since the load started.
    pub at: Duration,
    pub kind: Fail,
    /// From a fresh-connection prober (else a keep-alive client).
    pub fresh: bool,
    /// On a connection that had already carried a request (keep-alive
    /// reuse), else on a new one.
    pub reused: bool,
    pub detail: String,
}

#[derive(Debug)]
struct Shared {
    started: Instant,
    last_ok: Instant,
    longest_gap: Duration,
    longest_request: Duration,
    failures: Vec<Failure>,
    pids: BTreeSet<i32>,
}

/// What the load saw.
#[derive(Debug, Clone)]
pub struct LoadStats {
    pub ok: u64,
    pub failures: Vec<Failure>,
    /// Every pid that answered.
    pub pids: BTreeSet<i32>,
    /// The longest time without any answer (between two answers, or from
    /// the last answer to the end).
    pub longest_gap: Duration,
    /// The longest answered request, from its start (the connect when it
    /// opened a connection) to the end of its response.
    pub longest_request: Duration,
    pub duration: Duration,
    /// Clients: keep-alive ones and fresh-connection probers.
    pub clients: usize,
}

impl LoadStats {
    /// Connections refused.
    pub fn refused(&self) -> u64 {
        self.count(|f| f.kind == Fail::Refused)
    }

    /// Requests that failed otherwise (reset, closed, timed out, bad).
    pub fn failed(&self) -> u64 {
        self.count(|f| f.kind != Fail::Refused)
    }

    /// Failures of any kind before `at` (since the load started).
    pub fn failed_before(&self, at: Duration) -> u64 {
        self.count(|f| f.at < at)
    }

    pub fn count(&self, pred: impl Fn(&Failure) -> bool) -> u64 {
        self.failures.iter().filter(|f| pred(f)).count() as u64
    }

    /// The first failures, in words, for assertion messages.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} answered, {} failed ({} on fresh connections), {} refused, longest gap {:?}, longest request {:?}; first failures:",
            self.ok,
            self.failed(),
            self.count(|f| f.fresh && f.kind != Fail::Refused),
            self.refused(),
            self.longest_gap,
            self.longest_request
        );
        for f in self.failures.iter().take(12) {
            s.push_str(&format!(
                "\n  {:>7.3}s {:?} {}{} {}",
                f.at.as_secs_f64(),
                f.kind,
                if f.fresh { "fresh" } else { "keep-alive" },
                if f.reused { " (reused)" } else { "" },
                f.detail
            ));
        }
        s
    }
}

/// `keepalive` clients sending `GET /` back to back over keep-alive
/// connections (reconnecting when the server closes, as wrk does), plus
/// `fresh` probers each opening a new connection per request (every 5 ms),
/// so a refused connection shows even when no keep-alive client happens to
/// reconnect. All to 127.0.0.1:`port`.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    shared: Arc<Mutex<Shared>>,
    threads: Vec<JoinHandle<()>>,
    clients: usize,
}

impl Load {
    pub fn start(port: u16, keepalive: usize, fresh: usize) -> Load {
        let now = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let shared = Arc::new(Mutex::new(Shared {
            started: now,
            last_ok: now,
            longest_gap: Duration::ZERO,
            longest_request: Duration::ZERO,
            failures: Vec::new(),
            pids: BTreeSet::new(),
        }));
        let threads = (0..keepalive + fresh)
            .map(|i| {
                let c = Client {
                    port,
                    fresh: i >= keepalive,
                    stop: stop.clone(),
                    ok: ok.clone(),
                    shared: shared.clone(),
                };
                std::thread::spawn(move || c.run())
            })
            .collect();
        Load {
            stop,
            ok,
            shared,
            threads,
            clients: keepalive + fresh,
        }
    }

    /// Answers so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::SeqCst)
    }

    /// Time since the load started (to compare with [`Failure::at`]).
    pub fn elapsed(&self) -> Duration {
        self.lock().started.elapsed()
    }

    /// The longest time without an answer so far (up to now).
    pub fn longest_gap(&self) -> Duration {
        let s = self.lock();
        s.longest_gap.max(s.last_ok.elapsed())
    }

    /// Failures so far.
    pub fn failures(&self) -> usize {
        self.lock().failures.len()
    }

    /// Waits until `more` further requests were answered (bounded).
    pub fn wait_more(&self, more: u64, limit: Duration) {
        let target = self.ok() + more;
        wait_for(limit, &format!("{more} more answers"), || {
            (self.ok() >= target).then_some(())
        });
    }

    pub fn finish(self) -> LoadStats {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().expect("load thread");
        }
        let s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let end = Instant::now();
        let mut failures = s.failures.clone();
        failures.sort_by_key(|f| f.at);
        LoadStats {
            ok: self.ok.load(Ordering::SeqCst),
            failures,
            pids: s.pids.clone(),
            longest_gap: s.longest_gap.max(end.duration_since(s.last_ok)),
            longest_request: s.longest_request,
            duration: end.duration_since(s.started),
            clients: self.clients,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Client {
    port: u16,
    fresh: bool,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    shared: Arc<Mutex<Shared>>,
}

impl Client {
    fn run(self) {
        let started = Instant::now();
        let mut conn: Option<BufReader<TcpStream>> = None;
        // Requests the current connection has carried.
        let mut carried = 0u64;
        while !self.stop.load(Ordering::SeqCst) && started.elapsed() < LOAD_LIMIT {
            let begun = Instant::now();
            if conn.is_none() {
                carried = 0;
                match connect(self.port) {
                    Ok(s) => conn = Some(BufReader::new(s)),
                    Err(e) => {
                        let kind = if e.kind() == ErrorKind::ConnectionRefused {
                            Fail::Refused
                        } else {
                            Fail::Connect
                        };
                        self.failed(kind, false, format!("connect: {e}"));
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                }
            }
            let Some(c) = conn.as_mut() else { continue };
            match request(c, self.fresh) {
                Ok((pid, close)) => {
                    self.answered(pid, begun.elapsed());
                    carried += 1;
                    if close || self.fresh {
                        conn = None;
                    }
                }
                Err((kind, detail)) => {
                    self.failed(kind, carried > 0, detail);
                    conn = None;
                }
            }
            if self.fresh {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    fn answered(&self, pid: i32, took: Duration) {
        self.ok.fetch_add(1, Ordering::SeqCst);
        let now = Instant::now();
        let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        s.longest_request = s.longest_request.max(took);
        let gap = now.saturating_duration_since(s.last_ok);
        s.longest_gap = s.longest_gap.max(gap);
        s.last_ok = s.last_ok.max(now);
        s.pids.insert(pid);
    }

    fn failed(&self, kind: Fail, reused: bool, detail: String) {
        let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let at = s.started.elapsed();
        s.failures.push(Failure {
            at,
            kind,
            fresh: self.fresh,
            reused,
            detail,
        });
    }
}

fn connect(port: u16) -> std::io::Result<TcpStream> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(READ_TIMEOUT))?;
    s.set_write_timeout(Some(READ_TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

fn io_fail(what: &str, e: std::io::Error) -> (Fail, String) {
    let kind = match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Fail::Timeout,
        ErrorKind::UnexpectedEof => Fail::Closed,
        _ => Fail::Reset,
    };
    (kind, format!("{what}: {e}"))
}

/// One line; a close before it is [`Fail::Closed`] (`closed`).
fn read_line(
    c: &mut BufReader<TcpStream>,
    what: &str,
    closed: &str,
) -> Result<String, (Fail, String)> {
    let mut line = String::new();
    match c.read_line(&mut line) {
        Ok(0) => Err((Fail::Closed, closed.to_owned())),
        Ok(_) => Ok(line),
        Err(e) => Err(io_fail(what, e)),
    }
}

/// One `GET /`: (pid, the server closes after it).
fn request(c: &mut BufReader<TcpStream>, close: bool) -> Result<(i32, bool), (Fail, String)> {
    let req: &[u8] = if close {
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    } else {
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    };
    c.get_mut()
        .write_all(req)
        .map_err(|e| io_fail("write", e))?;
    let status = read_line(c, "read status", "closed before a response")?;
    if !status.starts_with("HTTP/1.1 200") {
        return Err((Fail::Bad, format!("status line {status:?}")));
    }
    let mut length = None;
    let mut server_closes = false;
    loop {
        let line = read_line(c, "read header", "closed in the headers")?;
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
        if l.starts_with("connection:") && l.contains("close") {
            server_closes = true;
        }
    }
    let length = length.ok_or((Fail::Bad, "no content-length".to_owned()))?;
    let mut body = vec![0; length];
    c.read_exact(&mut body)
        .map_err(|e| io_fail("read body", e))?;
    let pid = pid_of(&body).ok_or_else(|| {
        (
            Fail::Bad,
            format!("no pid in the body {:?}", String::from_utf8_lossy(&body)),
        )
    })?;
    Ok((pid, server_closes))
}

/// The answering pid: the JSON body's `pid`, else the last word of a text
/// body (`hello from 1234`).
pub fn pid_of(body: &[u8]) -> Option<i32> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => v["pid"].as_i64().and_then(|p| i32::try_from(p).ok()),
        Err(_) => std::str::from_utf8(body)
            .ok()?
            .split_whitespace()
            .last()?
            .parse()
            .ok(),
    }
}
