//! corefit as PID 1 (in a new PID namespace, as in a container): orphans
//! come to it and are reaped, SIGTERM stops it gracefully, and exit codes
//! pass through. Needs root (`unshare --pid`), as the test command runs.

use corefit_test_support::prelude::*;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const UNSHARE: [&str; 4] = ["unshare", "--pid", "--fork", "--kill-child"];

#[test]
fn as_pid_1_it_reaps_orphans_and_stops_on_sigterm() {
    let orphans = app("orphans.js");
    let mut run =
        Corefit::start_wrapped(&UNSHARE, &["--workers", "1", "--", "node", &orphans], &[]);
    let corefit = run.inner_pid();
    // The app prints the orphan's pid as seen inside the namespace; find
    // it from here as the `sleep` whose parent becomes corefit.
    run.stdout.wait_line("orphan ", Duration::from_secs(15));
    let orphan = wait_for(
        Duration::from_secs(5),
        "the orphan adopted by PID 1",
        || {
            all_procs().into_iter().find_map(|p| {
                let comm = std::fs::read_to_string(format!("/proc/{}/comm", p.pid)).ok()?;
                (p.ppid == corefit && comm.trim() == "sleep").then_some(p.pid)
            })
        },
    );
    wait_for(Duration::from_secs(10), "the orphan to be reaped", || {
        gone(orphan).then_some(())
    });
    let worker = descendants_of(corefit);
    assert_eq!(worker.len(), 1, "only the worker is left: {worker:?}");
    kill(Pid::from_raw(corefit), Signal::SIGTERM).expect("SIGTERM to PID 1");
    assert_eq!(run.wait_exit(Duration::from_secs(10)), 0);
    assert!(gone(worker[0]));
}

#[test]
fn as_pid_1_exit_codes_pass_through() {
    for (script, code) in [
        ("process.exit(42)", 42),
        ("process.kill(process.pid, 'SIGKILL')", 137),
    ] {
        let mut run = Corefit::start_wrapped(
            &UNSHARE,
            &["--workers", "1", "--", "node", "-e", script],
            &[],
        );
        assert_eq!(run.wait_exit(Duration::from_secs(15)), code, "{script}");
    }
}
