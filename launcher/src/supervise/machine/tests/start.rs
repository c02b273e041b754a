//! Starting: spawns, readiness, spawn failures.

use super::*;

#[test]
fn starts_every_worker_and_routes_when_no_check_applies() {
    let t0 = Instant::now();
    let mut s = Supervisor::new(policy(2, true));
    s.handle(t0, Event::Start);
    let a = acts(s.handle(t0, Event::Spawned { id: 1, pid: 7 }));
    assert_eq!(a, vec![Action::Route { id: 1 }]);
    assert_eq!(s.running(), vec![(1, 7)]);
}

#[test]
fn routes_only_after_ready_and_kills_on_ready_timeout() {
    let t0 = Instant::now();
    let mut s = one_checked(t0);
    assert!(acts(s.handle(t0, Event::Spawned { id: 0, pid: 7 })).is_empty());
    assert_eq!(s.next_deadline(), Some(t0 + secs(5.0)));
    // A stale ready (other pid) changes nothing.
    assert!(acts(s.handle(t0, Event::Ready { id: 0, pid: 8 })).is_empty());
    let a = tick_until(&mut s, t0 + secs(5.0));
    assert_eq!(
        notices(&a)[0],
        Notice::NotReady {
            worker: 0,
            pid: 7,
            after: secs(5.0)
        }
    );
    assert_eq!(acts(a), vec![kill9(7)]);
    // It dies; never ready means unstable even though it ran 5 s.
    let a = s.handle(t0 + secs(5.01), exited(7, ExitReason::Signal(9)));
    assert!(
        matches!(
            notices(&a)[0],
            Notice::Restarting {
                in_a_row: 1,
                limit: 3,
                ..
            }
        ),
        "{a:?}"
    );
}

#[test]
fn ready_routes_once() {
    let t0 = Instant::now();
    let mut s = one_checked(t0);
    s.handle(t0, Event::Spawned { id: 0, pid: 7 });
    let a = s.handle(t0 + secs(0.2), Event::Ready { id: 0, pid: 7 });
    assert_eq!(
        notices(&a)[0],
        Notice::Ready {
            worker: 0,
            pid: 7,
            after: secs(0.2)
        }
    );
    assert_eq!(acts(a), vec![Action::Route { id: 0 }]);
    assert!(acts(s.handle(t0 + secs(0.3), Event::Ready { id: 0, pid: 7 })).is_empty());
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn spawn_failure_ends_the_run_with_its_code() {
    let t0 = Instant::now();
    let mut s = Supervisor::new(policy(2, true));
    s.handle(t0, Event::Start);
    let a = s.handle(
        t0,
        Event::SpawnFailed {
            id: 0,
            message: "command not found".into(),
            code: 127,
        },
    );
    assert_eq!(
        notices(&a)[0],
        Notice::SpawnFailed {
            worker: 0,
            message: "command not found".into(),
            code: 127
        }
    );
    // Worker 1's spawn was in flight; it is stopped when it reports.
    let a = acts(s.handle(t0, Event::Spawned { id: 1, pid: 9 }));
    assert!(a.contains(&term(9)));
    let a = acts(s.handle(t0, exited(9, ExitReason::Signal(15))));
    assert_eq!(a.last(), Some(&Action::Exit(127)));
    assert!(s.handle(t0, Event::Tick).is_empty());
}

/// One worker with a 5 s readiness check, started (its spawn asked for).
fn one_checked(t0: Instant) -> Supervisor {
    let mut p = policy(1, true);
    p.ready_timeout = Some(secs(5.0));
    let mut s = Supervisor::new(p);
    s.handle(t0, Event::Start);
    s
}
