//! Support for the real-process tests of `corefit -- CMD`: start the real
//! binary against real apps, talk HTTP to 127.0.0.1, poll conditions with
//! deadlines, and leave no process behind (drop guards kill, by pid, the
//! corefit we started and every process under it).

#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub const COREFIT: &str = env!("CARGO_BIN_EXE_corefit");

/// An app under `tests/apps/`.
pub fn app(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/apps")
        .join(name);
    p.canonicalize()
        .unwrap_or_else(|e| panic!("test app {}: {e}", p.display()))
        .display()
        .to_string()
}

/// A TCP port free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// `count` consecutive free ports (for `--socket none`).
pub fn free_port_range(count: u16) -> u16 {
    for _ in 0..100 {
        let base = free_port();
        if base.checked_add(count).is_none() {
            continue;
        }
        let all_free = (base..base + count).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no range of {count} free ports found");
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
pub fn wait_for<T>(limit: Duration, what: &str, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A plain HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.body.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// GET `path` from 127.0.0.1:`port` on a new connection.
pub fn get(port: u16, path: &str, timeout: Duration) -> std::io::Result<Response> {
    let addr = ("127.0.0.1", port);
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("no head: {text:?}"),
        )
    })?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad head: {head:?}"),
            )
        })?;
    Ok(Response {
        status,
        body: body.to_owned(),
    })
}

/// GET `/` and return (pid, worker id) from the app's JSON.
pub fn whoami(port: u16) -> std::io::Result<(i32, String)> {
    let r = get(port, "/", Duration::from_secs(5))?;
    if r.status != 200 {
        return Err(std::io::Error::other(format!("status {}", r.status)));
    }
    let v = r.json();
    Ok((
        v["pid"].as_i64().expect("pid") as i32,
        v["worker"].as_str().unwrap_or("").to_owned(),
    ))
}

/// Requests `/` until `n` distinct pids answered (or the limit passes);
/// returns pid -> worker id.
pub fn distinct_workers(port: u16, n: usize, limit: Duration) -> BTreeMap<i32, String> {
    let mut seen = BTreeMap::new();
    wait_for(
        limit,
        &format!("{n} distinct worker pids on port {port}"),
        || {
            if let Ok((pid, id)) = whoami(port) {
                seen.insert(pid, id);
            }
            (seen.len() >= n).then_some(())
        },
    );
    seen
}

/// Output captured from a stream, line by line, also echoed for debugging.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    text: Arc<Mutex<String>>,
    /// Set when the stream reached EOF.
    closed: Arc<std::sync::atomic::AtomicBool>,
}

impl Captured {
    fn spawn_reader(stream: impl Read + Send + 'static, tag: &'static str) -> Captured {
        let c = Captured::default();
        let inner = c.text.clone();
        let closed = c.closed.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                eprintln!("  [{tag}] {line}");
                let mut s = inner.lock().unwrap_or_else(|p| p.into_inner());
                s.push_str(&line);
                s.push('\n');
            }
            closed.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        c
    }

    /// Waits (bounded) until the stream is closed, so `text()` is complete.
    pub fn wait_closed(&self, limit: Duration) {
        wait_for(limit, "the output stream to close", || {
            self.closed
                .load(std::sync::atomic::Ordering::SeqCst)
                .then_some(())
        });
    }

    pub fn text(&self) -> String {
        self.text.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn contains(&self, needle: &str) -> bool {
        self.text().contains(needle)
    }

    /// Waits until a line containing `needle` appears; returns that line.
    pub fn wait_line(&self, needle: &str, limit: Duration) -> String {
        wait_for(limit, &format!("a line containing {needle:?}"), || {
            self.text()
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_owned)
        })
    }
}

/// A running `corefit`, killed with everything under it when dropped.
#[derive(Debug)]
pub struct Corefit {
    child: Option<Child>,
    pub pid: i32,
    pub stdout: Captured,
    pub stderr: Captured,
    status: Option<ExitStatus>,
    /// Every pid ever seen under corefit, killed on drop if still there.
    seen: Vec<i32>,
}

/// A clean environment: PATH and HOME only (see BENCH.md on
/// NODE_EXTRA_CA_CERTS), plus `extra`.
pub fn clean_command(args: &[&str], extra: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(COREFIT);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "HOME",
            std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
        )
        .envs(extra.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

impl Corefit {
    /// Starts `corefit ARGS` with a clean environment plus `extra`.
    pub fn start(args: &[&str], extra: &[(&str, &str)]) -> Corefit {
        Corefit::spawned(clean_command(args, extra))
    }

    /// Starts `WRAPPER... corefit ARGS` (e.g. `unshare --pid --fork`); `pid`
    /// is then the wrapper's, see [`Corefit::inner_pid`].
    pub fn start_wrapped(wrapper: &[&str], args: &[&str], extra: &[(&str, &str)]) -> Corefit {
        let inner = clean_command(args, extra);
        let mut cmd = Command::new(wrapper[0]);
        cmd.args(&wrapper[1..])
            .arg(COREFIT)
            .args(args)
            .env_clear()
            .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Corefit::spawned(cmd)
    }

    /// The corefit process under a wrapper (the wrapper's only child).
    pub fn inner_pid(&self) -> i32 {
        let me = self.pid;
        wait_for(Duration::from_secs(5), "corefit under its wrapper", || {
            all_procs()
                .into_iter()
                .find(|p| p.ppid == me)
                .map(|p| p.pid)
        })
    }

    fn spawned(mut cmd: Command) -> Corefit {
        let mut child = cmd.spawn().expect("start corefit");
        let stdout = Captured::spawn_reader(child.stdout.take().expect("stdout"), "out");
        let stderr = Captured::spawn_reader(child.stderr.take().expect("stderr"), "err");
        Corefit {
            pid: child.id() as i32,
            child: Some(child),
            stdout,
            stderr,
            status: None,
            seen: Vec::new(),
        }
    }

    pub fn signal(&self, sig: Signal) {
        if self.status.is_none() {
            kill(Pid::from_raw(self.pid), sig).expect("signal corefit");
        }
    }

    /// The exit status, if corefit has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Some(child) = self.child.as_mut() {
                self.status = child.try_wait().expect("try_wait");
            }
        }
        self.status
    }

    /// Waits for corefit to exit and for its output to be read to the end;
    /// returns its exit code (panics when a signal killed it).
    pub fn wait_exit(&mut self, limit: Duration) -> i32 {
        let status = wait_for(limit, "corefit to exit", || self.try_status());
        self.stdout.wait_closed(Duration::from_secs(5));
        self.stderr.wait_closed(Duration::from_secs(5));
        status
            .code()
            .unwrap_or_else(|| panic!("corefit was killed by a signal: {status:?}"))
    }

    /// Processes under corefit (children, grandchildren...) right now.
    pub fn descendants(&mut self) -> Vec<i32> {
        let found = descendants_of(self.pid);
        for p in &found {
            if !self.seen.contains(p) {
                self.seen.push(*p);
            }
        }
        found
    }

    /// Direct children of corefit in state Z.
    pub fn zombie_children(&self) -> Vec<i32> {
        all_procs()
            .into_iter()
            .filter(|p| p.ppid == self.pid && p.state == 'Z')
            .map(|p| p.pid)
            .collect()
    }
}

impl Drop for Corefit {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            // Stopped first, so it starts no worker between the listing
            // and the kill (a worker started then would outlive the test).
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGSTOP);
            self.descendants();
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
            if let Some(child) = self.child.as_mut() {
                let _ = child.wait();
            }
        }
        for pid in self.seen.drain(..) {
            if alive(pid) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// A process as /proc shows it.
#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub state: char,
}

/// Reads /proc/<pid>/stat.
pub fn proc_info(pid: i32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some(Proc { pid, ppid, state })
}

pub fn all_procs() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(proc_info)
        .collect()
}

pub fn descendants_of(root: i32) -> Vec<i32> {
    let procs = all_procs();
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for p in procs.iter().filter(|p| p.ppid == parent) {
            out.push(p.pid);
            frontier.push(p.pid);
        }
    }
    out
}

/// True while `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    proc_info(pid).is_some_and(|p| p.state != 'Z')
}

/// True once `pid` is gone from the process table entirely (reaped).
pub fn gone(pid: i32) -> bool {
    proc_info(pid).is_none()
}
