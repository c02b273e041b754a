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
//! - Any other signal the runtime listens for is forwarded to every group.
//! - Whatever is left of a worker's process group when the worker exits
//!   is killed, so a restarted worker starts clean.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::backoff::Backoff;
use super::config::human_duration;
use super::exit::{ExitReason, EXIT_FAILURE};

/// 0..N-1, stable across restarts (`COREFIT_WORKER_ID`).
pub type WorkerId = u32;

/// Exit code when a worker had to be killed after the grace period.
pub const EXIT_KILLED_AFTER_GRACE: u8 = 128 + 9;

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
    /// Time between forwarding SIGTERM and SIGKILL.
    pub grace: Duration,
    /// How long a worker may take to become ready; `None` when no
    /// readiness check applies (ready as soon as started).
    pub ready_timeout: Option<Duration>,
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
    /// Start worker `id` and report `Spawned` or `SpawnFailed`.
    Spawn {
        id: WorkerId,
    },
    /// Send `signal` to the process group led by `pid`.
    SignalGroup {
        pid: i32,
        signal: Signal,
    },
    /// Send new connections to worker `id`.
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
    /// Will not run again.
    Done,
}

#[derive(Debug, Clone)]
struct Worker {
    slot: Slot,
    unstable_in_a_row: u32,
    restarts: u32,
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
    phase: Phase,
    /// The exit code decided by the first failure, if any.
    outcome: Option<u8>,
}

impl Supervisor {
    pub fn new(policy: Policy) -> Supervisor {
        let workers = (0..policy.workers.max(1))
            .map(|_| Worker {
                slot: Slot::Spawning,
                unstable_in_a_row: 0,
                restarts: 0,
            })
            .collect();
        Supervisor {
            policy,
            workers,
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

    /// The pids of the running workers, by id.
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
                    w.slot = Slot::Done;
                }
                log(&mut out, Level::Error, format!("worker {id}: {message}"));
                self.outcome.get_or_insert(code);
                self.begin_stop(now, Signal::SIGTERM, &mut out);
                self.finish_if_idle(&mut out);
            }
            Event::Exited { pid, reason } => self.on_exited(now, pid, reason, &mut out),
            Event::Ready { id, pid } => {
                if let Some(Worker {
                    slot:
                        Slot::Running {
                            pid: p,
                            since,
                            ready,
                            ready_deadline,
                        },
                    ..
                }) = self.workers.get_mut(id as usize)
                {
                    if *p == pid && !*ready {
                        *ready = true;
                        *ready_deadline = None;
                        let after = human_duration(now.saturating_duration_since(*since));
                        log(
                            &mut out,
                            Level::Info,
                            format!("worker {id} (pid {pid}) ready after {after}"),
                        );
                        out.push(Action::Route { id });
                    }
                }
            }
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
            Event::Signal(sig) => self.forward(sig, &mut out),
            Event::Tick => self.on_tick(now, &mut out),
        }
        out
    }

    fn on_spawned(&mut self, now: Instant, id: WorkerId, pid: i32, out: &mut Vec<Action>) {
        let Some(w) = self.workers.get_mut(id as usize) else {
            return;
        };
        let ready_deadline = self.policy.ready_timeout.map(|t| now + t);
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
        if ready_deadline.is_none() {
            out.push(Action::Route { id });
        }
        if self.phase != Phase::Running {
            // A spawn that raced with a stop request: stop it too.
            if let Phase::Stopping { signal, .. } = self.phase {
                out.push(Action::SignalGroup { pid, signal });
            }
        }
    }

    fn on_exited(&mut self, now: Instant, pid: i32, reason: ExitReason, out: &mut Vec<Action>) {
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
        out.push(Action::Unroute { id: wid });
        // Whatever the worker left in its group goes with it.
        out.push(Action::SignalGroup {
            pid,
            signal: Signal::SIGKILL,
        });
        let uptime = now.saturating_duration_since(since);

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
                    self.outcome.get_or_insert(EXIT_KILLED_AFTER_GRACE);
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
        self.phase = Phase::Stopping {
            signal,
            deadline: now + self.policy.grace,
            killed: false,
        };
        out.push(Action::StopAccepting);
        for w in &mut self.workers {
            match w.slot {
                Slot::Running { pid, .. } => out.push(Action::SignalGroup { pid, signal }),
                Slot::Backoff { .. } => w.slot = Slot::Done,
                Slot::Spawning | Slot::Done => {}
            }
        }
        self.finish_if_idle(out);
    }

    fn forward(&self, signal: Signal, out: &mut Vec<Action>) {
        for (_, pid) in self.running() {
            out.push(Action::SignalGroup { pid, signal });
        }
    }

    fn finish_if_idle(&mut self, out: &mut Vec<Action>) {
        let idle = self
            .workers
            .iter()
            .all(|w| matches!(w.slot, Slot::Done | Slot::Backoff { .. }));
        if idle && matches!(self.phase, Phase::Stopping { .. }) {
            self.phase = Phase::Exited;
            let code = self.outcome.unwrap_or(0);
            log(
                out,
                if code == 0 { Level::Info } else { Level::Error },
                format!("all workers stopped; exiting with code {code}"),
            );
            out.push(Action::Exit(code));
        }
    }
}

fn nonzero(code: u8) -> u8 {
    if code == 0 {
        EXIT_FAILURE
    } else {
        code
    }
}

fn log(out: &mut Vec<Action>, level: Level, message: String) {
    out.push(Action::Log { level, message });
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
