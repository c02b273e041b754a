//! A keep-alive request that a stopping worker never read is sent to
//! another worker, however long the worker held it unread.
//!
//! The race, as the cgroup v2 guest's live resize met it (TCG makes every
//! event loop slow): the proxy sends a request on a keep-alive connection
//! to a worker corefit is about to stop; the worker's SIGTERM handler runs
//! before its event loop has read the request (libuv runs signal handlers
//! after the events of a poll: a request that arrives meanwhile is not
//! read), and `server.close()` closes the connection as idle, with the
//! request unread. The kernel answers with a reset. When the request was
//! older than the proxy's 100 ms retry window, the client's connection was
//! closed before the fix: "socket hang up".
//!
//! Two fixes, both shown here: a reset (or a write that met the closed
//! socket) counts as "never read" and the request is resent however old;
//! and a connection's next request that arrives after its worker was
//! unrouted goes to a routed worker without touching the stopping one.
//!
//! Node's window cannot be held open on purpose; `tests/apps/unread_on_stop.py`
//! (a real server process, standard library only) behaves as Node does in
//! it: paused (a busy loop) it reads nothing, and told to stop it reads
//! nothing more and closes its connections.

use corefit_test_support::prelude::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use nix::sys::signal::Signal;

/// Sends a GET of `path` on `conn`, with a `Cookie` field if given.
fn send_get(conn: &mut TcpStream, path: &str, cookie: Option<&str>) {
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{cookie}\r\n");
    conn.write_all(req.as_bytes()).expect("send a request");
}

/// Reads one response with a Content-Length body: (status, head, body),
/// or why the connection ended without one.
fn read_response(conn: &mut TcpStream) -> Result<(u16, String, String), String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let status: u16 = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("a bad status line: {head:?}"))?;
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .ok_or_else(|| format!("no content-length: {head:?}"))?;
            while buf.len() < end + 4 + len {
                match conn.read(&mut chunk) {
                    Ok(0) => return Err("the body was cut short".into()),
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) => return Err(format!("reading the body: {e}")),
                }
            }
            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
            return Ok((status, head, body));
        }
        match conn.read(&mut chunk) {
            Ok(0) => return Err("the connection closed with no response (socket hang up)".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("reading the head: {e}")),
        }
    }
}

fn pid_of(body: &str) -> i64 {
    let v: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    v["pid"].as_i64().expect("a pid")
}

/// Connects to corefit's port and gets one answer (with `cookie`):
/// the connection, kept alive, the answering pid and the response head.
fn first_answer(port: u16, cookie: Option<&str>) -> (TcpStream, i64, String) {
    wait_for(Duration::from_secs(20), "a first answer", || {
        let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
        send_get(&mut conn, "/", cookie);
        match read_response(&mut conn) {
            Ok((200, head, body)) => Some((conn, pid_of(&body), head)),
            _ => None,
        }
    })
}

#[test]
fn requests_a_stopping_worker_never_read_are_answered_by_another() {
    let port = free_port();
    let pause = tempfile::tempdir().expect("a temporary directory");
    let pause_dir = pause.path().display().to_string();
    let mut corefit = Args::cluster(2)
        .socket("proxy")
        .opt("--affinity", "cookie")
        .port(port)
        .grace("10s")
        .command(["python3".to_owned(), app("unread_on_stop.py")])
        .start(&[("PAUSE_DIR", &pause_dir), ("STOP_DELAY_MS", "300")]);

    // Two keep-alive connections to worker A (the cookie routes the second).
    let (mut read_late, old, head) = first_answer(port, None);
    let cookie = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or(l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("the cookie affinity sets a cookie: {head}"))
        .to_owned();
    let (mut sent_late, pid, _) = first_answer(port, Some(&cookie));
    assert_eq!(pid, old, "the cookie routes to worker A");

    // A's loop is busy: the next request on `read_late` reaches A's socket
    // and stays unread.
    std::fs::write(pause.path().join(old.to_string()), b"").expect("pause worker A");
    corefit
        .stdout
        .wait_line(&format!("pid {old} paused"), Duration::from_secs(10));
    send_get(&mut read_late, "/", None);

    // A rolling reload: A's replacement becomes ready, A is unrouted and
    // told to stop; it reads nothing more and closes its connections
    // 300 ms later, `read_late`'s request unread (a reset), well past the
    // proxy's 100 ms retry window.
    corefit.signal(Signal::SIGHUP);
    corefit.stderr.wait_line(
        &format!("routed in place of pid {old}, which is told to stop"),
        Duration::from_secs(30),
    );
    // `sent_late`'s next request comes after A was unrouted.
    send_get(&mut sent_late, "/", None);

    let log = || corefit.stderr.text();
    for (name, conn) in [("read_late", &mut read_late), ("sent_late", &mut sent_late)] {
        let (status, _, body) = read_response(conn)
            .unwrap_or_else(|e| panic!("{name}: no answer: {e}\ncorefit's log:\n{}", log()));
        assert_eq!(status, 200, "{name}: {body}");
        assert_ne!(pid_of(&body), old, "{name}: another worker answered");
    }
    // Only `read_late`'s request was resent; `sent_late`'s never went to A.
    let resent = log()
        .lines()
        .filter(|l| l.contains("sending them to another worker"))
        .count();
    assert_eq!(resent, 1, "corefit's log:\n{}", log());
    corefit.stdout.wait_line(
        &format!("pid {old} closed 2 connection(s)"),
        Duration::from_secs(10),
    );
    corefit.signal(Signal::SIGTERM);
    assert_eq!(corefit.wait_exit(Duration::from_secs(15)), 0);
}
