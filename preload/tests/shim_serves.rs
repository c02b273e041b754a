//! The shim loaded into real, unmodified servers (Node's `http`, Python's
//! `http.server`): two processes that each only `listen(PORT)` end up
//! accepting on one shared socket. A small Python harness stands in for
//! corefit here (it binds the socket and passes it on fd 3); the launcher's
//! own tests cover `corefit --socket inject` end to end.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shim built beside this test binary (target/<profile>/libcorefit_preload.so).
fn shim() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let so = dir.join("libcorefit_preload.so");
    assert!(
        so.exists(),
        "{} was not built: run `cargo build -p corefit-preload` first (scripts/test.sh does)",
        so.display()
    );
    so
}

struct Harness {
    child: Child,
    port: u16,
    inode: u64,
    pids: Vec<u32>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        // SIGTERM: the harness kills and reaps its servers, then exits.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(n: usize, cmd: &[&str]) -> Harness {
    let harness = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/harness.py");
    let mut child = Command::new("python3")
        .arg(harness)
        .arg(shim())
        .arg(n.to_string())
        .args(cmd)
        .env_remove("NODE_OPTIONS")
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = |prefix: &str| -> String {
        let line = lines
            .next()
            .expect("harness output")
            .expect("harness output");
        line.strip_prefix(prefix)
            .unwrap_or_else(|| panic!("expected {prefix}, got {line}"))
            .trim()
            .to_owned()
    };
    let port = next("PORT").parse().unwrap();
    let inode = next("INODE").parse().unwrap();
    let pids = next("PIDS")
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    Harness {
        child,
        port,
        inode,
        pids,
    }
}

/// One HTTP/1.0 GET; the body is the answering server's PID.
fn get_pid(port: u16) -> Option<u32> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /pid HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let body = out.split("\r\n\r\n").nth(1)?;
    body.trim().parse().ok()
}

/// Every server's listening socket must be the harness's one socket.
fn socket_inodes(pid: u32) -> Vec<u64> {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in dir.flatten() {
            if let Ok(target) = std::fs::read_link(e.path()) {
                let t = target.to_string_lossy().to_string();
                if let Some(inode) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                    out.push(inode.parse().unwrap());
                }
            }
        }
    }
    out
}

fn both_answer(h: &Harness) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = std::collections::BTreeSet::new();
    let mut requests = 0;
    while seen.len() < h.pids.len() && Instant::now() < deadline && requests < 2000 {
        if let Some(pid) = get_pid(h.port) {
            seen.insert(pid);
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
        requests += 1;
    }
    let expected: std::collections::BTreeSet<u32> = h.pids.iter().copied().collect();
    assert_eq!(
        seen, expected,
        "answers came from {seen:?}, servers are {:?}",
        h.pids
    );
    for pid in &h.pids {
        let inodes = socket_inodes(*pid);
        assert!(
            inodes.contains(&h.inode),
            "server {pid} does not hold the shared socket {}: {inodes:?}",
            h.inode
        );
    }
}

const NODE_SERVER: &str = "require('http').createServer((q, s) => s.end(String(process.pid))).listen(Number(process.env.PORT))";

const PYTHON_SERVER: &str = r#"
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = str(os.getpid()).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("", int(os.environ["PORT"])), H).serve_forever()
"#;

#[test]
fn two_unmodified_node_servers_share_one_socket() {
    let h = start(2, &["node", "-e", NODE_SERVER]);
    both_answer(&h);
}

#[test]
fn two_unmodified_python_servers_share_one_socket() {
    let h = start(2, &["python3", "-c", PYTHON_SERVER]);
    both_answer(&h);
}

#[test]
fn other_ports_are_bound_by_libc() {
    // The app binds a different port: the shim leaves it alone, so the
    // server listens on its own socket, not the shared one.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = format!("require('http').createServer((q, s) => s.end(String(process.pid))).listen({free}, '127.0.0.1')");
    let h = start(1, &["node", "-e", &script]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut pid = None;
    while pid.is_none() && Instant::now() < deadline {
        pid = get_pid(free);
        if pid.is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert_eq!(
        pid,
        Some(h.pids[0]),
        "the server answers on its own port {free}"
    );
    let own = listening_inode(free).expect("a listening socket on the server's own port");
    assert_ne!(own, h.inode, "the other port must not be the shared socket");
    assert!(
        socket_inodes(h.pids[0]).contains(&own),
        "the server holds its own listening socket"
    );
}

/// The inode of the TCP socket listening on `port` (state 0A in /proc/net/tcp*).
fn listening_inode(port: u16) -> Option<u64> {
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).ok()?;
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && f.get(3) == Some(&"0A") {
                return f.get(9).and_then(|i| i.parse().ok());
            }
        }
    }
    None
}
