//! Operating a running corefit through the real binary and a real Node
//! app: scaling by SIGTTIN/SIGTTOU and `corefit scale`, `status --json`
//! and `/metrics` against the real processes, `/health` 200 vs 503, the
//! control socket's mode and owner check, and a leaking worker restarted
//! at its memory ceiling.

use corefit_test_support::prelude::*;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// `corefit --mode cluster --workers 2 --socket proxy EXTRA` running
/// tests/apps/ops_app.js on free ports, with the admin endpoint and a
/// control socket.
fn cluster(extra: &str, env: &[(&str, &str)]) -> Cluster {
    let args = Args::cluster(2)
        .socket("proxy")
        .grace("5s")
        .args(extra.split_whitespace())
        .node("ops_app.js");
    Cluster::start(args, env, None)
}

/// [`cluster`], once both workers are ready and answering: with their pids.
fn serving(extra: &str, env: &[(&str, &str)]) -> (Cluster, BTreeSet<i32>) {
    let c = cluster(extra, env);
    wait_workers(&c, 2);
    let pids = answering(&c, 2);
    (c, pids)
}

fn health(c: &Cluster) -> (u16, serde_json::Value) {
    try_health(c).expect("the admin endpoint answers")
}

/// None while the admin endpoint is not listening yet.
fn try_health(c: &Cluster) -> Option<(u16, serde_json::Value)> {
    let r = get(c.admin, "/health", Duration::from_secs(5)).ok()?;
    Some((
        r.status,
        serde_json::from_str(&r.body).expect("health is JSON"),
    ))
}

/// Waits until /health says `n` desired, `n` ready, `n` processes.
fn wait_workers(c: &Cluster, n: u64) -> serde_json::Value {
    wait_for(
        Duration::from_secs(15),
        &format!("{n} workers ready"),
        || {
            let (code, doc) = try_health(c)?;
            let w = &doc["workers"];
            (code == 200 && w["desired"] == n && w["ready"] == n && w["active"] == n).then_some(doc)
        },
    )
}

/// Pids answering on the public port: exactly `n` distinct ones.
fn answering(c: &Cluster, n: usize) -> BTreeSet<i32> {
    let seen: BTreeSet<i32> = distinct_workers(c.port, n, Duration::from_secs(10))
        .into_keys()
        .collect();
    // No more than n: a few more requests meet no other pid.
    let mut more = seen.clone();
    for _ in 0..(4 * n) {
        if let Ok((pid, _)) = whoami(c.port) {
            more.insert(pid);
        }
    }
    assert_eq!(more, seen, "only {n} workers answer");
    seen
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn scale_by_signals_and_by_command_changes_workers_and_health() {
    let (mut c, two) = serving("", &[]);

    c.corefit.signal(Signal::SIGTTIN);
    wait_workers(&c, 3);
    let three = answering(&c, 3);
    assert!(two.is_subset(&three), "{two:?} {three:?}");
    // The new worker is told the current count.
    let told = wait_for(Duration::from_secs(5), "the new worker's answer", || {
        let v = get(c.port, "/", Duration::from_secs(5)).ok()?.json();
        let pid = v["pid"].as_i64()? as i32;
        (!two.contains(&pid)).then_some(v)
    });
    assert_eq!(
        (told["worker"].as_str(), told["workers"].as_str()),
        (Some("2"), Some("3")),
        "{told}"
    );

    let msg = ok(&ctl(&c.control, &["scale", "-2"]));
    assert!(msg.contains("from 3 to 1"), "{msg}");
    wait_workers(&c, 1);
    let one = answering(&c, 1);
    assert!(one.is_subset(&two), "the lowest id stays: {one:?}");

    let msg = ok(&ctl(&c.control, &["scale", "+1"]));
    assert!(msg.contains("from 1 to 2"), "{msg}");
    wait_workers(&c, 2);
    c.corefit.signal(Signal::SIGTTOU);
    wait_workers(&c, 1);
    assert_eq!(answering(&c, 1), one);

    // Bad targets are refused with the reason, and change nothing.
    let out = ctl(&c.control, &["scale", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 1"));
    let out = ctl(&c.control, &["scale", "lots"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("N, +N or -N"));
    assert_eq!(health(&c).1["workers"]["desired"], 1);

    let doc = health(&c).1;
    assert!(
        doc["restarts"].as_object().is_some_and(|r| r.is_empty()),
        "scaling is no restart: {doc}"
    );
    ok(&ctl(&c.control, &["stop"]));
    assert_eq!(c.corefit.wait_exit(Duration::from_secs(15)), 0);
}

#[test]
fn scale_stays_within_the_plans_cap_unless_forced() {
    // --max-workers 2: the cap.
    let mut c = cluster("--max-workers 2", &[]);
    wait_workers(&c, 2);
    let out = ctl(&c.control, &["scale", "+1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("the cap is 2") && err.contains("--force"),
        "{err}"
    );
    c.corefit.signal(Signal::SIGTTIN);
    c.corefit
        .stderr
        .wait_line("SIGTTIN ignored", Duration::from_secs(5));
    ok(&ctl(&c.control, &["scale", "3", "--force"]));
    wait_workers(&c, 3);
    assert_eq!(c.stop(Duration::from_secs(15)), 0);
}

#[test]
fn status_json_and_metrics_match_the_processes() {
    let (mut c, pids) = serving("--memory-interval 200ms", &[]);
    let status = status_json(&c.control);
    let listed: BTreeSet<i32> = status["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["pid"].as_i64().unwrap() as i32)
        .collect();
    assert_eq!(listed, pids, "{status}");
    assert_eq!(status["desired"], 2);
    assert_eq!(status["socket"], "proxy");
    assert_eq!(status["mode"], "cluster");

    // Kill worker 1: the restart shows, by worker and by reason.
    let w1 = find_by(&status["workers"], "id", 1.into())["pid"]
        .as_i64()
        .unwrap() as i32;
    c.corefit.descendants();
    kill(Pid::from_raw(w1), Signal::SIGKILL).expect("kill worker 1");
    let status = wait_for(Duration::from_secs(10), "worker 1 restarted", || {
        let s = status_json(&c.control);
        let w = s["workers"]
            .as_array()?
            .iter()
            .find(|w| w["id"] == 1)?
            .clone();
        (w["phase"] == "ready" && w["pid"] != w1 && w["restarts"] == 1).then_some(s)
    });
    assert_eq!(status["restarts_by_reason"]["crash"], 1, "{status}");
    // Memory is sampled from the real process trees.
    let sampled = wait_for(Duration::from_secs(5), "memory samples", || {
        let s = status_json(&c.control);
        s["workers"]
            .as_array()?
            .iter()
            .all(|w| w["rss_bytes"].as_u64().is_some_and(|b| b > 1 << 20))
            .then_some(s)
    });
    let new_w1 = find_by(&sampled["workers"], "id", 1.into())["pid"]
        .as_i64()
        .unwrap();

    let (code, metrics) = admin(c.admin, "/metrics");
    assert_eq!(code, 200);
    for line in [
        "corefit_workers_desired 2",
        "corefit_workers_ready 2",
        "corefit_worker_restarts_total{reason=\"crash\"} 1",
        "corefit_plan_info{mode=\"cluster\",platform=",
        "corefit_worker_resident_memory_bytes{worker=\"1\"}",
        "# EOF",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in:\n{metrics}");
    }
    // The table names the new pid.
    let table = ok(&ctl(&c.control, &["status"]));
    assert!(
        table.contains(&new_w1.to_string()) && table.contains("2 of 2 workers ready"),
        "{table}"
    );
    // The admin endpoint only reads.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", c.admin)).unwrap();
    use std::io::{Read, Write};
    s.write_all(
        b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 405"), "{reply}");
    assert_eq!(c.stop(Duration::from_secs(15)), 0);
}

#[test]
fn health_is_503_until_every_desired_worker_is_ready() {
    // Worker 1 never listens: 1 of 2 ready.
    let mut c = cluster("--ready-timeout 60s", &[("HANG_WORKER", "1")]);
    let doc = wait_for(Duration::from_secs(15), "worker 0 ready", || {
        let (code, doc) = try_health(&c)?;
        (doc["workers"]["ready"] == 1).then_some((code, doc))
    });
    assert_eq!(doc.0, 503, "{}", doc.1);
    assert_eq!(doc.1["status"], "degraded");
    assert_eq!(doc.1["workers"]["desired"], 2);
    let (code, workers) = admin(c.admin, "/health/workers");
    assert_eq!(code, 200);
    assert!(workers.contains("\"phase\":\"starting\""), "{workers}");
    // Without the hung worker, the cluster is healthy.
    ok(&ctl(&c.control, &["scale", "1"]));
    let doc = wait_workers(&c, 1);
    assert_eq!(doc["status"], "ok");
    assert_eq!(c.stop(Duration::from_secs(15)), 0);
}

#[test]
fn the_control_socket_is_0600_and_refuses_another_user() {
    let mut c = cluster("", &[]);
    wait_workers(&c, 2);
    let mode = std::fs::metadata(&c.control).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Let `nobody` reach the socket file itself (the directory is 0700).
    std::fs::set_permissions(c.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(corefit_bin())
        .args(["status", "--control-socket"])
        .arg(&c.control)
        .env_clear()
        .output()
        .expect("setpriv");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Permission denied") || err.contains("permission denied"),
        "{err}"
    );
    // The owner still gets through.
    ok(&ctl(&c.control, &["status"]));
    assert_eq!(c.stop(Duration::from_secs(15)), 0);
}

#[test]
fn a_leaking_worker_is_replaced_at_its_ceiling_and_counted() {
    let (mut c, before) = serving("--memory-interval 100ms --max-memory-per-worker 150Mi", &[]);
    let r = get(c.port, "/grow?mb=200", Duration::from_secs(10)).expect("grow");
    let leaker = r.json()["pid"].as_i64().unwrap() as i32;
    let line = c
        .corefit
        .stderr
        .wait_line("above its ceiling", Duration::from_secs(10));
    assert!(
        line.contains(&format!("pid {leaker}")) && line.contains("150 MiB"),
        "{line}"
    );
    wait_for(Duration::from_secs(10), "the leaker to be gone", || {
        gone(leaker).then_some(())
    });
    let doc = wait_workers(&c, 2);
    assert_eq!(doc["restarts"]["memory"], 1, "{doc}");
    let after = answering(&c, 2);
    assert!(!after.contains(&leaker));
    assert_eq!(
        after.intersection(&before).count(),
        1,
        "only the leaker was replaced"
    );
    let (_, metrics) = admin(c.admin, "/metrics");
    assert!(
        metrics.contains("corefit_worker_restarts_total{reason=\"memory\"} 1"),
        "{metrics}"
    );
    assert_eq!(c.stop(Duration::from_secs(15)), 0);
}

#[test]
fn ipc_readiness_waits_for_process_send_ready() {
    // Routed only once each worker said 'ready', 400 ms after listening;
    // a reload waits for the replacement's message too.
    let mut c = cluster("--ready ipc", &[("SEND_READY_AFTER_MS", "400")]);
    let line = c
        .corefit
        .stderr
        .wait_line("worker 0 (pid", Duration::from_secs(15));
    let ms: f64 = line
        .split("ready after ")
        .nth(1)
        .map(|t| {
            let t = t.trim();
            match t.strip_suffix("ms") {
                Some(v) => v.parse().unwrap(),
                None => t.trim_end_matches('s').parse::<f64>().unwrap() * 1000.0,
            }
        })
        .unwrap_or_else(|| panic!("{line}"));
    assert!(ms >= 400.0, "ready before the message: {line}");
    assert!(c
        .corefit
        .stderr
        .contains("readiness by process.send('ready')"));
    wait_workers(&c, 2);
    answering(&c, 2);
    ok(&ctl(&c.control, &["reload"]));
    c.corefit
        .stderr
        .wait_line("reload complete: 2", Duration::from_secs(15));
    let replaced = c.corefit.stderr.text();
    assert!(
        replaced
            .lines()
            .filter(|l| l.contains("replacement pid") && l.contains("ready after"))
            .count()
            == 2,
        "{replaced}"
    );
    assert_eq!(c.stop(Duration::from_secs(15)), 0);
}

#[test]
fn ipc_readiness_never_told_is_never_ready() {
    // No SEND_READY_AFTER_MS: the app listens but never says so.
    let mut c = cluster("--ready ipc --ready-timeout 60s", &[]);
    wait_for(Duration::from_secs(10), "both workers started", || {
        try_health(&c).filter(|(_, d)| d["workers"]["active"] == 2)
    });
    // Both listen (their private ports accept) yet neither is routed.
    wait_for(Duration::from_secs(10), "both apps listening", || {
        (c.corefit.stdout.text().matches("listening").count() >= 2).then_some(())
    });
    let (code, doc) = health(&c);
    assert_eq!(
        (code, doc["workers"]["ready"].as_u64()),
        (503, Some(0)),
        "{doc}"
    );
    assert_eq!(c.stop(Duration::from_secs(15)), 0);
}

#[test]
fn a_hung_worker_fails_its_liveness_probes_and_is_replaced() {
    let liveness = "--liveness-path / --liveness-interval 200ms \
                    --liveness-timeout 300ms --liveness-failures 2";
    let (mut c, before) = serving(liveness, &[]);
    // One request blocks one worker's event loop (it never answers).
    let port = c.port;
    std::thread::spawn(move || {
        let _ = get(port, "/block", Duration::from_secs(20));
    });
    let line = c
        .corefit
        .stdout
        .wait_line("blocking its event loop", Duration::from_secs(5));
    let hung: i32 = pid_after(&line, "pid ");
    assert!(before.contains(&hung));
    let line = c
        .corefit
        .stderr
        .wait_line("liveness probes in a row", Duration::from_secs(10));
    assert!(line.contains(&format!("pid {hung}")), "{line}");
    // It ignores SIGTERM (its loop is blocked): killed after the grace period.
    wait_for(
        Duration::from_secs(10),
        "the hung worker to be gone",
        || gone(hung).then_some(()),
    );
    let doc = wait_workers(&c, 2);
    assert_eq!(doc["restarts"]["unresponsive"], 1, "{doc}");
    let after = answering(&c, 2);
    assert!(!after.contains(&hung) && after.intersection(&before).count() == 1);
    assert_eq!(c.stop(Duration::from_secs(15)), 0);
}

#[test]
fn memory_report_lines_and_threshold_warnings_from_the_environment() {
    // ENABLE_MEMORY_MONITORING and MEMORY_THRESHOLD_MB, the names people use.
    let (mut c, pids) = serving(
        "--memory-interval 100ms",
        &[
            ("ENABLE_MEMORY_MONITORING", "1"),
            ("MEMORY_THRESHOLD_MB", "1"),
        ],
    );
    let line = wait_for(
        Duration::from_secs(5),
        "a report naming both workers",
        || {
            c.corefit
                .stderr
                .text()
                .lines()
                .find(|l| {
                    l.contains("memory: ") && pids.iter().all(|p| l.contains(&format!("pid {p} ")))
                })
                .map(str::to_owned)
        },
    );
    assert!(line.contains("MiB total"), "{line}");
    for pid in &pids {
        c.corefit
            .stderr
            .wait_line(&format!("(pid {pid}) uses"), Duration::from_secs(5));
    }
    // Warned once per crossing, not at every sample.
    let warnings = |t: String| t.matches("above the memory threshold of 1 MiB").count();
    let n = warnings(c.corefit.stderr.text());
    let reports_before = c.corefit.stderr.text().matches("memory: ").count();
    wait_for(Duration::from_secs(5), "three more reports", || {
        (c.corefit.stderr.text().matches("memory: ").count() >= reports_before + 3).then_some(())
    });
    assert_eq!(
        warnings(c.corefit.stderr.text()),
        n,
        "warned again without a new crossing"
    );
    assert_eq!(n, 2);
    assert_eq!(c.stop(Duration::from_secs(15)), 0);
}

/// `/health`'s uptimes are as of the request, not of the supervisor's last
/// publish: with nothing happening (one worker on its own port, no proxy
/// to refresh, memory sampled once a minute) they still follow the clock.
/// They read the same for 5 s at a time before (issue 16).
#[test]
fn health_uptimes_are_current_at_each_request() {
    let args = Args::new()
        .opt("--mode", "single")
        .opt("--memory-interval", "60s")
        .grace("5s")
        .node("ops_app.js");
    let mut c = Cluster::start(args, &[], None);
    let uptimes = |c: &Cluster| {
        let (code, doc) = try_health(c)?;
        let (_, workers) = admin(c.admin, "/health/workers");
        let workers: serde_json::Value = serde_json::from_str(&workers).ok()?;
        let worker = workers["workers"][0]["uptime_seconds"].as_f64()?;
        (code == 200).then(|| (doc["uptime_seconds"].as_f64().unwrap(), worker))
    };
    let before_first = std::time::Instant::now();
    let first = wait_for(Duration::from_secs(15), "the worker ready", || uptimes(&c));
    let after_first = std::time::Instant::now();
    // Until the clock has moved more than a second since the first answer.
    wait_for(Duration::from_secs(5), "1.2 s to pass", || {
        (after_first.elapsed() > Duration::from_millis(1200)).then_some(())
    });
    let second = uptimes(&c).expect("still healthy");
    let elapsed_at_most = before_first.elapsed().as_secs_f64();
    for (what, a, b) in [
        ("corefit", first.0, second.0),
        ("worker 0", first.1, second.1),
    ] {
        let moved = b - a;
        // Each value is rounded to the millisecond.
        assert!(
            moved >= 1.2 - 0.002,
            "{what}'s uptime moved {moved:.3} s while the clock moved over 1.2 s ({a} -> {b})"
        );
        assert!(
            moved <= elapsed_at_most + 0.002,
            "{what}'s uptime moved {moved:.3} s, more than the {elapsed_at_most:.3} s that passed"
        );
    }
    assert_eq!(c.stop(Duration::from_secs(15)), 0);
}
