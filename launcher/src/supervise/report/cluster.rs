//! The supervisor's state as the outside sees it: the [`ClusterSnapshot`]
//! behind `/health`, `/metrics` and `corefit status`, and the plan's
//! memory budget per worker. Pure: built from the plan, the state machine's
//! process list and the latest samples.

use std::time::{Duration, Instant};

use super::sampler::Sampler;
use crate::observe::{ClusterSnapshot, WorkerPhase, WorkerSnapshot};
use crate::plan::Plan;
use crate::supervise::machine::{ProcessState, ProcessView, Supervisor};

/// The snapshot now.
pub fn snapshot(
    now: Instant,
    started: Instant,
    plan: &Plan,
    socket: &str,
    supervisor: &Supervisor,
    sampler: &Sampler,
) -> ClusterSnapshot {
    let workers = supervisor
        .processes()
        .into_iter()
        .map(|p| worker(now, &p, sampler))
        .collect();
    ClusterSnapshot {
        mode: plan.mode.as_str().to_owned(),
        platform: plan.platform.id().to_owned(),
        socket: socket.to_owned(),
        desired: supervisor.desired(),
        workers,
        cpu_limit: plan.effective_cpus.value,
        memory_limit_bytes: plan
            .memory
            .as_ref()
            .filter(|_| plan.memory_limited)
            .map(|b| b.value),
        restarts_by_reason: supervisor.restarts_by_reason().clone(),
        reloading: supervisor.reloading(),
        uptime_seconds: secs(now.saturating_duration_since(started)),
        proxy: None,
        cgroup: sampler.cgroup().cloned(),
        taken: Some(now),
    }
}

fn worker(now: Instant, p: &ProcessView, sampler: &Sampler) -> WorkerSnapshot {
    let sample = p.pid.and_then(|pid| sampler.get(pid));
    WorkerSnapshot {
        id: p.id,
        pid: p.pid.map(|pid| pid as u32),
        phase: match p.state {
            ProcessState::Starting => WorkerPhase::Starting,
            ProcessState::Ready => WorkerPhase::Ready,
            ProcessState::Stopping => WorkerPhase::Stopping,
            ProcessState::Backoff => WorkerPhase::Backoff,
        },
        uptime_seconds: p
            .since
            .map_or(0.0, |s| secs(now.saturating_duration_since(s))),
        restarts: p.restarts,
        cpu_percent: sample.and_then(|s| s.cpu_percent),
        cpu_seconds: sample.map_or(0.0, |s| s.cpu_seconds),
        rss_bytes: sample.map_or(0, |s| s.rss_bytes),
    }
}

fn secs(d: Duration) -> f64 {
    crate::observe::snapshot::millis(d.as_secs_f64())
}

/// The memory ceiling per worker from the plan: its share of the memory
/// limit when memory is limited, else the memory per worker.
pub fn plan_memory_budget(plan: &Plan) -> u64 {
    plan.worker_memory_share
        .filter(|_| plan.memory_limited)
        .unwrap_or(plan.memory_per_worker)
}
