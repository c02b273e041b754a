//! Stopping: SIGTERM/SIGINT, the grace period, the exit code.

use super::*;

#[test]
fn sigterm_stops_gracefully_and_exits_zero() {
    let (mut s, t0) = started(policy(2, true));
    let a = s.handle(t0 + secs(1.0), Event::Signal(Signal::SIGTERM));
    assert_eq!(
        notices(&a)[0],
        Notice::StopRequested {
            signal: Signal::SIGTERM,
            workers: 2,
            grace: secs(25.0)
        }
    );
    assert_eq!(acts(a), vec![Action::StopAccepting, term(100), term(101)]);
    assert_eq!(s.next_deadline(), Some(t0 + secs(26.0)));
    // An exited worker is not restarted while stopping.
    let a = acts(s.handle(t0 + secs(2.0), exited(100, ExitReason::Code(0))));
    assert!(!a.iter().any(|x| matches!(x, Action::Spawn { .. })));
    let a = acts(s.handle(t0 + secs(3.0), exited(101, ExitReason::Signal(15))));
    assert_eq!(a.last(), Some(&Action::Exit(0)));
}

#[test]
fn a_worker_ignoring_sigterm_is_killed_after_grace() {
    let (mut s, t0) = started(policy(2, true));
    s.handle(t0, Event::Signal(Signal::SIGINT));
    s.handle(t0 + secs(1.0), exited(100, ExitReason::Signal(2)));
    let a = tick_until(&mut s, t0 + secs(25.0));
    assert_eq!(
        notices(&a)[0],
        Notice::KilledAfterGrace {
            worker: 1,
            pid: 101,
            grace: secs(25.0),
            signal: Signal::SIGINT
        }
    );
    assert_eq!(acts(a), vec![kill9(101)]);
    assert_eq!(s.next_deadline(), None);
    let a = acts(s.handle(t0 + secs(25.1), exited(101, ExitReason::Signal(9))));
    assert_eq!(a.last(), Some(&Action::Exit(exit::KILLED_AFTER_GRACE)));
}

#[test]
fn a_worker_failing_during_shutdown_makes_the_exit_non_zero() {
    let (mut s, t0) = started(policy(1, false));
    s.handle(t0, Event::Signal(Signal::SIGTERM));
    let a = acts(s.handle(t0 + secs(1.0), exited(100, ExitReason::Code(3))));
    assert_eq!(a.last(), Some(&Action::Exit(3)));
}

#[test]
fn pending_restarts_are_dropped_on_stop() {
    let (mut s, t0) = started(policy(2, true));
    s.handle(t0 + secs(0.1), exited(100, ExitReason::Code(1)));
    s.handle(t0 + secs(0.15), Event::Signal(Signal::SIGTERM));
    assert!(acts(s.handle(t0 + secs(5.0), Event::Tick)).is_empty());
    let a = acts(s.handle(t0 + secs(5.0), exited(101, ExitReason::Code(0))));
    assert_eq!(a.last(), Some(&Action::Exit(0)));
}

#[test]
fn sigterm_during_a_reload_stops_old_and_new_processes() {
    let (mut s, t0) = replacing(checked(2));
    let a = acts(s.handle(t0, Event::Signal(Signal::SIGTERM)));
    assert!(
        a.contains(&term(100)) && a.contains(&term(101)) && a.contains(&term(200)),
        "{a:?}"
    );
    assert!(!s.reloading());
    for pid in [100, 101] {
        let a = acts(s.handle(t0, exited(pid, ExitReason::Code(0))));
        assert!(
            !a.contains(&Action::Exit(0)),
            "exited before the replacement: {a:?}"
        );
    }
    let a = acts(s.handle(t0, exited(200, ExitReason::Code(0))));
    assert_eq!(a.last(), Some(&Action::Exit(0)));
}
