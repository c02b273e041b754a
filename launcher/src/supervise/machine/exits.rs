//! A reaped child: an old process leaving, a replacement that died, or a
//! worker's current process (restarted as [`super::backoff`] judges the
//! crash: at once, or after a backoff, up to the respawn limit; or the end
//! of the run).

use std::time::Instant;

use nix::sys::signal::Signal;

use super::slot::{New, Proc, Slot};
use super::{backoff, notice, Action, Notice, Phase, Restart, Supervisor, WorkerId};
use crate::exit::{nonzero, ExitReason};

impl Supervisor {
    pub(super) fn on_exited(
        &mut self,
        now: Instant,
        pid: i32,
        reason: ExitReason,
        out: &mut Vec<Action>,
    ) {
        if let Some(i) = self.leaving.iter().position(|r| r.pid == pid) {
            let r = self.leaving.remove(i);
            out.push(kill(pid));
            notice(
                out,
                Notice::RetiredStopped {
                    worker: r.id,
                    pid,
                    reason,
                },
            );
            self.finish_if_idle(out);
            return;
        }
        if let Some(id) = self.workers.iter().position(
            |w| matches!(w.slot, Slot::Replacing { new: New::Running(n), .. } if n.pid == pid),
        ) {
            let wid = id as WorkerId;
            if let Slot::Replacing { old, .. } = self.workers[id].slot {
                self.workers[id].slot = Slot::Running(old);
            }
            out.push(kill(pid));
            notice(
                out,
                Notice::ReplacementExited {
                    worker: wid,
                    pid,
                    reason,
                },
            );
            self.replacement_failed(wid, out);
            self.finish_if_idle(out);
            return;
        }
        let Some(id) = self
            .workers
            .iter()
            .position(|w| w.slot.current().is_some_and(|p| p.pid == pid))
        else {
            return; // an adopted orphan, reaped; nothing else to do
        };
        let reaped = Reaped { id, pid, reason };
        if self.phase == Phase::Running && self.replaced_on_exit(now, reaped, out) {
            return;
        }
        self.on_current_exited(now, reaped, out);
    }

    /// Worker `id`'s current process `pid` exited while it was being
    /// replaced: the replacement goes on. False when it was not.
    fn replaced_on_exit(&mut self, now: Instant, r: Reaped, out: &mut Vec<Action>) -> bool {
        let Reaped { id, pid, reason } = r;
        let wid = id as WorkerId;
        match self.workers[id].slot {
            Slot::Restarting { why, .. } => {
                // Stopped on purpose, to be started again.
                out.push(kill(pid));
                self.count_restart(id, why);
                let w = &mut self.workers[id];
                w.crashes_in_a_row = 0;
                w.slot = Slot::Spawning;
                notice(
                    out,
                    Notice::RestartedInPlace {
                        worker: wid,
                        pid,
                        reason,
                        why,
                    },
                );
                out.push(Action::Spawn { id: wid });
                true
            }
            Slot::Replacing { new, why, .. } => {
                // The old process died while its replacement starts: the
                // replacement takes its place (no Unroute: that would
                // cancel the replacement's readiness check).
                out.push(kill(pid));
                notice(
                    out,
                    Notice::ExitedWhileReplaced {
                        worker: wid,
                        pid,
                        reason,
                        why,
                    },
                );
                self.count_restart(id, Restart::Crash);
                match new {
                    New::Spawning => self.workers[id].slot = Slot::Spawning,
                    New::Running(n) => {
                        let ready = n.ready_deadline.is_none();
                        self.workers[id].slot = Slot::Running(Proc {
                            ready,
                            ready_at: ready.then_some(n.since),
                            ..n
                        });
                        if ready {
                            out.push(Action::Route { id: wid });
                            self.step_done(now, wid, out);
                        }
                    }
                }
                true
            }
            _ => false,
        }
    }

    /// Worker `id`'s current process `pid` exited: while stopping, it is
    /// done; else restarted (with backoff) or, without restarts, the run
    /// ends with its code.
    fn on_current_exited(&mut self, now: Instant, r: Reaped, out: &mut Vec<Action>) {
        let Reaped { id, pid, reason } = r;
        let wid = id as WorkerId;
        let Some(&current) = self.workers[id].slot.current() else {
            return;
        };
        let uptime = current.age(now);
        let ready = current.ready;
        out.push(Action::Unroute { id: wid });
        // Whatever the worker left in its group goes with it.
        out.push(kill(pid));

        match self.phase {
            Phase::Stopping { signal, .. } => {
                let w = &mut self.workers[id];
                w.slot = match w.slot {
                    // Its replacement's spawn still reports: stopped then.
                    Slot::Replacing {
                        new: New::Spawning,
                        why,
                        ..
                    } => Slot::Abandoned { why },
                    _ => Slot::Empty,
                };
                if reason.obeyed(signal as i32) {
                    notice(
                        out,
                        Notice::Stopped {
                            worker: wid,
                            pid,
                            reason,
                        },
                    );
                } else {
                    notice(
                        out,
                        Notice::FailedWhileStopping {
                            worker: wid,
                            pid,
                            reason,
                        },
                    );
                    self.outcome.get_or_insert(nonzero(reason.code()));
                }
                self.finish_if_idle(out);
            }
            Phase::Running if !self.policy.restart => {
                self.workers[id].slot = Slot::Empty;
                notice(
                    out,
                    Notice::Exited {
                        worker: wid,
                        pid,
                        reason,
                        uptime,
                    },
                );
                self.outcome.get_or_insert(reason.code());
                self.begin_stop(now, Signal::SIGTERM, out);
            }
            Phase::Running if cannot_run(reason) && !ready && !self.any_ready() => {
                self.workers[id].slot = Slot::Empty;
                notice(
                    out,
                    Notice::CannotRun {
                        worker: wid,
                        pid,
                        reason,
                    },
                );
                self.outcome.get_or_insert(reason.code());
                self.begin_stop(now, Signal::SIGTERM, out);
            }
            Phase::Running => {
                let limit = self.policy.respawn_limit;
                let w = &mut self.workers[id];
                let crash = backoff::judge(
                    self.policy.min_uptime,
                    self.policy.backoff,
                    current.up_since_ready(now),
                    w.crashes_in_a_row,
                );
                w.crashes_in_a_row = crash.in_a_row;
                if crash.in_a_row > limit {
                    w.slot = Slot::Empty;
                    notice(
                        out,
                        Notice::RespawnLimit {
                            worker: wid,
                            pid,
                            reason,
                            failures: crash.in_a_row,
                            ready,
                            window: backoff::window(self.policy.min_uptime),
                            limit,
                        },
                    );
                    self.outcome.get_or_insert(nonzero(reason.code()));
                    self.begin_stop(now, Signal::SIGTERM, out);
                    return;
                }
                let delay = crash.delay;
                self.count_restart(id, Restart::Crash);
                notice(
                    out,
                    Notice::Restarting {
                        worker: wid,
                        pid,
                        reason,
                        uptime,
                        delay,
                        in_a_row: crash.in_a_row,
                        limit,
                    },
                );
                let w = &mut self.workers[id];
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
}

/// A worker's current process, reaped: the worker's index, its pid, and
/// why it ended.
#[derive(Debug, Clone, Copy)]
struct Reaped {
    id: usize,
    pid: i32,
    reason: ExitReason,
}

/// The shell's codes for a command that cannot run: 126 (found, not
/// executable; corefit's shim refusing an exec) and 127 (not found).
fn cannot_run(reason: ExitReason) -> bool {
    matches!(reason, ExitReason::Code(126 | 127))
}

impl Supervisor {
    /// Some worker's current process is ready (the run has served).
    fn any_ready(&self) -> bool {
        self.workers
            .iter()
            .any(|w| w.slot.current().is_some_and(|p| p.ready))
    }
}

pub(super) fn kill(pid: i32) -> Action {
    Action::SignalGroup {
        pid,
        signal: Signal::SIGKILL,
    }
}
