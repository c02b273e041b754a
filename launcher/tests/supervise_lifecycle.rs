//! Crash loops, graceful shutdown and the grace period, through the real
//! binary and the real Node.js app.

use corefit_test_support::prelude::*;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

/// Two workers on `port` of 127.0.0.1.
fn cluster(port: u16) -> Args {
    Args::cluster(2).port(port)
}

#[test]
fn always_crashing_command_exits_non_zero_after_the_respawn_limit() {
    let mut corefit = cluster(free_port())
        .opt("--respawn-limit", 3)
        .opt("--backoff", "20ms")
        .command(["node", "-e", "console.error('boom'); process.exit(3)"])
        .start(&[]);
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
    assert!(err.contains("crash 3 in a row (limit 3)"), "{err}");
}

/// An app that serves, then dies 400 ms after it listens, every time:
/// each run is past `--min-uptime` (150 ms) but within the window (10 x
/// 150 ms), so the crashes count however long after the start they come;
/// the restarts back off and the respawn limit ends the run. (Before, a
/// crash past `--min-uptime` counted as stable and restarted at once,
/// forever: gunicorn failing to boot its workers under `--socket shared`.)
#[test]
fn crashes_long_after_the_start_back_off_and_reach_the_respawn_limit() {
    let app = "require('http').createServer((q, r) => r.end('up')).listen(process.env.PORT, () => \
               setTimeout(() => process.exit(3), 400))";
    let mut corefit = cluster(free_port())
        .opt("--respawn-limit", 2)
        .opt("--min-uptime", "150ms")
        .opt("--backoff", "50ms")
        .opt("--log-format", "json")
        .command(["node", "-e", app])
        .start(&[]);
    assert_eq!(corefit.wait_exit(Duration::from_secs(30)), 3);
    let events: Vec<serde_json::Value> = corefit
        .stderr
        .text()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let of = |kind: &str| -> Vec<&serde_json::Value> {
        events.iter().filter(|e| e["event"] == kind).collect()
    };
    let limit = of("respawn_limit");
    assert_eq!(limit.len(), 1, "{events:#?}");
    assert_eq!(limit[0]["failures"], 3, "{events:#?}");
    assert_eq!(limit[0]["window_ms"], 1500, "{events:#?}");
    let restarts = of("restarting");
    assert!(restarts.len() >= 2, "{events:#?}");
    for r in &restarts {
        // Each run was past --min-uptime: these are not failed starts.
        assert!(r["uptime_ms"].as_u64() >= Some(400), "{r}");
        assert!(r["in_a_row"].as_u64() >= Some(1), "{r}");
    }
    // The second crash in a row waits the backoff (the first after a stable
    // run may restart at once).
    assert!(
        restarts
            .iter()
            .any(|r| r["in_a_row"] == 2 && r["delay_ms"].as_u64() >= Some(50)),
        "{events:#?}"
    );
}

#[test]
fn sigterm_lets_a_slow_request_finish_then_exits_zero() {
    for (socket, shared_sockets) in [
        ("proxy", "per-worker"),
        ("shared", "per-worker"),
        ("shared", "one"),
    ] {
        let port = free_port();
        let mut corefit = cluster(port)
            .socket(socket)
            .opt("--shared-sockets", shared_sockets)
            .grace("10s")
            .node("server.js")
            .start(&[]);
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
    let mut corefit = cluster(port)
        .grace("1s")
        .node("server.js")
        .start(&[("IGNORE_SIGTERM", "1")]);
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
