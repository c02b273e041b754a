//! The worker lifecycle: one `Slot` per worker id, holding everything
//! that id's processes are doing, so the states cannot contradict each
//! other (a replacement is `Replacing { old, new }`, never a second
//! collection that must agree with the first). Processes no slot owns any
//! more (replaced or scaled away, told to stop) are `Leaving`.

use std::time::{Duration, Instant};

use super::notice::Restart;
use super::{Phase, Supervisor, WorkerId};

/// A worker process corefit started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Proc {
    pub pid: i32,
    pub since: Instant,
    pub ready: bool,
    /// When it became ready (its start when no readiness check applies);
    /// `None` while not ready.
    pub ready_at: Option<Instant>,
    /// Killed when not ready by then (`None`: no deadline, or ready).
    pub ready_deadline: Option<Instant>,
    /// The environment generation it was started with (see `Resize`).
    pub env: u64,
}

impl Proc {
    /// How long since it started.
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.since)
    }

    /// Not ready, and its readiness deadline has passed by `now`.
    pub fn ready_overdue(&self, now: Instant) -> bool {
        !self.ready && self.ready_deadline.is_some_and(|d| d <= now)
    }

    /// It became ready at `now` (no deadline any more): how long that took.
    pub fn mark_ready(&mut self, now: Instant) -> Duration {
        self.ready = true;
        self.ready_at = Some(now);
        self.ready_deadline = None;
        self.age(now)
    }

    /// How long it has been up since it was ready (`None`: never ready).
    pub fn up_since_ready(&self, now: Instant) -> Option<Duration> {
        self.ready
            .then(|| now.saturating_duration_since(self.ready_at.unwrap_or(self.since)))
    }
}

/// A replacement on its way, beside the process it replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum New {
    /// Its spawn is in flight.
    Spawning,
    /// Started; routed in the old one's place once ready.
    Running(Proc),
}

/// What one worker id is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    /// No process, none wanted now (not started, scaled away, or done).
    Empty,
    /// A spawn is in flight.
    Spawning,
    Running(Proc),
    /// Waiting to be restarted.
    Backoff {
        until: Instant,
    },
    /// `old` keeps serving while `new` starts (reload, memory, liveness).
    Replacing {
        old: Proc,
        new: New,
        why: Restart,
    },
    /// `replace_in_place`: `old` was told to stop, to be started again
    /// once it is gone (SIGKILL at `deadline`).
    Restarting {
        old: Proc,
        why: Restart,
        deadline: Instant,
        killed: bool,
    },
    /// A replacement's spawn is in flight but its old process is gone and
    /// corefit is stopping: stopped as soon as it reports.
    Abandoned {
        why: Restart,
    },
}

impl Slot {
    /// The process serving for this id, if any.
    pub fn current(&self) -> Option<&Proc> {
        match self {
            Slot::Running(p) | Slot::Replacing { old: p, .. } | Slot::Restarting { old: p, .. } => {
                Some(p)
            }
            _ => None,
        }
    }
}

/// One worker id's slot and its counters.
#[derive(Debug, Clone)]
pub(super) struct Worker {
    pub slot: Slot,
    /// Crashes in a row (see [`super::backoff`]).
    pub crashes_in_a_row: u32,
    pub restarts: u32,
    /// Liveness probes failed in a row.
    pub probe_failures: u32,
}

impl Worker {
    pub fn new(slot: Slot) -> Worker {
        Worker {
            slot,
            crashes_in_a_row: 0,
            restarts: 0,
            probe_failures: 0,
        }
    }
}

/// An old process on its way out (replaced, scaled away or discarded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Leaving {
    pub id: WorkerId,
    pub pid: i32,
    pub since: Instant,
    pub deadline: Instant,
    pub killed: bool,
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

impl Supervisor {
    /// The earliest time a `Tick` has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        for w in &self.workers {
            match w.slot {
                Slot::Backoff { until } if self.phase == Phase::Running => consider(until),
                Slot::Running(Proc {
                    ready: false,
                    ready_deadline: Some(d),
                    ..
                })
                | Slot::Replacing {
                    new:
                        New::Running(Proc {
                            ready_deadline: Some(d),
                            ..
                        }),
                    ..
                } => consider(d),
                _ => {}
            }
        }
        for r in self.leaving.iter().filter(|r| !r.killed) {
            consider(r.deadline);
        }
        for w in &self.workers {
            if let Slot::Restarting {
                deadline,
                killed: false,
                ..
            } = w.slot
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

    /// The pids of the running workers (current processes), by id.
    pub fn running(&self) -> Vec<(WorkerId, i32)> {
        self.workers
            .iter()
            .enumerate()
            .filter_map(|(id, w)| w.slot.current().map(|p| (id as WorkerId, p.pid)))
            .collect()
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
            let serving = |p: &Proc| {
                if self.phase != Phase::Running {
                    ProcessState::Stopping
                } else if p.ready {
                    ProcessState::Ready
                } else {
                    ProcessState::Starting
                }
            };
            match &w.slot {
                Slot::Running(p) => out.push(view(Some(p.pid), serving(p), Some(p.since))),
                Slot::Replacing { old, new, .. } => {
                    out.push(view(Some(old.pid), serving(old), Some(old.since)));
                    if let New::Running(n) = new {
                        out.push(view(Some(n.pid), ProcessState::Starting, Some(n.since)));
                    }
                }
                Slot::Restarting { old, .. } => {
                    out.push(view(Some(old.pid), ProcessState::Stopping, Some(old.since)))
                }
                Slot::Backoff { .. } => out.push(view(None, ProcessState::Backoff, None)),
                Slot::Spawning if id < self.desired => {
                    out.push(view(None, ProcessState::Starting, None))
                }
                Slot::Spawning | Slot::Empty | Slot::Abandoned { .. } => {}
            }
        }
        for r in &self.leaving {
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
}
