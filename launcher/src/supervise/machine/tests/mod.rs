//! The supervisor's rules, fed with events and an injected clock; one
//! file per concern, asserting on actions and typed notices.

mod exits;
mod health;
mod reload;
mod resize;
mod scale;
mod start;
mod stop;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::*;
use crate::exit::{self, ExitReason};

pub(super) fn policy(workers: u32, restart: bool) -> Policy {
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

pub(super) fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Actions without the notices.
pub(super) fn acts(actions: Vec<Action>) -> Vec<Action> {
    actions
        .into_iter()
        .filter(|a| !matches!(a, Action::Notice(_)))
        .collect()
}

pub(super) fn notices(actions: &[Action]) -> Vec<Notice> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Notice(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

/// Process `pid` exited for `reason`.
pub(super) fn exited(pid: i32, reason: ExitReason) -> Event {
    Event::Exited { pid, reason }
}

/// The pid `started` gives worker `id`: 100, 101, ...
pub(super) fn pid_of(id: WorkerId) -> i32 {
    100 + id as i32
}

/// A supervisor with `n` workers started as pids 100, 101, ..., and the
/// instant they started.
pub(super) fn started(p: Policy) -> (Supervisor, Instant) {
    let t0 = Instant::now();
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
                pid: pid_of(id),
            },
        );
    }
    (s, t0)
}

pub(super) fn checked(workers: u32) -> Policy {
    let mut p = policy(workers, true);
    p.ready_timeout = Some(secs(10.0));
    p
}

/// `ready` and reloading: worker 0's replacement spawned as pid 200.
pub(super) fn replacing(p: Policy) -> (Supervisor, Instant) {
    let (mut s, t0) = ready(p);
    s.handle(t0, Event::Reload);
    s.handle(t0, Event::Spawned { id: 0, pid: 200 });
    (s, t0)
}

/// `started` with every worker ready.
pub(super) fn ready(p: Policy) -> (Supervisor, Instant) {
    let n = p.workers;
    let (mut s, t0) = started(p);
    for id in 0..n {
        s.handle(
            t0,
            Event::Ready {
                id,
                pid: pid_of(id),
            },
        );
    }
    (s, t0)
}

/// `signal` sent to the process group of `pid`.
pub(super) fn signal(pid: i32, signal: Signal) -> Action {
    Action::SignalGroup { pid, signal }
}

pub(super) fn term(pid: i32) -> Action {
    signal(pid, Signal::SIGTERM)
}

pub(super) fn kill9(pid: i32) -> Action {
    signal(pid, Signal::SIGKILL)
}

/// What retiring the workers `ids` (started by `started`) asks: each is
/// taken out of routing, then told to stop.
pub(super) fn retire(ids: &[WorkerId]) -> Vec<Action> {
    ids.iter()
        .flat_map(|&id| [Action::Unroute { id }, term(pid_of(id))])
        .collect()
}

/// A tick just before `due` does nothing; the actions of the tick at `due`.
pub(super) fn tick_until(s: &mut Supervisor, due: Instant) -> Vec<Action> {
    assert!(
        acts(s.handle(due - secs(0.001), Event::Tick)).is_empty(),
        "nothing happens before {due:?}"
    );
    s.handle(due, Event::Tick)
}
