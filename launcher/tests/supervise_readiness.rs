//! Readiness: a worker is routed only once it is ready, by port probe or
//! by `READY=1` on `NOTIFY_SOCKET`; a worker never ready is killed after
//! the readiness timeout and restarted.

use corefit_test_support::prelude::*;
use std::time::Duration;

use nix::sys::signal::Signal;

/// Two workers of tests/apps/notify_server.py on `port` of 127.0.0.1.
fn notify_server(port: u16) -> Args {
    Args::cluster(2)
        .port(port)
        .command(["python3".to_owned(), app("notify_server.py")])
}

#[test]
fn proxy_routes_only_workers_that_sent_ready() {
    let port = free_port();
    let mut corefit = notify_server(port)
        .ready("notify")
        .start(&[("READY_DELAY_MS", "400")]);
    // The proxy holds the first connection until a worker is ready, so
    // even a request sent right away is answered, and by a ready worker.
    let first = wait_for(Duration::from_secs(10), "the proxy's port", || {
        get(port, "/", Duration::from_secs(10)).ok()
    });
    assert_eq!(first.json()["ready"], true, "{}", first.body);
    let seen = distinct_workers(port, 2, Duration::from_secs(10));
    for pid in seen.keys() {
        corefit
            .stderr
            .wait_line(&format!("(pid {pid}) ready after"), Duration::from_secs(5));
    }
    for _ in 0..10 {
        assert_eq!(
            get(port, "/", Duration::from_secs(5)).unwrap().json()["ready"],
            true
        );
    }
    corefit.signal(Signal::SIGTERM);
    assert_eq!(corefit.wait_exit(Duration::from_secs(10)), 0);
}

#[test]
fn worker_never_ready_is_killed_after_the_timeout() {
    let mut corefit = notify_server(free_port())
        .ready("notify")
        .opt("--ready-timeout", "500ms")
        .opt("--respawn-limit", 1)
        .opt("--backoff", "10ms")
        .start(&[("NEVER_READY", "1")]);
    let code = corefit.wait_exit(Duration::from_secs(20));
    assert_ne!(code, 0);
    let err = corefit.stderr.text();
    assert!(
        err.contains("not ready after") && err.contains("; killing it"),
        "{err}"
    );
    assert!(err.contains("each before it was ready"), "{err}");
    assert!(err.contains("respawn limit 1 reached"), "{err}");
}
