//! A point-in-time picture of the cluster: what `/health`, `/metrics` and
//! `corefit status` show. Plain data, filled in by the supervisor.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Where a worker is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerPhase {
    /// Started, not ready yet.
    Starting,
    /// Ready and receiving connections.
    Ready,
    /// Being stopped (reload, scale-down, memory ceiling, shutdown).
    Stopping,
    /// Waiting to be restarted after a crash.
    Backoff,
}

impl WorkerPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerPhase::Starting => "starting",
            WorkerPhase::Ready => "ready",
            WorkerPhase::Stopping => "stopping",
            WorkerPhase::Backoff => "backoff",
        }
    }
}

/// One worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerSnapshot {
    /// 0..N-1, as `COREFIT_WORKER_ID`.
    pub id: u32,
    pub pid: Option<u32>,
    pub phase: WorkerPhase,
    pub uptime_seconds: f64,
    /// Restarts of this worker id since corefit started.
    pub restarts: u32,
    /// CPU use over the last sampling interval, in percent of one CPU.
    pub cpu_percent: Option<f64>,
    /// CPU time of the worker's process tree.
    pub cpu_seconds: f64,
    /// Resident memory of the worker's process tree.
    pub rss_bytes: u64,
}

/// The whole cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterSnapshot {
    /// `single` or `cluster`.
    pub mode: String,
    pub platform: String,
    /// The socket strategy.
    pub socket: String,
    /// Workers wanted now (after scaling).
    pub desired: u32,
    pub workers: Vec<WorkerSnapshot>,
    /// Effective CPUs the plan saw.
    pub cpu_limit: f64,
    /// The memory the plan saw as the container's limit, if limited.
    pub memory_limit_bytes: Option<u64>,
    /// Restarts counted by reason (`crash`, `memory`, `unresponsive`, `reload`...).
    pub restarts_by_reason: BTreeMap<String, u64>,
    pub reloading: bool,
    pub uptime_seconds: f64,
    /// The proxy's client connections (`--socket proxy` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxySnapshot>,
    /// corefit's cgroup: CFS throttling and pressure, once sampled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<super::throttle::CgroupSnapshot>,
    /// When the uptimes were measured. The supervisor publishes a snapshot
    /// when something happens, which may be seconds before a request: the
    /// admin endpoint ages it with [`ClusterSnapshot::at`]. Not serialized.
    #[serde(skip)]
    pub taken: Option<Instant>,
}

/// The proxy's client connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxySnapshot {
    /// Open now.
    pub open: u64,
    /// Refused (answered 503) since start because `max` were open.
    pub refused: u64,
    /// `--max-connections`, resolved.
    pub max: u64,
}

impl ClusterSnapshot {
    /// Workers ready to serve.
    pub fn ready(&self) -> u32 {
        self.workers
            .iter()
            .filter(|w| w.phase == WorkerPhase::Ready)
            .count() as u32
    }

    /// Resident memory of all workers.
    pub fn memory_used_bytes(&self) -> u64 {
        self.workers.iter().map(|w| w.rss_bytes).sum()
    }

    /// The snapshot as of `now`: the uptimes advanced by the time since it
    /// was [`taken`](ClusterSnapshot::taken) (every process's clock runs; a
    /// worker waiting to restart has none). Unchanged when `taken` is
    /// unknown or in the future.
    pub fn at(&self, now: Instant) -> ClusterSnapshot {
        let mut s = self.clone();
        let Some(age) = self.taken.and_then(|t| now.checked_duration_since(t)) else {
            return s;
        };
        let age = age.as_secs_f64();
        s.uptime_seconds = millis(s.uptime_seconds + age);
        for w in s.workers.iter_mut().filter(|w| w.pid.is_some()) {
            w.uptime_seconds = millis(w.uptime_seconds + age);
        }
        s.taken = Some(now);
        s
    }

    /// Healthy when every desired worker is ready.
    pub fn healthy(&self) -> bool {
        self.ready() >= self.desired && self.desired > 0
    }
}

/// Seconds rounded to the millisecond, as the snapshot reports them.
pub fn millis(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// CPU percent of one CPU between two samples of a tree's CPU seconds.
pub fn cpu_percent(before: f64, after: f64, elapsed_seconds: f64) -> Option<f64> {
    if elapsed_seconds <= 0.0 || !elapsed_seconds.is_finite() || after < before {
        return None;
    }
    Some(((after - before) / elapsed_seconds * 100.0 * 10.0).round() / 10.0)
}

#[cfg(test)]
pub(crate) fn example() -> ClusterSnapshot {
    ClusterSnapshot {
        mode: "cluster".into(),
        platform: "kubernetes".into(),
        socket: "proxy".into(),
        desired: 2,
        workers: vec![
            WorkerSnapshot {
                id: 0,
                pid: Some(101),
                phase: WorkerPhase::Ready,
                uptime_seconds: 3725.0,
                restarts: 0,
                cpu_percent: Some(12.5),
                cpu_seconds: 40.25,
                rss_bytes: 50 << 20,
            },
            WorkerSnapshot {
                id: 1,
                pid: Some(102),
                phase: WorkerPhase::Starting,
                uptime_seconds: 1.5,
                restarts: 3,
                cpu_percent: None,
                cpu_seconds: 0.5,
                rss_bytes: 20 << 20,
            },
        ],
        cpu_limit: 2.0,
        memory_limit_bytes: Some(1 << 30),
        proxy: Some(ProxySnapshot {
            open: 7,
            refused: 2,
            max: 9936,
        }),
        cgroup: Some(super::throttle::CgroupSnapshot {
            stats: crate::probe::cgroup_stats::CgroupStats {
                throttling: Some(crate::probe::cgroup_stats::Throttling {
                    periods: 120,
                    throttled_periods: 30,
                    throttled_seconds: 2.5,
                    file: "/sys/fs/cgroup/cpu/app/cpu.stat".into(),
                }),
                cpu_pressure: Some(crate::probe::cgroup_stats::Pressure {
                    some: crate::probe::cgroup_stats::Stall {
                        avg10: 12.5,
                        avg60: 3.0,
                        avg300: 1.0,
                        total_seconds: 4.5,
                    },
                    full: None,
                }),
                memory_pressure: None,
                io_pressure: None,
            },
            throttled_percent: Some(25.0),
            throttling_episodes: 1,
        }),
        restarts_by_reason: [("crash".to_owned(), 3)].into_iter().collect(),
        reloading: false,
        uptime_seconds: 3800.0,
        taken: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_ages_the_uptimes_of_running_processes_only() {
        let t0 = Instant::now();
        let mut s = example();
        s.workers[1].pid = None;
        s.workers[1].phase = WorkerPhase::Backoff;
        s.workers[1].uptime_seconds = 0.0;
        assert_eq!(s.at(t0), s, "unknown age: unchanged");
        s.taken = Some(t0);
        let later = s.at(t0 + std::time::Duration::from_millis(2500));
        assert_eq!(later.uptime_seconds, 3802.5);
        assert_eq!(later.workers[0].uptime_seconds, 3727.5);
        assert_eq!(later.workers[1].uptime_seconds, 0.0, "no process, no clock");
        // Aging twice from the same snapshot does not add up.
        let again = s.at(t0 + std::time::Duration::from_millis(2500));
        assert_eq!(again.uptime_seconds, 3802.5);
        // A clock read before the snapshot leaves it as it is.
        let mut future = s.clone();
        future.taken = Some(t0 + std::time::Duration::from_secs(60));
        assert_eq!(future.at(t0).uptime_seconds, 3800.0);
    }

    #[test]
    fn health_needs_every_desired_worker_ready() {
        let mut s = example();
        assert_eq!(s.ready(), 1);
        assert!(!s.healthy());
        s.workers[1].phase = WorkerPhase::Ready;
        assert!(s.healthy());
        assert_eq!(s.memory_used_bytes(), 70 << 20);
    }

    #[test]
    fn cpu_percent_of_one_cpu() {
        assert_eq!(cpu_percent(1.0, 1.5, 1.0), Some(50.0));
        assert_eq!(cpu_percent(1.0, 3.0, 1.0), Some(200.0));
        assert_eq!(cpu_percent(2.0, 1.0, 1.0), None);
        assert_eq!(cpu_percent(1.0, 2.0, 0.0), None);
    }
}
