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
//! Node's window cannot be held open on purpose; `tests/apps/unread_on_stop.py`
//! (a real server process, standard library only) behaves as Node does in
//! it, for 2 s: told to stop, it reads nothing more, then closes.

use corefit_test_support::prelude::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use nix::sys::signal::Signal;

/// Sends a GET of `path` on `conn`.
fn send_get(conn: &mut TcpStream, path: &str) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    conn.write_all(req.as_bytes()).expect("send a request");
}

/// Reads one response with a Content-Length body: (status, body), or why
/// the connection ended without one.
fn read_response(conn: &mut TcpStream) -> Result<(u16, String), String> {
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
            return Ok((status, body));
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

#[test]
fn an_unread_request_of_a_stopping_worker_is_resent_however_old() {
    let port = free_port();
    let mut corefit = Args::cluster(2)
        .socket("proxy")
        .port(port)
        .grace("10s")
        .command(["python3".to_owned(), app("unread_on_stop.py")])
        .start(&[]);
    // A keep-alive connection: one request answered by worker A.
    let (mut conn, body) = wait_for(Duration::from_secs(20), "a first answer", || {
        let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
        send_get(&mut conn, "/");
        match read_response(&mut conn) {
            Ok((200, body)) => Some((conn, body)),
            _ => None,
        }
    });
    let old = pid_of(&body);

    // A rolling reload: A's replacement becomes ready, A is told to stop,
    // and the connection's next request reaches A, which never reads it
    // and closes 2 s later (well past the 100 ms retry window).
    corefit.signal(Signal::SIGHUP);
    corefit.stderr.wait_line(
        &format!("routed in place of pid {old}, which is told to stop"),
        Duration::from_secs(30),
    );
    send_get(&mut conn, "/");

    let answer = read_response(&mut conn);
    let log = corefit.stderr.text();
    let (status, body) = answer.unwrap_or_else(|e| {
        panic!("a request the stopping worker never read got no answer: {e}\ncorefit's log:\n{log}")
    });
    assert_eq!(status, 200, "{body}");
    assert_ne!(pid_of(&body), old, "another worker answered");
    assert!(
        log.contains("sending them to another worker"),
        "corefit says it resent the request:\n{log}"
    );
    let out = corefit.stdout.text();
    assert!(
        out.contains(&format!("pid {old} closed 1 connection(s)")),
        "worker A closed the connection with the request unread:\n{out}"
    );
    corefit.signal(Signal::SIGTERM);
    assert_eq!(corefit.wait_exit(Duration::from_secs(15)), 0);
}
