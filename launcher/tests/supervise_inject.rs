//! `--socket inject` through the real binary: unmodified apps that only
//! `listen(PORT)` / `bind(("", PORT))` share corefit's one listening
//! socket, with no proxy in the path; static programs are refused.

use corefit_test_support::prelude::*;
use std::collections::BTreeSet;
use std::time::Duration;

use nix::sys::signal::Signal;

const STARTUP: Duration = Duration::from_secs(15);
const STOP: Duration = Duration::from_secs(10);

fn inject_args(port: u16) -> Args {
    Args::cluster(2)
        .socket("inject")
        .opt("--shared-sockets", "one")
        .port(port)
        .grace("5s")
}

fn two_workers_one_socket(cmd: &[&str]) {
    let port = free_port();
    let mut corefit = inject_args(port).command(cmd).start(&[]);
    let seen = distinct_workers(port, 2, STARTUP);
    let ids: BTreeSet<&str> = seen.values().map(String::as_str).collect();
    assert_eq!(ids, BTreeSet::from(["0", "1"]), "worker ids");

    // One listening socket on the port, and every worker holds it: the
    // kernel hands connections straight to the apps' accept() calls.
    let listening = listening_inodes(port);
    assert_eq!(
        listening.len(),
        1,
        "exactly one listening socket on {port}: {listening:?}"
    );
    let shared = *listening.iter().next().unwrap();
    for pid in seen.keys() {
        assert!(
            socket_inodes(*pid).contains(&shared),
            "worker {pid} does not hold the shared socket {shared}"
        );
        assert_eq!(
            proc_info(*pid).map(|p| p.ppid),
            Some(corefit.pid),
            "worker {pid} is corefit's child"
        );
    }
    // Inspecting the program reads its headers, not the whole file (node is
    // ~100 MB): corefit's peak memory stays that of a small supervisor.
    let hwm_kib: u64 = std::fs::read_to_string(format!("/proc/{}/status", corefit.pid))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM");
    assert!(hwm_kib < 32 * 1024, "corefit's peak RSS is {hwm_kib} KiB");
    let workers: Vec<i32> = seen.keys().copied().collect();
    corefit.signal(Signal::SIGTERM);
    assert_eq!(corefit.wait_exit(STOP), 0, "clean stop exits 0");
    for pid in workers {
        assert!(gone(pid), "worker {pid} still exists after corefit exited");
    }
}

#[test]
fn unmodified_node_workers_share_one_socket() {
    // server.js only calls listen(PORT) here: no LISTEN_FDS is set in inject mode.
    two_workers_one_socket(&["node", &app("server.js")]);
}

#[test]
fn unmodified_python_workers_share_one_socket() {
    two_workers_one_socket(&["python3", &app("pid_server.py")]);
}

#[test]
fn static_programs_are_refused_with_a_clear_message() {
    let port = free_port();
    let out = inject_args(port)
        .command(["/bin/busybox", "httpd", "-f", "-p", &port.to_string()])
        .output(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("statically linked") && stderr.contains("--socket proxy"),
        "{stderr}"
    );
    assert!(listening_inodes(port).is_empty(), "nothing was started");
}
