//! The supervisor's rules, fed with events and an injected clock.

use super::*;

fn policy(workers: u32, restart: bool) -> Policy {
    Policy {
        workers,
        restart,
        respawn_limit: 3,
        min_uptime: Duration::from_secs(1),
        backoff: Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        },
        grace: Duration::from_secs(25),
        ready_timeout: None,
        reload_parallelism: 1,
        replace_in_place: false,
        probe_failures: 0,
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Actions without the log lines.
fn acts(actions: Vec<Action>) -> Vec<Action> {
    actions
        .into_iter()
        .filter(|a| !matches!(a, Action::Log { .. }))
        .collect()
}

fn logs(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Log { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

/// A supervisor with `n` workers started as pids 100, 101, ...
fn started(p: Policy, t0: Instant) -> Supervisor {
    let n = p.workers;
    let mut s = Supervisor::new(p);
    let a = s.handle(t0, Event::Start);
    assert_eq!(
        acts(a),
        (0..n).map(|id| Action::Spawn { id }).collect::<Vec<_>>()
    );
    for id in 0..n {
        s.handle(
            t0,
            Event::Spawned {
                id,
                pid: 100 + id as i32,
            },
        );
    }
    s
}

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
    let mut p = policy(1, true);
    p.ready_timeout = Some(secs(5.0));
    let mut s = Supervisor::new(p);
    s.handle(t0, Event::Start);
    assert!(acts(s.handle(t0, Event::Spawned { id: 0, pid: 7 })).is_empty());
    assert_eq!(s.next_deadline(), Some(t0 + secs(5.0)));
    // A stale ready (other pid) changes nothing.
    assert!(acts(s.handle(t0, Event::Ready { id: 0, pid: 8 })).is_empty());
    assert!(acts(s.handle(t0 + secs(4.9), Event::Tick)).is_empty());
    let a = s.handle(t0 + secs(5.0), Event::Tick);
    assert!(logs(&a)[0].contains("not ready after 5s"));
    assert_eq!(
        acts(a),
        vec![Action::SignalGroup {
            pid: 7,
            signal: Signal::SIGKILL
        }]
    );
    // It dies; never ready means unstable even though it ran 5 s.
    let a = s.handle(
        t0 + secs(5.01),
        Event::Exited {
            pid: 7,
            reason: ExitReason::Signal(9),
        },
    );
    assert!(logs(&a)[0].contains("unstable restart 1 of 3"), "{a:?}");
}

#[test]
fn ready_routes_once() {
    let t0 = Instant::now();
    let mut p = policy(1, true);
    p.ready_timeout = Some(secs(5.0));
    let mut s = Supervisor::new(p);
    s.handle(t0, Event::Start);
    s.handle(t0, Event::Spawned { id: 0, pid: 7 });
    let a = s.handle(t0 + secs(0.2), Event::Ready { id: 0, pid: 7 });
    assert!(logs(&a)[0].contains("ready after 200ms"));
    assert_eq!(acts(a), vec![Action::Route { id: 0 }]);
    assert!(acts(s.handle(t0 + secs(0.3), Event::Ready { id: 0, pid: 7 })).is_empty());
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn stable_worker_is_restarted_at_once_with_same_id() {
    let t0 = Instant::now();
    let mut s = started(policy(2, true), t0);
    let a = s.handle(
        t0 + secs(10.0),
        Event::Exited {
            pid: 101,
            reason: ExitReason::Signal(9),
        },
    );
    let l = logs(&a);
    assert!(
        l[0].contains("worker 1 (pid 101) was killed by signal 9 (SIGKILL) after 10s"),
        "{l:?}"
    );
    assert_eq!(
        acts(a),
        vec![
            Action::Unroute { id: 1 },
            Action::SignalGroup {
                pid: 101,
                signal: Signal::SIGKILL
            },
            Action::Spawn { id: 1 },
        ]
    );
    let a = s.handle(t0 + secs(10.0), Event::Spawned { id: 1, pid: 200 });
    assert!(logs(&a)[0].contains("worker 1 started, pid 200 (restart 1)"));
    assert_eq!(s.running(), vec![(0, 100), (1, 200)]);
}

#[test]
fn crash_loop_backs_off_then_gives_up_naming_the_worker() {
    let t0 = Instant::now();
    let mut s = started(policy(2, true), t0);
    let mut now = t0;
    let mut pid = 101;
    let mut delays = Vec::new();
    for round in 1..=3 {
        now += secs(0.1);
        let a = acts(s.handle(
            now,
            Event::Exited {
                pid,
                reason: ExitReason::Code(3),
            },
        ));
        assert!(!a.contains(&Action::Spawn { id: 1 }), "round {round}");
        let due = s.next_deadline().expect("a restart is scheduled");
        delays.push(due - now);
        // Nothing happens before the deadline.
        assert!(acts(s.handle(due - secs(0.001), Event::Tick)).is_empty());
        assert_eq!(
            acts(s.handle(due, Event::Tick)),
            vec![Action::Spawn { id: 1 }]
        );
        now = due;
        pid += 1000;
        s.handle(now, Event::Spawned { id: 1, pid });
    }
    assert_eq!(delays, vec![secs(0.1), secs(0.2), secs(0.4)]);
    // The 4th unstable exit is over the limit of 3.
    now += secs(0.1);
    let a = s.handle(
        now,
        Event::Exited {
            pid,
            reason: ExitReason::Code(3),
        },
    );
    let l = logs(&a);
    assert!(
        l[0].contains("worker 1 failed 4 times in a row")
            && l[0].contains("exited with code 3")
            && l[0].contains("respawn limit 3"),
        "{l:?}"
    );
    let a = acts(a);
    assert!(a.contains(&Action::StopAccepting));
    assert!(a.contains(&Action::SignalGroup {
        pid: 100,
        signal: Signal::SIGTERM
    }));
    let a = acts(s.handle(
        now + secs(0.5),
        Event::Exited {
            pid: 100,
            reason: ExitReason::Signal(15),
        },
    ));
    assert_eq!(a.last(), Some(&Action::Exit(3)));
    assert!(s.finished());
}

#[test]
fn a_stable_run_resets_the_unstable_count() {
    let t0 = Instant::now();
    let mut s = started(policy(1, true), t0);
    let mut now = t0;
    for pid in [100, 101, 102] {
        now += secs(0.1);
        s.handle(
            now,
            Event::Exited {
                pid,
                reason: ExitReason::Code(1),
            },
        );
        now = s.next_deadline().unwrap();
        s.handle(now, Event::Tick);
        s.handle(
            now,
            Event::Spawned {
                id: 0,
                pid: pid + 1,
            },
        );
    }
    // Up 2 s: stable, immediate restart, count reset.
    now += secs(2.0);
    let a = acts(s.handle(
        now,
        Event::Exited {
            pid: 103,
            reason: ExitReason::Code(1),
        },
    ));
    assert!(a.contains(&Action::Spawn { id: 0 }));
    s.handle(now, Event::Spawned { id: 0, pid: 104 });
    now += secs(0.1);
    s.handle(
        now,
        Event::Exited {
            pid: 104,
            reason: ExitReason::Code(1),
        },
    );
    assert_eq!(s.next_deadline(), Some(now + secs(0.1)));
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
        let t0 = Instant::now();
        let mut s = started(policy(1, false), t0);
        let a = acts(s.handle(t0 + secs(0.1), Event::Exited { pid: 100, reason }));
        assert_eq!(a.last(), Some(&Action::Exit(code)), "{reason:?}");
    }
}

#[test]
fn sigterm_stops_gracefully_and_exits_zero() {
    let t0 = Instant::now();
    let mut s = started(policy(2, true), t0);
    let a = s.handle(t0 + secs(1.0), Event::Signal(Signal::SIGTERM));
    assert!(logs(&a)[0].contains("received SIGTERM: stopping 2 worker(s), grace period 25s"));
    assert_eq!(
        acts(a),
        vec![
            Action::StopAccepting,
            Action::SignalGroup {
                pid: 100,
                signal: Signal::SIGTERM
            },
            Action::SignalGroup {
                pid: 101,
                signal: Signal::SIGTERM
            },
        ]
    );
    assert_eq!(s.next_deadline(), Some(t0 + secs(26.0)));
    // An exited worker is not restarted while stopping.
    let a = acts(s.handle(
        t0 + secs(2.0),
        Event::Exited {
            pid: 100,
            reason: ExitReason::Code(0),
        },
    ));
    assert!(!a.iter().any(|x| matches!(x, Action::Spawn { .. })));
    let a = acts(s.handle(
        t0 + secs(3.0),
        Event::Exited {
            pid: 101,
            reason: ExitReason::Signal(15),
        },
    ));
    assert_eq!(a.last(), Some(&Action::Exit(0)));
}

#[test]
fn a_worker_ignoring_sigterm_is_killed_after_grace() {
    let t0 = Instant::now();
    let mut s = started(policy(2, true), t0);
    s.handle(t0, Event::Signal(Signal::SIGINT));
    s.handle(
        t0 + secs(1.0),
        Event::Exited {
            pid: 100,
            reason: ExitReason::Signal(2),
        },
    );
    assert!(acts(s.handle(t0 + secs(24.9), Event::Tick)).is_empty());
    let a = s.handle(t0 + secs(25.0), Event::Tick);
    assert!(logs(&a)[0].contains("worker 1 (pid 101) still running 25s after SIGINT"));
    assert_eq!(
        acts(a),
        vec![Action::SignalGroup {
            pid: 101,
            signal: Signal::SIGKILL
        }]
    );
    assert_eq!(s.next_deadline(), None);
    let a = acts(s.handle(
        t0 + secs(25.1),
        Event::Exited {
            pid: 101,
            reason: ExitReason::Signal(9),
        },
    ));
    assert_eq!(a.last(), Some(&Action::Exit(exit::KILLED_AFTER_GRACE)));
}

#[test]
fn a_worker_failing_during_shutdown_makes_the_exit_non_zero() {
    let t0 = Instant::now();
    let mut s = started(policy(1, false), t0);
    s.handle(t0, Event::Signal(Signal::SIGTERM));
    let a = acts(s.handle(
        t0 + secs(1.0),
        Event::Exited {
            pid: 100,
            reason: ExitReason::Code(3),
        },
    ));
    assert_eq!(a.last(), Some(&Action::Exit(3)));
}

#[test]
fn pending_restarts_are_dropped_on_stop() {
    let t0 = Instant::now();
    let mut s = started(policy(2, true), t0);
    s.handle(
        t0 + secs(0.1),
        Event::Exited {
            pid: 100,
            reason: ExitReason::Code(1),
        },
    );
    s.handle(t0 + secs(0.15), Event::Signal(Signal::SIGTERM));
    assert!(acts(s.handle(t0 + secs(5.0), Event::Tick)).is_empty());
    let a = acts(s.handle(
        t0 + secs(5.0),
        Event::Exited {
            pid: 101,
            reason: ExitReason::Code(0),
        },
    ));
    assert_eq!(a.last(), Some(&Action::Exit(0)));
}

#[test]
fn other_signals_are_forwarded_and_orphans_ignored() {
    let t0 = Instant::now();
    let mut s = started(policy(2, true), t0);
    assert_eq!(
        acts(s.handle(t0, Event::Signal(Signal::SIGUSR2))),
        vec![
            Action::SignalGroup {
                pid: 100,
                signal: Signal::SIGUSR2
            },
            Action::SignalGroup {
                pid: 101,
                signal: Signal::SIGUSR2
            },
        ]
    );
    assert!(s
        .handle(
            t0,
            Event::Exited {
                pid: 555,
                reason: ExitReason::Code(0)
            }
        )
        .is_empty());
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
    assert!(logs(&a)[0].contains("worker 0: command not found"));
    // Worker 1's spawn was in flight; it is stopped when it reports.
    let a = acts(s.handle(t0, Event::Spawned { id: 1, pid: 9 }));
    assert!(a.contains(&Action::SignalGroup {
        pid: 9,
        signal: Signal::SIGTERM
    }));
    let a = acts(s.handle(
        t0,
        Event::Exited {
            pid: 9,
            reason: ExitReason::Signal(15),
        },
    ));
    assert_eq!(a.last(), Some(&Action::Exit(127)));
    assert!(s.handle(t0, Event::Tick).is_empty());
}

// ---- rolling reload, scaling, memory ceilings ----

fn checked(workers: u32) -> Policy {
    let mut p = policy(workers, true);
    p.ready_timeout = Some(secs(10.0));
    p
}

/// `started` with every worker ready.
fn ready(p: Policy, t0: Instant) -> Supervisor {
    let n = p.workers;
    let mut s = started(p, t0);
    for id in 0..n {
        s.handle(
            t0,
            Event::Ready {
                id,
                pid: 100 + id as i32,
            },
        );
    }
    s
}

fn term(pid: i32) -> Action {
    Action::SignalGroup {
        pid,
        signal: Signal::SIGTERM,
    }
}

fn kill9(pid: i32) -> Action {
    Action::SignalGroup {
        pid,
        signal: Signal::SIGKILL,
    }
}

#[test]
fn reload_replaces_one_worker_at_a_time_routing_before_retiring() {
    let t0 = Instant::now();
    let mut s = ready(checked(2), t0);
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
    let a = acts(s.handle(
        t0 + secs(1.5),
        Event::Exited {
            pid: 100,
            reason: ExitReason::Code(0),
        },
    ));
    assert_eq!(a, vec![kill9(100)]);
    s.handle(t0 + secs(2.0), Event::Spawned { id: 1, pid: 201 });
    let a = s.handle(t0 + secs(2.5), Event::Ready { id: 1, pid: 201 });
    assert!(
        logs(&a).iter().any(|l| l.contains("reload complete: 2")),
        "{a:?}"
    );
    assert!(!s.reloading());
    assert_eq!(s.running(), vec![(0, 200), (1, 201)]);
    assert_eq!(s.restarts_by_reason().get("reload"), Some(&2));
}

#[test]
fn a_replacement_never_ready_aborts_the_reload_and_keeps_the_old_worker() {
    let t0 = Instant::now();
    let mut s = ready(checked(2), t0);
    s.handle(t0, Event::Reload);
    s.handle(t0, Event::Spawned { id: 0, pid: 200 });
    assert_eq!(s.next_deadline(), Some(t0 + secs(10.0)));
    let a = s.handle(t0 + secs(10.0), Event::Tick);
    assert!(acts(a.clone()).contains(&kill9(200)), "{a:?}");
    assert!(!acts(a.clone())
        .iter()
        .any(|x| matches!(x, Action::Spawn { .. })));
    assert!(
        logs(&a)
            .iter()
            .any(|l| l.contains("reload aborted") && l.contains("keeps pid 100")),
        "{a:?}"
    );
    assert!(!s.reloading());
    // Its exit changes nothing; the old worker still serves.
    let a = acts(s.handle(
        t0 + secs(10.1),
        Event::Exited {
            pid: 200,
            reason: ExitReason::Signal(9),
        },
    ));
    assert_eq!(a, vec![kill9(200)]);
    assert_eq!(s.running(), vec![(0, 100), (1, 101)]);
    assert_eq!(s.restarts_by_reason().get("reload"), None);
}

#[test]
fn a_replacement_that_exits_aborts_the_reload() {
    let t0 = Instant::now();
    let mut s = ready(checked(1), t0);
    s.handle(t0, Event::Reload);
    s.handle(t0, Event::Spawned { id: 0, pid: 200 });
    let a = s.handle(
        t0 + secs(0.5),
        Event::Exited {
            pid: 200,
            reason: ExitReason::Code(1),
        },
    );
    assert!(
        logs(&a).iter().any(|l| l.contains("reload aborted")),
        "{a:?}"
    );
    assert!(!acts(a)
        .iter()
        .any(|x| matches!(x, Action::Spawn { .. } | Action::Unroute { .. })));
    assert_eq!(s.running(), vec![(0, 100)]);
}

#[test]
fn a_second_reload_is_coalesced_into_one_more_round() {
    let t0 = Instant::now();
    let mut s = ready(checked(1), t0);
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
fn sigterm_during_a_reload_stops_old_and_new_processes() {
    let t0 = Instant::now();
    let mut s = ready(checked(2), t0);
    s.handle(t0, Event::Reload);
    s.handle(t0, Event::Spawned { id: 0, pid: 200 });
    let a = acts(s.handle(t0, Event::Signal(Signal::SIGTERM)));
    assert!(
        a.contains(&term(100)) && a.contains(&term(101)) && a.contains(&term(200)),
        "{a:?}"
    );
    assert!(!s.reloading());
    for pid in [100, 101] {
        let a = acts(s.handle(
            t0,
            Event::Exited {
                pid,
                reason: ExitReason::Code(0),
            },
        ));
        assert!(
            !a.contains(&Action::Exit(0)),
            "exited before the replacement: {a:?}"
        );
    }
    let a = acts(s.handle(
        t0,
        Event::Exited {
            pid: 200,
            reason: ExitReason::Code(0),
        },
    ));
    assert_eq!(a.last(), Some(&Action::Exit(0)));
}

#[test]
fn a_retired_process_ignoring_sigterm_is_killed_after_grace() {
    let t0 = Instant::now();
    let mut s = ready(checked(1), t0);
    s.handle(t0, Event::Reload);
    s.handle(t0, Event::Spawned { id: 0, pid: 200 });
    s.handle(t0, Event::Ready { id: 0, pid: 200 });
    assert_eq!(s.next_deadline(), Some(t0 + secs(25.0)));
    let a = acts(s.handle(t0 + secs(25.0), Event::Tick));
    assert_eq!(a, vec![kill9(100)]);
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn in_place_reload_stops_first_then_starts() {
    let t0 = Instant::now();
    let mut p = checked(2);
    p.replace_in_place = true;
    let mut s = ready(p, t0);
    let a = acts(s.handle(t0, Event::Reload));
    assert_eq!(a, vec![Action::Unroute { id: 0 }, term(100)]);
    let a = acts(s.handle(
        t0,
        Event::Exited {
            pid: 100,
            reason: ExitReason::Code(0),
        },
    ));
    assert_eq!(a, vec![kill9(100), Action::Spawn { id: 0 }]);
    s.handle(t0, Event::Spawned { id: 0, pid: 200 });
    let a = acts(s.handle(t0, Event::Ready { id: 0, pid: 200 }));
    assert_eq!(
        a,
        vec![
            Action::Route { id: 0 },
            Action::Unroute { id: 1 },
            term(101)
        ]
    );
    assert_eq!(s.restarts_by_reason().get("reload"), Some(&1));
    assert_eq!(s.restarts_by_reason().get("crash"), None);
}

#[test]
fn scaling_up_spawns_new_ids_and_down_retires_the_highest() {
    let t0 = Instant::now();
    let mut s = ready(checked(2), t0);
    let a = acts(s.handle(t0, Event::Scale { workers: 4 }));
    assert_eq!(a, vec![Action::Spawn { id: 2 }, Action::Spawn { id: 3 }]);
    assert_eq!(s.desired(), 4);
    s.handle(t0, Event::Spawned { id: 2, pid: 102 });
    s.handle(t0, Event::Spawned { id: 3, pid: 103 });
    let a = acts(s.handle(t0, Event::Ready { id: 3, pid: 103 }));
    assert_eq!(a, vec![Action::Route { id: 3 }]);
    let a = acts(s.handle(t0, Event::Scale { workers: 1 }));
    assert_eq!(
        a,
        vec![
            Action::Unroute { id: 1 },
            term(101),
            Action::Unroute { id: 2 },
            term(102),
            Action::Unroute { id: 3 },
            term(103),
        ]
    );
    assert_eq!(s.running(), vec![(0, 100)]);
    // Their exits are not restarts.
    for pid in [101, 102, 103] {
        let a = acts(s.handle(
            t0,
            Event::Exited {
                pid,
                reason: ExitReason::Code(0),
            },
        ));
        assert_eq!(a, vec![kill9(pid)]);
    }
    // Up again reuses the ids.
    assert_eq!(
        acts(s.handle(t0, Event::Scale { workers: 2 })),
        vec![Action::Spawn { id: 1 }]
    );
    assert!(s.restarts_by_reason().is_empty());
}

#[test]
fn a_spawn_in_flight_when_scaled_away_is_stopped_when_it_reports() {
    let t0 = Instant::now();
    let mut s = ready(checked(1), t0);
    s.handle(t0, Event::Scale { workers: 2 });
    s.handle(t0, Event::Scale { workers: 1 });
    let a = acts(s.handle(t0, Event::Spawned { id: 1, pid: 7 }));
    assert_eq!(a, vec![term(7)]);
    assert_eq!(s.running(), vec![(0, 100)]);
}

#[test]
fn a_worker_above_its_memory_ceiling_is_replaced_and_counted() {
    let t0 = Instant::now();
    let mut s = ready(checked(2), t0);
    let over = Event::MemoryExceeded {
        id: 1,
        pid: 101,
        rss_bytes: 300 << 20,
        limit_bytes: 256 << 20,
    };
    let a = s.handle(t0, over.clone());
    assert_eq!(acts(a.clone()), vec![Action::Spawn { id: 1 }]);
    assert!(logs(&a)
        .iter()
        .any(|l| l.contains("300 MiB") && l.contains("256 MiB")));
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
fn crash_restarts_are_counted_by_reason() {
    let t0 = Instant::now();
    let mut s = ready(checked(1), t0);
    s.handle(
        t0 + secs(5.0),
        Event::Exited {
            pid: 100,
            reason: ExitReason::Signal(9),
        },
    );
    assert_eq!(s.restarts_by_reason().get("crash"), Some(&1));
}

#[test]
fn sighup_is_forwarded_when_restarts_are_off() {
    // One process under tini's semantics: SIGHUP is the app's own business.
    let t0 = Instant::now();
    let mut s = started(policy(1, false), t0);
    assert_eq!(
        acts(s.handle(t0, Event::Signal(Signal::SIGHUP))),
        vec![Action::SignalGroup {
            pid: 100,
            signal: Signal::SIGHUP
        }]
    );
    // `corefit reload` still reloads.
    assert_eq!(
        acts(s.handle(t0, Event::Reload)),
        vec![Action::Spawn { id: 0 }]
    );
}

#[test]
fn failed_liveness_probes_in_a_row_replace_a_hung_worker() {
    let t0 = Instant::now();
    let mut p = checked(2);
    p.probe_failures = 3;
    let mut s = ready(p, t0);
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
        logs(&a)
            .iter()
            .any(|l| l.contains("failed 3 liveness probes")),
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
    let t0 = Instant::now();
    let mut s = ready(checked(1), t0);
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

#[test]
fn in_place_replacement_kills_a_process_ignoring_sigterm_after_grace() {
    let t0 = Instant::now();
    let mut p = checked(1);
    p.replace_in_place = true;
    let mut s = ready(p, t0);
    s.handle(t0, Event::Reload);
    assert_eq!(s.next_deadline(), Some(t0 + secs(25.0)));
    assert_eq!(
        acts(s.handle(t0 + secs(25.0), Event::Tick)),
        vec![kill9(100)]
    );
    let a = acts(s.handle(
        t0 + secs(25.1),
        Event::Exited {
            pid: 100,
            reason: ExitReason::Signal(9),
        },
    ));
    assert_eq!(a, vec![kill9(100), Action::Spawn { id: 0 }]);
}
