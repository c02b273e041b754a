//! The supervisor's replacement rules: rolling reload, scaling, memory
//! ceilings and liveness probes, and the two-process bookkeeping they share
//! (a replacement *incoming* beside the running process, old processes
//! *retiring*). A child of `machine`, so it shares the state's private types.

use std::time::Instant;

use nix::sys::signal::Signal;

use super::*;

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
        let current = matches!(w.slot, Slot::Running { pid: p, ready: true, .. } if p == pid);
        if !current || limit == 0 || self.phase != Phase::Running {
            return;
        }
        if ok {
            w.probe_failures = 0;
            return;
        }
        w.probe_failures += 1;
        if w.probe_failures < limit || w.incoming.is_some() || w.in_place.is_some() {
            return;
        }
        let failures = w.probe_failures;
        w.probe_failures = 0;
        log(
            out,
            Level::Warn,
            format!(
                "worker {id} (pid {pid}) failed {failures} liveness probes in a row: replacing it"
            ),
        );
        if !self.policy.replace_in_place {
            // A hung worker gets no new connections while it is replaced
            // (before the Spawn: the runtime ties checks to the id).
            out.push(Action::Unroute { id });
        }
        self.replace(now, id, RESTART_UNRESPONSIVE, out);
    }

    /// The replacement of worker `id` is ready: route it in the old
    /// process's place and retire the old one.
    pub(super) fn promote(&mut self, now: Instant, id: WorkerId, out: &mut Vec<Action>) {
        let grace = self.policy.grace;
        let w = &mut self.workers[id as usize];
        let Some((Incoming::Running { pid, since, .. }, why)) = w.incoming.take() else {
            return;
        };
        let old = match w.slot {
            Slot::Running { pid, .. } => Some(pid),
            _ => None,
        };
        w.slot = Slot::Running {
            pid,
            since,
            ready: true,
            ready_deadline: None,
        };
        w.restarts += 1;
        w.unstable_in_a_row = 0;
        *self.restarts_by_reason.entry(why.to_owned()).or_default() += 1;
        out.push(Action::Route { id });
        let after = human_duration(now.saturating_duration_since(since));
        match old {
            Some(old) => {
                log(
                    out,
                    Level::Info,
                    format!(
                        "worker {id}: replacement pid {pid} ready after {after}; routed in place of pid {old}, which is told to stop ({why})"
                    ),
                );
                out.push(Action::SignalGroup {
                    pid: old,
                    signal: Signal::SIGTERM,
                });
                self.retire(now, id, old, now + grace);
            }
            None => log(
                out,
                Level::Info,
                format!("worker {id}: replacement pid {pid} ready after {after}"),
            ),
        }
        self.step_done(now, id, out);
    }

    pub(super) fn retire(&mut self, now: Instant, id: WorkerId, pid: i32, deadline: Instant) {
        self.retiring.push(Retiring {
            id,
            pid,
            since: now,
            deadline,
            killed: false,
        });
    }

    /// Starts a rolling reload, or queues one after the current one.
    pub(super) fn start_reload(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.phase != Phase::Running {
            return;
        }
        if let Some(r) = &mut self.reload {
            r.again = true;
            log(
                out,
                Level::Info,
                "reload requested during a reload: one more round follows this one".to_owned(),
            );
            return;
        }
        let pending: VecDeque<WorkerId> = (0..self.desired).collect();
        log(
            out,
            Level::Info,
            format!(
                "rolling reload of {} worker(s), {} at a time",
                pending.len(),
                self.policy.reload_parallelism.max(1)
            ),
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
            if self.replace(now, id, RESTART_RELOAD, out) {
                if let Some(r) = &mut self.reload {
                    r.active.insert(id);
                }
            } else {
                log(
                    out,
                    Level::Info,
                    format!(
                        "worker {id} is not running and ready: it gets the new code when it starts"
                    ),
                );
            }
        }
        let Some(r) = &self.reload else { return };
        if r.active.is_empty() {
            let again = r.again;
            log(
                out,
                Level::Info,
                format!("reload complete: {} worker(s) replaced", r.replaced),
            );
            self.reload = None;
            if again {
                self.start_reload(now, out);
            }
        }
    }

    /// Starts replacing worker `id`; false when it is not running and
    /// ready or is already being replaced.
    pub(super) fn replace(
        &mut self,
        now: Instant,
        id: WorkerId,
        why: &'static str,
        out: &mut Vec<Action>,
    ) -> bool {
        let in_place = self.policy.replace_in_place;
        let Some(w) = self.workers.get_mut(id as usize) else {
            return false;
        };
        let Slot::Running {
            pid, ready: true, ..
        } = w.slot
        else {
            return false;
        };
        if w.incoming.is_some() || w.in_place.is_some() || id >= self.desired {
            return false;
        }
        if in_place {
            w.in_place = Some(InPlace {
                why,
                deadline: now + self.policy.grace,
                killed: false,
            });
            log(
                out,
                Level::Info,
                format!("worker {id}: stopping pid {pid} to start it again ({why})"),
            );
            out.push(Action::Unroute { id });
            out.push(Action::SignalGroup {
                pid,
                signal: Signal::SIGTERM,
            });
        } else {
            w.incoming = Some((Incoming::Spawning, why));
            log(
                out,
                Level::Info,
                format!("worker {id}: starting a replacement for pid {pid} ({why})"),
            );
            out.push(Action::Spawn { id });
        }
        true
    }

    /// Worker `id`'s current process became ready: if it was a reload
    /// step, the step is done.
    pub(super) fn step_done_if_replaced(
        &mut self,
        now: Instant,
        id: WorkerId,
        out: &mut Vec<Action>,
    ) {
        let w = &self.workers[id as usize];
        if w.incoming.is_none() && w.in_place.is_none() {
            self.step_done(now, id, out);
        }
    }

    pub(super) fn step_done(&mut self, now: Instant, id: WorkerId, out: &mut Vec<Action>) {
        if let Some(r) = &mut self.reload {
            if r.active.remove(&id) {
                r.replaced += 1;
                self.pump_reload(now, out);
            }
        }
    }

    /// A replacement failed: the old process stays; a reload stops here.
    pub(super) fn replacement_failed(&mut self, id: WorkerId, out: &mut Vec<Action>) {
        let old = match self.workers.get(id as usize).map(|w| &w.slot) {
            Some(Slot::Running { pid, .. }) => format!("pid {pid}"),
            _ => "nothing".to_owned(),
        };
        let in_reload = self.reload.as_ref().is_some_and(|r| r.active.contains(&id));
        if in_reload {
            let replaced = self.reload.as_ref().map_or(0, |r| r.replaced);
            self.reload = None;
            log(
                out,
                Level::Error,
                format!(
                    "reload aborted: worker {id}'s replacement failed; worker {id} keeps {old} \
                     ({replaced} worker(s) were replaced before; the rest keep running the old code)"
                ),
            );
        } else {
            log(out, Level::Warn, format!("worker {id} keeps {old}"));
        }
    }

    /// Runs `n` workers from now on.
    pub(super) fn scale(&mut self, now: Instant, n: u32, out: &mut Vec<Action>) {
        if self.phase != Phase::Running || n == 0 || n == self.desired {
            return;
        }
        let old = self.desired;
        log(
            out,
            Level::Info,
            format!("scaling from {old} to {n} worker(s)"),
        );
        self.desired = n;
        if let Some(r) = &mut self.reload {
            r.pending.retain(|&id| id < n);
        }
        if n > old {
            while self.workers.len() < n as usize {
                let mut w = Worker::new();
                w.slot = Slot::Done;
                self.workers.push(w);
            }
            for id in old..n {
                let w = &mut self.workers[id as usize];
                if w.slot == Slot::Done {
                    w.slot = Slot::Spawning;
                    out.push(Action::Spawn { id });
                }
            }
            return;
        }
        let grace = self.policy.grace;
        for id in n..old {
            let w = &mut self.workers[id as usize];
            w.in_place = None;
            let incoming = w.incoming.take();
            let slot = std::mem::replace(&mut w.slot, Slot::Done);
            if let Some((Incoming::Running { pid, .. }, _)) = incoming {
                out.push(Action::SignalGroup {
                    pid,
                    signal: Signal::SIGTERM,
                });
                self.retire(now, id, pid, now + grace);
            }
            match slot {
                Slot::Running { pid, .. } => {
                    log(
                        out,
                        Level::Info,
                        format!("worker {id} (pid {pid}) scaled away: stopping it"),
                    );
                    out.push(Action::Unroute { id });
                    out.push(Action::SignalGroup {
                        pid,
                        signal: Signal::SIGTERM,
                    });
                    self.retire(now, id, pid, now + grace);
                }
                // A spawn in flight is stopped when it reports.
                Slot::Spawning => self.workers[id as usize].slot = Slot::Spawning,
                Slot::Backoff { .. } | Slot::Done => {}
            }
            if let Some(r) = &mut self.reload {
                r.active.remove(&id);
            }
        }
        self.pump_reload(now, out);
    }

    pub(super) fn on_memory(
        &mut self,
        now: Instant,
        id: WorkerId,
        pid: i32,
        rss: u64,
        limit: u64,
        out: &mut Vec<Action>,
    ) {
        let current = matches!(
            self.workers.get(id as usize).map(|w| &w.slot),
            Some(Slot::Running { pid: p, .. }) if *p == pid
        );
        if !current || self.phase != Phase::Running {
            return;
        }
        let mib = |b: u64| b / (1024 * 1024);
        if self.replace(now, id, RESTART_MEMORY, out) {
            log(
                out,
                Level::Warn,
                format!(
                    "worker {id} (pid {pid}) uses {} MiB, above its ceiling of {} MiB: restarting it gracefully",
                    mib(rss),
                    mib(limit)
                ),
            );
        }
    }
}
