//! Each socket strategy through the real binary and real apps: requests
//! from a client are answered by N distinct worker processes, each one a
//! child of corefit with its own worker id.

use corefit_test_support::prelude::*;
use std::collections::BTreeSet;
use std::time::Duration;

use nix::sys::signal::Signal;

const STARTUP: Duration = Duration::from_secs(15);
const STOP: Duration = Duration::from_secs(10);

/// `workers` workers behind `--socket socket` on `port` of 127.0.0.1.
fn cluster(port: u16, socket: &str, workers: u32) -> Args {
    Args::cluster(workers).socket(socket).port(port).grace("5s")
}

/// Asserts `seen` are `n` distinct children of corefit with ids 0..n.
fn assert_workers(corefit: &mut Corefit, seen: &std::collections::BTreeMap<i32, String>, n: usize) {
    assert_eq!(seen.len(), n, "{seen:?}");
    let ids: BTreeSet<&str> = seen.values().map(String::as_str).collect();
    let expected: BTreeSet<String> = (0..n).map(|i| i.to_string()).collect();
    assert_eq!(
        ids,
        expected.iter().map(String::as_str).collect(),
        "worker ids"
    );
    let children = corefit.descendants();
    for pid in seen.keys() {
        assert!(children.contains(pid), "pid {pid} is not under corefit");
        assert_eq!(
            proc_info(*pid).map(|p| p.ppid),
            Some(corefit.pid),
            "worker {pid} is a direct child of corefit"
        );
    }
}

fn stop_cleanly(mut corefit: Corefit, workers: &[i32]) {
    corefit.signal(Signal::SIGTERM);
    assert_eq!(corefit.wait_exit(STOP), 0, "clean stop exits 0");
    for pid in workers {
        assert!(gone(*pid), "worker {pid} still exists after corefit exited");
    }
}

#[test]
fn proxy_spreads_connections_over_distinct_workers() {
    let port = free_port();
    let mut corefit = cluster(port, "proxy", 3).node("server.js").start(&[]);
    let seen = distinct_workers(port, 3, STARTUP);
    assert_workers(&mut corefit, &seen, 3);
    // Workers listen on private ports, not the public one.
    for _ in 0..6 {
        let r = get(port, "/", Duration::from_secs(5)).unwrap();
        let listen = r.json()["listen"].as_str().unwrap().to_owned();
        assert!(listen.starts_with("port:") && listen != format!("port:{port}"));
    }
    stop_cleanly(corefit, &seen.keys().copied().collect::<Vec<_>>());
}

fn shared_mode(kind: &str) {
    let port = free_port();
    let mut corefit = cluster(port, "shared", 2)
        .opt("--shared-sockets", kind)
        .node("server.js")
        .start(&[]);
    let seen = distinct_workers(port, 2, STARTUP);
    assert_workers(&mut corefit, &seen, 2);
    // server.js only takes fd 3 when LISTEN_FDS=1 and LISTEN_PID is its
    // own pid, so "fd:3" proves the protocol was followed.
    for _ in 0..6 {
        let v = get(port, "/", Duration::from_secs(5)).unwrap().json();
        assert_eq!(v["listen"], "fd:3");
        assert_eq!(v["listen_pid"], v["pid"].to_string().as_str());
    }
    let env = get(port, "/env", Duration::from_secs(5)).unwrap().json();
    assert_eq!(env["LISTEN_FDS"], "1");
    assert_eq!(env["LISTEN_FDNAMES"], "corefit");
    // `one`: one listening socket, in both workers. `per-worker`: one each,
    // and no worker holds another's.
    let listening = listening_inodes(port);
    let held: Vec<BTreeSet<u64>> = seen
        .keys()
        .map(|pid| {
            socket_inodes(*pid)
                .intersection(&listening)
                .copied()
                .collect()
        })
        .collect();
    for h in &held {
        assert_eq!(
            h.len(),
            1,
            "{kind}: each worker holds one listening socket: {held:?}"
        );
    }
    match kind {
        "one" => {
            assert_eq!(listening.len(), 1, "{kind}: {listening:?}");
            assert_eq!(held[0], held[1]);
        }
        _ => {
            assert_eq!(listening.len(), 2, "{kind}: {listening:?}");
            assert_ne!(held[0], held[1]);
        }
    }
    stop_cleanly(corefit, &seen.keys().copied().collect::<Vec<_>>());
}

#[test]
fn shared_hands_one_socket_to_socket_activated_workers() {
    shared_mode("one");
}

#[test]
fn shared_per_worker_sockets_are_not_leaked_between_workers() {
    shared_mode("per-worker");
}

#[test]
fn reuseport_workers_bind_the_same_port() {
    let port = free_port();
    let mut corefit = cluster(port, "reuseport", 2)
        .command(["python3".to_owned(), app("reuseport_server.py")])
        .start(&[]);
    let seen = distinct_workers(port, 2, STARTUP);
    assert_workers(&mut corefit, &seen, 2);
    stop_cleanly(corefit, &seen.keys().copied().collect::<Vec<_>>());
}

#[test]
fn none_gives_each_worker_its_own_port() {
    let base = free_port_range(2);
    let mut corefit = cluster(base, "none", 2).node("server.js").start(&[]);
    let mut pids = Vec::new();
    for id in 0..2u16 {
        let (pid, worker) = wait_for(STARTUP, "worker on its own port", || whoami(base + id).ok());
        assert_eq!(
            worker,
            id.to_string(),
            "port {} serves worker {id}",
            base + id
        );
        pids.push(pid);
    }
    assert_ne!(pids[0], pids[1]);
    let seen = pids
        .iter()
        .zip(["0", "1"])
        .map(|(p, i)| (*p, i.to_string()))
        .collect();
    assert_workers(&mut corefit, &seen, 2);
    stop_cleanly(corefit, &pids);
}

#[test]
fn workers_get_the_plan_environment_and_json_logs() {
    let port = free_port();
    let corefit = cluster(port, "proxy", 2)
        .opt("--log-format", "json")
        .arg("--log-prefix")
        .node("server.js")
        .start(&[]);
    let seen = distinct_workers(port, 2, STARTUP);
    let env = get(port, "/env", Duration::from_secs(5)).unwrap().json();
    assert_eq!(env["COREFIT_WORKERS"], "2");
    assert_eq!(env["COREFIT_MODE"], "cluster");
    assert_eq!(env["WEB_CONCURRENCY"], "1");
    assert_eq!(env["NODE_APP_INSTANCE"], env["COREFIT_WORKER_ID"]);
    // Worker output passes through whole, prefixed with the worker id.
    for id in ["0", "1"] {
        corefit
            .stdout
            .wait_line(&format!("[worker {id}] server.js: pid"), STARTUP);
    }
    stop_cleanly(
        corefit_checked_json(corefit),
        &seen.keys().copied().collect::<Vec<_>>(),
    );
}

/// Every line corefit wrote to stderr so far is a JSON object with a level.
fn corefit_checked_json(corefit: Corefit) -> Corefit {
    let text = corefit.stderr.text();
    assert!(!text.is_empty());
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert!(v["level"].is_string() && v["msg"].is_string(), "{line}");
    }
    corefit
}
