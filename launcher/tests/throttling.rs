//! CFS throttling made visible, on a real cgroup v1 `cpu` directory (as
//! root, below this process's own): corefit runs inside it, samples its
//! `cpu.stat` every 200 ms (`--memory-interval`), and
//!
//! - 4 busy threads (`tests/apps/busy_threads.js`) under a quota of 1 CPU
//!   show throttled periods in `/metrics`, and exactly one warning for
//!   the episode (not one per sample);
//! - 1 busy thread under a quota of 2 CPUs shows periods but no
//!   throttling warning.
//!
//! Each load is bounded (2 s of spinning, at most the quota's CPU).

use std::time::Duration;

use corefit_test_support::args::Args;
use corefit_test_support::cgroup::CgroupDir;
use corefit_test_support::corefit::Cluster;
use corefit_test_support::http::get;
use corefit_test_support::wait::wait_for;

const WARNING: &str = "CPU throttled in";

/// corefit with 1 worker of `busy_threads.js` (`threads` busy threads)
/// inside a new cgroup with a quota of `quota_us` per 100 ms.
fn run(name: &str, quota_us: u32, threads: u32) -> (CgroupDir, Cluster) {
    let cg = CgroupDir::below_own("cpu", name);
    cg.write("cpu.cfs_period_us", "100000");
    cg.write("cpu.cfs_quota_us", &quota_us.to_string());
    let script = cg.enter_script("");
    let args = Args::new()
        .workers(1)
        .opt("--memory-interval", "200ms")
        .arg("--memory-monitoring")
        .node("busy_threads.js");
    let threads = threads.to_string();
    let env = [("BUSY_THREADS", threads.as_str()), ("BUSY_MS", "2000")];
    let run = Cluster::start(args, &env, Some(&["sh", "-c", &script, "sh"]));
    (cg, run)
}

/// The value of the unlabelled metric `name` in `/metrics`.
fn metric(run: &Cluster, name: &str) -> Option<f64> {
    let body = get(run.admin, "/metrics", Duration::from_secs(5))
        .ok()?
        .body;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Waits until the load is over and corefit sampled 3 more times.
fn wait_load_and_samples(run: &Cluster) {
    run.corefit
        .stdout
        .wait_line("busy done", Duration::from_secs(20));
    let samples = || run.corefit.stderr.text().matches("memory: ").count();
    let after = samples();
    wait_for(Duration::from_secs(10), "3 more samples", || {
        (samples() >= after + 3).then_some(())
    });
}

/// Both runs in turn: a busy thread of one would take the CPU the other's
/// threads need to reach their quota (throttling needs the quota used).
#[test]
fn throttling_is_shown_and_warned_once_per_episode_and_only_when_throttled() {
    four_busy_threads_under_one_cpu();
    one_busy_thread_under_two_cpus();
}

fn four_busy_threads_under_one_cpu() {
    let (cg, mut run) = run("corefit-throttled", 100_000, 4);
    wait_load_and_samples(&run);
    let stat = std::fs::read_to_string(cg.0.join("cpu.stat")).unwrap_or_default();
    let text = run.corefit.stderr.text();
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains(WARNING)).collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning per episode; cpu.stat:\n{stat}"
    );
    assert!(
        warnings[0].contains("more threads are runnable than the CPU quota of 1 CPU allows"),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].contains("cpu.stat"), "{}", warnings[0]);
    let throttled = metric(&run, "corefit_cgroup_cpu_throttled_periods_total").expect("metric");
    let periods = metric(&run, "corefit_cgroup_cpu_periods_total").expect("metric");
    assert!(
        throttled >= 10.0,
        "{throttled} of {periods} periods throttled"
    );
    assert!(metric(&run, "corefit_cgroup_cpu_throttled_seconds_total").unwrap() > 0.0);
    assert_eq!(
        metric(&run, "corefit_cgroup_cpu_throttling_episodes_total"),
        Some(1.0)
    );
    let health = get(run.admin, "/health", Duration::from_secs(5))
        .expect("/health")
        .json();
    assert!(health["cgroup"]["throttling"]["throttled_periods"].as_u64() >= Some(10));
    run.stop(Duration::from_secs(15));
}

fn one_busy_thread_under_two_cpus() {
    let (_cg, mut run) = run("corefit-unthrottled", 200_000, 1);
    wait_load_and_samples(&run);
    let periods = metric(&run, "corefit_cgroup_cpu_periods_total").expect("metric");
    assert!(
        periods >= 10.0,
        "the load ran under the quota: {periods} periods"
    );
    assert_eq!(
        metric(&run, "corefit_cgroup_cpu_throttling_episodes_total"),
        Some(0.0)
    );
    assert!(!run.corefit.stderr.contains(WARNING));
    run.stop(Duration::from_secs(15));
}
