//! Live resize with a real cgroup, through the real binary and a real Node
//! app: corefit starts in a cgroup v1 CPU cgroup with 1 CPU of quota (1
//! worker); the quota is raised to 2 CPUs and the pool grows to 2 within a
//! few seconds; lowered again, it shrinks to 1 under a keep-alive load
//! without a failed request. Root only (CI runs as root); never skips.

mod operate_support;
mod supervise_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use corefit::probe::mountinfo::{cgroup_mounts, memberships, path_below_mount};
use nix::sys::signal::Signal;
use operate_support::*;
use supervise_support::*;

/// A cgroup directory removed (rmdir) on drop, once empty.
struct CgroupDir(PathBuf);

impl Drop for CgroupDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn write(path: &Path, value: &str) {
    std::fs::write(path, value)
        .unwrap_or_else(|e| panic!("cannot write {value:?} to {}: {e}", path.display()));
}

/// This process's cgroup v1 `cpu` directory.
fn own_cpu_dir() -> PathBuf {
    let (mounts, _) = cgroup_mounts(&read("/proc/self/mountinfo"));
    let mount = mounts
        .iter()
        .find(|m| m.has_controller("cpu") && m.fs_type == "cgroup")
        .expect("no cgroup v1 cpu controller mounted (this test needs one)");
    let (members, _) = memberships(&read("/proc/self/cgroup"));
    let member = members
        .iter()
        .find(|m| m.controllers.iter().any(|c| c == "cpu"))
        .expect("no cpu line in /proc/self/cgroup");
    let rel = path_below_mount(&member.path, &mount.root).expect("cgroup path below its mount");
    Path::new(&mount.mount_point).join(rel)
}

fn health(admin_port: u16) -> Option<serde_json::Value> {
    let r = get(admin_port, "/health", Duration::from_secs(5)).ok()?;
    serde_json::from_str(&r.body).ok()
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
    let euid = read("/proc/self/status")
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
    let cg = CgroupDir(own_cpu_dir().join(format!("corefit-resize-{}", std::process::id())));
    std::fs::create_dir(&cg.0)
        .unwrap_or_else(|e| panic!("cannot create cgroup {}: {e}", cg.0.display()));
    write(&cg.0.join("cpu.cfs_period_us"), "100000");
    write(&cg.0.join("cpu.cfs_quota_us"), "100000");

    let dir = tempfile::tempdir().expect("tempdir");
    let control = dir.path().join("c.sock").display().to_string();
    let port = free_port();
    let admin = free_port();
    let (port_s, admin_s) = (port.to_string(), format!("127.0.0.1:{admin}"));
    let app_path = app("ops_app.js");
    let script = format!(
        "echo $$ > '{}' && exec \"$@\"",
        cg.0.join("cgroup.procs").display()
    );
    let mut corefit = Corefit::start_wrapped(
        &["/bin/sh", "-c", &script, "sh"],
        &[
            "--platform",
            "vps",
            "--resize-interval",
            "200ms",
            "--host",
            "127.0.0.1",
            "--port",
            &port_s,
            "--admin-addr",
            &admin_s,
            "--control-socket",
            &control,
            "--grace-period",
            "5s",
            "--",
            "node",
            &app_path,
        ],
        &[],
    );

    // 1 CPU: one worker, behind the proxy (kept so the pool can grow).
    wait_pool(admin, 1, Duration::from_secs(15));
    let doc = health(admin).unwrap();
    assert_eq!(doc["cpu"]["limit"], 1.0, "{doc}");
    assert_eq!(doc["socket"], "proxy");

    // 2 CPUs: two workers within a few seconds.
    write(&cg.0.join("cpu.cfs_quota_us"), "200000");
    wait_pool(admin, 2, Duration::from_secs(5));
    assert_eq!(health(admin).unwrap()["cpu"]["limit"], 2.0);
    distinct_workers(port, 2, Duration::from_secs(5));
    corefit
        .stderr
        .wait_line("limits changed: CPUs 1 -> 2", Duration::from_secs(1));

    // Back to 1 CPU, under load: one worker, no failed request.
    let load = Load::start(port, 4);
    load.wait_more(100, Duration::from_secs(10));
    write(&cg.0.join("cpu.cfs_quota_us"), "100000");
    wait_pool(admin, 1, Duration::from_secs(10));
    load.wait_more(100, Duration::from_secs(10));
    let stats = load.finish();
    assert_eq!(stats.failed, 0, "{:?}", stats.errors);
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
    let cg = CgroupDir(own_cpu_dir().join(format!("corefit-resize-fixed-{}", std::process::id())));
    std::fs::create_dir(&cg.0)
        .unwrap_or_else(|e| panic!("cannot create cgroup {}: {e}", cg.0.display()));
    write(&cg.0.join("cpu.cfs_period_us"), "100000");
    write(&cg.0.join("cpu.cfs_quota_us"), "100000");
    let port = free_port();
    let admin = free_port();
    let (port_s, admin_s) = (port.to_string(), format!("127.0.0.1:{admin}"));
    let app_path = app("ops_app.js");
    let script = format!(
        "echo $$ > '{}' && exec \"$@\"",
        cg.0.join("cgroup.procs").display()
    );
    let mut corefit = Corefit::start_wrapped(
        &["/bin/sh", "-c", &script, "sh"],
        &[
            "--platform",
            "vps",
            "--workers",
            "1",
            "--resize-interval",
            "200ms",
            "--host",
            "127.0.0.1",
            "--port",
            &port_s,
            "--admin-addr",
            &admin_s,
            "--control-socket",
            "/nonexistent-dir/c.sock",
            "--",
            "node",
            &app_path,
        ],
        &[],
    );
    wait_pool(admin, 1, Duration::from_secs(15));
    write(&cg.0.join("cpu.cfs_quota_us"), "200000");
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
