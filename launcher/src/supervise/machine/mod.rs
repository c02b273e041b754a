//! The supervisor as a state machine: `Supervisor::handle(now, Event) ->
//! Vec<Action>`. It never touches a process, a socket or a clock: the
//! runtime loop feeds it events (with the time) and performs its actions,
//! so every rule below is unit-tested by feeding events.
//!
//! Rules:
//! - Start spawns every worker; a spawned worker is routed once it is
//!   ready (at once when no readiness check applies).
//! - A worker that exits while running is restarted when the policy says
//!   so, after a delay that grows with the restarts in a row that were
//!   *unstable* (up less than `min_uptime`, or never ready); after more
//!   than `respawn_limit` of those, corefit stops the rest and exits
//!   non-zero, naming the worker and how it failed. Without restarts, the
//!   first exit ends the run with that worker's code (tini's semantics).
//! - SIGTERM / SIGINT: stop accepting, forward to every worker's group,
//!   wait `grace`, then SIGKILL what is left. Exit 0 when every worker
//!   obeyed in time; the first worker failure's code otherwise; 137 when a
//!   worker had to be killed.
//! - SIGHUP (unless restarts are off: then it is forwarded, as tini does)
//!   and `Reload`: a rolling reload, `reload_parallelism` workers at
//!   a time. Each ready worker gets a *replacement* with the same id (the
//!   worker holds two processes meanwhile); once the replacement is ready
//!   it is routed in the old one's place and the old one is *retired*
//!   (SIGTERM, SIGKILL after `grace`). A replacement that exits or is not
//!   ready within `ready_timeout` is killed, the old worker keeps serving
//!   and the reload is aborted. A reload requested during a reload is
//!   coalesced into one more round after it. With `replace_in_place`
//!   (each worker's own fixed PORT, which two processes cannot share) the
//!   old process is stopped first and the new one started after it.
//! - `Scale`: grow by spawning new ids, shrink by retiring the highest.
//! - `MemoryExceeded`, and `probe_failures` failed liveness `Probe`s in a
//!   row (a hung worker, unrouted at once): the worker is replaced as in a
//!   reload, counted as `memory` / `unresponsive`.
//! - Any other signal the runtime listens for is forwarded to every group.
//! - Whatever is left of a worker's process group when the worker exits
//!   is killed, so a restarted worker starts clean.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

pub use backoff::Backoff;

use super::config::human_duration;
use crate::exit::{self, nonzero, ExitReason};

/// 0..N-1, stable across restarts (`COREFIT_WORKER_ID`).
pub type WorkerId = u32;

pub mod backoff;

/// Why a worker was restarted (the `reason` label of the restart counter).
pub const RESTART_CRASH: &str = "crash";
pub const RESTART_RELOAD: &str = "reload";
pub const RESTART_MEMORY: &str = "memory";
pub const RESTART_UNRESPONSIVE: &str = "unresponsive";

/// The rules' parameters.
#[derive(Debug, Clone)]
pub struct Policy {
    pub workers: u32,
    /// Restart workers that exit (otherwise the first exit ends the run).
    pub restart: bool,
    /// Unstable restarts in a row tolerated per worker.
    pub respawn_limit: u32,
    /// A worker up at least this long (and ready) was stable.
    pub min_uptime: Duration,
    pub backoff: Backoff,
    /// Time between forwarding SIGTERM and SIGKILL (also for retired
    /// workers).
    pub grace: Duration,
    /// How long a worker may take to become ready; `None` when no
    /// readiness check applies (ready as soon as started).
    pub ready_timeout: Option<Duration>,
    /// Workers replaced at once during a reload (at least 1).
    pub reload_parallelism: u32,
    /// Stop the old process before starting its replacement (workers that
    /// bind a fixed port of their own).
    pub replace_in_place: bool,
    /// Failed liveness probes in a row that get a worker replaced (0: off).
    pub probe_failures: u32,
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The run begins.
    Start,
    /// `Action::Spawn` succeeded.
    Spawned { id: WorkerId, pid: i32 },
    /// `Action::Spawn` failed; `code` is what corefit should exit with.
    SpawnFailed {
        id: WorkerId,
        message: String,
        code: u8,
    },
    /// A child (worker or adopted orphan) was reaped.
    Exited { pid: i32, reason: ExitReason },
    /// A readiness check passed.
    Ready { id: WorkerId, pid: i32 },
    /// corefit received a signal.
    Signal(Signal),
    /// A rolling reload was asked for (SIGHUP is the same).
    Reload,
    /// Run this many workers from now on (already checked against caps).
    Scale { workers: u32 },
    /// Worker `id` (`pid`) uses more memory than its ceiling.
    MemoryExceeded {
        id: WorkerId,
        pid: i32,
        rss_bytes: u64,
        limit_bytes: u64,
    },
    /// A liveness probe of worker `id` (`pid`) passed or failed.
    Probe { id: WorkerId, pid: i32, ok: bool },
    /// Time passed (a deadline from [`Supervisor::next_deadline`] is due).
    Tick,
}

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// Something the runtime must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start worker `id` (a first start, a restart or a replacement) and
    /// report `Spawned` or `SpawnFailed`.
    Spawn {
        id: WorkerId,
    },
    /// Send `signal` to the process group led by `pid`.
    SignalGroup {
        pid: i32,
        signal: Signal,
    },
    /// Send new connections to worker `id`'s newest process.
    Route {
        id: WorkerId,
    },
    /// Stop sending new connections to worker `id`.
    Unroute {
        id: WorkerId,
    },
    /// Close the public listening socket (proxy, shared).
    StopAccepting,
    Log {
        level: Level,
        message: String,
    },
    /// The run is over: exit with this code (after draining connections).
    Exit(u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    /// Not started yet, or a spawn is in flight.
    Spawning,
    Running {
        pid: i32,
        since: Instant,
        ready: bool,
        ready_deadline: Option<Instant>,
    },
    /// Waiting to be restarted.
    Backoff { until: Instant },
    /// Will not run again (or scaled away).
    Done,
}

/// A replacement being started for a running worker.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Incoming {
    Spawning,
    Running {
        pid: i32,
        since: Instant,
        ready_deadline: Option<Instant>,
    },
}

#[derive(Debug, Clone)]
struct Worker {
    slot: Slot,
    unstable_in_a_row: u32,
    restarts: u32,
    /// A replacement on its way, and why.
    incoming: Option<(Incoming, &'static str)>,
    /// `replace_in_place`: the process was told to stop so it can be
    /// started again, for this reason (SIGKILL at the deadline).
    in_place: Option<InPlace>,
    /// Liveness probes failed in a row.
    probe_failures: u32,
}

impl Worker {
    fn new() -> Worker {
        Worker {
            slot: Slot::Spawning,
            unstable_in_a_row: 0,
            restarts: 0,
            incoming: None,
            in_place: None,
            probe_failures: 0,
        }
    }
}

/// A stop-then-start replacement in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InPlace {
    why: &'static str,
    deadline: Instant,
    killed: bool,
}

/// An old process on its way out (replaced, scaled away or discarded).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Retiring {
    id: WorkerId,
    pid: i32,
    since: Instant,
    deadline: Instant,
    killed: bool,
}

/// A rolling reload in progress.
#[derive(Debug, Clone, Default)]
struct Reload {
    pending: VecDeque<WorkerId>,
    active: BTreeSet<WorkerId>,
    replaced: u32,
    /// Another reload was asked for meanwhile.
    again: bool,
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

/// What a worker process is doing, for status and health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessState {
    Starting,
    Ready,
    Stopping,
    Backoff,
}

/// One process (or restart-pending slot) of the cluster, for snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessView {
    pub id: WorkerId,
    pub pid: Option<i32>,
    pub state: ProcessState,
    pub since: Option<Instant>,
    pub restarts: u32,
}

/// The supervisor's state.
#[derive(Debug)]
pub struct Supervisor {
    policy: Policy,
    workers: Vec<Worker>,
    /// Workers wanted now: ids `0..desired`.
    desired: u32,
    retiring: Vec<Retiring>,
    reload: Option<Reload>,
    restarts_by_reason: BTreeMap<String, u64>,
    phase: Phase,
    /// The exit code decided by the first failure, if any.
    outcome: Option<u8>,
}

impl Supervisor {
    pub fn new(policy: Policy) -> Supervisor {
        let desired = policy.workers.max(1);
        let workers = (0..desired).map(|_| Worker::new()).collect();
        Supervisor {
            policy,
            workers,
            desired,
            retiring: Vec::new(),
            reload: None,
            restarts_by_reason: BTreeMap::new(),
            phase: Phase::Running,
            outcome: None,
        }
    }

    /// The earliest time a `Tick` has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        for w in &self.workers {
            match w.slot {
                Slot::Backoff { until } if self.phase == Phase::Running => consider(until),
                Slot::Running {
                    ready_deadline: Some(d),
                    ready: false,
                    ..
                } => consider(d),
                _ => {}
            }
            if let Some((
                Incoming::Running {
                    ready_deadline: Some(d),
                    ..
                },
                _,
            )) = w.incoming
            {
                consider(d);
            }
        }
        for r in self.retiring.iter().filter(|r| !r.killed) {
            consider(r.deadline);
        }
        for w in &self.workers {
            if let Some(InPlace {
                deadline,
                killed: false,
                ..
            }) = w.in_place
            {
                consider(deadline);
            }
        }
        if let Phase::Stopping {
            deadline,
            killed: false,
            ..
        } = self.phase
        {
            consider(deadline);
        }
        next
    }

    /// True once `Exit` has been emitted.
    pub fn finished(&self) -> bool {
        self.phase == Phase::Exited
    }

    /// True while corefit runs (not stopping).
    pub fn accepting_commands(&self) -> bool {
        self.phase == Phase::Running
    }

    /// The pids of the running workers (current processes), by id.
    pub fn running(&self) -> Vec<(WorkerId, i32)> {
        self.workers
            .iter()
            .enumerate()
            .filter_map(|(id, w)| match w.slot {
                Slot::Running { pid, .. } => Some((id as WorkerId, pid)),
                _ => None,
            })
            .collect()
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

    /// Every process and restart-pending worker, for status and health.
    pub fn processes(&self) -> Vec<ProcessView> {
        let mut out = Vec::new();
        for (id, w) in self.workers.iter().enumerate() {
            let id = id as WorkerId;
            let view = |pid, state, since| ProcessView {
                id,
                pid,
                state,
                since,
                restarts: w.restarts,
            };
            match w.slot {
                Slot::Running {
                    pid, since, ready, ..
                } => {
                    let state = if w.in_place.is_some() || self.phase != Phase::Running {
                        ProcessState::Stopping
                    } else if ready {
                        ProcessState::Ready
                    } else {
                        ProcessState::Starting
                    };
                    out.push(view(Some(pid), state, Some(since)));
                }
                Slot::Backoff { .. } => out.push(view(None, ProcessState::Backoff, None)),
                Slot::Spawning if id < self.desired => {
                    out.push(view(None, ProcessState::Starting, None))
                }
                Slot::Spawning | Slot::Done => {}
            }
            if let Some((Incoming::Running { pid, since, .. }, _)) = w.incoming {
                out.push(view(Some(pid), ProcessState::Starting, Some(since)));
            }
        }
        for r in &self.retiring {
            out.push(ProcessView {
                id: r.id,
                pid: Some(r.pid),
                state: ProcessState::Stopping,
                since: Some(r.since),
                restarts: self.workers.get(r.id as usize).map_or(0, |w| w.restarts),
            });
        }
        out
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
                if let Some(w) = self.workers.get_mut(id as usize) {
                    if w.incoming.is_some() {
                        // A replacement could not start: keep the old one.
                        w.incoming = None;
                        log(
                            &mut out,
                            Level::Error,
                            format!("worker {id}: cannot start a replacement: {message}"),
                        );
                        self.replacement_failed(id, &mut out);
                        return out;
                    }
                    w.slot = Slot::Done;
                }
                log(&mut out, Level::Error, format!("worker {id}: {message}"));
                self.outcome.get_or_insert(code);
                self.begin_stop(now, Signal::SIGTERM, &mut out);
                self.finish_if_idle(&mut out);
            }
            Event::Exited { pid, reason } => self.on_exited(now, pid, reason, &mut out),
            Event::Ready { id, pid } => self.on_ready(now, id, pid, &mut out),
            Event::Signal(sig @ (Signal::SIGTERM | Signal::SIGINT)) => {
                if self.phase == Phase::Running {
                    log(
                        &mut out,
                        Level::Info,
                        format!(
                            "received {}: stopping {} worker(s), grace period {}",
                            sig.as_str(),
                            self.running().len(),
                            human_duration(self.policy.grace)
                        ),
                    );
                    self.begin_stop(now, sig, &mut out);
                } else {
                    self.forward(sig, &mut out);
                }
            }
            // Under tini's semantics (no restarts) SIGHUP is the app's own.
            Event::Signal(Signal::SIGHUP) if !self.policy.restart => {
                self.forward(Signal::SIGHUP, &mut out)
            }
            Event::Signal(Signal::SIGHUP) | Event::Reload => self.start_reload(now, &mut out),
            Event::Signal(sig) => self.forward(sig, &mut out),
            Event::Scale { workers } => self.scale(now, workers, &mut out),
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

    fn on_spawned(&mut self, now: Instant, id: WorkerId, pid: i32, out: &mut Vec<Action>) {
        let desired = self.desired;
        let stopping = match self.phase {
            Phase::Stopping { signal, .. } => Some(signal),
            _ => None,
        };
        let grace = self.policy.grace;
        let Some(w) = self.workers.get_mut(id as usize) else {
            return;
        };
        let ready_deadline = self.policy.ready_timeout.map(|t| now + t);
        if let Some((Incoming::Spawning, why)) = w.incoming {
            log(
                out,
                Level::Info,
                format!("worker {id}: replacement started, pid {pid} ({why})"),
            );
            if let Some(signal) = stopping {
                w.incoming = None;
                out.push(Action::SignalGroup { pid, signal });
                self.retire(now, id, pid, now + grace);
                return;
            }
            w.incoming = Some((
                Incoming::Running {
                    pid,
                    since: now,
                    ready_deadline,
                },
                why,
            ));
            if ready_deadline.is_none() {
                self.promote(now, id, out);
            }
            return;
        }
        w.slot = Slot::Running {
            pid,
            since: now,
            ready: ready_deadline.is_none(),
            ready_deadline,
        };
        let again = if w.restarts > 0 {
            format!(" (restart {})", w.restarts)
        } else {
            String::new()
        };
        log(
            out,
            Level::Info,
            format!("worker {id} started, pid {pid}{again}"),
        );
        if let Some(signal) = stopping {
            // A spawn that raced with a stop request: stop it too.
            out.push(Action::SignalGroup { pid, signal });
            return;
        }
        if id >= desired {
            // Scaled away while its spawn was in flight.
            w.slot = Slot::Done;
            out.push(Action::SignalGroup {
                pid,
                signal: Signal::SIGTERM,
            });
            self.retire(now, id, pid, now + grace);
            return;
        }
        if ready_deadline.is_none() {
            out.push(Action::Route { id });
            self.step_done_if_replaced(now, id, out);
        }
    }

    fn on_ready(&mut self, now: Instant, id: WorkerId, pid: i32, out: &mut Vec<Action>) {
        let Some(w) = self.workers.get_mut(id as usize) else {
            return;
        };
        if matches!(w.incoming, Some((Incoming::Running { pid: p, .. }, _)) if p == pid) {
            self.promote(now, id, out);
            return;
        }
        if let Slot::Running {
            pid: p,
            since,
            ready,
            ready_deadline,
        } = &mut w.slot
        {
            if *p == pid && !*ready {
                *ready = true;
                *ready_deadline = None;
                let after = human_duration(now.saturating_duration_since(*since));
                log(
                    out,
                    Level::Info,
                    format!("worker {id} (pid {pid}) ready after {after}"),
                );
                out.push(Action::Route { id });
                self.step_done_if_replaced(now, id, out);
            }
        }
    }

    fn on_exited(&mut self, now: Instant, pid: i32, reason: ExitReason, out: &mut Vec<Action>) {
        if let Some(i) = self.retiring.iter().position(|r| r.pid == pid) {
            let r = self.retiring.remove(i);
            out.push(Action::SignalGroup {
                pid,
                signal: Signal::SIGKILL,
            });
            log(
                out,
                Level::Info,
                format!("worker {} old pid {pid} stopped: {reason}", r.id),
            );
            self.finish_if_idle(out);
            return;
        }
        if let Some(id) = self.workers.iter().position(
            |w| matches!(w.incoming, Some((Incoming::Running { pid: p, .. }, _)) if p == pid),
        ) {
            let wid = id as WorkerId;
            self.workers[id].incoming = None;
            out.push(Action::SignalGroup {
                pid,
                signal: Signal::SIGKILL,
            });
            log(
                out,
                Level::Error,
                format!("worker {wid}: replacement pid {pid} {reason} before it was ready"),
            );
            self.replacement_failed(wid, out);
            self.finish_if_idle(out);
            return;
        }
        let Some(id) = self
            .workers
            .iter()
            .position(|w| matches!(w.slot, Slot::Running { pid: p, .. } if p == pid))
        else {
            return; // an adopted orphan, reaped; nothing else to do
        };
        let Slot::Running { since, ready, .. } = self.workers[id].slot else {
            return;
        };
        let wid = id as WorkerId;
        let uptime = now.saturating_duration_since(since);

        if self.phase == Phase::Running {
            if let Some(InPlace { why, .. }) = self.workers[id].in_place.take() {
                // Stopped on purpose, to be started again.
                out.push(Action::SignalGroup {
                    pid,
                    signal: Signal::SIGKILL,
                });
                let w = &mut self.workers[id];
                w.restarts += 1;
                w.unstable_in_a_row = 0;
                w.slot = Slot::Spawning;
                *self.restarts_by_reason.entry(why.to_owned()).or_default() += 1;
                log(
                    out,
                    Level::Info,
                    format!(
                        "worker {wid} (pid {pid}) stopped: {reason}; starting it again ({why})"
                    ),
                );
                out.push(Action::Spawn { id: wid });
                return;
            }
            if let Some((incoming, why)) = self.workers[id].incoming.take() {
                // The old process died while its replacement starts: the
                // replacement takes its place (no Unroute: that would
                // cancel the replacement's readiness check).
                out.push(Action::SignalGroup {
                    pid,
                    signal: Signal::SIGKILL,
                });
                log(
                    out,
                    Level::Warn,
                    format!("worker {wid} (pid {pid}) {reason} while being replaced ({why}); its replacement takes over"),
                );
                *self
                    .restarts_by_reason
                    .entry(RESTART_CRASH.to_owned())
                    .or_default() += 1;
                let w = &mut self.workers[id];
                w.restarts += 1;
                match incoming {
                    Incoming::Spawning => w.slot = Slot::Spawning,
                    Incoming::Running {
                        pid,
                        since,
                        ready_deadline,
                    } => {
                        w.slot = Slot::Running {
                            pid,
                            since,
                            ready: ready_deadline.is_none(),
                            ready_deadline,
                        };
                        if ready_deadline.is_none() {
                            out.push(Action::Route { id: wid });
                            self.step_done_if_replaced(now, wid, out);
                        }
                    }
                }
                return;
            }
        }

        out.push(Action::Unroute { id: wid });
        // Whatever the worker left in its group goes with it.
        out.push(Action::SignalGroup {
            pid,
            signal: Signal::SIGKILL,
        });

        match self.phase {
            Phase::Stopping { signal, .. } => {
                self.workers[id].slot = Slot::Done;
                if reason.obeyed(signal as i32) {
                    log(
                        out,
                        Level::Info,
                        format!("worker {wid} (pid {pid}) stopped: {reason}"),
                    );
                } else {
                    log(
                        out,
                        Level::Warn,
                        format!("worker {wid} (pid {pid}) {reason} while stopping"),
                    );
                    self.outcome.get_or_insert(nonzero(reason.code()));
                }
                self.finish_if_idle(out);
            }
            Phase::Running if !self.policy.restart => {
                self.workers[id].slot = Slot::Done;
                log(
                    out,
                    if reason.success() {
                        Level::Info
                    } else {
                        Level::Warn
                    },
                    format!(
                        "worker {wid} (pid {pid}) {reason} after {}",
                        human_duration(uptime)
                    ),
                );
                self.outcome.get_or_insert(reason.code());
                self.begin_stop(now, Signal::SIGTERM, out);
            }
            Phase::Running => {
                let stable = uptime >= self.policy.min_uptime && ready;
                let w = &mut self.workers[id];
                w.unstable_in_a_row = if stable { 0 } else { w.unstable_in_a_row + 1 };
                if w.unstable_in_a_row > self.policy.respawn_limit {
                    w.slot = Slot::Done;
                    let why = if ready {
                        format!(
                            "within {} of starting",
                            human_duration(self.policy.min_uptime)
                        )
                    } else {
                        "before it was ready".to_owned()
                    };
                    log(
                        out,
                        Level::Error,
                        format!(
                            "worker {wid} failed {} times in a row, each {why} (last: pid {pid} {reason}); \
                             respawn limit {} reached, giving up",
                            w.unstable_in_a_row, self.policy.respawn_limit
                        ),
                    );
                    self.outcome.get_or_insert(nonzero(reason.code()));
                    self.begin_stop(now, Signal::SIGTERM, out);
                    return;
                }
                let delay = self.policy.backoff.delay(w.unstable_in_a_row);
                w.restarts += 1;
                *self
                    .restarts_by_reason
                    .entry(RESTART_CRASH.to_owned())
                    .or_default() += 1;
                let w = &mut self.workers[id];
                let detail = if w.unstable_in_a_row > 0 {
                    format!(
                        ", unstable restart {} of {}",
                        w.unstable_in_a_row, self.policy.respawn_limit
                    )
                } else {
                    String::new()
                };
                log(
                    out,
                    Level::Warn,
                    format!(
                        "worker {wid} (pid {pid}) {reason} after {}; restarting in {}{detail}",
                        human_duration(uptime),
                        human_duration(delay)
                    ),
                );
                if delay.is_zero() {
                    w.slot = Slot::Spawning;
                    out.push(Action::Spawn { id: wid });
                } else {
                    w.slot = Slot::Backoff { until: now + delay };
                }
            }
            Phase::Exited => {}
        }
    }

    fn on_tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        let running = self.phase == Phase::Running;
        let mut failed_replacements = Vec::new();
        for (id, w) in self.workers.iter_mut().enumerate() {
            match &mut w.slot {
                Slot::Backoff { until } if running && *until <= now => {
                    w.slot = Slot::Spawning;
                    out.push(Action::Spawn { id: id as WorkerId });
                }
                Slot::Running {
                    pid,
                    ready: false,
                    ready_deadline,
                    since,
                } if ready_deadline.is_some_and(|d| d <= now) => {
                    *ready_deadline = None;
                    log(
                        out,
                        Level::Warn,
                        format!(
                            "worker {id} (pid {pid}) not ready after {}; killing it",
                            human_duration(now.saturating_duration_since(*since))
                        ),
                    );
                    out.push(Action::SignalGroup {
                        pid: *pid,
                        signal: Signal::SIGKILL,
                    });
                }
                _ => {}
            }
            if let Some((
                Incoming::Running {
                    pid,
                    since,
                    ready_deadline: Some(d),
                },
                _,
            )) = w.incoming
            {
                if d <= now {
                    w.incoming = None;
                    log(
                        out,
                        Level::Error,
                        format!(
                            "worker {id}: replacement pid {pid} not ready after {}; killing it",
                            human_duration(now.saturating_duration_since(since))
                        ),
                    );
                    out.push(Action::SignalGroup {
                        pid,
                        signal: Signal::SIGKILL,
                    });
                    failed_replacements.push((id as WorkerId, pid, since));
                }
            }
        }
        for (id, pid, since) in failed_replacements {
            self.retiring.push(Retiring {
                id,
                pid,
                since,
                deadline: now,
                killed: true,
            });
            self.replacement_failed(id, out);
        }
        for (id, w) in self.workers.iter_mut().enumerate() {
            if let (Some(p), Slot::Running { pid, .. }) = (&mut w.in_place, &w.slot) {
                if !p.killed && p.deadline <= now {
                    p.killed = true;
                    log(
                        out,
                        Level::Warn,
                        format!(
                            "worker {id} (pid {pid}) still running {} after SIGTERM; sending SIGKILL",
                            human_duration(self.policy.grace)
                        ),
                    );
                    out.push(Action::SignalGroup {
                        pid: *pid,
                        signal: Signal::SIGKILL,
                    });
                }
            }
        }
        for r in self.retiring.iter_mut() {
            if !r.killed && r.deadline <= now {
                r.killed = true;
                log(
                    out,
                    Level::Warn,
                    format!(
                        "worker {} old pid {} still running {} after SIGTERM; sending SIGKILL",
                        r.id,
                        r.pid,
                        human_duration(self.policy.grace)
                    ),
                );
                out.push(Action::SignalGroup {
                    pid: r.pid,
                    signal: Signal::SIGKILL,
                });
            }
        }
        if let Phase::Stopping {
            deadline,
            killed: killed @ false,
            signal,
        } = &mut self.phase
        {
            if *deadline <= now {
                *killed = true;
                let signal = *signal;
                for (id, pid) in self.running() {
                    log(
                        out,
                        Level::Error,
                        format!(
                            "worker {id} (pid {pid}) still running {} after {}; sending SIGKILL",
                            human_duration(self.policy.grace),
                            signal.as_str()
                        ),
                    );
                    out.push(Action::SignalGroup {
                        pid,
                        signal: Signal::SIGKILL,
                    });
                    self.outcome.get_or_insert(exit::KILLED_AFTER_GRACE);
                }
            }
        }
    }

    /// Stop accepting, forward `signal` to every running worker, drop
    /// pending restarts, and start the grace period.
    fn begin_stop(&mut self, now: Instant, signal: Signal, out: &mut Vec<Action>) {
        if self.phase != Phase::Running {
            return;
        }
        let deadline = now + self.policy.grace;
        self.phase = Phase::Stopping {
            signal,
            deadline,
            killed: false,
        };
        if self.reload.take().is_some() {
            log(out, Level::Info, "reload cancelled by the stop".to_owned());
        }
        out.push(Action::StopAccepting);
        let mut retire = Vec::new();
        for (id, w) in self.workers.iter_mut().enumerate() {
            w.in_place = None;
            match w.slot {
                Slot::Running { pid, .. } => out.push(Action::SignalGroup { pid, signal }),
                Slot::Backoff { .. } => w.slot = Slot::Done,
                Slot::Spawning | Slot::Done => {}
            }
            match w.incoming {
                Some((Incoming::Running { pid, .. }, _)) => {
                    out.push(Action::SignalGroup { pid, signal });
                    retire.push((id as WorkerId, pid));
                    w.incoming = None;
                }
                // Stopped when its spawn reports.
                Some((Incoming::Spawning, _)) | None => {}
            }
        }
        for (id, pid) in retire {
            self.retire(now, id, pid, deadline);
        }
        self.finish_if_idle(out);
    }

    fn forward(&self, signal: Signal, out: &mut Vec<Action>) {
        for (_, pid) in self.running() {
            out.push(Action::SignalGroup { pid, signal });
        }
    }

    fn finish_if_idle(&mut self, out: &mut Vec<Action>) {
        let idle = self.retiring.is_empty()
            && self.workers.iter().all(|w| {
                matches!(w.slot, Slot::Done | Slot::Backoff { .. }) && w.incoming.is_none()
            });
        if idle && matches!(self.phase, Phase::Stopping { .. }) {
            self.phase = Phase::Exited;
            let code = self.outcome.unwrap_or(exit::SUCCESS);
            log(
                out,
                if code == 0 { Level::Info } else { Level::Error },
                format!("all workers stopped; exiting with code {code}"),
            );
            out.push(Action::Exit(code));
        }
    }
}

fn log(out: &mut Vec<Action>, level: Level, message: String) {
    out.push(Action::Log { level, message });
}

mod replace;

#[cfg(test)]
mod tests;
