//! Crash loops, graceful shutdown and the grace period, through the real
//! binary and the real Node.js app.

mod supervise_support;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use supervise_support::*;

fn cluster(port: &str, extra: &[&str], cmd: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "--mode",
        "cluster",
        "--workers",
        "2",
        "--allow-oversubscribe",
        "--host",
        "127.0.0.1",
        "--port",
        port,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v.push("--".into());
    v.extend(cmd.iter().map(|s| s.to_string()));
    v
}

fn start(args: &[String], env: &[(&str, &str)]) -> Corefit {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Corefit::start(&refs, env)
}

#[test]
fn always_crashing_command_exits_non_zero_after_the_respawn_limit() {
    let port = free_port().to_string();
    let args = cluster(
        &port,
        &["--respawn-limit", "3", "--backoff", "20ms"],
        &["node", "-e", "console.error('boom'); process.exit(3)"],
    );
    let mut corefit = start(&args, &[]);
    let code = corefit.wait_exit(Duration::from_secs(30));
    assert_eq!(code, 3, "exit code is the failing worker's");
    let err = corefit.stderr.text();
    let line = err
        .lines()
        .find(|l| l.contains("respawn limit 3 reached"))
        .unwrap_or_else(|| panic!("no respawn-limit message in:\n{err}"));
    assert!(line.contains("failed 4 times in a row"), "{line}");
    assert!(line.contains("exited with code 3"), "{line}");
    assert!(
        line.contains("worker 0") || line.contains("worker 1"),
        "{line}"
    );
    // Each restart was logged with how the worker ended.
    assert!(
        err.matches("exited with code 3 after").count() >= 3,
        "{err}"
    );
    assert!(err.contains("unstable restart 3 of 3"), "{err}");
}

#[test]
fn sigterm_lets_a_slow_request_finish_then_exits_zero() {
    for (socket, shared_sockets) in [
        ("proxy", "per-worker"),
        ("shared", "per-worker"),
        ("shared", "one"),
    ] {
        let port = free_port();
        let port_s = port.to_string();
        let server = app("server.js");
        let args = cluster(
            &port_s,
            &[
                "--socket",
                socket,
                "--shared-sockets",
                shared_sockets,
                "--grace-period",
                "10s",
            ],
            &["node", &server],
        );
        let mut corefit = start(&args, &[]);
        let workers: Vec<i32> = distinct_workers(port, 2, Duration::from_secs(15))
            .into_keys()
            .collect();
        corefit.descendants();

        let slow = std::thread::spawn(move || get(port, "/slow?ms=2000", Duration::from_secs(10)));
        corefit
            .stdout
            .wait_line("slow request 2000ms", Duration::from_secs(5));
        let signalled = Instant::now();
        corefit.signal(Signal::SIGTERM);

        let response = slow.join().expect("client thread").expect("slow request");
        assert_eq!(response.status, 200, "{socket}");
        assert_eq!(response.json()["slept"], 2000, "{socket}");
        assert_eq!(corefit.wait_exit(Duration::from_secs(10)), 0, "{socket}");
        assert!(
            signalled.elapsed() < Duration::from_secs(8),
            "stopped well within the grace period"
        );
        for pid in &workers {
            assert!(gone(*pid), "{socket}: worker {pid} left behind");
        }
        // New connections are refused once corefit is gone.
        assert!(get(port, "/", Duration::from_secs(2)).is_err(), "{socket}");
    }
}

#[test]
fn worker_ignoring_sigterm_is_killed_after_the_grace_period() {
    let port = free_port();
    let port_s = port.to_string();
    let server = app("server.js");
    let args = cluster(&port_s, &["--grace-period", "1s"], &["node", &server]);
    let mut corefit = start(&args, &[("IGNORE_SIGTERM", "1")]);
    let workers: Vec<i32> = distinct_workers(port, 2, Duration::from_secs(15))
        .into_keys()
        .collect();
    corefit.descendants();
    let signalled = Instant::now();
    corefit.signal(Signal::SIGTERM);
    let code = corefit.wait_exit(Duration::from_secs(10));
    assert_ne!(code, 0);
    assert_eq!(code, 137);
    assert!(
        signalled.elapsed() >= Duration::from_secs(1),
        "waited the grace period"
    );
    corefit.stderr.wait_line(
        "still running 1s after SIGTERM; sending SIGKILL",
        Duration::from_secs(1),
    );
    for pid in &workers {
        assert!(gone(*pid), "worker {pid} left behind");
    }
}
