//! `corefit plan` through the real binary: text and JSON output, and bad
//! input turned into a clear message and exit code 2.

use std::process::{Command, Output};

use corefit_test_support::facts::{fixture, fixture_with};
use corefit_test_support::http::find_by;

fn corefit(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_corefit"))
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(env.iter().copied())
        .output()
        .expect("run corefit")
}

#[test]
fn bad_overrides_exit_2_naming_the_variable() {
    for (var, value) in [
        ("MAX_WORKERS", "abc"),
        ("MAX_WORKERS", "-3"),
        ("MAX_WORKERS", "0"),
        ("MAX_WORKERS", "1e9"),
        ("WEB_CONCURRENCY", "two"),
        ("CLUSTER_WORKERS", "99999999999"),
        ("CLUSTER_MODE", "maybe"),
        ("COREFIT_MODE", "turbo"),
        ("COREFIT_MEMORY_PER_WORKER", "12 parsecs"),
        ("COREFIT_PLATFORM", "mainframe"),
    ] {
        let out = corefit(&["plan"], &[(var, value)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert!(
            stderr.contains(var) && stderr.contains(value),
            "{var}={value}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            out.stdout.is_empty(),
            "nothing on stdout for a refused plan"
        );
    }
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let out = corefit(&["plan", "--workers", "-3"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--workers"), "{stderr}");
}

#[test]
fn text_shows_inputs_decision_and_reasons() {
    let root = fixture("cgroup-v1-comounted");
    let out = corefit(
        &["plan", "--probe-root", root.to_str().unwrap()],
        &[("KUBERNETES_SERVICE_HOST", "10.96.0.1")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "Inputs",
        "Kubernetes (KUBERNETES_SERVICE_HOST is set)",
        "quota 150000/100000 = 1.5",
        "limit 768 MiB",
        "Decision",
        "mode          single",
        "workers       1",
        "Reasons",
        "1.5 CPUs from cgroup v1 quota 150000/100000",
        "fewer than 2 whole CPUs -> single process",
        "NODE_OPTIONS=--max-old-space-size=576",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn json_is_one_document_with_the_documented_shape() {
    let root = fixture("cgroup-v2-nested");
    let out = corefit(
        &[
            "plan",
            "--json",
            "--probe-root",
            root.to_str().unwrap(),
            "--platform",
            "vps",
            "--workers",
            "8",
        ],
        &[("WEB_CONCURRENCY", "3")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["schema"], "corefit.dev/plan/v1");
    assert_eq!(doc["inputs"]["platform"]["kind"], "vps");
    assert_eq!(doc["inputs"]["overrides"]["workers"]["source"], "--workers");
    // 1 CPU from the pod's ancestor cgroup caps the explicit 8.
    assert_eq!(doc["decision"]["workers"], 1);
    assert_eq!(doc["decision"]["mode"], "single");
    let warnings = doc["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("--workers=8 is above")),
        "{warnings:?}"
    );
    let reasons = doc["decision"]["reasons"].as_array().unwrap();
    assert!(
        reasons.iter().any(|r| r
            .as_str()
            .unwrap()
            .contains("WEB_CONCURRENCY=\"3\" is overridden by --workers")),
        "{reasons:?}"
    );
}

#[test]
fn garbage_cgroup_files_are_warnings_not_failures() {
    let dir = fixture_with(
        "cgroup-v2-leaf",
        "sys/fs/cgroup/kubepods/pod1/ctr/cpu.max",
        "lots 100000",
    );
    let out = corefit(
        &[
            "plan",
            "--probe-root",
            dir.path().to_str().unwrap(),
            "--platform",
            "kubernetes",
        ],
        &[],
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Warnings")
            && text.contains("cpu.max")
            && text.contains("\"lots\" is not a number"),
        "{text}"
    );
    // The garbage quota is not used.
    assert!(text.contains("no quota"), "{text}");
}

#[test]
fn plan_reports_which_strategies_a_command_supports() {
    let out = corefit(&["plan", "--json", "--", "node", "server.js"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &doc["command"];
    assert_eq!(c["linkage"], "dynamic");
    assert_eq!(c["chosen"], "proxy");
    let inject = find_by(&c["strategies"], "strategy", "inject".into());
    assert_eq!(inject["support"], "yes");

    let out = corefit(
        &["plan", "--", "/bin/busybox", "httpd"],
        &[("COREFIT_SOCKET", "inject")],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("(/bin/busybox, static)"), "{text}");
    assert!(
        text.contains("* inject     no: --socket inject needs a dynamically linked program"),
        "{text}"
    );
}

/// In a pod of a Vertical ClusterApp (2 CPUs, 1 GiB) the operator writes
/// `COREFIT_MODE`, `COREFIT_WORKERS` and `COREFIT_SCALING` from its
/// decision (operator/tests/desired.rs checks that side): `corefit plan
/// --json` there reports the same mode, workers and scaling as the
/// ClusterApp's status, with no reason naming a source twice.
#[test]
fn a_pods_environment_from_the_operator_gives_the_operators_decision() {
    let root = fixture("cgroup-v2-leaf"); // cpu.max 2 CPUs, memory.max 1 GiB
    let pod_env = [
        ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
        ("COREFIT_PLATFORM", "kubernetes"),
        ("COREFIT_MODE", "cluster"),
        ("COREFIT_WORKERS", "2"),
        ("COREFIT_SCALING", "vertical"),
    ];
    let plan = |env: &[(&str, &str)]| {
        let out = corefit(
            &["plan", "--json", "--probe-root", root.to_str().unwrap()],
            env,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        doc["decision"].clone()
    };
    let d = plan(&pod_env);
    assert_eq!(
        (&d["mode"], &d["workers"], &d["scaling"]),
        (&"cluster".into(), &2.into(), &"vertical".into()),
        "{d}"
    );
    let reasons = corefit_test_support::facts::plan_reasons(&d);
    assert!(
        reasons.contains(&"COREFIT_SCALING=vertical -> vertical scaling"),
        "{reasons:?}"
    );
    assert!(
        !reasons.iter().any(|r| r.matches('=').count() > 1),
        "{reasons:?}"
    );
    // Without it, Kubernetes means horizontal: the defect this fixes.
    let d = plan(&pod_env[..4]);
    assert_eq!(d["scaling"], "horizontal", "{d}");
    // A Horizontal app's pod.
    let d = plan(&[
        pod_env[0],
        pod_env[1],
        ("COREFIT_MODE", "single"),
        ("COREFIT_WORKERS", "1"),
        ("COREFIT_SCALING", "horizontal"),
    ]);
    assert_eq!(
        (&d["mode"], &d["workers"], &d["scaling"]),
        (&"single".into(), &1.into(), &"horizontal".into()),
        "{d}"
    );
}
