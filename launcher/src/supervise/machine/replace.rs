//! Replacing a worker's process: rolling reloads, memory ceilings and
//! liveness probes. The replacement starts beside the old process
//! (`Slot::Replacing`) and is routed in its place once ready, or, with
//! `replace_in_place`, the old process stops first (`Slot::Restarting`).

use std::collections::VecDeque;
use std::time::Instant;

use nix::sys::signal::Signal;

use super::slot::{New, Proc, Slot};
use super::{notice, Action, Notice, Phase, Reload, Restart, Supervisor, WorkerId};

impl Supervisor {
    /// Counts failed liveness probes; at `probe_failures` in a row the
    /// worker is replaced (it no longer gets new connections meanwhile).
    pub(super) fn on_probe(
        &mut self,
        now: Instant,
        id: WorkerId,
        pid: i32,
        ok: bool,
        out: &mut Vec<Action>,
    ) {
        let limit = self.policy.probe_failures;
        let Some(w) = self.workers.get_mut(id as usize) else {
            return;
        };
        let current = w.slot.current().is_some_and(|p| p.pid == pid && p.ready);
        if !current || limit == 0 || self.phase != Phase::Running {
            return;
        }
        if ok {
            w.probe_failures = 0;
            return;
        }
        w.probe_failures += 1;
        if w.probe_failures < limit || !matches!(w.slot, Slot::Running(_)) {
            return;
        }
        let failures = w.probe_failures;
        w.probe_failures = 0;
        notice(
            out,
            Notice::Unresponsive {
                worker: id,
                pid,
                failures,
            },
        );
        if !self.policy.replace_in_place {
            // A hung worker gets no new connections while it is replaced
            // (before the Spawn: the runtime ties checks to the id).
            out.push(Action::Unroute { id });
        }
        self.replace(now, id, Restart::Unresponsive, out);
    }

    pub(super) fn on_memory(
        &mut self,
        now: Instant,
        id: WorkerId,
        pid: i32,
        rss_bytes: u64,
        limit_bytes: u64,
        out: &mut Vec<Action>,
    ) {
        let current = self
            .workers
            .get(id as usize)
            .and_then(|w| w.slot.current())
            .is_some_and(|p| p.pid == pid);
        if !current || self.phase != Phase::Running {
            return;
        }
        if self.replace(now, id, Restart::Memory, out) {
            notice(
                out,
                Notice::AboveCeiling {
                    worker: id,
                    pid,
                    rss_bytes,
                    limit_bytes,
                },
            );
        }
    }

    /// Starts replacing worker `id`; false when it is not running and
    /// ready or is already being replaced.
    pub(super) fn replace(
        &mut self,
        now: Instant,
        id: WorkerId,
        why: Restart,
        out: &mut Vec<Action>,
    ) -> bool {
        let in_place = self.policy.replace_in_place;
        let grace = self.policy.grace;
        let desired = self.desired;
        let Some(w) = self.workers.get_mut(id as usize) else {
            return false;
        };
        let Slot::Running(
            old @ Proc {
                pid, ready: true, ..
            },
        ) = w.slot
        else {
            return false;
        };
        if id >= desired {
            return false;
        }
        if in_place {
            w.slot = Slot::Restarting {
                old,
                why,
                deadline: now + grace,
                killed: false,
            };
            notice(
                out,
                Notice::StoppingToRestart {
                    worker: id,
                    pid,
                    why,
                },
            );
            out.push(Action::Unroute { id });
            out.push(Action::SignalGroup {
                pid,
                signal: Signal::SIGTERM,
            });
        } else {
            w.slot = Slot::Replacing {
                old,
                new: New::Spawning,
                why,
            };
            notice(
                out,
                Notice::ReplacementStarting {
                    worker: id,
                    old: pid,
                    why,
                },
            );
            out.push(Action::Spawn { id });
        }
        true
    }

    /// The replacement of worker `id` is ready: route it in the old
    /// process's place and retire the old one.
    pub(super) fn promote(&mut self, now: Instant, id: WorkerId, out: &mut Vec<Action>) {
        let grace = self.policy.grace;
        let Slot::Replacing {
            old,
            new: New::Running(n),
            why,
        } = self.workers[id as usize].slot
        else {
            return;
        };
        let mut n = n;
        let after = n.mark_ready(now);
        self.workers[id as usize].slot = Slot::Running(n);
        self.count_restart(id as usize, why);
        self.workers[id as usize].crashes_in_a_row = 0;
        out.push(Action::Route { id });
        notice(
            out,
            Notice::ReplacementReady {
                worker: id,
                pid: n.pid,
                after,
                old: old.pid,
                why,
            },
        );
        out.push(Action::SignalGroup {
            pid: old.pid,
            signal: Signal::SIGTERM,
        });
        self.retire(now, id, old.pid, now + grace);
        self.step_done(now, id, out);
    }

    /// A replacement failed: the old process stays; a reload stops here.
    pub(super) fn replacement_failed(&mut self, id: WorkerId, out: &mut Vec<Action>) {
        let kept = self
            .workers
            .get(id as usize)
            .and_then(|w| w.slot.current())
            .map(|p| p.pid);
        let in_reload = self.reload.as_ref().is_some_and(|r| r.active.contains(&id));
        if in_reload {
            let replaced = self.reload.as_ref().map_or(0, |r| r.replaced);
            self.reload = None;
            notice(
                out,
                Notice::ReloadAborted {
                    worker: id,
                    kept,
                    replaced,
                },
            );
        } else {
            notice(out, Notice::ReplacementFailed { worker: id, kept });
        }
    }

    /// Starts a rolling reload, or queues one after the current one.
    pub(super) fn start_reload(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.phase != Phase::Running {
            return;
        }
        if let Some(r) = &mut self.reload {
            r.again = true;
            notice(out, Notice::ReloadQueued);
            return;
        }
        let pending: VecDeque<WorkerId> = (0..self.desired).collect();
        notice(
            out,
            Notice::ReloadStarted {
                workers: pending.len(),
                parallel: self.policy.reload_parallelism.max(1),
            },
        );
        self.reload = Some(Reload {
            pending,
            ..Reload::default()
        });
        self.pump_reload(now, out);
    }

    /// Starts the next replacements; finishes the reload when all are done.
    pub(super) fn pump_reload(&mut self, now: Instant, out: &mut Vec<Action>) {
        let parallel = self.policy.reload_parallelism.max(1) as usize;
        loop {
            let Some(r) = &mut self.reload else { return };
            if r.active.len() >= parallel {
                return;
            }
            let Some(id) = r.pending.pop_front() else {
                break;
            };
            let why = if r.refresh {
                Restart::Resize
            } else {
                Restart::Reload
            };
            if self.replace(now, id, why, out) {
                if let Some(r) = &mut self.reload {
                    r.active.insert(id);
                }
            } else {
                notice(out, Notice::ReloadSkipped { worker: id });
            }
        }
        let Some(r) = &self.reload else { return };
        if r.active.is_empty() {
            let again = r.again;
            notice(
                out,
                Notice::ReloadComplete {
                    replaced: r.replaced,
                },
            );
            self.reload = None;
            if again {
                self.start_reload(now, out);
            }
        }
    }

    /// Worker `id`'s process is running and ready with nothing pending:
    /// if it was a reload step, the step is done.
    pub(super) fn step_done(&mut self, now: Instant, id: WorkerId, out: &mut Vec<Action>) {
        if let Some(r) = &mut self.reload {
            if r.active.remove(&id) {
                r.replaced += 1;
                self.pump_reload(now, out);
            }
        }
    }
}
