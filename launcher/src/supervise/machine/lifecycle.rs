//! A worker coming up: its spawn reported (or failed), its readiness.

use std::time::Instant;

use nix::sys::signal::Signal;

use super::slot::{New, Proc, Slot};
use super::{notice, Action, Notice, Phase, Supervisor, WorkerId};

impl Supervisor {
    pub(super) fn on_spawned(
        &mut self,
        now: Instant,
        id: WorkerId,
        pid: i32,
        out: &mut Vec<Action>,
    ) {
        let desired = self.desired;
        let stopping = match self.phase {
            Phase::Stopping { signal, .. } => Some(signal),
            _ => None,
        };
        let grace = self.policy.grace;
        let ready_deadline = self.policy.ready_timeout.map(|t| now + t);
        let env = self.env;
        let Some(w) = self.workers.get_mut(id as usize) else {
            return;
        };
        let started = Proc {
            pid,
            since: now,
            ready: ready_deadline.is_none(),
            ready_at: ready_deadline.is_none().then_some(now),
            ready_deadline,
            env,
        };
        if let Slot::Replacing {
            new: New::Spawning,
            why,
            ..
        }
        | Slot::Abandoned { why } = w.slot
        {
            notice(
                out,
                Notice::ReplacementStarted {
                    worker: id,
                    pid,
                    why,
                },
            );
        }
        match w.slot {
            Slot::Replacing {
                old,
                new: New::Spawning,
                why,
            } => {
                if let Some(signal) = stopping {
                    w.slot = Slot::Running(old);
                    out.push(Action::SignalGroup { pid, signal });
                    self.retire(now, id, pid, now + grace);
                    return;
                }
                w.slot = Slot::Replacing {
                    old,
                    new: New::Running(Proc {
                        ready: false,
                        ready_at: None,
                        ..started
                    }),
                    why,
                };
                if ready_deadline.is_none() {
                    self.promote(now, id, out);
                }
                return;
            }
            Slot::Abandoned { .. } => {
                w.slot = Slot::Empty;
                let signal = stopping.unwrap_or(Signal::SIGTERM);
                out.push(Action::SignalGroup { pid, signal });
                self.retire(now, id, pid, now + grace);
                return;
            }
            _ => {}
        }
        w.slot = Slot::Running(started);
        notice(
            out,
            Notice::Started {
                worker: id,
                pid,
                restarts: w.restarts,
            },
        );
        if let Some(signal) = stopping {
            // A spawn that raced with a stop request: stop it too.
            out.push(Action::SignalGroup { pid, signal });
            return;
        }
        if id >= desired {
            // Scaled away while its spawn was in flight.
            w.slot = Slot::Empty;
            out.push(Action::SignalGroup {
                pid,
                signal: Signal::SIGTERM,
            });
            self.retire(now, id, pid, now + grace);
            return;
        }
        if ready_deadline.is_none() {
            out.push(Action::Route { id });
            self.step_done(now, id, out);
        }
    }

    pub(super) fn on_spawn_failed(
        &mut self,
        now: Instant,
        id: WorkerId,
        message: String,
        code: u8,
        out: &mut Vec<Action>,
    ) {
        if let Some(w) = self.workers.get_mut(id as usize) {
            let kept = match w.slot {
                Slot::Replacing { old, .. } => Some(Slot::Running(old)),
                Slot::Abandoned { .. } => Some(Slot::Empty),
                _ => None,
            };
            if let Some(kept) = kept {
                // A replacement could not start: keep the old one.
                w.slot = kept;
                notice(
                    out,
                    Notice::ReplacementSpawnFailed {
                        worker: id,
                        message,
                    },
                );
                self.replacement_failed(id, out);
                return;
            }
            w.slot = Slot::Empty;
        }
        notice(
            out,
            Notice::SpawnFailed {
                worker: id,
                message,
                code,
            },
        );
        self.outcome.get_or_insert(code);
        self.begin_stop(now, Signal::SIGTERM, out);
        self.finish_if_idle(out);
    }

    pub(super) fn on_ready(&mut self, now: Instant, id: WorkerId, pid: i32, out: &mut Vec<Action>) {
        let Some(w) = self.workers.get_mut(id as usize) else {
            return;
        };
        match &mut w.slot {
            Slot::Replacing {
                new: New::Running(n),
                ..
            } if n.pid == pid => self.promote(now, id, out),
            Slot::Running(p) if p.pid == pid && !p.ready => {
                let after = p.mark_ready(now);
                notice(
                    out,
                    Notice::Ready {
                        worker: id,
                        pid,
                        after,
                    },
                );
                out.push(Action::Route { id });
                self.step_done(now, id, out);
            }
            _ => {}
        }
    }
}
