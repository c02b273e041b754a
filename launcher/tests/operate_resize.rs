//! Live resize with a real cgroup, through the real binary and a real Node
//! app: corefit starts in cgroup v1 CPU and memory cgroups with 1 CPU of
//! quota and 1 GiB (1 worker); the quota is raised to 2 CPUs and the pool
//! grows to 2; lowered again, it shrinks to 1; both under a keep-alive
//! load without a failed request, and after each change every running
//! worker's environment (`/proc/PID/environ`: COREFIT_WORKERS, the heap
//! ceiling in NODE_OPTIONS, WEB_CONCURRENCY, GOMAXPROCS) is the new plan's,
//! as `corefit plan --json` in the same cgroups says. Root only (CI runs
//! as root); never skips.

use corefit_test_support::prelude::*;
use std::collections::BTreeMap;
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

/// The environment the plan in these cgroups gives every worker:
/// `corefit plan --json --platform vps` run inside them.
fn planned_env(enter: &str) -> BTreeMap<String, String> {
    let plan = std::process::Command::new("/bin/sh")
        .args(["-c", enter, "sh"])
        .arg(corefit_bin())
        .args(["plan", "--json", "--platform", "vps"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("corefit plan");
    assert!(plan.status.success(), "{plan:?}");
    let doc: serde_json::Value = serde_json::from_slice(&plan.stdout).expect("plan JSON");
    serde_json::from_value(doc["decision"]["worker_env"]["common"].clone()).expect("common env")
}

/// Process `pid`'s environment.
fn environ(pid: i32) -> BTreeMap<String, String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .filter_map(|kv| {
            let (k, v) = std::str::from_utf8(kv).ok()?.split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// Waits until `n` workers are ready and each one's environment holds
/// every variable of `want`.
fn wait_env(admin_port: u16, n: usize, want: &BTreeMap<String, String>) {
    let what = format!("{n} ready workers, each with {want:?}");
    wait_for(Duration::from_secs(15), &what, || {
        let ws = ready_workers(admin_port);
        let current = |pid| {
            let env = environ(pid);
            want.iter().all(|(k, v)| env.get(k) == Some(v))
        };
        (ws.len() == n && ws.iter().all(|&(_, pid)| current(pid))).then_some(())
    });
}

#[test]
fn the_pool_and_its_environment_follow_the_cgroup_limits() {
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
    let mem = CgroupDir::below_own("memory", "corefit-resize");
    mem.write("memory.limit_in_bytes", &(1u64 << 30).to_string());
    let enter = cg.enter_script(&format!(
        "echo $$ > '{}'",
        mem.0.join("cgroup.procs").display()
    ));

    let dir = tempfile::tempdir().expect("tempdir");
    let (port, admin) = (free_port(), free_port());
    let mut corefit = resizing(port, admin)
        .control(&dir.path().join("c.sock"))
        .grace("5s")
        .start_wrapped(&["/bin/sh", "-c", &enter, "sh"], &[]);

    // 1 CPU: one worker, behind the proxy (kept so the pool can grow).
    wait_pool(admin, 1, Duration::from_secs(15));
    let doc = health(admin).unwrap();
    assert_eq!(doc["cpu"]["limit"], 1.0, "{doc}");
    assert_eq!(doc["socket"], "proxy");
    let one = planned_env(&enter);
    assert_eq!(one["NODE_OPTIONS"], "--max-old-space-size=768", "{one:?}");
    wait_env(admin, 1, &one);

    let load = Load::start(port, 4, 0);
    load.wait_more(100, Duration::from_secs(10));

    // 2 CPUs: two workers, and worker 0 replaced with the new environment.
    cg.write("cpu.cfs_quota_us", "200000");
    wait_pool(admin, 2, Duration::from_secs(10));
    assert_eq!(health(admin).unwrap()["cpu"]["limit"], 2.0);
    let line = corefit
        .stderr
        .wait_line("limits changed: ", Duration::from_secs(1));
    assert!(
        line.contains("limits changed: CPUs 1 -> 2; the plan now says 2 worker(s)"),
        "only the CPUs changed: {line}"
    );
    let two = planned_env(&enter);
    assert_eq!(
        (
            two["COREFIT_WORKERS"].as_str(),
            two["NODE_OPTIONS"].as_str()
        ),
        ("2", "--max-old-space-size=384"),
        "{two:?}"
    );
    wait_env(admin, 2, &two);
    load.wait_more(100, Duration::from_secs(10));

    // Back to 1 CPU: one worker, with the 1-worker environment again.
    cg.write("cpu.cfs_quota_us", "100000");
    wait_pool(admin, 1, Duration::from_secs(10));
    wait_env(admin, 1, &one);
    load.wait_more(100, Duration::from_secs(10));
    let stats = load.finish();
    assert_eq!(stats.failures.len(), 0, "{}", stats.summary());
    // The only restarts: worker 0 replaced after each change.
    let restarts = health(admin).unwrap()["restarts"].clone();
    assert_eq!(restarts, serde_json::json!({"resize": 2}), "{restarts}");
    assert!(!corefit.stderr.contains("memory 1 GiB -> 1 GiB"));

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
