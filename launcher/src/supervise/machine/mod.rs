//! The supervisor as a state machine: `Supervisor::handle(now, Event) ->
//! Vec<Action>`. It never touches a process, a socket or a clock: the
//! runtime loop feeds it events (with the time) and performs its actions,
//! so every rule below is unit-tested by feeding events.
//!
//! Rules:
//! - Start spawns every worker; a spawned worker is routed once it is
//!   ready (at once when no readiness check applies).
//! - A worker that exits while running is restarted when the policy says
//!   so ([`backoff`]): at once after a stable run (ready, then up
//!   `min_uptime`), else after a delay that doubles with its crashes in a
//!   row; every crash before readiness or within the window (10 x
//!   `min_uptime`) of it counts, however long after the start; after more
//!   than `respawn_limit` in a row, corefit stops the rest and exits
//!   non-zero, naming the worker and how it failed. Without restarts, the
//!   first exit ends the run with that worker's code (tini's semantics).
//! - SIGTERM / SIGINT: stop accepting, forward to every worker's group,
//!   wait `grace`, then SIGKILL what is left. Exit 0 when every worker
//!   obeyed in time; the first worker failure's code otherwise; 137 when a
//!   worker had to be killed.
//! - SIGHUP (unless restarts are off: then it is forwarded, as tini does)
//!   and `Reload`: a rolling reload, `reload_parallelism` workers at
//!   a time. Each ready worker gets a *replacement* with the same id (its
//!   slot is `Replacing { old, new }` meanwhile); once the replacement is
//!   ready it is routed in the old one's place and the old one is
//!   *retired* (`Leaving`: SIGTERM, SIGKILL after `grace`). A replacement that exits or is not
//!   ready within `ready_timeout` is killed, the old worker keeps serving
//!   and the reload is aborted. A reload requested during a reload is
//!   coalesced into one more round after it. With `replace_in_place`
//!   (each worker's own fixed PORT, which two processes cannot share) the
//!   old process is stopped first (`Restarting`) and the new one started
//!   after it.
//! - `Scale`: grow by spawning new ids, shrink by retiring the highest.
//! - `Resize`: scale, then replace every ready worker whose process was
//!   started under an older environment generation, as in a rolling
//!   reload (`refresh`); a worker not ready yet is left to the next
//!   resize tick (the runtime asks again while one is stale).
//! - `MemoryExceeded`, and `probe_failures` failed liveness `Probe`s in a
//!   row (a hung worker, unrouted at once): the worker is replaced as in a
//!   reload, counted as `memory` / `unresponsive`.
//! - Any other signal the runtime listens for is forwarded to every group.
//! - Whatever is left of a worker's process group when the worker exits
//!   is killed, so a restarted worker starts clean.
//! - What it has to say comes out as `Action::Notice` (typed, with ids,
//!   pids, reasons and durations); the runtime's logger renders it.
//!
//! Files, one concern each: [`event`] (policy, events, actions), [`slot`]
//! (the worker lifecycle), [`notice`] (what it says, as data),
//! `lifecycle.rs` (spawned, ready, spawn failures), `exits.rs`, `stop.rs`
//! (stop, grace deadlines, forwarding), `replace.rs` (reload, memory,
//! liveness), `scale.rs`, [`admission`] (whether a scale or reload request
//! is accepted, before it becomes an event), [`backoff`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use nix::sys::signal::Signal;

pub mod admission;
pub mod backoff;
pub mod event;
pub mod notice;
pub mod slot;

mod exits;
mod lifecycle;
mod replace;
mod scale;
mod stop;
#[cfg(test)]
mod tests;

pub use backoff::Backoff;
pub use event::{Action, Event, Level, Policy};
pub use notice::{Notice, Restart};
pub use slot::{ProcessState, ProcessView};

use slot::{Leaving, Slot, Worker};

/// 0..N-1, stable across restarts (`COREFIT_WORKER_ID`).
pub type WorkerId = u32;

/// A rolling reload in progress.
#[derive(Debug, Clone, Default)]
struct Reload {
    pending: VecDeque<WorkerId>,
    active: BTreeSet<WorkerId>,
    replaced: u32,
    /// Another reload was asked for meanwhile.
    again: bool,
    /// A resize's refresh of stale environments, not a reload asked for.
    refresh: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Running,
    Stopping {
        signal: Signal,
        deadline: Instant,
        killed: bool,
    },
    Exited,
}

/// The supervisor's state.
#[derive(Debug)]
pub struct Supervisor {
    policy: Policy,
    workers: Vec<Worker>,
    /// Workers wanted now: ids `0..desired`.
    desired: u32,
    /// Processes no slot owns any more, told to stop.
    leaving: Vec<Leaving>,
    reload: Option<Reload>,
    /// The environment generation new processes are started with.
    env: u64,
    restarts_by_reason: BTreeMap<String, u64>,
    phase: Phase,
    /// The exit code decided by the first failure, if any.
    outcome: Option<u8>,
}

impl Supervisor {
    pub fn new(policy: Policy) -> Supervisor {
        let desired = policy.workers.max(1);
        let workers = (0..desired).map(|_| Worker::new(Slot::Spawning)).collect();
        Supervisor {
            policy,
            workers,
            desired,
            leaving: Vec::new(),
            reload: None,
            env: 0,
            restarts_by_reason: BTreeMap::new(),
            phase: Phase::Running,
            outcome: None,
        }
    }

    /// True once `Exit` has been emitted.
    pub fn finished(&self) -> bool {
        self.phase == Phase::Exited
    }

    /// True while corefit runs (not stopping).
    pub fn accepting_commands(&self) -> bool {
        self.phase == Phase::Running
    }

    /// Workers wanted now.
    pub fn desired(&self) -> u32 {
        self.desired
    }

    /// True while a rolling reload runs.
    pub fn reloading(&self) -> bool {
        self.reload.is_some()
    }

    /// Restarts so far, by reason.
    pub fn restarts_by_reason(&self) -> &BTreeMap<String, u64> {
        &self.restarts_by_reason
    }

    /// Applies one event.
    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase == Phase::Exited {
            return out;
        }
        match event {
            Event::Start => {
                for id in 0..self.workers.len() {
                    self.workers[id].slot = Slot::Spawning;
                    out.push(Action::Spawn { id: id as WorkerId });
                }
            }
            Event::Spawned { id, pid } => self.on_spawned(now, id, pid, &mut out),
            Event::SpawnFailed { id, message, code } => {
                self.on_spawn_failed(now, id, message, code, &mut out)
            }
            Event::Exited { pid, reason } => self.on_exited(now, pid, reason, &mut out),
            Event::Ready { id, pid } => self.on_ready(now, id, pid, &mut out),
            Event::Signal(sig @ (Signal::SIGTERM | Signal::SIGINT)) => {
                self.on_stop_signal(now, sig, &mut out)
            }
            // Under tini's semantics (no restarts) SIGHUP is the app's own.
            Event::Signal(Signal::SIGHUP) if !self.policy.restart => {
                self.forward(Signal::SIGHUP, &mut out)
            }
            Event::Signal(Signal::SIGHUP) | Event::Reload => self.start_reload(now, &mut out),
            Event::Signal(sig) => self.forward(sig, &mut out),
            Event::Scale { workers } => self.scale(now, workers, &mut out),
            Event::Resize { workers, env } => self.resize(now, workers, env, &mut out),
            Event::MemoryExceeded {
                id,
                pid,
                rss_bytes,
                limit_bytes,
            } => self.on_memory(now, id, pid, rss_bytes, limit_bytes, &mut out),
            Event::Probe { id, pid, ok } => self.on_probe(now, id, pid, ok, &mut out),
            Event::Tick => self.on_tick(now, &mut out),
        }
        out
    }

    /// Counts one restart of worker `id` for `why`.
    fn count_restart(&mut self, id: usize, why: Restart) {
        self.workers[id].restarts += 1;
        *self
            .restarts_by_reason
            .entry(why.as_str().to_owned())
            .or_default() += 1;
    }
}

fn notice(out: &mut Vec<Action>, n: Notice) {
    out.push(Action::Notice(n));
}
