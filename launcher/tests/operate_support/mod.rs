//! Support for the operation tests (reload, scaling, control, health,
//! memory): a bounded keep-alive load client that counts every failed
//! request, the control subcommands through the real binary, and the
//! admin endpoint. Builds on `supervise_support`.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::supervise_support::{get, COREFIT};

/// The longest a load runs, whatever happens (a test bug cannot hang).
pub const LOAD_LIMIT: Duration = Duration::from_secs(60);

/// What a load saw.
#[derive(Debug, Default, Clone)]
pub struct LoadStats {
    pub ok: u64,
    pub failed: u64,
    /// The first failures, in words.
    pub errors: Vec<String>,
    /// Every pid that answered.
    pub pids: BTreeSet<i32>,
}

/// `connections` clients sending `GET /` over keep-alive connections to
/// 127.0.0.1:`port`, reconnecting when the server closes (after a
/// response that says `connection: close`, or between requests). Any
/// request that does not get a whole 200 response is a failure, as in wrk.
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    threads: Vec<JoinHandle<LoadStats>>,
}

impl Load {
    pub fn start(port: u16, connections: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let threads = (0..connections)
            .map(|_| {
                let stop = stop.clone();
                let ok = ok.clone();
                std::thread::spawn(move || client(port, &stop, &ok))
            })
            .collect();
        Load { stop, ok, threads }
    }

    /// Successful requests so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::SeqCst)
    }

    /// Waits until `more` further requests succeeded (bounded).
    pub fn wait_more(&self, more: u64, limit: Duration) {
        let target = self.ok() + more;
        crate::supervise_support::wait_for(limit, &format!("{more} more requests"), || {
            (self.ok() >= target).then_some(())
        });
    }

    pub fn finish(self) -> LoadStats {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = LoadStats::default();
        for t in self.threads {
            let s = t.join().expect("load thread");
            all.ok += s.ok;
            all.failed += s.failed;
            all.errors.extend(s.errors);
            all.pids.extend(s.pids);
        }
        all.errors.truncate(20);
        all
    }
}

fn client(port: u16, stop: &AtomicBool, ok: &AtomicU64) -> LoadStats {
    let started = Instant::now();
    let mut stats = LoadStats::default();
    let mut conn: Option<BufReader<TcpStream>> = None;
    while !stop.load(Ordering::SeqCst) && started.elapsed() < LOAD_LIMIT {
        if conn.is_none() {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                    let _ = s.set_nodelay(true);
                    conn = Some(BufReader::new(s));
                }
                Err(e) => {
                    stats.failed += 1;
                    stats.errors.push(format!("connect: {e}"));
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        match request(c) {
            Ok((pid, close)) => {
                stats.ok += 1;
                ok.fetch_add(1, Ordering::SeqCst);
                stats.pids.insert(pid);
                if close {
                    conn = None;
                }
            }
            Err(e) => {
                stats.failed += 1;
                if stats.errors.len() < 20 {
                    stats.errors.push(e);
                }
                conn = None;
            }
        }
    }
    stats
}

/// One request on a kept-alive connection: (pid, server closes after).
fn request(c: &mut BufReader<TcpStream>) -> Result<(i32, bool), String> {
    c.get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut status = String::new();
    let n = c
        .read_line(&mut status)
        .map_err(|e| format!("read status: {e}"))?;
    if n == 0 {
        return Err("connection closed before a response".into());
    }
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!("status line {status:?}"));
    }
    let mut length = None;
    let mut close = false;
    loop {
        let mut line = String::new();
        c.read_line(&mut line)
            .map_err(|e| format!("read header: {e}"))?;
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
        if l.starts_with("connection:") && l.contains("close") {
            close = true;
        }
    }
    let length = length.ok_or("no content-length")?;
    let mut body = vec![0; length];
    c.read_exact(&mut body)
        .map_err(|e| format!("read body: {e}"))?;
    let v: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("body not JSON: {e}"))?;
    let pid = v["pid"].as_i64().ok_or("no pid in body")? as i32;
    Ok((pid, close))
}

/// Runs `corefit ARGS --control-socket SOCKET` (a subcommand).
pub fn ctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(COREFIT)
        .args(args)
        .arg("--control-socket")
        .arg(socket)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("run corefit subcommand")
}

/// `corefit status --json` as JSON (panics unless it succeeded).
pub fn status_json(socket: &Path) -> serde_json::Value {
    let out = ctl(socket, &["status", "--json"]);
    assert!(
        out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status --json is JSON")
}

/// GET `path` on the admin port: (status, body).
pub fn admin(port: u16, path: &str) -> (u16, String) {
    let r = get(port, path, Duration::from_secs(5)).expect("admin endpoint answers");
    (r.status, r.body)
}

/// The pids of the workers that are ready, per `status --json`.
pub fn ready_pids(socket: &Path) -> BTreeSet<i32> {
    status_json(socket)["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .filter(|w| w["phase"] == "ready")
        .filter_map(|w| w["pid"].as_i64().map(|p| p as i32))
        .collect()
}

/// Shared between test threads that only read.
pub type Shared<T> = Arc<Mutex<T>>;
