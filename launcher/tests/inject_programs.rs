//! `--socket inject` and the programs it cannot serve, through the real
//! binary and a real Go net/http app (tests/apps/go/hello, built dynamic
//! and static by tests/apps/setup-go-apps.sh): Go binds with raw system
//! calls, so `plan` says no and names the strategies that work, start
//! refuses with exit 2 before any worker runs, a shell or script that
//! execs one is stopped by the shim's exec guard (no `EADDRINUSE` restart
//! loop), and the same app serves from two workers under `proxy`.

use corefit_test_support::prelude::*;
use std::collections::BTreeSet;
use std::time::Duration;

const STARTUP: Duration = Duration::from_secs(15);
const STOP: Duration = Duration::from_secs(10);
const GO_APPS: [&str; 2] = ["hello-dynamic", "hello-static"];

/// A Go app's path (the build script is idempotent and quick when warm).
fn go_app(name: &str) -> String {
    format!("{}/{name}", setup_script("setup-go-apps.sh"))
}

/// The message both `plan` and start give for a Go program.
fn names_go_and_the_strategies_that_work(text: &str, program: &str) {
    for part in [
        &format!("--socket inject cannot serve {program}") as &str,
        "Go program",
        "raw system calls",
        "--socket proxy (works with every app)",
        "--socket shared if the app serves an inherited socket (LISTEN_FDS / fd 3)",
        "--socket reuseport if it binds PORT with SO_REUSEPORT",
    ] {
        assert!(text.contains(part), "{part:?} missing from:\n{text}");
    }
}

/// What `corefit plan --json --socket inject -- PROGRAM` says of
/// `strategy` (its row in `command.strategies`).
fn plan_row(program: &str, strategy: &str) -> serde_json::Value {
    let out = Args::new()
        .arg("plan")
        .arg("--json")
        .socket("inject")
        .command([program])
        .output(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "plan {program}: {stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    find_by(&doc["command"]["strategies"], "strategy", strategy.into()).clone()
}

fn inject_args(port: u16, dir: &std::path::Path) -> Args {
    Args::cluster(2)
        .socket("inject")
        .port(port)
        .control(&dir.join("c.sock"))
        .grace("5s")
}

#[test]
fn plan_refuses_go_programs_for_inject_dynamic_or_static() {
    for name in GO_APPS {
        let program = go_app(name);
        let inject = plan_row(&program, "inject");
        assert_eq!(inject["support"], "no", "{name}: {inject}");
        names_go_and_the_strategies_that_work(inject["note"].as_str().unwrap(), &program);
        assert_eq!(plan_row(&program, "proxy")["support"], "yes");

        let text = Args::new()
            .arg("plan")
            .socket("inject")
            .command([&program])
            .output(&[]);
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains(&format!(
                "* inject     no: --socket inject cannot serve {program}"
            )),
            "{text}"
        );
    }
}

#[test]
fn start_refuses_go_programs_with_exit_2_and_the_plans_words_before_any_worker() {
    for name in GO_APPS {
        let program = go_app(name);
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let out = inject_args(port, dir.path())
            .command([&program])
            .output(&[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        names_go_and_the_strategies_that_work(&stderr, &program);
        assert!(
            !stderr.contains("started"),
            "no worker was started: {stderr}"
        );
        assert!(
            listening_inodes(port).is_empty(),
            "nothing listens on {port}"
        );

        // Word for word what `plan` says of the same command.
        let inject = plan_row(&program, "inject");
        let note = inject["note"].as_str().unwrap();
        assert!(stderr.contains(note), "plan: {note}\nstart: {stderr}");
    }
}

#[test]
fn a_shell_or_script_that_execs_a_go_program_fails_at_its_exec_not_in_a_bind_loop() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("run.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nexec {}\n", go_app("hello-dynamic")),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let static_app = go_app("hello-static");
    let exec_static = format!("exec {static_app}");
    let cases: [(Vec<&str>, String); 2] = [
        (vec!["sh", "-c", &exec_static], static_app.clone()),
        (vec![script.to_str().unwrap()], go_app("hello-dynamic")),
    ];
    for (command, program) in cases {
        // plan sees a shell, and says what its execs must be.
        let plan = Args::new()
            .arg("plan")
            .socket("inject")
            .command(&command)
            .output(&[]);
        let plan = String::from_utf8_lossy(&plan.stdout);
        assert!(
            plan.contains("a program it execs must load the shim too"),
            "{plan}"
        );

        let port = free_port();
        let mut corefit = inject_args(port, dir.path())
            .opt("--respawn-limit", 1)
            .opt("--backoff", "50ms")
            .command(&command)
            .start(&[]);
        let code = corefit.wait_exit(STARTUP);
        corefit.stderr.wait_closed(STOP);
        let stderr = corefit.stderr.text();
        assert_eq!(code, 126, "{command:?}: {stderr}");
        names_go_and_the_strategies_that_work(&stderr, &program);
        assert!(stderr.contains("refusing to exec it"), "{stderr}");
        assert!(
            !stderr.contains("address already in use"),
            "the Go app never ran: {stderr}"
        );
        // Two workers, each started once and restarted once, then the
        // respawn limit: a bounded failure, not a loop.
        let starts = stderr.matches(" started, pid ").count();
        assert!((2..=4).contains(&starts), "{starts} starts: {stderr}");
    }
}

#[test]
fn go_programs_serve_from_two_workers_through_one_port_under_proxy() {
    for name in GO_APPS {
        let mut run = Cluster::start(
            Args::cluster(2)
                .socket("proxy")
                .grace("5s")
                .command([go_app(name)]),
            &[],
            None,
        );
        let mut pids = BTreeSet::new();
        wait_for(
            STARTUP,
            &format!("{name}: 2 workers answer on one port"),
            || {
                let r = get(run.port, "/", Duration::from_secs(5)).ok()?;
                let pid: i32 = r.body.trim().strip_prefix("hello from ")?.parse().ok()?;
                assert_eq!(r.status, 200);
                pids.insert(pid);
                (pids.len() == 2).then_some(())
            },
        );
        for pid in &pids {
            assert_eq!(
                proc_info(*pid).map(|p| p.ppid),
                Some(run.corefit.pid),
                "{name}: {pid} is a worker of this corefit"
            );
        }
        assert_eq!(run.stop(STOP), 0, "{name}: clean stop");
    }
}
