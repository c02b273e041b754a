//! Rolling reload through the real binary and real Node apps that close
//! idle keep-alive connections on SIGTERM (tests/apps/ops_app.js after a
//! 100 ms drain, tests/apps/server.js at once): under a bounded keep-alive
//! load, a reload of 2 workers in `proxy` (by SIGHUP; both apps) and in
//! `shared` (by `corefit reload`; the draining app) mode fails no request
//! and changes every worker pid; a replacement that never becomes ready aborts the
//! reload and the old workers keep serving.

use corefit_test_support::netns::private_network;
use corefit_test_support::prelude::*;
use std::collections::BTreeSet;
use std::time::Duration;

use nix::sys::signal::Signal;

/// Two workers of `app_name` on free ports, with a control socket.
fn start(socket: &str, app_name: &str, extra: &[&str], env: &[(&str, &str)]) -> Cluster {
    let args = Args::cluster(2)
        .socket(socket)
        .grace("5s")
        .args(extra)
        .node(app_name);
    Cluster::start(args, env, None)
}

fn reload_under_load(socket: &str, by_signal: bool, app_name: &str) {
    let mut c = start(socket, app_name, &[], &[]);
    let (port, control, corefit) = (c.port, c.control.clone(), &mut c.corefit);
    let before: BTreeSet<i32> = distinct_workers(port, 2, Duration::from_secs(15))
        .into_keys()
        .collect();
    wait_for(Duration::from_secs(10), "both workers ready", || {
        (ready_pids(&control) == before).then_some(())
    });

    let load = Load::start(port, 4, 0);
    load.wait_more(200, Duration::from_secs(20));
    if by_signal {
        corefit.signal(Signal::SIGHUP);
    } else {
        let out = ctl(&control, &["reload"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("rolling reload of 2 worker(s)"));
    }
    corefit.stderr.wait_line(
        "reload complete: 2 worker(s) replaced",
        Duration::from_secs(30),
    );
    // Both old processes are gone, and the load keeps being served.
    for pid in &before {
        wait_for(Duration::from_secs(10), "the old worker to exit", || {
            gone(*pid).then_some(())
        });
    }
    load.wait_more(200, Duration::from_secs(20));
    let stats = load.finish();

    assert_eq!(
        stats.failures.len(),
        0,
        "{socket} {app_name}: {}",
        stats.summary()
    );
    let after = ready_pids(&control);
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(
        after.is_disjoint(&before),
        "pids not all changed: {before:?} -> {after:?}"
    );
    assert!(
        after.iter().any(|p| stats.pids.contains(p)),
        "the new workers served the load: {after:?} vs {:?}",
        stats.pids
    );
    // New connections reach both new workers (keep-alive connections may
    // all hash to one of the SO_REUSEPORT sockets in `shared` mode).
    let answering: BTreeSet<i32> = distinct_workers(port, 2, Duration::from_secs(10))
        .into_keys()
        .collect();
    assert_eq!(answering, after);
    let status = status_json(&control);
    assert_eq!(status["restarts_by_reason"]["reload"], 2, "{status}");
    assert_eq!(status["reloading"], false);

    let out = ctl(&control, &["stop"]);
    assert!(out.status.success());
    assert_eq!(corefit.wait_exit(Duration::from_secs(15)), 0);
    assert!(!control.exists(), "the control socket is removed at exit");
}

#[test]
fn reload_under_load_fails_no_request_and_replaces_every_pid() {
    // In a network namespace of the test's own with tcp_migrate_req=1, as
    // corefit advises for shared and inject (docs/sockets.md): without it
    // a connection queued on a stopping worker's closing listener is reset.
    private_network(true);
    // One after the other: the load measures, nothing else competes.
    // ops_app.js drains keep-alive connections for 100 ms on SIGTERM.
    reload_under_load("proxy", true, "ops_app.js");
    reload_under_load("shared", false, "ops_app.js");
    // server.js closes idle keep-alive connections at once, including
    // those whose next request it has not read yet: the proxy sends such
    // a request to the new worker (supervise::retry).
    reload_under_load("proxy", true, "server.js");
}

#[test]
fn reload_under_load_with_inject_fails_no_request() {
    // The unmodified app's own listen(PORT) gets the shared socket(s)
    // through the preload shim; the reload behaves as in `shared`
    // (tcp_migrate_req=1 in a namespace of the test's own, as above).
    private_network(true);
    reload_under_load("inject", false, "ops_app.js");
}

#[test]
fn a_replacement_never_ready_aborts_the_reload_and_the_old_workers_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flag = dir.path().join("hang");
    let flag_s = flag.display().to_string();
    let mut c = start(
        "proxy",
        "ops_app.js",
        &["--ready-timeout", "1s"],
        &[("HANG_IF_EXISTS", &flag_s)],
    );
    let (port, control, corefit) = (c.port, c.control.clone(), &mut c.corefit);
    let before: BTreeSet<i32> = distinct_workers(port, 2, Duration::from_secs(15))
        .into_keys()
        .collect();
    std::fs::write(&flag, "").expect("write flag");
    let out = ctl(&control, &["reload"]);
    assert!(out.status.success());
    let line = corefit
        .stderr
        .wait_line("reload aborted", Duration::from_secs(15));
    assert!(line.contains("worker 0"), "{line}");
    let hung = corefit
        .stderr
        .wait_line("not ready after", Duration::from_secs(1));
    let hung_pid: i32 = pid_after(&hung, "replacement pid ");
    wait_for(
        Duration::from_secs(5),
        "the hung replacement to be gone",
        || gone(hung_pid).then_some(()),
    );
    // The old workers still serve, and are the only ones.
    let now: BTreeSet<i32> = distinct_workers(port, 2, Duration::from_secs(10))
        .into_keys()
        .collect();
    assert_eq!(now, before);
    assert_eq!(ready_pids(&control), before);
    let status = status_json(&control);
    assert_eq!(status["reloading"], false);
    assert!(
        status["restarts_by_reason"].get("reload").is_none(),
        "{status}"
    );
    corefit.signal(Signal::SIGTERM);
    assert_eq!(corefit.wait_exit(Duration::from_secs(15)), 0);
}

/// Node processes under corefit right now.
fn workers_alive(corefit: &mut Corefit) -> usize {
    corefit
        .descendants()
        .into_iter()
        .filter(|p| {
            alive(*p)
                && std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.trim() == "node")
        })
        .count()
}

#[test]
fn a_second_sighup_is_coalesced_and_sigterm_during_a_reload_stops_cleanly() {
    // Each replacement says 'ready' 300 ms after listening: a reload of 2
    // takes over half a second, long enough to interrupt.
    let mut c = start(
        "proxy",
        "ops_app.js",
        &["--ready", "ipc"],
        &[("SEND_READY_AFTER_MS", "300")],
    );
    let (port, control, corefit) = (c.port, c.control.clone(), &mut c.corefit);
    distinct_workers(port, 2, Duration::from_secs(15));
    wait_for(Duration::from_secs(10), "both workers ready", || {
        (ready_pids(&control).len() == 2).then_some(())
    });
    corefit.signal(Signal::SIGHUP);
    corefit
        .stderr
        .wait_line("rolling reload of 2", Duration::from_secs(5));
    // Two more while it runs (the kernel may merge them into one).
    corefit.signal(Signal::SIGHUP);
    corefit.signal(Signal::SIGHUP);
    // Never more than one replacement beside the 2 workers (old processes
    // draining for 100 ms may still be counted).
    let mut most = 0;
    wait_for(Duration::from_secs(20), "two reload rounds", || {
        most = most.max(workers_alive(corefit));
        (corefit.stderr.text().matches("reload complete: 2").count() == 2).then_some(())
    });
    assert!(most <= 4, "up to {most} node processes during the reload");
    let log = corefit.stderr.text();
    // However many arrived, they made one more round, not more.
    assert!(log.contains("one more round follows this one"), "{log}");
    let status = status_json(&control);
    assert_eq!(status["restarts_by_reason"]["reload"], 4, "{status}");
    assert_eq!(status["reloading"], false);

    // SIGTERM in the middle of a reload: everything stops, exit 0.
    corefit.signal(Signal::SIGHUP);
    corefit
        .stderr
        .wait_line("replacement started", Duration::from_secs(5));
    corefit.signal(Signal::SIGTERM);
    assert_eq!(corefit.wait_exit(Duration::from_secs(15)), 0);
    assert!(corefit.stderr.contains("reload cancelled by the stop"));
    let leftovers: Vec<i32> = corefit
        .descendants()
        .into_iter()
        .filter(|p| alive(*p))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}
