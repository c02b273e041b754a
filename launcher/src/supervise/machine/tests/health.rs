//! Memory ceilings and liveness probes.

use super::*;

#[test]
fn a_worker_above_its_memory_ceiling_is_replaced_and_counted() {
    let (mut s, t0) = ready(checked(2));
    let over = Event::MemoryExceeded {
        id: 1,
        pid: 101,
        rss_bytes: 300 << 20,
        limit_bytes: 256 << 20,
    };
    let a = s.handle(t0, over.clone());
    assert_eq!(acts(a.clone()), vec![Action::Spawn { id: 1 }]);
    assert!(notices(&a).contains(&Notice::AboveCeiling {
        worker: 1,
        pid: 101,
        rss_bytes: 300 << 20,
        limit_bytes: 256 << 20
    }));
    // Repeated samples while it is being replaced do nothing more.
    assert!(acts(s.handle(t0, over)).is_empty());
    s.handle(t0, Event::Spawned { id: 1, pid: 201 });
    let a = acts(s.handle(t0, Event::Ready { id: 1, pid: 201 }));
    assert_eq!(a, vec![Action::Route { id: 1 }, term(101)]);
    assert_eq!(s.restarts_by_reason().get("memory"), Some(&1));
    let w1: Vec<_> = s.processes().into_iter().filter(|p| p.id == 1).collect();
    assert!(w1
        .iter()
        .any(|p| p.pid == Some(201) && p.state == ProcessState::Ready && p.restarts == 1));
    assert!(w1
        .iter()
        .any(|p| p.pid == Some(101) && p.state == ProcessState::Stopping));
}

#[test]
fn failed_liveness_probes_in_a_row_replace_a_hung_worker() {
    let mut p = checked(2);
    p.probe_failures = 3;
    let (mut s, t0) = ready(p);
    let probe = |ok| Event::Probe {
        id: 1,
        pid: 101,
        ok,
    };
    assert!(acts(s.handle(t0, probe(false))).is_empty());
    assert!(acts(s.handle(t0, probe(false))).is_empty());
    // A success in between resets the count.
    assert!(acts(s.handle(t0, probe(true))).is_empty());
    assert!(acts(s.handle(t0, probe(false))).is_empty());
    assert!(acts(s.handle(t0, probe(false))).is_empty());
    let a = s.handle(t0, probe(false));
    assert!(
        notices(&a).contains(&Notice::Unresponsive {
            worker: 1,
            pid: 101,
            failures: 3
        }),
        "{a:?}"
    );
    // Unrouted at once, replaced as in a reload.
    assert_eq!(
        acts(a),
        vec![Action::Unroute { id: 1 }, Action::Spawn { id: 1 }]
    );
    // Probes of the old pid meanwhile change nothing.
    assert!(acts(s.handle(t0, probe(false))).is_empty());
    s.handle(t0, Event::Spawned { id: 1, pid: 201 });
    let a = acts(s.handle(t0, Event::Ready { id: 1, pid: 201 }));
    assert_eq!(a, vec![Action::Route { id: 1 }, term(101)]);
    assert_eq!(s.restarts_by_reason().get("unresponsive"), Some(&1));
    // It ignores SIGTERM: SIGKILL after the grace period.
    assert_eq!(
        acts(s.handle(t0 + secs(25.0), Event::Tick)),
        vec![kill9(101)]
    );
}

#[test]
fn probes_are_off_unless_a_limit_is_set() {
    let (mut s, t0) = ready(checked(1));
    for _ in 0..10 {
        assert!(acts(s.handle(
            t0,
            Event::Probe {
                id: 0,
                pid: 100,
                ok: false
            }
        ))
        .is_empty());
    }
}
