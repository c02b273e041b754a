//! socket.io across workers (issue 14): an app written for Node's cluster
//! or PM2 (`io.adapter(createAdapter())` from `@socket.io/cluster-adapter`,
//! tests/apps/socketio_app.js), unchanged, under `corefit --socket proxy
//! --affinity client-ip|cookie` with 4 workers. 20 clients
//! (tests/apps/socketio_clients.js, socket.io-client) connect with the
//! default transports (long-polling, then the WebSocket upgrade, which
//! needs every request of a session on one worker), exchange acknowledged
//! messages, and one client's shout reaches all 20 through corefit's relay
//! of the adapter's messages (supervise/ipc); `fetchSockets()` counts the
//! sockets of all 4 workers (requests and responses routed by worker id).

use std::process::Command;
use std::time::Duration;

use corefit_test_support::prelude::*;
use serde_json::Value;

/// `tests/apps/setup-node-apps.sh`: node_modules with socket.io, its
/// client and the cluster adapter.
fn node_path() -> String {
    setup_script("setup-node-apps.sh")
}

/// Runs the clients against 4 workers under `--affinity affinity`
/// (clients in `mode`): whether they all succeeded, and their summary.
fn run_clients(affinity: &str, mode: &str) -> (bool, Value) {
    let node_path = node_path();
    let args = Args::cluster(4)
        .socket("proxy")
        .opt("--affinity", affinity)
        .grace("5s")
        .node("socketio_app.js");
    let mut c = Cluster::start(args, &[("NODE_PATH", node_path.as_str())], None);
    wait_for(Duration::from_secs(20), "4 workers ready", || {
        let log = c.corefit.stderr.text();
        (log.matches(") ready after ").count() >= 4).then_some(())
    });
    let out = Command::new("node")
        .arg(app("socketio_clients.js"))
        .arg(format!("http://127.0.0.1:{}", c.port))
        .arg("20")
        .arg(mode)
        .env("NODE_PATH", &node_path)
        .output()
        .expect("run the clients");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "{affinity}/{mode}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("{affinity}: no summary from the clients: {stdout}"));
    assert_eq!(c.stop(Duration::from_secs(15)), 0);
    let log = c.corefit.stderr.text();
    assert!(!log.contains("socket.io relay"), "{affinity}: {log}");
    (out.status.success(), summary)
}

/// Everything arrived, from clients on more than one worker.
fn twenty_clients(affinity: &str, mode: &str) {
    let (ok, summary) = run_clients(affinity, mode);
    assert!(ok, "{affinity}: {summary}");
    for field in ["connected", "upgraded", "acked", "news", "count"] {
        assert_eq!(summary[field], 20, "{affinity}: {field} in {summary}");
    }
    let workers = summary["workers"].as_array().expect("workers").len();
    assert!(
        workers > 1,
        "{affinity}: every client on one worker: {summary}"
    );
}

#[test]
fn socketio_with_client_ip_affinity_on_4_workers() {
    // Each client from its own 127.0.0.x: hashed over the 4 slots.
    twenty_clients("client-ip", "client-ip");
}

#[test]
fn socketio_with_cookie_affinity_on_4_workers() {
    // One address for all; each client keeps the cookie corefit set.
    twenty_clients("cookie", "cookie");
}

#[test]
fn without_stickiness_the_long_polling_handshake_fails() {
    // The same clients without a cookie jar, from one address: each
    // polling request is a new connection to the least busy worker, which
    // does not know the session (400 "Session ID unknown").
    // How it shows depends on timing: the polling requests fail ("xhr
    // poll error"), or the clients keep retrying until their deadline
    // ("timed out"). Either way not all 20 get through.
    let (ok, summary) = run_clients("cookie", "plain");
    assert!(!ok, "{summary}");
    let errors = summary["errors"].as_array().expect("errors");
    assert!(
        errors.iter().any(|e| e
            .as_str()
            .is_some_and(|e| e.contains("xhr") || e.contains("timed out"))),
        "{summary}"
    );
    assert!(summary["connected"].as_u64() < Some(20), "{summary}");
}

#[test]
fn affinity_is_refused_where_corefit_does_not_route() {
    // The kernel or the app picks the worker: refused at start (2) and in
    // `corefit plan`, naming the strategy that keeps affinity.
    for socket in ["shared", "inject", "reuseport", "none"] {
        let out = Args::cluster(2)
            .socket(socket)
            .opt("--affinity", "client-ip")
            .command(["node", "-e", "1"])
            .output(&[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{socket}: {stderr}");
        let refusal = format!("--affinity client-ip needs --socket proxy: with --socket {socket},");
        assert!(stderr.contains(&refusal), "{socket}: {stderr}");
        let plan = clean_command(
            &["plan", "--socket", socket],
            &[("COREFIT_AFFINITY", "cookie")],
        )
        .output()
        .expect("corefit plan");
        let text = String::from_utf8_lossy(&plan.stdout);
        assert!(plan.status.success(), "{socket}: {text}");
        assert!(
            text.contains("! --affinity cookie needs --socket proxy"),
            "{socket}: {text}"
        );
    }
}
