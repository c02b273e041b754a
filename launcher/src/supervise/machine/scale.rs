//! `Scale`: grow by spawning new ids, shrink by retiring the highest.

use std::time::Instant;

use nix::sys::signal::Signal;

use super::slot::{New, Slot, Worker};
use super::{notice, Action, Notice, Phase, Supervisor};

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
}
