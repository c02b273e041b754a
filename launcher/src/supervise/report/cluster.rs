//! The supervisor's state as the outside sees it: the [`ClusterSnapshot`]
//! behind `/health`, `/metrics` and `corefit status`, and the cap that
//! scaling stays within. Pure: built from the plan, the state machine's
//! process list and the latest samples.

use std::time::{Duration, Instant};

use super::sampler::Sampler;
use crate::control::scale::{ScaleCap, ABSOLUTE_MAX_WORKERS};
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
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// The most workers `scale` and SIGTTIN go to without `--force`: the
/// plan's tightest cap (CPUs unless oversubscription is allowed, memory,
/// an explicit maximum), never below the count the plan chose.
pub fn scale_cap(plan: &Plan) -> ScaleCap {
    let mut cap: Option<(u32, String)> = None;
    let mut consider = |max: u32, why: String| {
        if cap.as_ref().is_none_or(|(m, _)| max < *m) {
            cap = Some((max, why));
        }
    };
    if !plan.oversubscribe {
        consider(plan.caps.cpu, format!("{} CPU(s)", plan.caps.cpu));
    }
    if let Some(m) = plan.caps.memory {
        consider(m, format!("memory for {m} worker(s)"));
    }
    if let Some(m) = plan.caps.max_workers {
        consider(m, format!("a maximum of {m} worker(s)"));
    }
    let (max, why) = cap.unwrap_or((ABSOLUTE_MAX_WORKERS, "the absolute maximum".to_owned()));
    ScaleCap {
        max: max.max(plan.workers).min(ABSOLUTE_MAX_WORKERS),
        why,
    }
}

/// The memory ceiling per worker from the plan: its share of the memory
/// limit when memory is limited, else the memory per worker.
pub fn plan_memory_budget(plan: &Plan) -> u64 {
    plan.worker_memory_share
        .filter(|_| plan.memory_limited)
        .unwrap_or(plan.memory_per_worker)
}
