//! Live resize: the count follows the plan and every worker started under
//! an older environment generation is replaced as in a rolling reload.

use super::*;

fn resize(workers: u32, env: u64) -> Event {
    Event::Resize { workers, env }
}

#[test]
fn a_grow_spawns_the_new_worker_and_replaces_the_stale_one_once_ready() {
    let (mut s, t0) = ready(checked(1));
    assert_eq!(s.admit_live_resize(1, 0, false), None, "nothing to do");
    assert_eq!(s.admit_live_resize(2, 1, false), Some(resize(2, 1)));
    let a = s.handle(t0, resize(2, 1));
    assert_eq!(
        acts(a.clone()),
        vec![Action::Spawn { id: 1 }, Action::Spawn { id: 0 }],
        "the new worker, then worker 0's replacement"
    );
    assert!(
        notices(&a).contains(&Notice::Refreshing {
            workers: 1,
            parallel: 1
        }),
        "{a:?}"
    );
    s.handle(t0, Event::Spawned { id: 1, pid: 101 });
    s.handle(t0, Event::Spawned { id: 0, pid: 200 });
    // Readiness-gated: the old process serves until its replacement is ready.
    assert_eq!(
        acts(s.handle(t0, Event::Ready { id: 1, pid: 101 })),
        vec![Action::Route { id: 1 }]
    );
    assert_eq!(s.running(), vec![(0, 100), (1, 101)]);
    assert_eq!(
        s.admit_live_resize(2, 1, false),
        None,
        "not while the refresh runs"
    );
    let a = s.handle(t0 + secs(1.0), Event::Ready { id: 0, pid: 200 });
    assert_eq!(acts(a.clone()), vec![Action::Route { id: 0 }, term(100)]);
    assert!(notices(&a).contains(&Notice::ReloadComplete { replaced: 1 }));
    assert_eq!(s.running(), vec![(0, 200), (1, 101)]);
    assert_eq!(s.restarts_by_reason().get("resize"), Some(&1));
    assert_eq!(s.admit_live_resize(2, 1, false), None, "all current");
}

#[test]
fn a_shrink_retires_the_highest_and_replaces_the_rest() {
    let (mut s, t0) = ready(checked(3));
    let a = acts(s.handle(t0, resize(1, 1)));
    assert_eq!(a, [retire(&[1, 2]), vec![Action::Spawn { id: 0 }]].concat());
    s.handle(t0, Event::Spawned { id: 0, pid: 200 });
    let a = acts(s.handle(t0, Event::Ready { id: 0, pid: 200 }));
    assert_eq!(a, vec![Action::Route { id: 0 }, term(100)]);
    assert_eq!(s.running(), vec![(0, 200)]);
}

#[test]
fn the_same_environment_only_scales_and_a_fixed_count_only_refreshes() {
    let (mut s, t0) = ready(checked(1));
    let a = s.handle(t0, resize(2, 0));
    assert_eq!(acts(a.clone()), vec![Action::Spawn { id: 1 }]);
    assert!(!notices(&a)
        .iter()
        .any(|n| matches!(n, Notice::Refreshing { .. })));
    // A given count stays; the environment still follows the plan.
    let (s, _) = ready(checked(2));
    assert_eq!(s.admit_live_resize(4, 0, true), None);
    assert_eq!(s.admit_live_resize(4, 1, true), Some(resize(2, 1)));
}

#[test]
fn a_worker_not_ready_at_the_resize_is_replaced_on_a_later_tick() {
    let (mut s, t0) = started(checked(2));
    s.handle(t0, Event::Ready { id: 0, pid: 100 });
    let a = acts(s.handle(t0, resize(2, 1)));
    assert_eq!(
        a,
        vec![Action::Spawn { id: 0 }],
        "worker 1 is still starting"
    );
    s.handle(t0, Event::Spawned { id: 0, pid: 200 });
    s.handle(t0, Event::Ready { id: 0, pid: 200 });
    assert_eq!(s.admit_live_resize(2, 1, false), None, "1 is not ready");
    s.handle(t0, Event::Ready { id: 1, pid: 101 });
    // Ready now but started under generation 0: the next tick asks.
    assert_eq!(s.admit_live_resize(2, 1, false), Some(resize(2, 1)));
    let a = acts(s.handle(t0, resize(2, 1)));
    assert_eq!(a, vec![Action::Spawn { id: 1 }]);
    // A crash restart is started under the current generation.
    s.handle(t0, Event::Spawned { id: 1, pid: 201 });
    s.handle(t0, Event::Ready { id: 1, pid: 201 });
    s.handle(t0 + secs(30.0), exited(200, ExitReason::Code(1)));
    s.handle(t0 + secs(30.0), Event::Spawned { id: 0, pid: 300 });
    s.handle(t0 + secs(30.0), Event::Ready { id: 0, pid: 300 });
    assert_eq!(s.admit_live_resize(2, 1, false), None);
}

#[test]
fn no_resize_while_reloading_or_stopping() {
    let (mut s, t0) = ready(checked(2));
    s.handle(t0, Event::Reload);
    assert_eq!(s.admit_live_resize(3, 1, false), None);
    s.handle(t0, Event::Signal(Signal::SIGTERM));
    assert_eq!(s.admit_live_resize(3, 1, false), None);
    assert!(acts(s.handle(t0, resize(3, 1))).is_empty());
}
