//! Watching running workers: each worker tree's memory on an interval
//! (report lines, threshold warnings, `MemoryExceeded` above the
//! ceiling) and HTTP liveness probes of each worker's own port.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Instant;

use super::Run;
use crate::plan::size::human_bytes;
use crate::probe::procstat::all_processes;
use crate::supervise::config::MemoryCeiling;
use crate::supervise::machine::{Event, Level, ProcessState};
use crate::supervise::net::liveness::http_probe;
use crate::supervise::report::cluster::plan_memory_budget;
use crate::supervise::report::sampler::{CgroupFinding, Finding};

impl Run<'_> {
    /// The memory ceiling per worker, if any.
    pub(super) fn ceiling(&self) -> Option<u64> {
        match self.cfg.memory.ceiling {
            MemoryCeiling::Off => None,
            MemoryCeiling::Plan => Some(plan_memory_budget(self.plan())),
            MemoryCeiling::Bytes(b) => Some(b),
        }
    }

    /// Samples every worker's tree; reports, warns, and asks the
    /// supervisor to replace workers above the ceiling.
    pub(super) fn sample(&mut self, queue: &mut VecDeque<Event>) {
        let procs = all_processes(Path::new("/"));
        let views = self.supervisor.processes();
        let pids: Vec<i32> = views.iter().filter_map(|p| p.pid).collect();
        self.sampler.sample(Instant::now(), &procs, &pids);
        for f in self.sampler.sample_cgroup(Instant::now()) {
            let text = match f {
                CgroupFinding::Throttled { window, file } => crate::observe::throttle::warning(
                    &window,
                    &file,
                    self.supervisor.desired(),
                    self.plan().effective_cpus.value,
                ),
                CgroupFinding::Unreadable(e) => {
                    format!("cannot read corefit's cgroup statistics: {e}")
                }
            };
            self.logger.log(Level::Warn, &text);
        }
        let id_of = |pid: i32| views.iter().find(|p| p.pid == Some(pid)).map(|p| p.id);
        if self.cfg.memory.report {
            let mut total = 0;
            let mut parts = Vec::new();
            for v in &views {
                if let Some(s) = v.pid.and_then(|pid| self.sampler.get(pid)) {
                    total += s.rss_bytes;
                    parts.push(format!(
                        "worker {} pid {} {}{}",
                        v.id,
                        v.pid.unwrap_or(0),
                        human_bytes(s.rss_bytes),
                        s.cpu_percent
                            .map(|c| format!(" {c:.1}% cpu"))
                            .unwrap_or_default()
                    ));
                }
            }
            self.logger.info(&format!(
                "memory: {} total; {}",
                human_bytes(total),
                parts.join(", ")
            ));
        }
        let ceiling = self.ceiling();
        for f in self
            .sampler
            .findings(self.cfg.memory.threshold_bytes, ceiling)
        {
            match f {
                Finding::AboveThreshold { pid, rss_bytes } => self.logger.log(
                    Level::Warn,
                    &format!(
                        "worker {} (pid {pid}) uses {}, above the memory threshold of {}",
                        id_of(pid).map_or("?".to_owned(), |i| i.to_string()),
                        human_bytes(rss_bytes),
                        human_bytes(self.cfg.memory.threshold_bytes.unwrap_or(0))
                    ),
                ),
                Finding::AboveCeiling { pid, rss_bytes } => {
                    if let (Some(id), Some(limit)) = (id_of(pid), ceiling) {
                        queue.push_back(Event::MemoryExceeded {
                            id,
                            pid,
                            rss_bytes,
                            limit_bytes: limit,
                        });
                    }
                }
            }
        }
    }

    /// Starts one liveness probe per ready worker with a port of its own;
    /// each reports `Event::Probe`.
    pub(super) fn probe_liveness(&self) {
        let Some(l) = &self.cfg.liveness else { return };
        if !self.settings.liveness {
            return;
        }
        for v in self.supervisor.processes() {
            let (Some(pid), ProcessState::Ready) = (v.pid, v.state) else {
                continue;
            };
            let Some(port) = self.io.get(v.id as usize).and_then(|io| io.port) else {
                continue;
            };
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let events = self.events_tx.clone();
            let (path, timeout, id) = (l.path.clone(), l.timeout, v.id);
            tokio::spawn(async move {
                let ok = http_probe(addr, &path, timeout).await;
                let _ = events.send(Event::Probe { id, pid, ok });
            });
        }
    }
}
