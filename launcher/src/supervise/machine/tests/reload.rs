//! Rolling reloads and in-place replacement.

use super::*;

#[test]
fn reload_replaces_one_worker_at_a_time_routing_before_retiring() {
    let (mut s, t0) = ready(checked(2));
    assert_eq!(
        acts(s.handle(t0, Event::Signal(Signal::SIGHUP))),
        vec![Action::Spawn { id: 0 }]
    );
    assert!(s.reloading());
    // The replacement runs beside the old process; nothing changes yet.
    assert!(acts(s.handle(t0, Event::Spawned { id: 0, pid: 200 })).is_empty());
    assert_eq!(s.running(), vec![(0, 100), (1, 101)]);
    let pids: Vec<_> = s.processes().iter().map(|p| (p.id, p.pid)).collect();
    assert!(pids.contains(&(0, Some(200))) && pids.contains(&(0, Some(100))));
    // Ready: route it, retire the old one, start the next.
    let a = acts(s.handle(t0 + secs(1.0), Event::Ready { id: 0, pid: 200 }));
    assert_eq!(
        a,
        vec![Action::Route { id: 0 }, term(100), Action::Spawn { id: 1 }]
    );
    assert_eq!(s.running(), vec![(0, 200), (1, 101)]);
    // The old process's exit is not a crash: no restart, no unroute.
    let a = acts(s.handle(t0 + secs(1.5), exited(100, ExitReason::Code(0))));
    assert_eq!(a, vec![kill9(100)]);
    s.handle(t0 + secs(2.0), Event::Spawned { id: 1, pid: 201 });
    let a = s.handle(t0 + secs(2.5), Event::Ready { id: 1, pid: 201 });
    assert!(
        notices(&a).contains(&Notice::ReloadComplete { replaced: 2 }),
        "{a:?}"
    );
    assert!(!s.reloading());
    assert_eq!(s.running(), vec![(0, 200), (1, 201)]);
    assert_eq!(s.restarts_by_reason().get("reload"), Some(&2));
}

#[test]
fn a_replacement_never_ready_aborts_the_reload_and_keeps_the_old_worker() {
    let (mut s, t0) = replacing(checked(2));
    assert_eq!(s.next_deadline(), Some(t0 + secs(10.0)));
    let a = s.handle(t0 + secs(10.0), Event::Tick);
    assert!(acts(a.clone()).contains(&kill9(200)), "{a:?}");
    assert!(!acts(a.clone())
        .iter()
        .any(|x| matches!(x, Action::Spawn { .. })));
    assert!(
        notices(&a).contains(&Notice::ReloadAborted {
            worker: 0,
            kept: Some(100),
            replaced: 0
        }),
        "{a:?}"
    );
    assert!(!s.reloading());
    // Its exit changes nothing; the old worker still serves.
    let a = acts(s.handle(t0 + secs(10.1), exited(200, ExitReason::Signal(9))));
    assert_eq!(a, vec![kill9(200)]);
    assert_eq!(s.running(), vec![(0, 100), (1, 101)]);
    assert_eq!(s.restarts_by_reason().get("reload"), None);
}

#[test]
fn a_replacement_that_exits_aborts_the_reload() {
    let (mut s, t0) = replacing(checked(1));
    let a = s.handle(t0 + secs(0.5), exited(200, ExitReason::Code(1)));
    assert!(
        notices(&a)
            .iter()
            .any(|n| matches!(n, Notice::ReloadAborted { .. })),
        "{a:?}"
    );
    assert!(!acts(a)
        .iter()
        .any(|x| matches!(x, Action::Spawn { .. } | Action::Unroute { .. })));
    assert_eq!(s.running(), vec![(0, 100)]);
}

#[test]
fn a_second_reload_is_coalesced_into_one_more_round() {
    let (mut s, t0) = ready(checked(1));
    s.handle(t0, Event::Reload);
    // Two more requests while the first runs: no second replacement now.
    for _ in 0..2 {
        let a = acts(s.handle(t0, Event::Signal(Signal::SIGHUP)));
        assert!(a.is_empty(), "{a:?}");
    }
    s.handle(t0, Event::Spawned { id: 0, pid: 200 });
    let a = acts(s.handle(t0, Event::Ready { id: 0, pid: 200 }));
    // One more round starts at once, for the new process.
    assert_eq!(
        a,
        vec![Action::Route { id: 0 }, term(100), Action::Spawn { id: 0 }]
    );
    s.handle(t0, Event::Spawned { id: 0, pid: 300 });
    let a = acts(s.handle(t0, Event::Ready { id: 0, pid: 300 }));
    assert_eq!(a, vec![Action::Route { id: 0 }, term(200)]);
    assert!(!s.reloading());
}

#[test]
fn a_retired_process_ignoring_sigterm_is_killed_after_grace() {
    let (mut s, t0) = replacing(checked(1));
    s.handle(t0, Event::Ready { id: 0, pid: 200 });
    assert_eq!(s.next_deadline(), Some(t0 + secs(25.0)));
    let a = acts(s.handle(t0 + secs(25.0), Event::Tick));
    assert_eq!(a, vec![kill9(100)]);
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn in_place_reload_stops_first_then_starts() {
    let (mut s, t0) = ready_in_place(2);
    let a = acts(s.handle(t0, Event::Reload));
    assert_eq!(a, retire(&[0]));
    let a = acts(s.handle(t0, exited(100, ExitReason::Code(0))));
    assert_eq!(a, vec![kill9(100), Action::Spawn { id: 0 }]);
    s.handle(t0, Event::Spawned { id: 0, pid: 200 });
    let a = acts(s.handle(t0, Event::Ready { id: 0, pid: 200 }));
    assert_eq!(a, [vec![Action::Route { id: 0 }], retire(&[1])].concat());
    assert_eq!(s.restarts_by_reason().get("reload"), Some(&1));
    assert_eq!(s.restarts_by_reason().get("crash"), None);
}

#[test]
fn corefit_reload_reloads_when_restarts_are_off() {
    // SIGHUP is then forwarded (tests/exits.rs); `corefit reload` still
    // reloads.
    let (mut s, t0) = started(policy(1, false));
    let a = acts(s.handle(t0, Event::Reload));
    assert_eq!(a, vec![Action::Spawn { id: 0 }]);
}

#[test]
fn in_place_replacement_kills_a_process_ignoring_sigterm_after_grace() {
    let (mut s, t0) = ready_in_place(1);
    s.handle(t0, Event::Reload);
    assert_eq!(s.next_deadline(), Some(t0 + secs(25.0)));
    assert_eq!(
        acts(s.handle(t0 + secs(25.0), Event::Tick)),
        vec![kill9(100)]
    );
    let a = acts(s.handle(t0 + secs(25.1), exited(100, ExitReason::Signal(9))));
    assert_eq!(a, vec![kill9(100), Action::Spawn { id: 0 }]);
}

/// `ready` with `workers` checked workers replaced in place on reload.
fn ready_in_place(workers: u32) -> (Supervisor, Instant) {
    let mut p = checked(workers);
    p.replace_in_place = true;
    ready(p)
}
