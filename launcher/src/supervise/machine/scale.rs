//! `Scale`: grow by spawning new ids, shrink by retiring the highest.
//! `Resize`: scale, then refresh the workers started under an older
//! environment generation, as in a rolling reload.

use std::time::Instant;

use nix::sys::signal::Signal;

use super::slot::{New, Slot, Worker};
use super::{notice, Action, Notice, Phase, Reload, Supervisor, WorkerId};

impl Supervisor {
    /// Runs `n` workers from now on.
    pub(super) fn scale(&mut self, now: Instant, n: u32, out: &mut Vec<Action>) {
        if self.phase != Phase::Running || n == 0 || n == self.desired {
            return;
        }
        let old = self.desired;
        notice(out, Notice::Scaling { from: old, to: n });
        self.desired = n;
        if let Some(r) = &mut self.reload {
            r.pending.retain(|&id| id < n);
        }
        if n > old {
            while self.workers.len() < n as usize {
                self.workers.push(Worker::new(Slot::Empty));
            }
            for id in old..n {
                let w = &mut self.workers[id as usize];
                if w.slot == Slot::Empty {
                    w.slot = Slot::Spawning;
                    out.push(Action::Spawn { id });
                }
            }
            return;
        }
        let grace = self.policy.grace;
        let term = |pid| Action::SignalGroup {
            pid,
            signal: Signal::SIGTERM,
        };
        for id in n..old {
            let w = &mut self.workers[id as usize];
            let slot = std::mem::replace(&mut w.slot, Slot::Empty);
            if let Slot::Replacing {
                new: New::Running(p),
                ..
            } = slot
            {
                out.push(term(p.pid));
                self.retire(now, id, p.pid, now + grace);
            }
            match slot {
                Slot::Running(p)
                | Slot::Replacing { old: p, .. }
                | Slot::Restarting { old: p, .. } => {
                    notice(
                        out,
                        Notice::ScaledAway {
                            worker: id,
                            pid: p.pid,
                        },
                    );
                    out.push(Action::Unroute { id });
                    out.push(term(p.pid));
                    self.retire(now, id, p.pid, now + grace);
                }
                // A spawn in flight is stopped when it reports.
                Slot::Spawning => self.workers[id as usize].slot = Slot::Spawning,
                Slot::Backoff { .. } | Slot::Empty | Slot::Abandoned { .. } => {}
            }
            if let Some(r) = &mut self.reload {
                r.active.remove(&id);
            }
        }
        self.pump_reload(now, out);
    }

    /// A live resize: `workers` from now on, and processes started from
    /// now on get environment generation `env`; the ready workers started
    /// under an older one are replaced as in a rolling reload.
    pub(super) fn resize(&mut self, now: Instant, workers: u32, env: u64, out: &mut Vec<Action>) {
        if self.phase != Phase::Running {
            return;
        }
        self.env = env;
        self.scale(now, workers, out);
        if self.reload.is_some() {
            // The next resize tick asks again once the reload is over.
            return;
        }
        let pending: std::collections::VecDeque<WorkerId> = self.stale().collect();
        if pending.is_empty() {
            return;
        }
        notice(
            out,
            Notice::Refreshing {
                workers: pending.len(),
                parallel: self.policy.reload_parallelism.max(1),
            },
        );
        self.reload = Some(Reload {
            pending,
            refresh: true,
            ..Reload::default()
        });
        self.pump_reload(now, out);
    }

    /// The wanted workers whose serving process is ready, on its own, and
    /// was started under an older environment generation than the
    /// current one.
    pub(super) fn stale(&self) -> impl Iterator<Item = WorkerId> + '_ {
        (0..self.desired).filter(|&id| {
            matches!(self.workers.get(id as usize).map(|w| w.slot),
                Some(Slot::Running(p)) if p.ready && p.env != self.env)
        })
    }
}
