//! Stopping and deadlines: SIGTERM/SIGINT start a graceful stop (stop
//! accepting, forward, SIGKILL after the grace period); a `Tick` fires
//! whatever deadline is due (restarts after backoff, readiness, grace
//! periods); other signals are forwarded.

use std::time::Instant;

use nix::sys::signal::Signal;

use super::exits::kill;
use super::slot::{Leaving, New, Slot};
use super::{notice, Action, Notice, Phase, Supervisor, WorkerId};
use crate::exit;

impl Supervisor {
    pub(super) fn on_stop_signal(&mut self, now: Instant, sig: Signal, out: &mut Vec<Action>) {
        if self.phase == Phase::Running {
            notice(
                out,
                Notice::StopRequested {
                    signal: sig,
                    workers: self.running().len(),
                    grace: self.policy.grace,
                },
            );
            self.begin_stop(now, sig, out);
        } else {
            self.forward(sig, out);
        }
    }

    /// Stop accepting, forward `signal` to every running worker, drop
    /// pending restarts, and start the grace period.
    pub(super) fn begin_stop(&mut self, now: Instant, signal: Signal, out: &mut Vec<Action>) {
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
            notice(out, Notice::ReloadCancelled);
        }
        out.push(Action::StopAccepting);
        let mut retire = Vec::new();
        for (id, w) in self.workers.iter_mut().enumerate() {
            if let Some(p) = w.slot.current() {
                out.push(Action::SignalGroup { pid: p.pid, signal });
            }
            match w.slot {
                Slot::Restarting { old, .. } => w.slot = Slot::Running(old),
                Slot::Replacing {
                    old,
                    new: New::Running(n),
                    ..
                } => {
                    out.push(Action::SignalGroup { pid: n.pid, signal });
                    retire.push((id as WorkerId, n.pid));
                    w.slot = Slot::Running(old);
                }
                Slot::Backoff { .. } => w.slot = Slot::Empty,
                // A replacement's spawn in flight is stopped when it reports.
                _ => {}
            }
        }
        for (id, pid) in retire {
            self.retire(now, id, pid, deadline);
        }
        self.finish_if_idle(out);
    }

    pub(super) fn forward(&self, signal: Signal, out: &mut Vec<Action>) {
        for (_, pid) in self.running() {
            out.push(Action::SignalGroup { pid, signal });
        }
    }

    /// Puts `pid` (no longer worker `id`'s) on its way out.
    pub(super) fn retire(&mut self, now: Instant, id: WorkerId, pid: i32, deadline: Instant) {
        self.leaving.push(Leaving {
            id,
            pid,
            since: now,
            deadline,
            killed: false,
        });
    }

    pub(super) fn finish_if_idle(&mut self, out: &mut Vec<Action>) {
        let idle = self.leaving.is_empty()
            && self
                .workers
                .iter()
                .all(|w| matches!(w.slot, Slot::Empty | Slot::Backoff { .. }));
        if idle && matches!(self.phase, Phase::Stopping { .. }) {
            self.phase = Phase::Exited;
            let code = self.outcome.unwrap_or(exit::SUCCESS);
            notice(out, Notice::AllStopped { code });
            out.push(Action::Exit(code));
        }
    }

    pub(super) fn on_tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        let running = self.phase == Phase::Running;
        let grace = self.policy.grace;
        let mut failed_replacements = Vec::new();
        for (id, w) in self.workers.iter_mut().enumerate() {
            let wid = id as WorkerId;
            match &mut w.slot {
                Slot::Backoff { until } if running && *until <= now => {
                    w.slot = Slot::Spawning;
                    out.push(Action::Spawn { id: wid });
                }
                Slot::Running(p) if p.ready_overdue(now) => {
                    p.ready_deadline = None;
                    notice(
                        out,
                        Notice::NotReady {
                            worker: wid,
                            pid: p.pid,
                            after: p.age(now),
                        },
                    );
                    out.push(kill(p.pid));
                }
                Slot::Replacing {
                    old,
                    new: New::Running(n),
                    ..
                } if n.ready_overdue(now) => {
                    let (pid, since, after) = (n.pid, n.since, n.age(now));
                    w.slot = Slot::Running(*old);
                    notice(
                        out,
                        Notice::ReplacementNotReady {
                            worker: wid,
                            pid,
                            after,
                        },
                    );
                    out.push(kill(pid));
                    failed_replacements.push((wid, pid, since));
                }
                _ => {}
            }
        }
        for (id, pid, since) in failed_replacements {
            self.leaving.push(Leaving {
                id,
                pid,
                since,
                deadline: now,
                killed: true,
            });
            self.replacement_failed(id, out);
        }
        for (id, w) in self.workers.iter_mut().enumerate() {
            if let Slot::Restarting {
                old,
                deadline,
                killed,
                ..
            } = &mut w.slot
            {
                if !*killed && *deadline <= now {
                    *killed = true;
                    notice(
                        out,
                        Notice::InPlaceKilled {
                            worker: id as WorkerId,
                            pid: old.pid,
                            grace,
                        },
                    );
                    out.push(kill(old.pid));
                }
            }
        }
        for r in self.leaving.iter_mut() {
            if !r.killed && r.deadline <= now {
                r.killed = true;
                notice(
                    out,
                    Notice::RetiredKilled {
                        worker: r.id,
                        pid: r.pid,
                        grace,
                    },
                );
                out.push(kill(r.pid));
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
                    notice(
                        out,
                        Notice::KilledAfterGrace {
                            worker: id,
                            pid,
                            grace,
                            signal,
                        },
                    );
                    out.push(kill(pid));
                    self.outcome.get_or_insert(exit::KILLED_AFTER_GRACE);
                }
            }
        }
    }
}
