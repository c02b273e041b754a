//! Exits: restarts with backoff, the respawn limit, tini's semantics without restarts.

use super::*;

#[test]
fn stable_worker_is_restarted_at_once_with_same_id() {
    let (mut s, t0) = started(policy(2, true));
    let a = s.handle(t0 + secs(10.0), exited(101, ExitReason::Signal(9)));
    assert_eq!(
        notices(&a)[0],
        Notice::Restarting {
            worker: 1,
            pid: 101,
            reason: ExitReason::Signal(9),
            uptime: secs(10.0),
            delay: Duration::ZERO,
            in_a_row: 0,
            limit: 3
        }
    );
    assert_eq!(
        acts(a),
        vec![
            Action::Unroute { id: 1 },
            kill9(101),
            Action::Spawn { id: 1 },
        ]
    );
    let a = s.handle(t0 + secs(10.0), Event::Spawned { id: 1, pid: 200 });
    assert_eq!(
        notices(&a)[0],
        Notice::Started {
            worker: 1,
            pid: 200,
            restarts: 1
        }
    );
    assert_eq!(s.running(), vec![(0, 100), (1, 200)]);
}

#[test]
fn crash_loop_backs_off_then_gives_up_naming_the_worker() {
    let (mut s, t0) = started(policy(2, true));
    let mut now = t0;
    let mut pid = 101;
    let mut delays = Vec::new();
    for round in 1..=3 {
        now += secs(0.1);
        let a = acts(s.handle(now, exited(pid, ExitReason::Code(3))));
        assert!(!a.contains(&Action::Spawn { id: 1 }), "round {round}");
        let due = s.next_deadline().expect("a restart is scheduled");
        delays.push(due - now);
        assert_eq!(acts(tick_until(&mut s, due)), vec![Action::Spawn { id: 1 }]);
        now = due;
        pid += 1000;
        s.handle(now, Event::Spawned { id: 1, pid });
    }
    assert_eq!(delays, vec![secs(0.1), secs(0.2), secs(0.4)]);
    // The 4th crash in a row is over the limit of 3.
    now += secs(0.1);
    let a = s.handle(now, exited(pid, ExitReason::Code(3)));
    assert!(
        matches!(
            notices(&a)[0],
            Notice::RespawnLimit {
                worker: 1,
                failures: 4,
                reason: ExitReason::Code(3),
                limit: 3,
                ..
            }
        ),
        "{a:?}"
    );
    let a = acts(a);
    assert!(a.contains(&Action::StopAccepting));
    assert!(a.contains(&term(100)));
    let a = acts(s.handle(now + secs(0.5), exited(100, ExitReason::Signal(15))));
    assert_eq!(a.last(), Some(&Action::Exit(3)));
    assert!(s.finished());
}

/// Worker 0 of a one-worker `started` supervisor: exits after `up`, then
/// is respawned when its delay is due (as pid + 1). The delay.
fn crash_after(s: &mut Supervisor, now: &mut Instant, pid: i32, up: f64) -> Duration {
    *now += secs(up);
    let a = s.handle(*now, exited(pid, ExitReason::Code(1)));
    assert!(!notices(&a).is_empty(), "{a:?}");
    let delay = match s.next_deadline() {
        Some(due) => {
            assert!(acts(s.handle(due, Event::Tick)).contains(&Action::Spawn { id: 0 }));
            due - *now
        }
        None => {
            assert!(
                acts(a).contains(&Action::Spawn { id: 0 }),
                "restarted at once"
            );
            Duration::ZERO
        }
    };
    *now += delay;
    s.handle(
        *now,
        Event::Spawned {
            id: 0,
            pid: pid + 1,
        },
    );
    delay
}

#[test]
fn a_run_as_long_as_the_window_resets_the_count() {
    let (mut s, t0) = started(policy(1, true));
    let mut now = t0;
    for pid in [100, 101, 102] {
        crash_after(&mut s, &mut now, pid, 0.1);
    }
    // Up 10 s (10 x min-uptime): restarted at once, count reset.
    assert_eq!(crash_after(&mut s, &mut now, 103, 10.0), Duration::ZERO);
    // The next quick crash is the first in a row again.
    assert_eq!(crash_after(&mut s, &mut now, 104, 0.1), secs(0.1));
}

#[test]
fn crashes_long_after_the_start_back_off_and_reach_the_limit() {
    // A worker ready at once that dies 2 s after each start (past
    // min-uptime 1 s, within the 10 s window): gunicorn failing to boot
    // its workers. First restart at once, then backoff, then the limit.
    let (mut s, t0) = started(policy(1, true));
    let mut now = t0;
    let delays: Vec<Duration> = (100..103)
        .map(|pid| crash_after(&mut s, &mut now, pid, 2.0))
        .collect();
    assert_eq!(delays, vec![Duration::ZERO, secs(0.1), secs(0.2)]);
    now += secs(2.0);
    let a = s.handle(now, exited(103, ExitReason::Code(3)));
    assert_eq!(
        notices(&a)[0],
        Notice::RespawnLimit {
            worker: 0,
            pid: 103,
            reason: ExitReason::Code(3),
            failures: 4,
            ready: true,
            window: secs(10.0),
            limit: 3,
        }
    );
    assert_eq!(acts(a).last(), Some(&Action::Exit(3)));
}

#[test]
fn uptime_counts_from_readiness() {
    // (supervisor, the process, ready at, dead at, its restart's delay and
    // crashes in a row)
    let cases = [
        // Up 3.5 s since its start but only 0.5 s since it was ready:
        // unstable (backoff), not "stable".
        (started(checked(1)), 100, 3.0, 3.5, secs(0.1), 1),
        // Ready after 3 s and up 1.5 s more: stable, restarted at once (the
        // first crash in the window).
        (started(checked(1)), 100, 3.0, 4.5, Duration::ZERO, 1),
        // Worker 0's replacement (spawned at t0), ready at 5 s, dead 0.5 s
        // later: unstable, although it was started 5.5 s before.
        (replacing(checked(1)), 200, 5.0, 5.5, secs(0.1), 1),
    ];
    for ((mut s, t0), pid, ready_at, dead_at, delay, in_a_row) in cases {
        s.handle(t0 + secs(ready_at), Event::Ready { id: 0, pid });
        let a = s.handle(t0 + secs(dead_at), exited(pid, ExitReason::Code(1)));
        let restart = notices(&a).into_iter().find_map(|n| match n {
            Notice::Restarting {
                delay, in_a_row, ..
            } => Some((delay, in_a_row)),
            _ => None,
        });
        assert_eq!(
            restart,
            Some((delay, in_a_row)),
            "{pid} dead at {dead_at}: {a:?}"
        );
        let at_once = acts(a).contains(&Action::Spawn { id: 0 });
        assert_eq!(at_once, delay.is_zero(), "{pid} dead at {dead_at}");
    }
}

#[test]
fn single_worker_without_restart_exits_with_its_code() {
    for (reason, code) in [
        (ExitReason::Code(0), 0),
        (ExitReason::Code(42), 42),
        (ExitReason::Code(255), 255),
        (ExitReason::Signal(9), 137),
        (ExitReason::Signal(15), 143),
    ] {
        let (mut s, t0) = started(policy(1, false));
        let a = acts(s.handle(t0 + secs(0.1), exited(100, reason)));
        assert_eq!(a.last(), Some(&Action::Exit(code)), "{reason:?}");
    }
}

#[test]
fn crash_restarts_are_counted_by_reason() {
    let (mut s, t0) = ready(checked(1));
    s.handle(t0 + secs(5.0), exited(100, ExitReason::Signal(9)));
    assert_eq!(s.restarts_by_reason().get("crash"), Some(&1));
}

#[test]
fn other_signals_are_forwarded_to_every_worker_and_orphans_ignored() {
    // SIGHUP too when restarts are off: one process under tini's
    // semantics, SIGHUP is the app's own business.
    for (p, sig) in [
        (policy(2, true), Signal::SIGUSR2),
        (policy(1, false), Signal::SIGHUP),
    ] {
        let n = p.workers;
        let (mut s, t0) = started(p);
        let every: Vec<_> = (0..n).map(|id| signal(pid_of(id), sig)).collect();
        assert_eq!(acts(s.handle(t0, Event::Signal(sig))), every, "{sig}");
        assert!(s.handle(t0, exited(555, ExitReason::Code(0))).is_empty());
    }
}

#[test]
fn a_command_that_cannot_run_ends_the_run_before_any_worker_was_ready() {
    let mut p = policy(2, true);
    p.ready_timeout = Some(secs(30.0));
    let (mut s, t0) = started(p);
    let a = s.handle(t0 + secs(0.05), exited(100, ExitReason::Code(126)));
    assert!(notices(&a).contains(&Notice::CannotRun {
        worker: 0,
        pid: 100,
        reason: ExitReason::Code(126)
    }));
    let a = acts(a);
    assert!(!a.contains(&Action::Spawn { id: 0 }), "{a:?}");
    assert!(a.contains(&Action::StopAccepting), "the run stops: {a:?}");
    // Once a worker has been ready, 127 is a crash like any other.
    let (mut s, t0) = started(policy(2, true));
    let a = s.handle(t0 + secs(5.0), exited(100, ExitReason::Code(127)));
    assert!(
        matches!(notices(&a)[0], Notice::Restarting { .. }),
        "{:?}",
        notices(&a)
    );
}
