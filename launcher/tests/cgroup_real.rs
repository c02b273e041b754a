//! A real cgroup, through the real `corefit` binary: as root, make a child
//! cgroup with a 150000/100000 CPU quota and a 768 MiB memory limit, run
//! `corefit plan --json` inside it, and check what it saw and decided.
//!
//! cgroup v1 controllers are used where the machine mounts them (these
//! machines are hybrid); otherwise the unified cgroup2 hierarchy. If the
//! cgroup cannot be made, the test fails and says why: it never skips.

use std::path::{Path, PathBuf};
use std::process::Command;

use corefit::probe::mountinfo::{cgroup_mounts, memberships, path_below_mount, CgroupMount};

const QUOTA: &str = "150000";
const PERIOD: &str = "100000";
const MEMORY: u64 = 768 * 1024 * 1024;

/// Directories this test made; removed on drop, deepest first.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for dir in self.0.iter().rev() {
            // A cgroup directory is removed with rmdir once no process is in it.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn write(path: &Path, value: &str) {
    std::fs::write(path, value)
        .unwrap_or_else(|e| panic!("cannot write {value:?} to {}: {e}", path.display()));
}

/// The directory of this process's cgroup in the v1 hierarchy carrying `controller`.
fn own_v1_dir(mounts: &[CgroupMount], controller: &str) -> Option<PathBuf> {
    let mount = mounts.iter().find(|m| m.has_controller(controller))?;
    let (members, _) = memberships(&read("/proc/self/cgroup"));
    let member = members
        .iter()
        .find(|m| m.controllers.iter().any(|c| c == controller))?;
    let rel = path_below_mount(&member.path, &mount.root)?;
    Some(Path::new(&mount.mount_point).join(rel))
}

/// `sh -c script` in an empty environment but `PATH` and `COREFIT` (this
/// build's corefit, which the script ends by exec'ing).
fn shell_to_corefit(script: &str, path: &str) -> Command {
    let mut sh = Command::new("/bin/sh");
    sh.arg("-c")
        .arg(script)
        .env_clear()
        .env("PATH", path)
        .env("COREFIT", env!("CARGO_BIN_EXE_corefit"));
    sh
}

fn is_root() -> bool {
    read("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(false)
}

#[test]
fn corefit_plan_inside_a_real_cgroup() {
    assert!(
        is_root(),
        "this test makes a real cgroup and must run as root (CI does); run it with sudo"
    );
    let (mounts, _) = cgroup_mounts(&read("/proc/self/mountinfo"));
    let name = format!("corefit-test-{}", std::process::id());
    let mut cleanup = Cleanup(Vec::new());

    let (procs_files, expect_version) = match (
        own_v1_dir(&mounts, "cpu"),
        own_v1_dir(&mounts, "memory"),
    ) {
        (Some(cpu_parent), Some(mem_parent)) => {
            let cpu = cpu_parent.join(&name);
            let mem = mem_parent.join(&name);
            std::fs::create_dir(&cpu)
                .unwrap_or_else(|e| panic!("cannot create cgroup {}: {e}", cpu.display()));
            cleanup.0.push(cpu.clone());
            std::fs::create_dir(&mem)
                .unwrap_or_else(|e| panic!("cannot create cgroup {}: {e}", mem.display()));
            cleanup.0.push(mem.clone());
            write(&cpu.join("cpu.cfs_period_us"), PERIOD);
            write(&cpu.join("cpu.cfs_quota_us"), QUOTA);
            write(&mem.join("memory.limit_in_bytes"), &MEMORY.to_string());
            (
                vec![cpu.join("cgroup.procs"), mem.join("cgroup.procs")],
                "v1",
            )
        }
        _ => {
            let v2 = mounts
                .iter()
                .find(|m| m.fs_type == "cgroup2")
                .expect("neither cgroup v1 cpu+memory controllers nor a cgroup2 mount found in /proc/self/mountinfo");
            let root = PathBuf::from(&v2.mount_point);
            let controllers = read(&format!("{}/cgroup.controllers", v2.mount_point));
            assert!(
                controllers.contains("cpu") && controllers.contains("memory"),
                "the cgroup2 root at {} offers {controllers:?}, without cpu and memory",
                v2.mount_point
            );
            write(&root.join("cgroup.subtree_control"), "+cpu +memory");
            let dir = root.join(&name);
            std::fs::create_dir(&dir)
                .unwrap_or_else(|e| panic!("cannot create cgroup {}: {e}", dir.display()));
            cleanup.0.push(dir.clone());
            write(&dir.join("cpu.max"), &format!("{QUOTA} {PERIOD}"));
            write(&dir.join("memory.max"), &MEMORY.to_string());
            (vec![dir.join("cgroup.procs")], "v2")
        }
    };

    // The shell moves itself into the cgroup, then becomes corefit.
    let mut script = String::new();
    for f in &procs_files {
        script.push_str(&format!("echo $$ > '{}' && ", f.display()));
    }
    script.push_str("exec \"$COREFIT\" plan --json");
    let out = shell_to_corefit(&script, "/usr/bin:/bin")
        .env("KUBERNETES_SERVICE_HOST", "10.96.0.1")
        .output()
        .expect("run corefit plan");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "corefit plan failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("plan --json prints JSON");

    let d = &doc["decision"];
    assert_eq!(d["effective_cpus"]["value"].as_f64(), Some(1.5), "{d:#}");
    assert_eq!(
        doc["inputs"]["limits"]["cpu"]["quota"]["quota_us"].as_u64(),
        Some(150000)
    );
    assert_eq!(
        doc["inputs"]["limits"]["cpu"]["quota"]["source"]["cgroup"],
        expect_version
    );
    assert_eq!(d["memory"]["value"].as_u64(), Some(MEMORY), "{d:#}");
    assert_eq!(d["memory_limited"], true);
    assert_eq!(d["mode"], "single");
    assert_eq!(d["workers"], 1);
    assert_eq!(d["platform"], "kubernetes");
    let reasons = corefit_test_support::facts::plan_reasons(d);
    assert!(
        reasons.iter().any(|r| r.starts_with(&format!(
            "1.5 CPUs from cgroup {expect_version} quota 150000/100000"
        ))),
        "{reasons:#?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("fewer than 2 whole CPUs -> single process")),
        "{reasons:#?}"
    );
    // 768 MiB for one worker: 75 % of it for V8's heap.
    assert_eq!(
        d["worker_env"]["common"]["NODE_OPTIONS"],
        "--max-old-space-size=576"
    );

    drop(cleanup);
    for f in &procs_files {
        assert!(
            !f.parent().unwrap().exists(),
            "cgroup {} was not removed",
            f.parent().unwrap().display()
        );
    }
}

#[test]
fn corefit_plan_in_a_private_cgroup_namespace_without_a_fresh_mount() {
    use corefit_test_support::cgroup::CgroupDir;
    assert!(
        is_root(),
        "this test makes real cgroups and must run as root"
    );
    let cpu = CgroupDir::below_own("cpu", "corefit-cgns");
    let mem = CgroupDir::below_own("memory", "corefit-cgns");
    cpu.write("cpu.cfs_period_us", PERIOD);
    cpu.write("cpu.cfs_quota_us", QUOTA);
    mem.write("memory.limit_in_bytes", &MEMORY.to_string());

    // The shell enters both cgroups, then a new cgroup namespace rooted
    // there shows it its mountinfo (on stderr) and becomes corefit.
    let script = format!(
        "echo $$ > '{}' && echo $$ > '{}' && exec unshare -C sh -c 'cat /proc/self/mountinfo /proc/self/cgroup >&2 && exec \"$COREFIT\" plan --json'",
        cpu.0.join("cgroup.procs").display(),
        mem.0.join("cgroup.procs").display(),
    );
    let out = shell_to_corefit(&script, "/usr/bin:/bin:/usr/sbin:/sbin")
        .output()
        .expect("run unshare -C corefit plan");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "corefit plan failed: {stderr}\n{stdout}"
    );
    // The case under test: the namespace hides the cgroups' paths.
    let (mounts, _) = cgroup_mounts(&stderr);
    for controller in ["cpu", "memory"] {
        let m = mounts
            .iter()
            .find(|m| m.has_controller(controller))
            .unwrap();
        assert!(m.root.starts_with("/.."), "{controller}: {m:?}\n{stderr}");
    }
    assert!(stderr.contains(":memory:/\n"), "{stderr}");

    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("plan --json prints JSON");
    let cpu_quota = &doc["inputs"]["limits"]["cpu"]["quota"];
    assert_eq!(cpu_quota["quota_us"].as_u64(), Some(150000), "{doc:#}");
    let file = cpu_quota["source"]["file"].as_str().unwrap();
    assert_eq!(Path::new(file), cpu.0.join("cpu.cfs_quota_us"));
    let limit = &doc["inputs"]["limits"]["memory"]["limit"];
    assert_eq!(limit["bytes"].as_u64(), Some(MEMORY), "{doc:#}");
    let file = limit["source"]["file"].as_str().unwrap();
    assert_eq!(Path::new(file), mem.0.join("memory.limit_in_bytes"));
    let d = &doc["decision"];
    assert_eq!(d["effective_cpus"]["value"].as_f64(), Some(1.5), "{d:#}");
    assert_eq!(
        (d["mode"].as_str(), d["workers"].as_u64()),
        (Some("single"), Some(1))
    );
    assert_eq!(doc["warnings"], serde_json::json!([]), "{doc:#}");
}

/// A real cgroup v1 `cpu` child with `cpu.shares` 1536 (what the kubelet
/// writes for a 1500m request) and no quota: on Kubernetes `corefit plan`
/// reads 1.5 CPUs from the request and names it; outside Kubernetes the
/// same shares are not a request and the plan is today's.
#[test]
fn corefit_plan_reads_a_request_from_real_cpu_shares() {
    assert!(
        is_root(),
        "this test makes a real cgroup and must run as root"
    );
    let cg = corefit_test_support::cgroup::CgroupDir::below_own("cpu", "corefit-request");
    cg.write("cpu.shares", "1536");
    let plan = |k8s: bool| {
        let mut sh = shell_to_corefit(&cg.enter_script(""), "/usr/bin:/bin");
        sh.args(["sh", env!("CARGO_BIN_EXE_corefit"), "plan", "--json"]);
        if k8s {
            sh.env("KUBERNETES_SERVICE_HOST", "10.96.0.1");
        }
        let out = sh.output().expect("run corefit plan");
        assert!(
            out.status.success(),
            "corefit plan failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        doc["decision"].clone()
    };
    let d = plan(true);
    assert_eq!(d["platform"], "kubernetes");
    assert_eq!(d["effective_cpus"]["value"].as_f64(), Some(1.5), "{d:#}");
    assert_eq!(d["cpu_limited"], true);
    let src = d["effective_cpus"]["source"].as_str().unwrap_or_default();
    let want = format!(
        "the CPU request (cpu.shares 1536, cgroup v1, {})",
        cg.0.join("cpu.shares").display()
    );
    assert_eq!(src, want);
    let reasons = corefit_test_support::facts::plan_reasons(&d);
    assert!(
        reasons
            .iter()
            .any(|r| *r == format!("1.5 CPUs from {want}")),
        "{reasons:#?}"
    );
    let d = plan(false);
    assert_ne!(d["platform"], "kubernetes");
    let src = d["effective_cpus"]["source"].as_str().unwrap_or_default();
    assert!(!src.contains("request"), "{d:#}");
}
