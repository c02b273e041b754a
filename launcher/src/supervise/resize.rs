//! Live resize, decided: when a fresh reading of the limits puts a new
//! plan in force (the hysteresis), what the log says changed, and whether
//! the workers' environment changed with it (then the machine replaces the
//! workers started under the old one, as in a rolling reload: `Resize`).
//! Pure: plans and instants in, decisions out; the runtime
//! (`runtime/control.rs`) probes, plans and performs.
//!
//! Hysteresis: a plan whose CPUs or memory differ from the plan in force
//! is put in force once the same limits have been read on
//! [`SETTLE_READS`] resize ticks in a row (they held for a whole
//! interval), and no sooner than [`MIN_GAP_INTERVALS`] intervals after the
//! previous change. A limit that flips back within an interval changes
//! nothing; one that flaps slower changes the pool at most once every
//! [`MIN_GAP_INTERVALS`] intervals, each change a rolling replacement.

use std::time::{Duration, Instant};

use crate::plan::size::human_bytes;
use crate::plan::Plan;

/// Resize ticks in a row that must read the same new limits.
pub const SETTLE_READS: u32 = 2;

/// The least time between two changes put in force, in resize intervals.
pub const MIN_GAP_INTERVALS: u32 = 5;

/// The limits a plan was made from, as a resize compares them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub cpus: f64,
    pub memory: Option<u64>,
}

impl Reading {
    pub fn of(plan: &Plan) -> Reading {
        Reading {
            cpus: plan.effective_cpus.value,
            memory: plan.memory.as_ref().map(|m| m.value),
        }
    }
}

/// A plan put in force by a resize.
#[derive(Debug, Clone)]
pub struct Applied {
    pub plan: Plan,
    /// What changed, for the log: "CPUs 1 -> 2, memory 1 GiB -> 512 MiB".
    pub changes: String,
    /// The environment generation workers must run with from now on.
    pub env: u64,
}

/// The resize's memory between ticks.
#[derive(Debug, Clone)]
pub struct Resizer {
    interval: Duration,
    /// New limits read, and on how many ticks in a row.
    candidate: Option<(Reading, u32)>,
    last_change: Option<Instant>,
    /// Bumped by each plan put in force whose worker environment differs.
    env: u64,
}

impl Resizer {
    pub fn new(interval: Duration) -> Resizer {
        Resizer {
            interval,
            candidate: None,
            last_change: None,
            env: 0,
        }
    }

    /// The environment generation of the plan in force.
    pub fn env(&self) -> u64 {
        self.env
    }

    /// One tick: `fresh` was just planned from new readings, `in_force`
    /// is the plan in force. The new plan when it is to be put in force
    /// now.
    pub fn tick(&mut self, now: Instant, in_force: &Plan, fresh: Plan) -> Option<Applied> {
        let read = Reading::of(&fresh);
        if read == Reading::of(in_force) {
            self.candidate = None;
            return None;
        }
        let seen = match self.candidate {
            Some((r, n)) if r == read => n + 1,
            _ => 1,
        };
        self.candidate = Some((read, seen));
        let gap = self.interval * MIN_GAP_INTERVALS;
        let gap_over = self
            .last_change
            .is_none_or(|t| now.saturating_duration_since(t) >= gap);
        if seen < SETTLE_READS || !gap_over {
            return None;
        }
        self.candidate = None;
        self.last_change = Some(now);
        if fresh.worker_env != in_force.worker_env {
            self.env += 1;
        }
        Some(Applied {
            changes: changes(in_force, &fresh),
            plan: fresh,
            env: self.env,
        })
    }
}

/// The limits that differ between two plans, in words; memory in exact
/// bytes when both sizes would read the same rounded.
pub fn changes(old: &Plan, new: &Plan) -> String {
    let (a, b) = (Reading::of(old), Reading::of(new));
    let mut out = Vec::new();
    if a.cpus != b.cpus {
        out.push(format!("CPUs {} -> {}", a.cpus, b.cpus));
    }
    if a.memory != b.memory {
        let show = |m: Option<u64>| m.map_or("unlimited".to_owned(), human_bytes);
        let (x, y) = (show(a.memory), show(b.memory));
        out.push(if x == y {
            let bytes = |m: Option<u64>| m.map_or("unlimited".to_owned(), |v| v.to_string());
            format!("memory {} -> {} bytes", bytes(a.memory), bytes(b.memory))
        } else {
            format!("memory {x} -> {y}")
        });
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// A plan for `cpus` CPUs and `mib` MiB (a VPS's published sizes).
    fn plan(cpus: f64, mib: u64) -> Plan {
        use crate::plan::facts::{Hint, Platform, PlatformKind, PodResources};
        let hint = |value| Hint {
            value,
            variable: "test".into(),
        };
        let o = crate::plan::resolve(&Default::default(), &Default::default()).unwrap();
        crate::plan::plan_for_pod(
            &PodResources {
                node_cpus: 64,
                cpus: Some(hint(cpus)),
                memory: Some(Hint {
                    value: mib * MIB,
                    variable: "test".into(),
                }),
            },
            &Platform::new(PlatformKind::Vps, "test"),
            &o,
        )
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_change_is_put_in_force_once_read_twice_in_a_row() {
        let mut r = Resizer::new(secs(1.0));
        let t0 = Instant::now();
        let (one, two) = (plan(1.0, 1024), plan(2.0, 1024));
        assert!(r.tick(t0, &one, one.clone()).is_none(), "nothing changed");
        assert!(r.tick(t0, &one, two.clone()).is_none(), "read once");
        let a = r
            .tick(t0 + secs(1.0), &one, two.clone())
            .expect("read twice");
        assert_eq!(a.plan.workers, 2);
        assert_eq!(a.changes, "CPUs 1 -> 2", "memory did not change");
        assert_eq!(
            (a.env, r.env()),
            (1, 1),
            "COREFIT_WORKERS and the heap changed"
        );
    }

    #[test]
    fn a_limit_that_flips_back_or_flaps_does_not_churn_the_pool() {
        let mut r = Resizer::new(secs(1.0));
        let t0 = Instant::now();
        let (one, two, three) = (plan(1.0, 4096), plan(2.0, 4096), plan(3.0, 4096));
        // Flips back within an interval: nothing.
        assert!(r.tick(t0, &one, two.clone()).is_none());
        assert!(r.tick(t0 + secs(1.0), &one, one.clone()).is_none());
        assert!(r.tick(t0 + secs(2.0), &one, two.clone()).is_none());
        // A different new reading starts over.
        assert!(r.tick(t0 + secs(3.0), &one, three.clone()).is_none());
        assert!(r.tick(t0 + secs(4.0), &one, three.clone()).is_some());
        // Back to 2 CPUs: held, but too soon after the last change.
        let t = t0 + secs(4.0);
        assert!(r.tick(t + secs(1.0), &three, two.clone()).is_none());
        assert!(r.tick(t + secs(2.0), &three, two.clone()).is_none());
        assert!(r.tick(t + secs(4.9), &three, two.clone()).is_none());
        let a = r
            .tick(t + secs(5.0), &three, two.clone())
            .expect("gap over");
        assert_eq!(a.changes, "CPUs 3 -> 2");
        assert_eq!(r.env(), 2);
    }

    #[test]
    fn the_environment_generation_moves_only_with_the_environment() {
        let mut r = Resizer::new(secs(1.0));
        let t0 = Instant::now();
        // 2 -> 2.5 CPUs: still 2 workers, the same heap ceilings.
        let (two, more) = (plan(2.0, 1024), plan(2.5, 1024));
        assert_eq!(two.worker_env, more.worker_env);
        r.tick(t0, &two, more.clone());
        let a = r.tick(t0, &two, more).unwrap();
        assert_eq!((a.env, a.changes.as_str()), (0, "CPUs 2 -> 2.5"));
    }

    #[test]
    fn the_log_names_only_what_changed() {
        assert_eq!(
            changes(&plan(1.0, 1024), &plan(1.0, 512)),
            "memory 1 GiB -> 512 MiB"
        );
        assert_eq!(
            changes(&plan(1.0, 1024), &plan(2.0, 2048)),
            "CPUs 1 -> 2, memory 1 GiB -> 2 GiB"
        );
        let mut a = plan(1.0, 1024);
        let b = a.clone();
        if let Some(m) = &mut a.memory {
            m.value += 4096;
        }
        assert_eq!(
            changes(&b, &a),
            "memory 1073741824 -> 1073745920 bytes",
            "never \"1 GiB -> 1 GiB\""
        );
    }
}
