//! Sockets that follow the workers (`shared` and `inject`), through the
//! real binary, real apps and the real kernel:
//!
//! - a worker's own socket joins the port only when the app listens, so a
//!   reload of a slow-starting app waits for each replacement's `listen()`
//!   and no request waits on a booting worker;
//! - a dead worker's socket leaves the port with it, so a new connection
//!   never waits for its restart;
//! - in `inject` and `shared`, what a stopping worker closes with the
//!   client's next request on its way is handed to corefit and served by a
//!   live worker: with `net.ipv4.tcp_migrate_req=1` (set only inside a
//!   network namespace this test creates) a reload under keep-alive load
//!   fails no request; without the handover, only those idle keep-alive
//!   connections fail;
//! - one worker's `shutdown()` of the listener all workers share (WEBrick
//!   does it when it stops) does not stop the others.

use corefit_test_support::netns::private_network;
use corefit_test_support::prelude::*;
use corefit_test_support::reload::{Reload, ReloadReport};
use std::time::Duration;

use nix::sys::signal::Signal;

const STARTUP: Duration = Duration::from_secs(20);
const RELOAD: Duration = Duration::from_secs(60);

/// The slow start the apps model (a database connection, a framework's
/// boot): long against the gaps corefit used to leave, short for CI.
const BOOT_MS: &str = "1500";

fn slow_cluster(socket: &str, handover: &str) -> Cluster {
    Cluster::start(
        Args::cluster(2)
            .socket(socket)
            .opt("--handover", handover)
            .grace("10s")
            .node("server.js"),
        &[("START_DELAY_MS", BOOT_MS)],
        None,
    )
}

/// Each replacement was counted ready only once it listened: server.js
/// sleeps [`BOOT_MS`] before `listen()`, so corefit's "replacement pid N
/// ready after D" must say at least that (it said "0ms" when it counted a
/// worker ready at its start).
fn assert_ready_after_listen(cluster: &Cluster, report: &ReloadReport) {
    let text = cluster.corefit.stderr.text();
    let waits: Vec<Duration> = text
        .lines()
        .filter(|l| l.contains("replacement pid ") && l.contains(" ready after "))
        .filter_map(|l| parse_duration(l.split(" ready after ").nth(1)?.split(';').next()?))
        .collect();
    assert_eq!(waits.len(), 2, "two replacements were ready: {text}");
    let boot = Duration::from_millis(BOOT_MS.parse().unwrap());
    for wait in waits {
        assert!(
            wait >= boot,
            "a replacement was counted ready after {wait:?}, before it listened ({report})"
        );
    }
}

/// "3.2s" or "850ms".
fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    if let Some(ms) = t.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    t.strip_suffix('s')?
        .parse::<f64>()
        .ok()
        .map(Duration::from_secs_f64)
}

/// Two slow-starting workers under `socket` (and `--handover`), in a
/// network namespace of the test's own with `tcp_migrate_req=1`, reloaded
/// by SIGHUP under keep-alive load: the figures, printed, once each
/// replacement was checked to be counted ready only after it listened.
fn reload_slow(socket: &str, handover: &str) -> ReloadReport {
    private_network(true);
    let cluster = slow_cluster(socket, handover);
    wait_ready(cluster.admin, 2, STARTUP);
    let report = Reload::new(cluster.port)
        .answers(300, 300)
        .sighup(&cluster, 2, RELOAD);
    eprintln!("{socket}, --handover {handover}, tcp_migrate_req=1: {report}");
    assert_ready_after_listen(&cluster, &report);
    report
}

#[test]
fn inject_reload_of_a_slow_app_under_keep_alive_load_fails_nothing() {
    let report = reload_slow("inject", "auto");
    assert_eq!(report.failed, 0, "{report}");
}

#[test]
fn shared_reload_of_a_slow_app_under_keep_alive_load_fails_nothing() {
    // Node is dynamically linked: the shim is preloaded for the handover.
    let report = reload_slow("shared", "auto");
    assert_eq!(report.failed, 0, "{report}");
}

#[test]
fn shared_reload_without_handover_fails_only_idle_keep_alive_connections() {
    let report = reload_slow("shared", "off");
    // Without the shim corefit cannot take over the idle connections the
    // stopping app closes (docs/strategies.md says what the app can do):
    // those are the only failures. No connection is refused or reset on
    // connect, none waits on a booting worker.
    for f in &report.stats.failures {
        assert!(
            f.reused,
            "a new connection failed ({}): {report}",
            corefit_test_support::reload::kind_of(f)
        );
    }
}

#[test]
fn a_killed_shared_worker_gets_no_new_connection_while_it_restarts() {
    let cluster = slow_cluster("shared", "auto");
    let ready = wait_ready(cluster.admin, 2, STARTUP);
    let (_, victim) = ready[0];
    let (_, survivor) = ready[1];
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(victim), Signal::SIGKILL).unwrap();
    wait_for(
        Duration::from_secs(10),
        "the killed worker to be reaped",
        || gone(victim).then_some(()),
    );
    // Its replacement boots for 1.5 s; meanwhile every new connection is
    // answered by the survivor, at once.
    let mut answered = 0;
    for _ in 0..30 {
        let r = get(cluster.port, "/", Duration::from_secs(1)).expect("a new connection answered");
        assert_eq!(r.json()["pid"], survivor, "answered by the live worker");
        answered += 1;
    }
    let now_ready: Vec<i32> = ready_workers(cluster.admin)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(answered, 30);
    assert_eq!(
        now_ready,
        vec![survivor],
        "the 30 answers came while the replacement was still booting"
    );
    wait_ready(cluster.admin, 2, STARTUP);
}

/// WEBrick (Ruby's `ruby -run -e httpd`) shuts its listener down when it
/// stops. With one socket for all workers that used to stop every other
/// worker's accepts: after one reload every request got an empty reply.
#[test]
fn webrick_stopping_does_not_break_the_socket_the_others_share() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "webrick\n").unwrap();
    // The shim loads into sh and into the ruby it execs; WEBrick binds
    // $PORT, which the shim turns into the shared socket.
    let script = format!(
        "exec ruby -run -e httpd -- --port=$PORT --bind-address=127.0.0.1 {}",
        dir.path().display()
    );
    let cluster = Cluster::start(
        Args::cluster(2)
            .socket("inject")
            .opt("--shared-sockets", "one")
            .grace("10s")
            .command(["sh", "-c", &script]),
        &[],
        None,
    );
    let fetch = || {
        get(cluster.port, "/index.html", Duration::from_secs(5))
            .ok()
            .filter(|r| r.status == 200)
    };
    wait_for(STARTUP, "WEBrick to answer", fetch);
    for round in 1..=2 {
        cluster.corefit.signal(Signal::SIGHUP);
        wait_for(RELOAD, "the reload to complete", || {
            let done = cluster
                .corefit
                .stderr
                .text()
                .matches("reload complete: 2 worker(s) replaced")
                .count();
            (done == round).then_some(())
        });
        // The stopped WEBricks shut the listener down; the new ones
        // still accept on it.
        for _ in 0..10 {
            let r = wait_for(Duration::from_secs(10), "an answer after the reload", fetch);
            assert_eq!(r.body.trim(), "webrick", "after reload {round}");
        }
    }
}
