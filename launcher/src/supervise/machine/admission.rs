//! Whether a request to change the pool is accepted, decided before it
//! becomes an [`Event`](super::Event): `corefit scale`, SIGTTIN/SIGTTOU,
//! `corefit reload` and a live resize. Pure: the machine's state, the
//! plan's caps and the request in; a count or a refusal out.

use thiserror::Error;

use super::{Event, Supervisor};
use crate::control::scale::{resolve, ScaleCap, ScaleError, ScaleTarget, ABSOLUTE_MAX_WORKERS};
use crate::plan::Plan;

/// Why a request was refused (the control socket's error text).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    #[error("corefit is stopping")]
    Stopping,
    #[error("a rolling reload is in progress; scale after it completes")]
    Reloading,
    #[error("{0}")]
    Scale(#[from] ScaleError),
    #[error("this run has one worker on the app's own port; scaling needs --socket proxy, shared or reuseport (or start with 2 workers)")]
    SinglePort,
}

/// A reload request, accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadAdmitted {
    /// A reload starts: `workers`, `parallel` at a time.
    Starts { workers: u32, parallel: u32 },
    /// One runs: one more round follows it.
    Queued,
}

impl Supervisor {
    /// The new count for a scale request, or why not; `None` when it
    /// changes nothing. `single_port_only`: one worker on the app's own
    /// port, which a second worker would fight for.
    pub fn admit_scale(
        &self,
        target: ScaleTarget,
        force: bool,
        cap: &ScaleCap,
        single_port_only: bool,
    ) -> Result<Option<u32>, Refusal> {
        if !self.accepting_commands() {
            return Err(Refusal::Stopping);
        }
        if self.reloading() {
            return Err(Refusal::Reloading);
        }
        let current = self.desired();
        let n = resolve(current, target, cap, force)?;
        if n > 1 && single_port_only {
            return Err(Refusal::SinglePort);
        }
        Ok((n != current).then_some(n))
    }

    /// Whether a reload request is taken.
    pub fn admit_reload(&self) -> Result<ReloadAdmitted, Refusal> {
        if !self.accepting_commands() {
            Err(Refusal::Stopping)
        } else if self.reloading() {
            Ok(ReloadAdmitted::Queued)
        } else {
            Ok(ReloadAdmitted::Starts {
                workers: self.desired(),
                parallel: self.policy.reload_parallelism,
            })
        }
    }

    /// A live resize's new count: the plan's `want` unless the count is
    /// fixed, unchanged, or a reload runs (the next resize tries again).
    pub fn admit_resize(&self, want: u32, fixed: bool) -> Option<u32> {
        (!fixed && want != self.desired() && !self.reloading()).then_some(want)
    }

    /// A live resize's event, or `None` when it changes nothing now: the
    /// new count ([`Self::admit_resize`]) and environment generation
    /// `env` (the runtime's, bumped by each plan that changed the
    /// workers' environment), when a worker is still to be replaced.
    /// Never while stopping or reloading: the next tick asks again.
    pub fn admit_live_resize(&self, want: u32, env: u64, fixed: bool) -> Option<Event> {
        if !self.accepting_commands() || self.reloading() {
            return None;
        }
        let workers = self.admit_resize(want, fixed);
        let refresh = env != self.env || self.stale().next().is_some();
        (workers.is_some() || refresh).then(|| Event::Resize {
            workers: workers.unwrap_or(self.desired),
            env,
        })
    }
}

/// The most workers `scale` and SIGTTIN go to without `--force`: the cap
/// the plan says binds (`plan.caps.binding`: CPUs unless oversubscription
/// is allowed, memory, an explicit maximum), never below the count it
/// chose; the absolute maximum when none applies.
pub fn scale_cap(plan: &Plan) -> ScaleCap {
    let cap = plan
        .caps
        .binding
        .map_or_else(ScaleCap::absolute, |b| ScaleCap::of(b.cap, b.max));
    ScaleCap {
        max: cap.max.max(plan.workers).min(ABSOLUTE_MAX_WORKERS),
        ..cap
    }
}
