//! Security of a running corefit, through the real binary (the tests run
//! as root, so they can act as other users):
//!
//! - the control socket answers no other user: its mode (0600) stops
//!   them at `connect`, and with the file opened up, the peer-uid check
//!   refuses them still; a non-root corefit answers its own uid (and
//!   root) only;
//! - the admin HTTP endpoint changes nothing: every method but GET and
//!   HEAD, on every path, is a 405, and the workers' pids, count, state
//!   and restarts are the same afterwards;
//! - secret-looking environment (`DB_PASSWORD`, `API_TOKEN`,
//!   `AWS_SECRET_ACCESS_KEY`...) reaches the workers and nothing corefit
//!   prints: plan (text, JSON, with a command, with an invalid setting),
//!   `--help`, JSON logs with memory monitoring through a crash and
//!   restart, `status`, `/health`, `/metrics`.
//!
//! Figures go to test-support/src/record.rs (`COREFIT_RELIABILITY_OUT`).

use corefit_test_support::prelude::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

/// `nobody` on Debian; any uid other than corefit's would do.
const OTHER_UID: u32 = 65534;

/// `corefit ARGS --control-socket SOCKET` as `uid`:`uid` (no groups: std
/// drops the supplementary groups when a root parent sets the uid).
fn ctl_as(uid: u32, socket: &Path, args: &[&str]) -> Output {
    ctl_command(socket, args)
        .uid(uid)
        .gid(uid)
        .output()
        .expect("run corefit as another user")
}

/// Asserts corefit still runs with the same workers alive, then stops
/// it (SIGTERM, exit 0).
fn stop_untouched(corefit: &mut Corefit, before: &[(u64, i64, String, u64)]) {
    assert!(corefit.try_status().is_none(), "corefit stopped");
    for (_, pid, ..) in before {
        assert!(alive(*pid as i32), "worker {pid} gone");
    }
    corefit.signal(Signal::SIGTERM);
    assert_eq!(corefit.wait_exit(Duration::from_secs(15)), 0);
}

/// Runs each of `commands` as `uid`: each must fail (exit 1) saying
/// `refusal`, printing nothing on stdout. Returns how many were refused.
fn refused_to(uid: u32, socket: &Path, commands: &[&[&str]], refusal: &str) -> usize {
    for args in commands {
        let out = ctl_as(uid, socket, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(refusal), "{args:?}: {}", text(&out));
        assert!(out.stdout.is_empty(), "{args:?} printed: {}", text(&out));
    }
    commands.len()
}

/// Two `sleep` workers, ready at start, nothing bound: a cluster whose
/// state changes only if someone changes it.
fn sleepers(control: &Path, extra: &[&str], env: &[(&str, &str)]) -> Corefit {
    sleeper_args(control, extra).start(env)
}

/// corefit's arguments for [`sleepers`].
fn sleeper_args(control: &Path, extra: &[&str]) -> Args {
    Args::cluster(2)
        .socket("none")
        .ready("none")
        .opt("--port", free_port_range(2))
        .grace("2s")
        .control(control)
        .args(extra)
        .command(["sleep", "600"])
}

/// (id, pid, phase, restarts) of each worker, per `status --json`.
fn workers(socket: &Path) -> Vec<(u64, i64, String, u64)> {
    status_json(socket)["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| {
            (
                w["id"].as_u64().unwrap(),
                w["pid"].as_i64().unwrap_or(-1),
                w["phase"].as_str().unwrap().to_owned(),
                w["restarts"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn wait_ready(socket: &Path, n: usize) -> Vec<(u64, i64, String, u64)> {
    wait_for(
        Duration::from_secs(15),
        &format!("{n} ready workers"),
        || {
            let out = ctl(socket, &["status", "--json"]);
            if !out.status.success() {
                return None;
            }
            let w = workers(socket);
            (w.len() == n && w.iter().all(|w| w.2 == "ready")).then_some(w)
        },
    )
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_control_socket_refuses_other_users_by_mode_and_by_peer_uid() {
    let start = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("c.sock");
    let mut corefit = sleepers(&socket, &[], &[]);
    let before = wait_ready(&socket, 2);

    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600, "socket mode");
    assert_eq!(meta.uid(), 0, "socket owner");
    // Let others reach the file itself (a tempdir is 0700).
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    let commands: [&[&str]; 5] = [
        &["status"],
        &["status", "--json"],
        &["reload"],
        &["scale", "1", "--force"],
        &["stop"],
    ];
    // 1. The file's mode: connect() itself fails.
    let by_mode = refused_to(OTHER_UID, &socket, &commands, "Permission denied");
    // 2. The peer-uid check: with the file opened to everyone (a careless
    // chmod, a umask), the server still answers only its own user.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let by_uid = refused_to(
        OTHER_UID,
        &socket,
        &commands,
        "permission denied: only corefit's own user may control it",
    );
    // Nothing happened: same workers, same pids, still running.
    assert_eq!(workers(&socket), before);
    stop_untouched(&mut corefit, &before);
    record(
        "security",
        "control socket: another user",
        "status, status --json, reload, scale, stop as uid 65534: socket 0600, then opened to 0666",
        start.elapsed(),
        &[
            ("requests", (by_mode + by_uid).to_string()),
            ("refused by file mode", by_mode.to_string()),
            ("refused by peer uid", by_uid.to_string()),
            ("workers changed", "0".to_owned()),
        ],
        "every request refused; workers untouched",
    );
}

#[test]
fn a_non_root_corefit_answers_its_own_user_and_no_other() {
    let start = Instant::now();
    let (owner, other) = (4242u32, 4343u32);
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(dir.path(), Some(owner), Some(owner)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = dir.path().join("c.sock");
    let owner_s = owner.to_string();
    let mut corefit = sleeper_args(&socket, &[]).start_wrapped(
        &[
            "setpriv",
            "--reuid",
            &owner_s,
            "--regid",
            &owner_s,
            "--clear-groups",
        ],
        &[],
    );
    let before = wait_ready(&socket, 2);
    assert_eq!(std::fs::metadata(&socket).unwrap().uid(), owner);
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();

    // Another unprivileged user: refused by the peer-uid check.
    for args in [&["status"][..], &["stop"][..]] {
        let out = ctl_as(other, &socket, args);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(
            text(&out).contains("only corefit's own user"),
            "{}",
            text(&out)
        );
    }
    // Its own user is answered.
    let out = ctl_as(owner, &socket, &["status"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(workers(&socket), before);
    let out = ctl_as(owner, &socket, &["stop"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(corefit.wait_exit(Duration::from_secs(15)), 0);
    record(
        "security",
        "control socket: non-root corefit",
        "corefit as uid 4242, socket opened to 0666; uid 4343 asks status and stop, uid 4242 asks status and stop",
        start.elapsed(),
        &[
            ("other user's requests refused", "2".to_owned()),
            ("own user's requests served", "2".to_owned()),
        ],
        "only corefit's own uid (and root) is answered",
    );
}

/// One raw HTTP/1.1 request with a body; returns the head (lowercased).
fn raw_request(port: u16, method: &str, target: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect admin");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let body = r#"{"workers":0,"command":"stop"}"#;
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    text.split("\r\n\r\n").next().unwrap_or("").to_owned()
}

#[test]
fn the_admin_endpoint_changes_nothing() {
    let start = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("c.sock");
    let admin = free_port();
    let admin_addr = format!("127.0.0.1:{admin}");
    let mut corefit = sleepers(&socket, &["--admin-addr", &admin_addr], &[]);
    let before = wait_ready(&socket, 2);
    let health_before = wait_for(Duration::from_secs(10), "admin /health", || {
        get(admin, "/health", Duration::from_secs(5)).ok()
    });
    assert_eq!(health_before.status, 200, "{}", health_before.body);
    let restarts_before = status_json(&socket)["restarts_by_reason"].clone();

    let methods = [
        "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "SCALE", "STOP",
    ];
    let paths = [
        "/",
        "/health",
        "/health/",
        "/health/workers",
        "/metrics",
        "/metrics?x=1",
        "/stop",
        "/reload",
        "/scale",
        "/scale?workers=0",
        "/workers/0",
        "/nope",
        "http://127.0.0.1/health",
    ];
    let mut sent = 0;
    for method in methods {
        for path in paths {
            let head = raw_request(admin, method, path);
            assert!(head.starts_with("http/1.1 405"), "{method} {path}: {head}");
            assert!(
                head.contains("\r\nallow: get, head"),
                "{method} {path}: {head}"
            );
            sent += 1;
        }
    }
    let head = raw_request(admin, "CONNECT", "127.0.0.1:9");
    assert!(head.starts_with("http/1.1 405"), "CONNECT: {head}");
    sent += 1;

    // Nothing changed: same workers (pid, phase, restarts), same count,
    // same restart counters, corefit running, every pid alive.
    assert_eq!(workers(&socket), before);
    assert_eq!(status_json(&socket)["restarts_by_reason"], restarts_before);
    let health = get(admin, "/health/workers", Duration::from_secs(5)).unwrap();
    let pids: Vec<i64> = health.json()["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["pid"].as_i64().unwrap())
        .collect();
    assert_eq!(
        pids,
        before.iter().map(|w| w.1).collect::<Vec<_>>(),
        "{}",
        health.body
    );
    stop_untouched(&mut corefit, &before);
    record(
        "security",
        "admin endpoint: write methods",
        "POST, PUT, DELETE, PATCH, OPTIONS, TRACE, CONNECT and made-up methods with a JSON body, on 13 paths",
        start.elapsed(),
        &[
            ("requests", sent.to_string()),
            ("refused with 405", sent.to_string()),
            ("workers before/after", format!("{}/{}", before.len(), before.len())),
            ("pids changed", "0".to_owned()),
        ],
        "every write refused; workers, pids and counters unchanged",
    );
}

/// Secret-looking variables with values that appear nowhere else.
const SECRETS: [(&str, &str); 5] = [
    ("DB_PASSWORD", "pw-Qe5Lx9Vb2"),
    ("API_TOKEN", "tok-Rm3Zc7Hn4"),
    ("AWS_SECRET_ACCESS_KEY", "aws-Wy8Kd1Sf6"),
    ("GITHUB_PRIVATE_KEY", "pk-Tb4Nq2Gj8"),
    ("SERVICE_CREDENTIALS", "cred-Pv6Hm0Xa5"),
];

fn assert_no_secret(what: &str, output: &str) {
    for (name, value) in SECRETS {
        assert!(
            !output.contains(value),
            "the value of {name} appears in {what}:\n{output}"
        );
    }
}

#[test]
fn secret_env_values_are_never_printed() {
    let start = Instant::now();
    let mut places = 0;
    let env: Vec<(&str, &str)> = SECRETS.to_vec();
    let plan = |args: &[&str], extra: &[(&str, &str)]| {
        let mut all = env.clone();
        all.extend_from_slice(extra);
        let out = clean_command(args, &all).output().expect("corefit");
        text(&out)
    };
    for (what, args, extra) in [
        ("plan", &["plan"][..], &[][..]),
        ("plan --json", &["plan", "--json"][..], &[][..]),
        (
            "plan -- CMD",
            &["plan", "--", "sh", "-c", "true"][..],
            &[][..],
        ),
        (
            "plan --json -- CMD",
            &["plan", "--json", "--", "node", "x.js"][..],
            &[][..],
        ),
        (
            "plan with limits",
            &["plan", "--workers", "2", "--memory-per-worker", "64Mi"][..],
            &[
                ("WEB_CONCURRENCY", "3"),
                ("NODE_OPTIONS", "--enable-source-maps"),
            ][..],
        ),
        (
            "plan with an invalid setting",
            &["plan"][..],
            &[("COREFIT_WORKERS", "abc")][..],
        ),
        ("--help", &["--help"][..], &[][..]),
        ("plan --help", &["plan", "--help"][..], &[][..]),
    ] {
        let out = plan(args, extra);
        assert!(!out.is_empty(), "{what} printed nothing");
        assert_no_secret(what, &out);
        places += 1;
    }

    // A cluster that logs JSON, samples memory every 100 ms, and whose
    // workers crash once each (then sleep): start, crash, restart.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("c.sock");
    let admin = free_port();
    let marks = dir.path().display().to_string();
    let script = r#"printf %s "$DB_PASSWORD" > "$MARKS/seen.$COREFIT_WORKER_ID"
if [ -e "$MARKS/crashed.$COREFIT_WORKER_ID" ]; then exec sleep 600; fi
touch "$MARKS/crashed.$COREFIT_WORKER_ID"; sleep 0.2; exit 3"#;
    let mut run_env = env.clone();
    run_env.push(("MARKS", &marks));
    let mut corefit = Args::cluster(2)
        .socket("none")
        .ready("none")
        .opt("--port", free_port_range(2))
        .opt("--log-format", "json")
        .args(["--log-prefix", "--memory-monitoring"])
        .opt("--memory-interval", "100ms")
        .grace("2s")
        .control(&socket)
        .admin(admin)
        .command(["sh", "-c", script])
        .start(&run_env);
    corefit
        .stderr
        .wait_line("exited with code 3", Duration::from_secs(15));
    let after = wait_for(Duration::from_secs(15), "both workers restarted", || {
        let w = workers(&socket);
        (w.len() == 2 && w.iter().all(|w| w.3 == 1 && w.2 == "ready")).then_some(w)
    });
    corefit.stderr.wait_line("memory:", Duration::from_secs(10));
    // The workers did get the values.
    for id in 0..2 {
        let seen = std::fs::read_to_string(dir.path().join(format!("seen.{id}"))).unwrap();
        assert_eq!(seen, "pw-Qe5Lx9Vb2");
    }
    let mut outputs = BTreeMap::new();
    outputs.insert("status", text(&ctl(&socket, &["status"])));
    outputs.insert("status --json", text(&ctl(&socket, &["status", "--json"])));
    for path in ["/health", "/health/workers", "/metrics"] {
        outputs.insert(path, get(admin, path, Duration::from_secs(5)).unwrap().body);
    }
    corefit.signal(Signal::SIGTERM);
    corefit.wait_exit(Duration::from_secs(15));
    outputs.insert("corefit's stdout", corefit.stdout.text());
    outputs.insert("corefit's stderr (JSON log)", corefit.stderr.text());
    for (what, out) in &outputs {
        // corefit itself writes nothing to stdout (the workers are quiet).
        assert!(
            !out.is_empty() || what.contains("stdout"),
            "{what} is empty"
        );
        assert_no_secret(what, out);
        places += 1;
    }
    let log = corefit.stderr.text();
    assert!(log.contains("restart 1"), "{log}");
    assert!(
        log.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "not all JSON: {log}"
    );
    assert_eq!(after.len(), 2);
    record(
        "security",
        "launcher: secret env values",
        "DB_PASSWORD, API_TOKEN, AWS_SECRET_ACCESS_KEY, GITHUB_PRIVATE_KEY, SERVICE_CREDENTIALS: plan (text, JSON, command, bad setting), --help, JSON log with memory monitoring through a crash and restart, status, /health, /metrics",
        start.elapsed(),
        &[
            ("outputs checked", places.to_string()),
            ("log lines", log.lines().count().to_string()),
            ("values found", "0".to_owned()),
            ("workers that got the values", "2".to_owned()),
        ],
        "no secret value printed; the workers had them",
    );
}
