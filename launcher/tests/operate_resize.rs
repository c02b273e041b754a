//! Live resize with a real cgroup, through the real binary and a real Node
//! app: corefit starts in a cgroup v1 CPU cgroup with 1 CPU of quota (1
//! worker); the quota is raised to 2 CPUs and the pool grows to 2 within a
//! few seconds; lowered again, it shrinks to 1 under a keep-alive load
//! without a failed request. Root only (CI runs as root); never skips.

use corefit_test_support::prelude::*;
use std::time::Duration;

use nix::sys::signal::Signal;

/// A cpu cgroup below this process's, at 1 CPU.
fn one_cpu(name: &str) -> CgroupDir {
    let cg = CgroupDir::below_own("cpu", name);
    cg.write("cpu.cfs_period_us", "100000");
    cg.write("cpu.cfs_quota_us", "100000");
    cg
}

/// ops_app.js under `--platform vps`, resized every 200 ms.
fn resizing(port: u16, admin: u16) -> Args {
    Args::new()
        .opt("--platform", "vps")
        .opt("--resize-interval", "200ms")
        .port(port)
        .admin(admin)
        .node("ops_app.js")
}

fn health(admin_port: u16) -> Option<serde_json::Value> {
    admin_json(admin_port, "/health")
}

fn wait_pool(admin_port: u16, n: u64, limit: Duration) {
    wait_for(limit, &format!("a pool of {n} ready workers"), || {
        let doc = health(admin_port)?;
        let w = &doc["workers"];
        (w["desired"] == n && w["ready"] == n && w["active"] == n).then_some(())
    });
}

#[test]
fn the_pool_follows_the_cgroup_cpu_quota() {
    let euid = std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(str::to_owned));
    assert_eq!(
        euid.as_deref(),
        Some("0"),
        "this test makes a real cgroup and must run as root"
    );
    assert!(
        std::thread::available_parallelism().map_or(0, |n| n.get()) >= 2,
        "needs at least 2 CPUs to show a pool of 2"
    );
    let cg = one_cpu("corefit-resize");

    let dir = tempfile::tempdir().expect("tempdir");
    let (port, admin) = (free_port(), free_port());
    let mut corefit = resizing(port, admin)
        .control(&dir.path().join("c.sock"))
        .grace("5s")
        .start_wrapped(&["/bin/sh", "-c", &cg.enter_script(""), "sh"], &[]);

    // 1 CPU: one worker, behind the proxy (kept so the pool can grow).
    wait_pool(admin, 1, Duration::from_secs(15));
    let doc = health(admin).unwrap();
    assert_eq!(doc["cpu"]["limit"], 1.0, "{doc}");
    assert_eq!(doc["socket"], "proxy");

    // 2 CPUs: two workers within a few seconds.
    cg.write("cpu.cfs_quota_us", "200000");
    wait_pool(admin, 2, Duration::from_secs(5));
    assert_eq!(health(admin).unwrap()["cpu"]["limit"], 2.0);
    distinct_workers(port, 2, Duration::from_secs(5));
    corefit
        .stderr
        .wait_line("limits changed: CPUs 1 -> 2", Duration::from_secs(1));

    // Back to 1 CPU, under load: one worker, no failed request.
    let load = Load::start(port, 4, 0);
    load.wait_more(100, Duration::from_secs(10));
    cg.write("cpu.cfs_quota_us", "100000");
    wait_pool(admin, 1, Duration::from_secs(10));
    load.wait_more(100, Duration::from_secs(10));
    let stats = load.finish();
    assert_eq!(stats.failures.len(), 0, "{}", stats.summary());
    assert_eq!(
        health(admin).unwrap()["restarts"]
            .as_object()
            .map(|r| r.len()),
        Some(0)
    );

    corefit.signal(Signal::SIGTERM);
    assert_eq!(corefit.wait_exit(Duration::from_secs(15)), 0);
}

#[test]
fn an_explicit_worker_count_does_not_follow_the_quota() {
    let cg = one_cpu("corefit-resize-fixed");
    let (port, admin) = (free_port(), free_port());
    let mut corefit = resizing(port, admin)
        .workers(1)
        .opt("--control-socket", "/nonexistent-dir/c.sock")
        .start_wrapped(&["/bin/sh", "-c", &cg.enter_script(""), "sh"], &[]);
    wait_pool(admin, 1, Duration::from_secs(15));
    cg.write("cpu.cfs_quota_us", "200000");
    let line = corefit
        .stderr
        .wait_line("limits changed: CPUs 1 -> 2", Duration::from_secs(5));
    assert!(line.contains("the count stays: --workers=1"), "{line}");
    // The limit shows; the count does not move.
    let doc = health(admin).unwrap();
    assert_eq!(
        (
            doc["cpu"]["limit"].as_f64(),
            doc["workers"]["desired"].as_u64()
        ),
        (Some(2.0), Some(1)),
        "{doc}"
    );
    assert!(!corefit.stderr.contains("scaling from"));
    corefit.signal(Signal::SIGTERM);
    assert_eq!(corefit.wait_exit(Duration::from_secs(15)), 0);
}
