//! No zombie is left: orphans of workers come to corefit (PID 1 or child
//! subreaper) and are reaped.

use corefit_test_support::prelude::*;
use std::time::Duration;

use nix::sys::signal::Signal;

/// Reads "orphan <pid>" lines the app printed (passed through by corefit).
fn orphan_pids(corefit: &Corefit, at_least: usize) -> Vec<i32> {
    wait_for(Duration::from_secs(15), "orphan pids", || {
        let pids: Vec<i32> = corefit
            .stdout
            .text()
            .lines()
            .filter_map(|l| l.split("orphan ").nth(1)?.trim().parse().ok())
            .collect();
        (pids.len() >= at_least).then_some(pids)
    })
}

/// The orphan is adopted by corefit (its parent becomes corefit's pid)
/// and, once it exits, reaped (it leaves the process table instead of
/// staying a zombie of corefit's).
fn assert_adopted_and_reaped(corefit: &Corefit, orphans: &[i32]) {
    for &orphan in orphans {
        wait_for(Duration::from_secs(5), "an orphan's adoption", || {
            let p = proc_info(orphan)
                .unwrap_or_else(|| panic!("orphan {orphan} ended before adoption was seen"));
            (p.ppid == corefit.pid).then_some(())
        });
    }
    for &orphan in orphans {
        wait_for(Duration::from_secs(10), "an orphan to be reaped", || {
            gone(orphan).then_some(())
        });
    }
}

#[test]
fn worker_that_forks_a_grandchild_and_exits_leaves_no_zombie() {
    let mut corefit = Args::cluster(2)
        .socket("none")
        .ready("none")
        .opt("--port", free_port())
        .opt("--backoff", "300ms")
        .node("orphans.js")
        .start(&[("EXIT_AFTER_FORK", "1")]);
    let pids = orphan_pids(&corefit, 2);
    assert_adopted_and_reaped(&corefit, &pids[..2]);
    // The workers themselves were reaped and restarted; nothing under
    // corefit is a zombie for long.
    corefit
        .stderr
        .wait_line("exited with code 0 after", Duration::from_secs(5));
    wait_for(Duration::from_secs(5), "no zombie children", || {
        corefit.zombie_children().is_empty().then_some(())
    });
    corefit.signal(Signal::SIGTERM);
    assert_eq!(corefit.wait_exit(Duration::from_secs(10)), 0);
}

#[test]
fn double_forked_orphan_of_a_running_worker_is_reaped() {
    let orphans = app("orphans.js");
    let mut corefit = Corefit::start(&["--workers", "1", "--", "node", &orphans], &[]);
    let orphan = orphan_pids(&corefit, 1)[0];
    assert_adopted_and_reaped(&corefit, &[orphan]);
    assert!(corefit.zombie_children().is_empty());
    corefit.signal(Signal::SIGTERM);
    assert_eq!(corefit.wait_exit(Duration::from_secs(10)), 0);
}
