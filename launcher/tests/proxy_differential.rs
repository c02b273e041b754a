//! Differential test of the `--socket proxy` relay (issue 12, item 4): a
//! corpus of raw request streams (`tests/proxy_corpus/*.http`: valid, edge
//! and hostile) is sent to a worker directly and through the real corefit,
//! with a stop or a kill of the worker injected at every point of each
//! exchange. Whatever happens, the client must see exactly what it sees
//! directly, or a byte prefix of it followed by a clean close: never bytes
//! of another request or response.
//!
//! ```text
//!   client ──stream──▶ echo_app.js (direct, never faulted)       = reference
//!   client ──stream──▶ corefit :P ──▶ echo_app.js (1 worker)      = compared
//!                          ▲ stop (`corefit reload`) or SIGKILL of the worker,
//!                            before segment i, after the last one, after
//!                            the first response byte, on the idle connection
//! ```
//!
//! The app (tests/apps/echo_app.js) answers every request with hashes of
//! its method, target, raw headers, body and trailers, without a Date
//! header: the same bytes on every run, and different bytes for any other
//! request, so a response spliced from another request is never a prefix of
//! the reference. It logs every request it receives; a path that only ever
//! appears inside a body or a tunnel (`/smuggled-...`) must never be logged
//! as a request, by any worker.
//!
//! # Lanes
//!
//! Each lane is one corefit with one worker and restarts on; the three run
//! side by side, each one's cases one after the other, each injecting its
//! fault at every point of every stream:
//!
//! - `stop/exit`: a stop; the app exits at once on SIGTERM (in-flight
//!   responses truncated: the harshest reload);
//! - `kill`: SIGKILL of the worker;
//! - `stop/close`: a stop; the app calls `server.close()` and
//!   `closeIdleConnections()` on SIGTERM (it drops keep-alive connections
//!   whose next request it has not read: what the proxy's retry is for).
//!
//! `PROXY_DIFF_ONLY=substring` runs only the matching streams;
//! `PROXY_DIFF_COREFIT=/path/to/corefit` runs another build of corefit (an
//! older one, to see what it fails); `PROXY_DIFF_VERBOSE=1` prints each
//! exchange's timing.
//!
//! corefit runs `--mode cluster --max-workers 1 --resize-interval 600s`:
//! with `--workers 1` it would give the one worker the public port itself
//! (no proxy); a pool that may grow keeps the proxy (the resize never comes
//! within the test).
//!
//! A stop is `corefit reload`: a replacement starts, is routed, and the old
//! worker gets SIGTERM; the case goes on once the worker logged its SIGTERM
//! (and, in `exit` mode, is gone). A kill goes on once the worker is gone.
//! After each case the lane waits, with a deadline, for one ready worker
//! with a new pid.
//!
//! # What passes
//!
//! - No fault: exactly the reference bytes; and a close whenever the
//!   reference closed. A hostile stream (`@hostile`) may instead be cut
//!   short with a close, or refused by the proxy with one complete 4xx, 501
//!   or 505 response of its own at a response boundary, then a close.
//! - With a fault: the reference bytes, or a prefix of them and a close
//!   (a reset counts as a close), or a prefix ending at a response boundary
//!   followed by one complete 502, 503 or 504 response and a close. A
//!   prefix with the connection left open past the quiet time is a stall.
//!
//! # Corpus format
//!
//! One stream per `.http` file, in name order. Lines starting with `#` are
//! comments; `@hostile` marks a hostile stream. Directives start with
//! `>>> `:
//!
//! - `>>> send` starts a segment (one write); the text lines below it are
//!   its bytes, concatenated without the file's own line ends, with escapes
//!   decoded: `\r`, `\n`, `\t`, `\0`, `\\`, `\xHH` (write a text line that
//!   would start with `#`, `@` or `>>> ` as `\x23`...);
//! - `>>> send-trickle N MS`: a segment written N bytes at a time, MS ms
//!   apart (a slow sender);
//! - `>>> repeat N`: the next text line is appended N times;
//! - `>>> pause MS`: the client waits before its next step;
//! - `>>> await TEXT`: the client waits (at most 3 s, or until the server
//!   closes) for TEXT (escaped) in what it received so far, e.g. the
//!   `100 Continue` before a body;
//! - `>>> shutdown`: the client half-closes its side.
//!
//! The client then reads until the server closes or stays silent (1 s
//! directly; through corefit, until the reference's bytes are all there, or
//! 1.5 s of silence).

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use corefit_test_support::prelude::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The corpus must hold at least this many streams (the issue's floor).
const MIN_STREAMS: usize = 50;
/// A direct exchange the server keeps open ends after this much silence
/// (the slowest stream writes every 20 ms; a second leaves room for a busy
/// machine: a reference cut short would fail the determinism check).
const DIRECT_QUIET: Duration = Duration::from_secs(1);
/// A proxied exchange silent this long, short of the reference's bytes or
/// of its close, has stalled (it covers a restart of the worker).
const PROXY_QUIET: Duration = Duration::from_millis(1500);
/// With all of the reference's bytes and no close expected: how long to
/// keep listening for bytes that should not be there.
const LINGER: Duration = Duration::from_millis(150);
/// The longest an `await` step or a wait for response bytes lasts.
const AWAIT_LIMIT: Duration = Duration::from_secs(3);
/// The longest one exchange lasts, whatever happens.
const CASE_LIMIT: Duration = Duration::from_secs(20);
/// The longest a fault, or the return of a ready worker, may take.
const FAULT_LIMIT: Duration = Duration::from_secs(15);
/// Threads for the exchanges that run side by side (references, no fault).
const PARALLEL: usize = 6;

// ---------------------------------------------------------------------------
// The corpus

#[derive(Debug, Clone)]
enum Step {
    /// One segment, written `chunk` bytes at a time, `gap` apart.
    Send {
        data: Vec<u8>,
        chunk: usize,
        gap: Duration,
    },
    Pause(Duration),
    Await(Vec<u8>),
    Shutdown,
}

#[derive(Debug)]
struct Stream {
    name: String,
    hostile: bool,
    steps: Vec<Step>,
}

impl Stream {
    fn segments(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s, Step::Send { .. }))
            .count()
    }
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/proxy_corpus")
}

fn load_corpus() -> Vec<Stream> {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "http"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let name = p.file_stem().unwrap_or_default().to_string_lossy();
            let text =
                std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            parse_stream(&name, &text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        })
        .collect()
}

fn parse_stream(name: &str, text: &str) -> Result<Stream, String> {
    let mut steps = Vec::new();
    let mut hostile = false;
    let mut repeat: Option<usize> = None;
    let number = |s: &str, what: &str| -> Result<u64, String> {
        s.trim()
            .parse()
            .map_err(|_| format!("{what}: not a number: {s:?}"))
    };
    for (i, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}", i + 1);
        if let Some(directive) = line.strip_prefix(">>> ") {
            let (word, arg) = directive.split_once(' ').unwrap_or((directive, ""));
            match word {
                "send" => steps.push(Step::Send {
                    data: Vec::new(),
                    chunk: usize::MAX,
                    gap: Duration::ZERO,
                }),
                "send-trickle" => {
                    let (n, ms) = arg
                        .split_once(' ')
                        .ok_or_else(|| at("send-trickle N MS".into()))?;
                    steps.push(Step::Send {
                        data: Vec::new(),
                        chunk: (number(n, "chunk").map_err(at)? as usize).max(1),
                        gap: Duration::from_millis(number(ms, "gap").map_err(at)?),
                    });
                }
                "repeat" => repeat = Some(number(arg, "repeat").map_err(at)? as usize),
                "pause" => steps.push(Step::Pause(Duration::from_millis(
                    number(arg, "pause").map_err(at)?,
                ))),
                "await" => steps.push(Step::Await(decode(arg).map_err(at)?)),
                "shutdown" => steps.push(Step::Shutdown),
                other => return Err(at(format!("unknown directive {other:?}"))),
            }
        } else if line == "@hostile" {
            hostile = true;
        } else if line.starts_with('#') || line.is_empty() {
        } else {
            let bytes = decode(line).map_err(at)?;
            let Some(Step::Send { data, .. }) = steps.last_mut() else {
                return Err(at("text outside a `>>> send`".into()));
            };
            for _ in 0..repeat.take().unwrap_or(1) {
                data.extend_from_slice(&bytes);
            }
        }
    }
    if steps.is_empty() {
        return Err("no steps".into());
    }
    Ok(Stream {
        name: name.to_owned(),
        hostile,
        steps,
    })
}

/// Decodes `\r \n \t \0 \\ \xHH`; every other byte stands for itself.
fn decode(line: &str) -> Result<Vec<u8>, String> {
    let b = line.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = *b.get(i + 1).ok_or("a lone backslash at the end")?;
        i += 2;
        out.push(match c {
            b'r' => b'\r',
            b'n' => b'\n',
            b't' => b'\t',
            b'0' => 0,
            b'\\' => b'\\',
            b'x' => {
                let hex = line.get(i..i + 2).ok_or("\\x needs two hex digits")?;
                i += 2;
                u8::from_str_radix(hex, 16).map_err(|_| format!("bad escape \\x{hex}"))?
            }
            other => return Err(format!("unknown escape \\{}", other as char)),
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// One exchange

/// What a client saw.
#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    bytes: Vec<u8>,
    /// The server closed (EOF or reset).
    closed: bool,
    /// How the reading ended: "eof", a reset, or "open".
    end: String,
}

/// Where in an exchange a fault lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Point {
    /// Before the client writes segment i (0-based).
    Before(usize),
    /// Right after the client's last step.
    AfterLast,
    /// Once the first response byte arrived (mid-response for long ones).
    FirstByte,
    /// Once the whole reference response arrived on a connection the
    /// server keeps open (an idle keep-alive connection).
    Complete,
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Point::Before(i) => write!(f, "before segment {}", i + 1),
            Point::AfterLast => write!(f, "after the last step"),
            Point::FirstByte => write!(f, "after the first response byte"),
            Point::Complete => write!(f, "on the idle connection after the response"),
        }
    }
}

/// Every point of a stream's exchange, given its reference.
fn points(stream: &Stream, reference: &Outcome) -> Vec<Point> {
    let mut all: Vec<Point> = (0..stream.segments()).map(Point::Before).collect();
    all.push(Point::AfterLast);
    if !reference.bytes.is_empty() {
        all.push(Point::FirstByte);
        if !reference.closed {
            all.push(Point::Complete);
        }
    }
    all
}

#[derive(Default)]
struct Inbox {
    bytes: Vec<u8>,
    end: Option<String>,
    last: Option<Instant>,
}

#[derive(Default)]
struct Receiver {
    inbox: Mutex<Inbox>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Receiver {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until `done` holds or `limit` passes; true when it held.
    fn wait(&self, limit: Duration, mut done: impl FnMut(&Inbox) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        let mut inbox = self.lock();
        loop {
            if done(&inbox) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // Woken by every change, and every 10 ms: `done` may measure
            // a silence.
            let nap = (deadline - now).min(Duration::from_millis(10));
            inbox = self
                .changed
                .wait_timeout(inbox, nap)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

fn spawn_reader(mut sock: TcpStream, rx: Arc<Receiver>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let _ = sock.set_read_timeout(Some(Duration::from_millis(20)));
        let mut buf = vec![0; 64 * 1024];
        loop {
            let end = match sock.read(&mut buf) {
                Ok(0) => Some("eof".to_owned()),
                Ok(n) => {
                    let mut inbox = rx.lock();
                    inbox.bytes.extend_from_slice(&buf[..n]);
                    inbox.last = Some(Instant::now());
                    drop(inbox);
                    rx.changed.notify_all();
                    continue;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if rx.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => Some(format!("{:?}", e.kind())),
            };
            rx.lock().end = end;
            rx.changed.notify_all();
            return;
        }
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Plays `stream` against 127.0.0.1:`port`. Through corefit, `reference`
/// is the direct outcome (it says when the exchange is complete); `fault`
/// is run once, at `at`.
fn exchange(
    port: u16,
    stream: &Stream,
    reference: Option<&Outcome>,
    at: Option<Point>,
    fault: &mut dyn FnMut(),
) -> Outcome {
    let started = Instant::now();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut sock = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) => {
            // Still inject: the lane expects its fault to have happened.
            if at.is_some() {
                fault();
            }
            return Outcome {
                bytes: Vec::new(),
                closed: true,
                end: format!("connect: {e}"),
            };
        }
    };
    let _ = sock.set_nodelay(true);
    let _ = sock.set_write_timeout(Some(Duration::from_secs(5)));
    let rx = Arc::new(Receiver::default());
    let reader = spawn_reader(sock.try_clone().expect("clone the socket"), rx.clone());
    let mut fire = |here: Point| {
        if at == Some(here) {
            fault();
        }
    };

    let mut writable = true;
    let mut segment = 0;
    for step in &stream.steps {
        match step {
            Step::Send { data, chunk, gap } => {
                fire(Point::Before(segment));
                segment += 1;
                for (k, piece) in data.chunks(*chunk).enumerate() {
                    if !writable {
                        break;
                    }
                    if k > 0 {
                        std::thread::sleep(*gap);
                    }
                    // The server may have answered and closed already.
                    writable = sock.write_all(piece).is_ok();
                }
            }
            Step::Pause(d) => std::thread::sleep(*d),
            Step::Await(text) => {
                rx.wait(AWAIT_LIMIT, |i| i.end.is_some() || contains(&i.bytes, text));
            }
            Step::Shutdown => {
                if writable {
                    let _ = sock.shutdown(Shutdown::Write);
                }
            }
        }
    }
    fire(Point::AfterLast);
    if at == Some(Point::FirstByte) {
        rx.wait(AWAIT_LIMIT, |i| i.end.is_some() || !i.bytes.is_empty());
        fault();
    }
    if at == Some(Point::Complete) {
        let n = reference.map_or(1, |r| r.bytes.len());
        rx.wait(AWAIT_LIMIT, |i| i.end.is_some() || i.bytes.len() >= n);
        fault();
    }

    let sent = Instant::now();
    let quiet = if reference.is_some() {
        PROXY_QUIET
    } else {
        DIRECT_QUIET
    };
    rx.wait(CASE_LIMIT.saturating_sub(started.elapsed()), |i| {
        let silent = i.last.map_or(sent, |l| l.max(sent)).elapsed();
        if i.end.is_some() || silent >= quiet {
            return true;
        }
        match reference {
            Some(r) if i.bytes.len() > r.bytes.len() => true,
            Some(r) if i.bytes.len() == r.bytes.len() && !r.closed => silent >= LINGER,
            _ => false,
        }
    });
    rx.stop.store(true, Ordering::SeqCst);
    let _ = reader.join();
    let inbox = rx.lock();
    Outcome {
        bytes: inbox.bytes.clone(),
        closed: inbox.end.is_some(),
        end: inbox.end.clone().unwrap_or_else(|| "open".into()),
    }
}

// ---------------------------------------------------------------------------
// Judging an outcome against the reference

/// Offsets in `bytes` where a whole response (or an interim 1xx) ends,
/// starting with 0. A response with neither a length nor chunked coding
/// ends at the close (taken to be the end of `bytes`); a tunnel after a
/// 101 or anything unparsable ends the list.
fn response_ends(bytes: &[u8]) -> Vec<usize> {
    let mut ends = vec![0];
    let mut pos = 0;
    while pos < bytes.len() {
        let Some(h) = find(&bytes[pos..], b"\r\n\r\n") else {
            break;
        };
        let head = String::from_utf8_lossy(&bytes[pos..pos + h]).to_ascii_lowercase();
        let body = pos + h + 4;
        let Some(status) = status_of(head.as_bytes()) else {
            break;
        };
        let header = |name: &str| {
            head.lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim() == name)
                .map(|(_, v)| v.trim().to_owned())
        };
        let end = if status == 101 {
            ends.push(body);
            break;
        } else if (100..200).contains(&status) || status == 204 || status == 304 {
            body
        } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            match chunked_len(&bytes[body..]) {
                Some(n) => body + n,
                None => break,
            }
        } else if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
            // A response to HEAD has a length and no body.
            if n > 0 && bytes[body..].starts_with(b"HTTP/1.") {
                body
            } else {
                body + n
            }
        } else {
            ends.push(bytes.len());
            break;
        };
        if end > bytes.len() {
            break;
        }
        ends.push(end);
        pos = end;
    }
    ends
}

fn status_of(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\r').next()?;
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split(' ');
    if !parts.next()?.to_ascii_lowercase().starts_with("http/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// The length of a whole chunked body at the start of `b`, if complete.
fn chunked_len(b: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        let line_end = pos + find(&b[pos..], b"\r\n")?;
        let size_text = std::str::from_utf8(&b[pos..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        pos = line_end + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let end = pos + find(&b[pos..], b"\r\n")?;
                let empty = end == pos;
                pos = end + 2;
                if empty {
                    return Some(pos);
                }
            }
        }
        pos += size + 2;
        if pos > b.len() {
            return None;
        }
    }
}

/// How a proxied outcome passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Exact,
    /// A prefix of the reference, then a close.
    CutShort,
    /// The proxy answered with an error response of its own, then closed.
    Refused,
}

fn judge(
    reference: &Outcome,
    got: &Outcome,
    faulted: bool,
    hostile: bool,
) -> Result<Verdict, String> {
    let (r, g) = (&reference.bytes, &got.bytes);
    if g == r {
        if reference.closed && !got.closed {
            return Err(format!(
                "all {} bytes, but the connection stayed open (directly, the server closed it)",
                r.len()
            ));
        }
        return Ok(Verdict::Exact);
    }
    if r.starts_with(g) {
        if !got.closed {
            return Err(format!(
                "stalled: {} of {} bytes, then nothing for {PROXY_QUIET:?} and no close",
                g.len(),
                r.len()
            ));
        }
        if faulted || hostile {
            return Ok(Verdict::CutShort);
        }
        return Err(format!(
            "cut short with no fault: {} of {} bytes, then {}",
            g.len(),
            r.len(),
            got.end
        ));
    }
    // An error response of the proxy's own at a response boundary.
    let own_error = |status: u16| {
        matches!(status, 502..=504)
            || (hostile && ((400..500).contains(&status) || status == 501 || status == 505))
    };
    for &at in response_ends(r).iter().rev() {
        if at > g.len() || g[..at] != r[..at] {
            continue;
        }
        let rest = &g[at..];
        let whole = response_ends(rest) == [0, rest.len()];
        if got.closed && whole && status_of(rest).is_some_and(own_error) {
            return Ok(Verdict::Refused);
        }
    }
    Err(mismatch(reference, got))
}

fn mismatch(reference: &Outcome, got: &Outcome) -> String {
    let (r, g) = (&reference.bytes, &got.bytes);
    let at = r.iter().zip(g.iter()).take_while(|(a, b)| a == b).count();
    format!(
        "NOT a prefix of the direct response: got {} bytes ({}), direct {} bytes ({}); \
         first difference at byte {at}: got {} | direct {}",
        g.len(),
        got.end,
        r.len(),
        reference.end,
        snippet(g, at),
        snippet(r, at)
    )
}

fn snippet(b: &[u8], at: usize) -> String {
    let from = at.saturating_sub(30);
    let to = (at + 90).min(b.len());
    format!("{:?}", String::from_utf8_lossy(&b[from..to]))
}

// ---------------------------------------------------------------------------
// Processes: the direct app, corefit lanes, faults

fn verbose() -> bool {
    std::env::var_os("PROXY_DIFF_VERBOSE").is_some()
}

fn corefit_bin() -> String {
    std::env::var("PROXY_DIFF_COREFIT").unwrap_or_else(|_| built_corefit())
}

/// The corefit built for this test run.
fn built_corefit() -> String {
    corefit_test_support::corefit::corefit_bin()
        .display()
        .to_string()
}

/// The reference app, started directly; killed (by pid) when dropped.
struct DirectApp {
    child: Child,
}

impl DirectApp {
    fn start(port: u16, log: &Path) -> DirectApp {
        let child = Command::new("node")
            .arg(app("echo_app.js"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "HOME",
                std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
            )
            .env("PORT", port.to_string())
            .env("REQUEST_LOG", log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node tests/apps/echo_app.js");
        let app = DirectApp { child };
        wait_for(Duration::from_secs(15), "the direct app to listen", || {
            TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
        });
        app
    }
}

impl Drop for DirectApp {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `corefit reload`: the worker gets SIGTERM once its replacement is
    /// routed.
    Stop,
    /// SIGKILL of the worker.
    Kill,
}

struct LaneSpec {
    name: &'static str,
    /// The app's ON_STOP.
    on_stop: &'static str,
    fault: Fault,
}

const LANES: [LaneSpec; 3] = [
    LaneSpec {
        name: "stop/exit",
        on_stop: "exit",
        fault: Fault::Stop,
    },
    LaneSpec {
        name: "kill",
        on_stop: "exit",
        fault: Fault::Kill,
    },
    LaneSpec {
        name: "stop/close",
        on_stop: "close",
        fault: Fault::Stop,
    },
];

/// One corefit with one worker behind its proxy.
struct Lane {
    spec: LaneSpec,
    port: u16,
    control: PathBuf,
    log: PathBuf,
    corefit: Corefit,
}

impl Lane {
    fn start(spec: LaneSpec, dir: &Path, index: usize) -> Lane {
        let port = free_port();
        let control = dir.join(format!("lane{index}.sock"));
        let log = dir.join(format!("lane{index}.log"));
        let port_s = port.to_string();
        let control_s = control.display().to_string();
        let app_path = app("echo_app.js");
        // `--workers 1` would make corefit drop the proxy (one worker gets
        // the public port itself); a pool that may grow keeps it: at most
        // one worker, re-planned every 10 minutes (never, in this test).
        let args = [
            "--mode",
            "cluster",
            "--max-workers",
            "1",
            "--resize-interval",
            "600s",
            "--restart",
            "always",
            "--socket",
            "proxy",
            "--host",
            "127.0.0.1",
            "--port",
            &port_s,
            "--min-uptime",
            "0s",
            "--backoff",
            "1ms",
            "--respawn-limit",
            "1000000",
            "--grace-period",
            "2s",
            "--control-socket",
            &control_s,
            "--",
            "node",
            &app_path,
        ];
        let log_s = log.display().to_string();
        let env = [("REQUEST_LOG", log_s.as_str()), ("ON_STOP", spec.on_stop)];
        let bin = corefit_bin();
        let corefit = if bin == built_corefit() {
            Corefit::start(&args, &env)
        } else {
            // `sh -c` replaces itself with the other binary: same pid.
            let script = r#"bin=$1; shift 2; exec "$bin" "$@""#;
            Corefit::start_wrapped(&["sh", "-c", script, "sh", &bin], &args, &env)
        };
        let lane = Lane {
            spec,
            port,
            control,
            log,
            corefit,
        };
        lane.ready_worker(None)
            .unwrap_or_else(|e| panic!("lane {}: {e}", lane.spec.name));
        lane
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(corefit_bin())
            .args(args)
            .arg("--control-socket")
            .arg(&self.control)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .expect("run a corefit subcommand")
    }

    /// (pid, phase) of each worker, per `corefit status --json`.
    fn workers(&self) -> Option<Vec<(i32, String)>> {
        let out = self.ctl(&["status", "--json"]);
        if !out.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        Some(
            v["workers"]
                .as_array()?
                .iter()
                .map(|w| {
                    (
                        w["pid"].as_i64().unwrap_or(0) as i32,
                        w["phase"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect(),
        )
    }

    /// Waits for exactly one worker, ready, whose pid is not `old`.
    fn ready_worker(&self, old: Option<i32>) -> Result<i32, String> {
        let mut last = None;
        poll(FAULT_LIMIT, || {
            let w = self.workers()?;
            let found = match w.as_slice() {
                [(pid, phase)] if phase == "ready" && Some(*pid) != old => Some(*pid),
                _ => None,
            };
            last = Some(w);
            found
        })
        .ok_or_else(|| {
            format!(
                "no single ready worker other than {old:?} within {FAULT_LIMIT:?} (last status: {last:?})"
            )
        })
    }

    /// Injects `fault` into worker `pid`; returns once it has landed.
    fn inject(&self, fault: Fault, pid: i32) -> Result<(), String> {
        match fault {
            Fault::Kill => {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                poll(FAULT_LIMIT, || (!alive(pid)).then_some(()))
                    .ok_or_else(|| format!("worker {pid} still alive after SIGKILL"))
            }
            Fault::Stop => {
                let out = self.ctl(&["reload"]);
                if !out.status.success() {
                    return Err(format!(
                        "corefit reload failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
                let line = format!("{pid} SIGTERM\n");
                poll(FAULT_LIMIT, || {
                    let log = std::fs::read_to_string(&self.log).ok()?;
                    log.contains(&line).then_some(())
                })
                .ok_or_else(|| format!("worker {pid} got no SIGTERM after `corefit reload`"))?;
                if self.spec.on_stop == "exit" {
                    poll(FAULT_LIMIT, || (!alive(pid)).then_some(()))
                        .ok_or_else(|| format!("worker {pid} did not exit on SIGTERM"))?;
                }
                Ok(())
            }
        }
    }

    fn log_len(&self) -> usize {
        std::fs::metadata(&self.log).map_or(0, |m| m.len() as usize)
    }

    /// Requests for a `smuggled` path in the log from byte `from` on.
    fn smuggled_since(&self, from: usize) -> Vec<String> {
        smuggled_lines(&self.log, from)
    }
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
fn poll<T>(limit: Duration, mut cond: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = cond() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Lines of a request log (from byte `from`) that name a `smuggled` path:
/// requests that only ever existed inside a body or a tunnel.
fn smuggled_lines(log: &Path, from: usize) -> Vec<String> {
    let text = std::fs::read(log).unwrap_or_default();
    String::from_utf8_lossy(text.get(from..).unwrap_or_default())
        .lines()
        .filter(|l| l.contains("smuggled"))
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------
// The run

/// One failed check.
#[derive(Debug)]
struct Failure {
    lane: String,
    stream: String,
    when: String,
    what: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] {} — {}: {}",
            self.lane, self.stream, self.when, self.what
        )
    }
}

/// `f` over every stream on `PARALLEL` threads, results in stream order.
fn par_map<T: Send>(streams: &[Stream], f: impl Fn(usize, &Stream) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<T>>> = Mutex::new((0..streams.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(s) = streams.get(i) else { break };
                let v = f(i, s);
                out.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(v);
            });
        }
    });
    out.into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|v| v.expect("every stream ran"))
        .collect()
}

#[derive(Debug, Default)]
struct Tally {
    cases: usize,
    exact: usize,
    cut_short: usize,
    refused: usize,
}

impl Tally {
    fn add(&mut self, v: Verdict) {
        match v {
            Verdict::Exact => self.exact += 1,
            Verdict::CutShort => self.cut_short += 1,
            Verdict::Refused => self.refused += 1,
        }
    }
}

/// Every point of every stream through one lane, one case at a time.
fn run_faults(
    lane: &Lane,
    corpus: &[Stream],
    refs: &[Outcome],
    failures: &Mutex<Vec<Failure>>,
) -> Tally {
    let mut tally = Tally::default();
    let fail = |stream: &Stream, when: String, what: String| {
        let f = Failure {
            lane: lane.spec.name.to_owned(),
            stream: stream.name.clone(),
            when,
            what,
        };
        eprintln!("FAIL {f}");
        failures.lock().unwrap_or_else(|p| p.into_inner()).push(f);
    };
    let mut pid = match lane.ready_worker(None) {
        Ok(p) => p,
        Err(e) => {
            fail(&corpus[0], "before the fault cases".into(), e);
            return tally;
        }
    };
    for (stream, reference) in corpus.iter().zip(refs) {
        for point in points(stream, reference) {
            let fault = lane.spec.fault;
            let when = format!("{fault:?} {point}");
            let log_from = lane.log_len();
            let mut injected = None;
            let t0 = Instant::now();
            let got = exchange(lane.port, stream, Some(reference), Some(point), &mut || {
                injected = Some(lane.inject(fault, pid));
            });
            tally.cases += 1;
            match judge(reference, &got, true, stream.hostile) {
                Ok(v) => tally.add(v),
                Err(e) => fail(stream, when.clone(), e),
            }
            if let Some(Err(e)) = injected {
                fail(stream, when.clone(), format!("the fault did not land: {e}"));
            }
            let t1 = Instant::now();
            let settled = lane.ready_worker(Some(pid));
            if verbose() {
                eprintln!(
                    "[{}] {} {when}: exchange {:.1?}, worker back {:.1?}",
                    lane.spec.name,
                    stream.name,
                    t1 - t0,
                    t1.elapsed()
                );
            }
            match settled {
                Ok(new) => pid = new,
                Err(e) => {
                    fail(stream, when, format!("after the fault: {e}"));
                    return tally;
                }
            }
            for line in lane.smuggled_since(log_from) {
                fail(
                    stream,
                    format!("{fault:?} {point}"),
                    format!("a body became a request: the app logged {line:?}"),
                );
            }
        }
    }
    tally
}

#[test]
fn through_the_proxy_a_client_sees_the_direct_bytes_or_a_clean_close_under_stop_and_kill() {
    let started = Instant::now();
    let only = std::env::var("PROXY_DIFF_ONLY").ok();
    let corpus: Vec<Stream> = load_corpus()
        .into_iter()
        .filter(|s| only.as_deref().is_none_or(|o| s.name.contains(o)))
        .collect();
    if only.is_none() {
        assert!(
            corpus.len() >= MIN_STREAMS,
            "the corpus holds {} streams, fewer than {MIN_STREAMS}",
            corpus.len()
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let direct_port = free_port();
    let direct_log = dir.path().join("direct.log");
    let _direct = DirectApp::start(direct_port, &direct_log);
    let lanes: Vec<Lane> = LANES
        .into_iter()
        .enumerate()
        .map(|(i, spec)| Lane::start(spec, dir.path(), i))
        .collect();
    let failures = Mutex::new(Vec::<Failure>::new());
    let push = |f: Failure| {
        eprintln!("FAIL {f}");
        failures.lock().unwrap_or_else(|p| p.into_inner()).push(f);
    };

    // 1. The references, twice: the direct exchange must be deterministic
    //    (else the comparison means nothing: a corpus or app bug).
    let refs = par_map(&corpus, |_, s| {
        let t = Instant::now();
        let o = exchange(direct_port, s, None, None, &mut || {});
        if verbose() {
            eprintln!("direct {}: {:.1?}, {}", s.name, t.elapsed(), o.end);
        }
        o
    });
    let again = par_map(&corpus, |_, s| {
        exchange(direct_port, s, None, None, &mut || {})
    });
    let unstable: Vec<String> = corpus
        .iter()
        .zip(refs.iter().zip(&again))
        .filter(|(_, (a, b))| a != b)
        .map(|(s, (a, b))| format!("{}: {}", s.name, mismatch(a, b)))
        .collect();
    assert!(
        unstable.is_empty(),
        "direct exchanges differ from one run to the next:\n{}",
        unstable.join("\n")
    );
    let smuggled_direct = smuggled_lines(&direct_log, 0);
    assert!(
        smuggled_direct.is_empty(),
        "the app itself served a `smuggled` path directly (a corpus bug): {smuggled_direct:?}"
    );
    let references_done = started.elapsed();

    // 2. No fault: through every lane, the exact bytes.
    let mut clean = Tally::default();
    for lane in &lanes {
        let log_from = lane.log_len();
        let outcomes = par_map(&corpus, |i, s| {
            exchange(lane.port, s, Some(&refs[i]), None, &mut || {})
        });
        for ((stream, reference), got) in corpus.iter().zip(&refs).zip(&outcomes) {
            clean.cases += 1;
            match judge(reference, got, false, stream.hostile) {
                Ok(v) => {
                    if v != Verdict::Exact {
                        eprintln!(
                            "[{}] {} with no fault: {v:?} (a hostile stream)",
                            lane.spec.name, stream.name
                        );
                    }
                    clean.add(v);
                }
                Err(e) => push(Failure {
                    lane: lane.spec.name.to_owned(),
                    stream: stream.name.clone(),
                    when: "no fault".into(),
                    what: e,
                }),
            }
        }
        for line in lane.smuggled_since(log_from) {
            push(Failure {
                lane: lane.spec.name.to_owned(),
                stream: "(one of the no-fault exchanges)".into(),
                when: "no fault".into(),
                what: format!("a body became a request: the app logged {line:?}"),
            });
        }
    }
    let clean_done = started.elapsed();

    // 3. A fault at every point: the lanes side by side.
    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let handles: Vec<_> = lanes
            .iter()
            .map(|lane| scope.spawn(|| run_faults(lane, &corpus, &refs, &failures)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("fault lane"))
            .collect()
    });

    // 4. Whole logs, and corefit itself still running.
    let mut lanes = lanes;
    for lane in &mut lanes {
        let all = lane.smuggled_since(0);
        if !all.is_empty() {
            eprintln!(
                "[{}] every smuggled request logged: {all:?}",
                lane.spec.name
            );
        }
        if let Some(status) = lane.corefit.try_status() {
            push(Failure {
                lane: lane.spec.name.to_owned(),
                stream: "-".into(),
                when: "end of the run".into(),
                what: format!("corefit exited: {status:?}"),
            });
        }
    }

    let points_total: usize = corpus
        .iter()
        .zip(&refs)
        .map(|(s, r)| points(s, r).len())
        .sum();
    let fault_cases: usize = tallies.iter().map(|t| t.cases).sum();
    let failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    let elapsed = started.elapsed();
    eprintln!(
        "proxy differential: {} streams ({} hostile), {points_total} injection points, \
         {} lanes; references {:.1?}, no-fault {:.1?}, total {:.1?}",
        corpus.len(),
        corpus.iter().filter(|s| s.hostile).count(),
        lanes.len(),
        references_done,
        clean_done - references_done,
        elapsed
    );
    eprintln!(
        "  no fault: {} cases, {} exact, {} cut short, {} refused by the proxy",
        clean.cases, clean.exact, clean.cut_short, clean.refused
    );
    for (lane, t) in lanes.iter().zip(&tallies) {
        eprintln!(
            "  [{}] {} fault cases: {} exact, {} cut short and closed, {} refused by the proxy",
            lane.spec.name, t.cases, t.exact, t.cut_short, t.refused
        );
    }
    if failures.is_empty() && only.is_none() {
        let exact: usize = tallies.iter().map(|t| t.exact).sum();
        let short: usize = tallies.iter().map(|t| t.cut_short + t.refused).sum();
        record(
            "launcher",
            "proxy differential: raw request streams directly and through corefit",
            &format!(
                "a stop (reload; the app exits at once or closes gracefully) or a SIGKILL of the worker at each of {points_total} points of {} streams",
                corpus.len()
            ),
            elapsed,
            &[
                ("streams", corpus.len().to_string()),
                ("injection points", points_total.to_string()),
                ("fault cases", fault_cases.to_string()),
                ("identical to direct", exact.to_string()),
                ("prefix then clean close", short.to_string()),
            ],
            "every exchange identical to the direct one or a prefix and a clean close; no body reached a worker as a request",
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} checks failed:\n{}",
        failures.len(),
        clean.cases + fault_cases,
        failures
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The rules of [`judge`] on hand-made outcomes (no process involved).
#[test]
fn the_judge_accepts_the_reference_a_prefix_and_a_close_or_an_error_of_the_proxy_own() {
    let out = |bytes: &[u8], closed: bool| Outcome {
        bytes: bytes.to_vec(),
        closed,
        end: if closed { "eof" } else { "open" }.into(),
    };
    let first = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\none".as_slice();
    let second = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n";
    let both = [first, second.as_slice()].concat();
    let reference = out(&both, true);
    let bad_gateway = b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n".as_slice();
    let bad_request = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n".as_slice();
    let node_400 = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n".as_slice();
    let spliced = [&first[..first.len() - 1], second].concat();
    // (got, faulted, hostile, expected verdict or None for a failure)
    let table: Vec<(Outcome, bool, bool, Option<Verdict>)> = vec![
        (out(&both, true), false, false, Some(Verdict::Exact)),
        (out(&both, false), true, false, None),
        (out(&both[..30], true), true, false, Some(Verdict::CutShort)),
        (out(&both[..30], true), false, false, None),
        (out(&both[..30], true), false, true, Some(Verdict::CutShort)),
        (out(&both[..30], false), true, false, None),
        (out(&spliced, true), true, true, None),
        (
            out(&[&both, b"x".as_slice()].concat(), true),
            true,
            false,
            None,
        ),
        (
            out(&[first, bad_gateway].concat(), true),
            true,
            false,
            Some(Verdict::Refused),
        ),
        (
            out(&[first, bad_gateway].concat(), false),
            true,
            false,
            None,
        ),
        (
            out(&[&first[..20], bad_gateway].concat(), true),
            true,
            false,
            None,
        ),
        (out(&[first, bad_request].concat(), true), true, false, None),
        (
            out(&[first, bad_request].concat(), true),
            false,
            true,
            Some(Verdict::Refused),
        ),
        (out(bad_request, true), false, true, Some(Verdict::Refused)),
        (out(node_400, true), false, true, Some(Verdict::Refused)),
        (out(node_400, false), false, true, None),
    ];
    for (i, (got, faulted, hostile, want)) in table.into_iter().enumerate() {
        let verdict = judge(&reference, &got, faulted, hostile);
        assert_eq!(verdict.clone().ok(), want, "row {i}: {verdict:?}");
    }
    assert_eq!(response_ends(&both), vec![0, first.len(), both.len()]);
    let head_then_get = [
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n".as_slice(),
        first,
    ]
    .concat();
    assert_eq!(
        response_ends(&head_then_get),
        vec![0, 38, head_then_get.len()]
    );
}

#[test]
fn a_corpus_file_parses_into_steps_with_escapes_decoded() {
    let s = parse_stream(
        "t",
        "# c\n@hostile\n>>> send\nGET / HTTP/1.1\\r\\n\n>>> repeat 3\nab\n\\x23\\0\\\\\n>>> pause 5\n\
         >>> await HTTP/1.1 100\\r\\n\n>>> send-trickle 2 7\nxyz\n>>> shutdown\n",
    )
    .expect("parses");
    assert!(s.hostile);
    assert_eq!(s.segments(), 2);
    match &s.steps[..] {
        [Step::Send { data, .. }, Step::Pause(p), Step::Await(a), Step::Send {
            data: d2,
            chunk,
            gap,
        }, Step::Shutdown] => {
            assert_eq!(data.as_slice(), b"GET / HTTP/1.1\r\nababab#\0\\");
            assert_eq!(*p, Duration::from_millis(5));
            assert_eq!(a.as_slice(), b"HTTP/1.1 100\r\n");
            assert_eq!(
                (d2.as_slice(), *chunk, *gap),
                (b"xyz".as_slice(), 2, Duration::from_millis(7))
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(parse_stream("t", "text before any send\n").is_err());
    assert!(parse_stream("t", ">>> send\n\\q\n").is_err());
}
