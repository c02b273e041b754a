//! Every worker is told its share (docs/worker-env.md), for real: a Go, a
//! Python 3, a Node and a JVM app under corefit with 2 workers on a
//! published 2 CPUs and 1 GiB (`--platform nomad`, `NOMAD_CPU_CORES=0-1`,
//! `NOMAD_MEMORY_LIMIT=1024`: 1 CPU and 512 MiB per worker on any host)
//! find their share in their environment (`/proc/PID/environ` of each
//! ready worker), and a value the user set is kept. The JVM's variable
//! reaches only a `java` command, and the JVM obeys it
//! (`Runtime.availableProcessors()` through the app).

use std::collections::BTreeMap;
use std::time::Duration;

use corefit_test_support::apps::{app, go_app};
use corefit_test_support::args::Args;
use corefit_test_support::corefit::{ctl, Cluster};
use corefit_test_support::http::get;
use corefit_test_support::wait::wait_for;

/// The published size: 2 CPUs, 1 GiB.
const NOMAD: [(&str, &str); 2] = [("NOMAD_CPU_CORES", "0-1"), ("NOMAD_MEMORY_LIMIT", "1024")];

/// Starts `command` under corefit with 2 workers and the published size
/// plus `env`; returns the run and each ready worker's environment.
fn two_workers(
    command: &[String],
    env: &[(&str, &str)],
) -> (Cluster, Vec<BTreeMap<String, String>>) {
    let args = Args::cluster(2).opt("--platform", "nomad").command(command);
    let mut all: Vec<(&str, &str)> = NOMAD.to_vec();
    all.extend_from_slice(env);
    let run = Cluster::start(args, &all, None);
    let pids = wait_for(Duration::from_secs(30), "2 ready workers", || {
        let p = ready(&run);
        (p.len() == 2).then_some(p)
    });
    let envs = pids.iter().map(|&pid| environ(pid)).collect();
    (run, envs)
}

/// The ready workers' pids per `corefit status --json` (none while the
/// control socket is not up yet).
fn ready(run: &Cluster) -> Vec<i32> {
    let out = ctl(&run.control, &["status", "--json"]);
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
        return Vec::new();
    };
    doc["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["phase"] == "ready")
        .filter_map(|w| w["pid"].as_i64().map(|p| p as i32))
        .collect()
}

/// The environment a process was started with.
fn environ(pid: i32) -> BTreeMap<String, String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/environ: {e}"));
    raw.split(|&b| b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// Every worker has `var` = `want`.
fn all_have(envs: &[BTreeMap<String, String>], var: &str, want: &str) {
    for (i, e) in envs.iter().enumerate() {
        assert_eq!(
            e.get(var).map(String::as_str),
            Some(want),
            "worker {i}: {var}"
        );
    }
}

/// No worker has `var`.
fn none_has(envs: &[BTreeMap<String, String>], var: &str) {
    for (i, e) in envs.iter().enumerate() {
        assert!(!e.contains_key(var), "worker {i} has {var}={:?}", e[var]);
    }
}

#[test]
fn go_workers_get_gomaxprocs_and_gomemlimit() {
    let go = go_app("hello-dynamic").display().to_string();
    let (mut run, envs) = two_workers(&[go], &[]);
    all_have(&envs, "GOMAXPROCS", "1");
    // 90 % of 512 MiB.
    all_have(&envs, "GOMEMLIMIT", "460MiB");
    none_has(&envs, "JAVA_TOOL_OPTIONS");
    none_has(&envs, "DOTNET_PROCESSOR_COUNT");
    run.stop(Duration::from_secs(15));
}

#[test]
fn python_workers_get_their_cpu_count_and_a_user_value_is_kept() {
    let cmd = ["python3".to_owned(), app("pid_server.py")];
    let (mut run, envs) = two_workers(&cmd, &[("GOMEMLIMIT", "300MiB")]);
    all_have(&envs, "PYTHON_CPU_COUNT", "1");
    // The user's GOMEMLIMIT, not corefit's 460MiB.
    all_have(&envs, "GOMEMLIMIT", "300MiB");
    run.stop(Duration::from_secs(15));
}

#[test]
fn node_workers_get_their_heap_and_thread_pool_and_a_user_value_is_kept() {
    let cmd = ["node".to_owned(), app("server.js")];
    let (mut run, envs) = two_workers(&cmd, &[("UV_THREADPOOL_SIZE", "7")]);
    // 75 % of 512 MiB for V8's old space.
    all_have(&envs, "NODE_OPTIONS", "--max-old-space-size=384");
    all_have(&envs, "UV_THREADPOOL_SIZE", "7");
    all_have(&envs, "GOMEMLIMIT", "460MiB");
    // What the app itself sees, through corefit's port.
    let seen = get(run.port, "/env", Duration::from_secs(5))
        .expect("GET /env")
        .json();
    assert_eq!(seen["UV_THREADPOOL_SIZE"], "7");
    assert_eq!(seen["NODE_OPTIONS"], "--max-old-space-size=384");
    run.stop(Duration::from_secs(15));
}

#[test]
fn jvm_workers_get_java_tool_options_appended_and_obey_them() {
    let cmd = ["java".to_owned(), app("ShareServer.java")];
    let (mut run, envs) = two_workers(&cmd, &[("JAVA_TOOL_OPTIONS", "-Dcorefit.test=yes")]);
    all_have(
        &envs,
        "JAVA_TOOL_OPTIONS",
        "-Dcorefit.test=yes -XX:ActiveProcessorCount=1 -XX:MaxRAM=512m",
    );
    let seen = get(run.port, "/", Duration::from_secs(10))
        .expect("GET /")
        .json();
    assert_eq!(seen["processors"], 1, "{seen}");
    // The JVM's default heap is 25 % of MaxRAM: at most 128 MiB.
    let heap = seen["max_heap"].as_u64().expect("max_heap");
    assert!(heap <= 128 << 20, "heap {heap} from a 512 MiB MaxRAM");
    run.stop(Duration::from_secs(15));
}
