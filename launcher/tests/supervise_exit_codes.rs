//! Exit codes in single mode, as tini: the worker's own code, 128+N for
//! signal N, 127 for a missing command, 126 for one that cannot be run.
//! The worker is a real Node.js process.

use corefit_test_support::prelude::*;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

fn run_single(cmd: &[&str]) -> (i32, String) {
    let mut args = vec!["--workers", "1", "--"];
    args.extend_from_slice(cmd);
    let mut corefit = Corefit::start(&args, &[]);
    let code = corefit.wait_exit(LIMIT);
    (code, corefit.stderr.text())
}

#[test]
fn child_exit_codes_pass_through() {
    for code in [0, 1, 2, 42, 127, 128, 200, 255] {
        let script = format!("process.exit({code})");
        let (got, err) = run_single(&["node", "-e", &script]);
        assert_eq!(got, code, "node exiting {code}; stderr:\n{err}");
        if code != 0 {
            assert!(err.contains(&format!("exited with code {code}")), "{err}");
        }
    }
}

#[test]
fn signals_become_128_plus_n() {
    for (signal, n) in [
        ("SIGKILL", 9),
        ("SIGTERM", 15),
        ("SIGSEGV", 11),
        ("SIGALRM", 14),
        ("SIGINT", 2),
        ("SIGHUP", 1),
    ] {
        let script = format!("process.kill(process.pid, '{signal}'); setTimeout(() => {{}}, 5000)");
        let (got, err) = run_single(&["node", "-e", &script]);
        assert_eq!(got, 128 + n, "node killed by {signal}; stderr:\n{err}");
        assert!(
            err.contains(&format!("was killed by signal {n} ({signal})")),
            "{err}"
        );
    }
}

#[test]
fn missing_command_is_127_and_non_executable_is_126() {
    let (got, err) = run_single(&["corefit-no-such-command-here"]);
    assert_eq!(got, 127);
    assert!(
        err.contains("command not found") && err.contains("corefit-no-such-command-here"),
        "{err}"
    );

    let (got, _) = run_single(&["/nonexistent/dir/app"]);
    assert_eq!(got, 127);

    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("app.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").expect("write script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let path = script.display().to_string();
    let (got, err) = run_single(&[&path]);
    assert_eq!(got, 126, "{err}");
    assert!(
        err.contains("cannot execute") && err.contains("app.sh"),
        "{err}"
    );

    let (got, _) = run_single(&[dir.path().to_str().expect("utf-8 path")]);
    assert_eq!(got, 126, "a directory is not executable");

    // The same script, made executable, runs.
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert_eq!(run_single(&[&path]).0, 0);
}

#[test]
fn no_command_is_a_usage_error() {
    let out = clean_command::<&str>(&[], &[])
        .output()
        .expect("run corefit");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing to run"), "{err}");
}

#[test]
fn bad_flag_values_name_the_flag() {
    let out = clean_command(&["--grace-period", "soon", "--", "true"], &[])
        .output()
        .expect("run corefit");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--grace-period"));
    let out = clean_command(&["--", "true"], &[("MAX_WORKERS", "abc")])
        .output()
        .expect("run corefit");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MAX_WORKERS"));

    // Run settings only matter when corefit runs something: the app's own
    // PORT being odd does not break `corefit plan`.
    let out = clean_command(&["--", "true"], &[("PORT", "abc")])
        .output()
        .expect("run corefit");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--port (or PORT)"));
    let out = clean_command(&["plan"], &[("PORT", "abc")])
        .output()
        .expect("run corefit plan");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn single_worker_keeps_the_apps_port_unless_one_is_given() {
    let (code, err) = run_single(&[
        "node",
        "-e",
        "process.exit(process.env.PORT === undefined ? 0 : 1)",
    ]);
    assert_eq!(code, 0, "no PORT given: none set for the app\n{err}");
    let mut corefit = Corefit::start(
        &[
            "--workers",
            "1",
            "--",
            "node",
            "-e",
            "process.exit(process.env.PORT === '4321' ? 0 : 1)",
        ],
        &[("PORT", "4321")],
    );
    assert_eq!(corefit.wait_exit(LIMIT), 0, "PORT passes through");
}
